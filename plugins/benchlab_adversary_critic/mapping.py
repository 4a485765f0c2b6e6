"""The adversarial mapping used during training: its confidence C, the mapping, and its cycle (eq. 6).

During training (Sec. 4) the attack's target is the class with the closest decision boundary to
the current prediction, and its confidence C is the running mean of the classifier's confidence on
natural images of that class: adversarial examples should be as confident as natural ones. The
adversarial cycle-consistency constraint maps an adversarial example back to its source class and
asks to land on the original input. As in the authors' code, the training mapping does not project
onto [0, 1] (the paper projects at test time only): the critic sees out-of-range pixels, and no
gradient is cut by the box.
"""

from __future__ import annotations

import torch
from torch import nn

from benchlab import TensorData

from .high_confidence import closest_boundary_target, high_confidence_attack

# Exponential decay of the per-class running mean per batch (the authors' released code: 0.5).
CONFIDENCE_DECAY = 0.5


class ClassConfidence:
    """Running mean, per predicted class, of the classifier's confidence (max softmax) on natural data."""

    def __init__(self, values: torch.Tensor):
        self.values = values

    @classmethod
    @torch.no_grad()
    def estimate(cls, model: nn.Module, data: TensorData, num_classes: int, batch_size: int = 1024):
        """The exact per-class mean over ``data`` (after pretraining); unseen classes get the overall mean."""
        probs = torch.cat([model(data.x[i : i + batch_size]).softmax(1)
                           for i in range(0, len(data), batch_size)])
        confidence, pred = probs.max(1)
        total = torch.zeros(num_classes, device=probs.device).index_add_(0, pred, confidence)
        count = torch.zeros(num_classes, device=probs.device).index_add_(0, pred, torch.ones_like(confidence))
        values = torch.where(count > 0, total / count.clamp_min(1), confidence.mean())
        return cls(values)

    @torch.no_grad()
    def update(self, logits: torch.Tensor) -> None:
        confidence, pred = logits.softmax(1).max(1)
        total = torch.zeros_like(self.values).index_add_(0, pred, confidence)
        count = torch.zeros_like(self.values).index_add_(0, pred, torch.ones_like(confidence))
        batch_mean = torch.where(count > 0, total / count.clamp_min(1), self.values)  # absent: keep
        self.values = CONFIDENCE_DECAY * self.values + (1 - CONFIDENCE_DECAY) * batch_mean

    def __getitem__(self, classes: torch.Tensor) -> torch.Tensor:
        return self.values[classes]


def adversarial_mapping(model: nn.Module, x: torch.Tensor, source: torch.Tensor, confidence: ClassConfidence,
                        steps: int, overshoot: float, differentiable: bool,
                        target: torch.Tensor | None = None):
    """``(x_adv, target)``: A_f(x; t) towards the closest boundary ``t`` at confidence ``C[t]``."""
    if target is None:
        target = closest_boundary_target(model, x, source)
    x_adv, _ = high_confidence_attack(model, x, target, confidence[target], steps, overshoot=overshoot,
                                      project=False, differentiable=differentiable)
    return x_adv, target


def cycle_consistency(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, source: torch.Tensor,
                      source_confidence: torch.Tensor, steps: int, overshoot: float) -> torch.Tensor:
    """Eq. 6: ``mean ||A_f(A_f(x, t), s) - x||²`` with the way back differentiable in the parameters.

    ``x_adv`` enters detached (as in the authors' code) so the term constrains the mapping back;
    the squared l2 distance follows the released code (the paper writes ||.||₂). Zero when ``x``
    is a fixed point of the cycle.
    """
    if not len(x):
        return x.sum() * 0.0
    x_back, _ = high_confidence_attack(model, x_adv.detach(), source, source_confidence, steps,
                                       overshoot=overshoot, project=False, differentiable=True)
    return (x_back - x).flatten(1).pow(2).sum(1).mean()
