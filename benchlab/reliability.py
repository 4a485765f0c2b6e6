"""Reliability flags: sanity checks, recorded with every evasion cell, that a robust accuracy can be trusted.

A robust accuracy is an upper bound that is only as good as the attack behind it. These are the
checks RobustBench applies before accepting a model (Croce et al., "RobustBench: a standardized
adversarial robustness benchmark", NeurIPS Datasets and Benchmarks 2021, arXiv:2010.09670, Sec. 3),
following Carlini et al., "On Evaluating Adversarial Robustness", 2019, arXiv:1902.06705 (Sec. 5)
and Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of Security", ICML 2018,
arXiv:1802.00420. Each flag is 1.0 or 0.0 (so the mean over seeds is the share of seeds flagged):

* ``flag_robust_above_clean``: the attacked inputs are classified correctly more often than the clean
  ones, by more than :data:`ROBUST_ABOVE_CLEAN` (an attack cannot help the model).
* ``flag_zero_gradients``: the input gradient of the cross-entropy is exactly zero or not finite on
  more than :data:`ZERO_GRADIENT_SHARE` of the checked test inputs (masked or shattered gradients:
  gradient attacks are blind there). The share itself is ``zero_gradient_share``. Torch models only.
* ``flag_stochastic_forward``: two forward passes over the same inputs disagree beyond float
  rounding (a randomised model needs attacks that average over its randomness); the largest logit
  difference is ``forward_max_change``.
* ``black_box``: 1.0 when the attack saw no gradient of the evaluated model (it declares
  ``needs_gradients = False``, or it was crafted on another model), 0.0 otherwise. The leaderboard
  flags a black-box attack stronger than every white-box attack of its row (gradient masking).
  An attack that changed no input (the ``none`` reference) is left out of that comparison.

The checks run after the attack and its metrics, on the first :data:`CHECKED_INPUTS` test inputs.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .classifier import Classifier
from .interfaces import EvasionAttack
from .norms import chunks

CHECKED_INPUTS = 1000
ZERO_GRADIENT_SHARE = 0.1
ROBUST_ABOVE_CLEAN = 0.005  # half a point: random perturbations may fix an input or two
FORWARD_TOLERANCE = 1e-4  # relative and absolute, on the logits

# Flag metric -> (mark shown on the leaderboard value, what it means); the leaderboard's black-box
# comparison adds BLACK_BOX_MARK.
FLAGS = {
    "flag_robust_above_clean": ("R", f"robust accuracy above clean accuracy "
                                     f"(by > {100 * ROBUST_ABOVE_CLEAN:g} points)"),
    "flag_zero_gradients": ("G", f"zero or non-finite input gradients on > {100 * ZERO_GRADIENT_SHARE:g} % "
                                 f"of the first {CHECKED_INPUTS} test inputs (masked gradients)"),
    "flag_stochastic_forward": ("S", "two forward passes on the same inputs differ (randomised model)"),
}
BLACK_BOX_MARK = ("B", "a black-box attack (no gradients of this model) beats every white-box attack of "
                       "the row by more than 1 point (gradient masking)")


def evasion_flags(attack: EvasionAttack, model: Classifier, x: torch.Tensor, y: torch.Tensor,
                  x_adv: torch.Tensor, *, clean_acc: float, robust_acc: float, transferred: bool) -> dict:
    """The reliability metrics of one evasion cell (see the module docstring)."""
    flags = {"flag_robust_above_clean": float(robust_acc > clean_acc + ROBUST_ABOVE_CLEAN)}
    if not torch.equal(x_adv.to(x.device), x):
        flags["black_box"] = float(transferred or not attack.needs_gradients)
    x, y = x[:CHECKED_INPUTS], y[:CHECKED_INPUTS]
    change, stochastic = forward_change(model, x)
    flags.update(forward_max_change=change, flag_stochastic_forward=float(stochastic))
    if model.differentiable:
        share = zero_gradient_share(model, x, y)
        flags.update(zero_gradient_share=share, flag_zero_gradients=float(share > ZERO_GRADIENT_SHARE))
    return flags


@torch.no_grad()
def forward_change(model: Classifier, x: torch.Tensor) -> tuple[float, bool]:
    """Largest logit difference between two passes over ``x``, and whether it exceeds float rounding."""
    change, differs = 0.0, False
    for part in chunks(len(x)):
        first, second = model.logits(x[part]), model.logits(x[part])
        if first.numel():
            change = max(change, (first - second).abs().max().item())
            differs |= not torch.allclose(first, second, rtol=FORWARD_TOLERANCE, atol=FORWARD_TOLERANCE)
    return change, differs


def zero_gradient_share(model: Classifier, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of inputs whose cross-entropy input gradient is all zeros or has a non-finite entry."""
    if len(x) == 0:
        return 0.0
    blind = 0
    for part in chunks(len(x)):
        with torch.enable_grad():
            inputs = x[part].detach().clone().requires_grad_(True)
            logits = model.logits(inputs)
            if not logits.requires_grad:  # the graph is cut (e.g. a non-differentiable transform)
                blind += len(inputs)
                continue
            loss = F.cross_entropy(logits, y[part].to(logits.device), reduction="sum")
            (grad,) = torch.autograd.grad(loss, inputs, allow_unused=True)
        if grad is None:
            blind += len(inputs)
            continue
        grad = grad.flatten(1)
        blind += ((grad == 0).all(1) | ~torch.isfinite(grad).all(1)).sum().item()
    return blind / len(x)
