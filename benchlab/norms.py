"""Norm-ball geometry shared by attacks: budgets, steepest-ascent steps, projections.

Every function works on whole batches (N, C, H, W); per-example norms are taken over all of
(C, H, W), matching :func:`benchlab.interfaces.perturbation_norms`.
"""

from __future__ import annotations

import torch

from benchlab.context import Context
from benchlab.params import Param

# Guards divisions by a per-example norm that may be zero (e.g. a saturated softmax gradient).
TINY = 1e-12
# Examples per chunk: bounds peak memory of gradient attacks on large inputs.
CHUNK = 512


def norm_param(choices: tuple[str, ...] = ("linf", "l2"), default: str = "linf") -> Param:
    return Param("norm", str, default, "threat-model norm", choices=choices)


def eps_param() -> Param:
    return Param("eps", float, None, "perturbation budget (None: the matrix or dataset budget)", low=0.0)


def fraction_param(default: float) -> Param:
    return Param("fraction", float, default, "fraction of training examples poisoned (seeded)",
                 low=0.0, high=1.0)


def resolve_budget(value, norm: str, ctx: Context):
    """The explicit parameter value, else the dataset's default budget for ``norm``."""
    if value is not None:
        return value
    try:
        return ctx.info.budgets[norm]
    except KeyError:
        raise ValueError(
            f"no {norm} budget given and dataset {ctx.info.name!r} defines none "
            f"(it has: {', '.join(ctx.info.budgets) or 'none'}); pass it explicitly"
        ) from None


def missing_budget(value, norm: str, info) -> str | None:
    """An incompatibility reason when no budget is given and the dataset has none for ``norm``."""
    if value is None and norm not in info.budgets:
        return f"dataset {info.name!r} has no default {norm} budget; set it explicitly"
    return None


def chunks(n: int, size: int = CHUNK) -> list[slice]:
    """The slices of ``n`` items in chunks of ``size`` (a list: ``ctx.progress.steps`` counts it)."""
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def per_example(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a per-example vector (N,) so it broadcasts against ``like`` (N, ...)."""
    return values.view(-1, *([1] * (like.ndim - 1)))


def l2_norms(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1)


def steepest_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The unit-norm direction maximising the linearised loss: sign for linf, g/||g||₂ for l2."""
    if norm == "linf":
        return grad.sign()
    if norm == "l2":
        return grad / per_example(l2_norms(grad).clamp_min(TINY), grad)
    raise ValueError(f"unsupported norm {norm!r}; choose linf or l2")


def project(delta: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """Euclidean projection of each perturbation onto the ``norm`` ball of radius ``eps``."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    if norm == "l2":
        scale = (eps / l2_norms(delta).clamp_min(TINY)).clamp(max=1.0)
        return delta * per_example(scale, delta)
    raise ValueError(f"unsupported norm {norm!r}; choose linf or l2")


def on_sphere(shape, norm: str, eps: float, generator: torch.Generator) -> torch.Tensor:
    """Random perturbations of norm exactly ``eps``: random signs (linf) or a uniform direction (l2)."""
    if norm == "linf":
        signs = torch.randint(0, 2, shape, generator=generator).float()
        return (2 * signs - 1) * eps
    if norm == "l2":
        direction = torch.randn(shape, generator=generator)
        return eps * direction / per_example(l2_norms(direction).clamp_min(TINY), direction)
    raise ValueError(f"unsupported norm {norm!r}; choose linf or l2")


def in_ball(shape, norm: str, eps: float, generator: torch.Generator) -> torch.Tensor:
    """Random perturbations uniform in the ``norm`` ball of radius ``eps`` (PGD's random start)."""
    if norm == "linf":
        return (2 * torch.rand(shape, generator=generator) - 1) * eps
    if norm == "l2":
        # Uniform in the d-ball: uniform direction, radius eps * U^(1/d).
        dims = int(torch.tensor(shape[1:]).prod())
        radius = torch.rand(shape[0], generator=generator) ** (1.0 / dims)
        surface = on_sphere(shape, "l2", 1.0, generator)
        return eps * surface * per_example(radius, surface)
    raise ValueError(f"unsupported norm {norm!r}; choose linf or l2")
