"""The inner maximisation shared by the adversarial-training defenses: batched norm-ball ascent.

Steps and projections come from :mod:`benchlab.norms`; this module only strings them together
for a loss of the perturbed input, and fixes the model's mode while the perturbation is crafted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from benchlab import Param, eps_param, norm_param, project, steepest_direction

# Learning-rate-free rule for the inner step when none is given: 2.5·eps/steps lets the iterate
# cross the whole ball and back (Madry et al.'s MNIST 0.01 x 40 for eps 0.3 is 1.3·eps in total).
STEP_RULE = 2.5


def budget_params() -> tuple[Param, ...]:
    """``norm`` and ``eps`` (eps None: the matrix block's budget, else the dataset's)."""
    return norm_param(), eps_param()


def inner_step(step_size: float | None, eps: float, steps: int) -> float:
    return step_size if step_size is not None else STEP_RULE * eps / steps


@contextmanager
def model_mode(model: nn.Module, training: bool) -> Iterator[nn.Module]:
    """Run the block with ``model`` in train or eval mode, restoring the previous mode after."""
    was_training = model.training
    model.train(training)
    try:
        yield model
    finally:
        model.train(was_training)


def ascend(loss_of: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, start: torch.Tensor, norm: str,
           eps: float, steps: int, step_size: float) -> torch.Tensor:
    """``steps`` steepest-ascent steps on ``loss_of`` from ``start``, each projected onto the
    ``norm`` ball of radius ``eps`` around ``x`` and clipped to [0, 1]; returns the last iterate.

    Only the input gradient is taken (``autograd.grad``): the parameters' ``.grad`` stay untouched.
    """
    x_adv = start.detach()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_of(x_adv), x_adv)
        x_adv = x_adv.detach() + step_size * steepest_direction(grad, norm)
        # Projecting then clipping stays in the ball: clipping only moves pixels towards x.
        x_adv = (x + project(x_adv - x, norm, eps)).clamp(0.0, 1.0)
    return x_adv.detach()
