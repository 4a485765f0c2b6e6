"""Plumbing of LWA's one-step attacks: a per-example unit direction, scaled to a budget or searched.

Every attack of this plugin computes a unit-norm direction ``d(x)`` once per example (Adv_Alpha,
Adv_Loss, Adv_Loss_Sign differ only there) and then either

* :class:`DirectionalAttack` — steps to ``x + c·d`` (the paper's ``r* = c·r/||r||``), clipped to
  [0, 1]; clipping can only shrink the perturbation, so it stays within the budget; or
* :class:`MinimalDirectionalAttack` — searches the smallest scale ``t`` along the same ``d`` that
  changes the prediction away from the label (a grid scan, then bisection in the first flipping
  interval), so a cell reports the perturbation size each attack needs (``perturbation_norm``,
  ``rho_adv``). The budgeted attack at ``c`` fools an example exactly when its ``t ≤ c`` (up to
  non-monotone predictions along the ray), so the two variants describe the same curve.

Both work in chunks on the context's device; like every evasion attack they accept ``source=``
(:mod:`benchlab.transfer`): the runner then hands them the source model as ``model``.
"""

from __future__ import annotations

import torch

from benchlab import (
    Classifier,
    Context,
    EvasionAttack,
    EvasionResult,
    Metric,
    Param,
    chunks,
    eps_param,
    missing_budget,
    norm_param,
    per_example,
    perturbation_norms,
    resolve_budget,
)

from .linearization import NORMS

# Without an explicit max_eps the search covers this multiple of the dataset's budget (the paper's
# Figure 1 sweeps 0 -> 4 in l2 on MNIST, i.e. 2.7 x its c = 1.5).
SEARCH_MULTIPLE = 4.0


class DirectionalAttack(EvasionAttack):
    """Base: one step of length eps along ``direction`` (subclasses define the direction)."""

    params = (norm_param(NORMS, "l2"), eps_param())

    def direction(self, model: Classifier, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """A unit-``norm`` perturbation per example, shaped like ``x``."""
        raise NotImplementedError

    def incompatibility(self, info, victim):
        return missing_budget(self.p.eps, self.p.norm, info) or super().incompatibility(info, victim)

    def perturb(self, model: Classifier, x: torch.Tensor, y: torch.Tensor, ctx: Context) -> torch.Tensor:
        eps = resolve_budget(self.p.eps, self.p.norm, ctx)
        parts = []
        for part in ctx.progress.steps(chunks(len(x)), "batch"):
            xs, ys = x[part].to(ctx.device), y[part].to(ctx.device)
            parts.append((xs + eps * self.direction(model, xs, ys)).clamp(0.0, 1.0).detach())
        return torch.cat(parts).to(x.device) if parts else x.clone()


@torch.no_grad()
def smallest_flip_scale(model: Classifier, x: torch.Tensor, y: torch.Tensor, direction: torch.Tensor,
                        max_eps: float, grid: int, bisect: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example, the smallest ``t ∈ [0, max_eps]`` with ``predict(clip(x + t·d)) != y``.

    Returns ``(t, found)``; examples never flipped get ``t = max_eps`` and ``found = False``.
    A grid of ``grid`` equal steps brackets the first flip, ``bisect`` halvings refine it; each
    round is one batched forward pass over the examples still undecided.
    """
    def flips(index: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        moved = (x[index] + per_example(scale, direction[index]) * direction[index]).clamp(0.0, 1.0)
        return model.predict(moved).to(y.device) != y[index]

    n = len(x)
    low = torch.zeros(n, device=y.device)
    high = torch.full((n,), float("inf"), device=y.device)
    high[model.predict(x).to(y.device) != y] = 0.0  # already misclassified: nothing to do
    for step in range(1, grid + 1):
        open_ = torch.isinf(high).nonzero().squeeze(1)
        if not len(open_):
            break
        scale = torch.full((len(open_),), max_eps * step / grid, device=y.device)
        flipped = flips(open_, scale)
        high[open_[flipped]] = scale[flipped]
        low[open_[~flipped]] = scale[~flipped]
    found = torch.isfinite(high)
    refine = (found & (high > 0)).nonzero().squeeze(1)
    for _ in range(bisect if len(refine) else 0):
        middle = (low[refine] + high[refine]) / 2
        flipped = flips(refine, middle)
        high[refine] = torch.where(flipped, middle, high[refine])
        low[refine] = torch.where(flipped, low[refine], middle)
    return torch.where(found, high, torch.full_like(high, max_eps)), found


class MinimalDirectionalAttack(EvasionAttack):
    """Base: the smallest flip along ``direction`` (reports ``perturbation_norm`` and ``rho_adv``)."""

    minimal_norm = True
    declared_metrics = (
        Metric("median_flip_norm", True, "median norm of the perturbations that flip an input the crafting "
                                         "model classified correctly", fraction=False),
    )
    params = (
        norm_param(NORMS, "l2"),
        Param("max_eps", float, None, f"largest scale searched (None: {SEARCH_MULTIPLE:g} x the dataset "
                                      f"budget for the norm)", low=0.0),
        Param("grid", int, 20, "equal steps scanning (0, max_eps] for the first flip", low=1),
        Param("bisect", int, 10, "bisection halvings refining the first flipping step", low=0),
    )
    direction = DirectionalAttack.direction  # subclasses define it, as for the budgeted attacks

    def incompatibility(self, info, victim):
        return missing_budget(self.p.max_eps, self.p.norm, info) or super().incompatibility(info, victim)

    def max_eps(self, ctx: Context) -> float:
        if self.p.max_eps is not None:
            return self.p.max_eps
        limit = SEARCH_MULTIPLE * resolve_budget(None, self.p.norm, ctx)
        return min(limit, 1.0) if self.p.norm == "linf" else limit  # beyond 1, linf steps change nothing

    def perturb(self, model: Classifier, x: torch.Tensor, y: torch.Tensor, ctx: Context) -> EvasionResult:
        max_eps = self.max_eps(ctx)
        parts, flip_norms = [], []
        for part in ctx.progress.steps(chunks(len(x)), "batch"):
            xs, ys = x[part].to(ctx.device), y[part].to(ctx.device)
            direction = self.direction(model, xs, ys).detach()
            scale, found = smallest_flip_scale(model, xs, ys, direction, max_eps,
                                               self.p.grid, self.p.bisect)
            x_adv = (xs + per_example(scale, xs) * direction).clamp(0.0, 1.0)
            parts.append(x_adv)
            flipped = found & (scale > 0)  # correctly classified and then fooled
            flip_norms.append(perturbation_norms(x_adv - xs, self.p.norm)[flipped])
        if not parts:
            return EvasionResult(x.clone())
        norms = torch.cat(flip_norms)
        median = norms.median().item() if len(norms) else float("nan")
        return EvasionResult(torch.cat(parts).to(x.device), metrics={"median_flip_norm": median})
