"""torchattacks' DeepFool with the overshoot applied to the total perturbation, as in the original.

Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method to fool deep neural
networks", CVPR 2016, https://arxiv.org/abs/1511.04599 (Algorithm 2 and Sec. 3.3): the linearised
steps ``r_i`` are accumulated and the returned perturbation is ``(1 + overshoot) · Σ r_i``; the
loop stops once *that* point is misclassified. torchattacks (3.5) instead scales every step by
``1 + overshoot`` and clips it to [0, 1]: where clipping eats part of a step (digits and MNIST are
mostly saturated pixels) the iterates approach the decision boundary geometrically and never
cross it, so many inputs come back unflipped whatever the step budget. This subclass keeps
torchattacks' per-example linearised step (``_forward_indiv``, with zero overshoot inside) and
applies the overshoot to the accumulated perturbation, as the paper does.
"""

from __future__ import annotations

import torch
import torchattacks


class TotalOvershootDeepFool(torchattacks.DeepFool):
    """DeepFool whose stopping test and output use ``x + (1 + overshoot) · (x_i - x)``, clipped to [0, 1]."""

    def __init__(self, model, steps=50, overshoot=0.02):
        super().__init__(model, steps=steps, overshoot=0.0)  # the inner steps are plain DeepFool steps
        self.total_overshoot = overshoot

    def forward(self, images, labels):
        return self.forward_return_target_labels(images, labels)[0]

    def _overshot(self, images: torch.Tensor, iterates: torch.Tensor) -> torch.Tensor:
        return (images + (1 + self.total_overshoot) * (iterates - images)).clamp(0.0, 1.0)

    def forward_return_target_labels(self, images, labels):
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)
        iterates = images.clone()
        targets = labels.clone()
        for _ in range(self.steps):
            with torch.no_grad():
                active = self.get_logits(self._overshot(images, iterates)).argmax(1) == labels
            if not active.any():
                break
            for idx in active.nonzero().flatten().tolist():
                _, target, iterate = self._forward_indiv(iterates[idx : idx + 1].clone(), labels[idx])
                iterates[idx : idx + 1] = iterate.detach()
                targets[idx] = target
        return self._overshot(images, iterates).detach(), targets
