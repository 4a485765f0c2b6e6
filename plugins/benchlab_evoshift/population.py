"""Fitness of a CMA-ES population (EvoShift Algorithm 1, lines 3-6).

Every candidate pattern perturbs the surrogate training subset; a fresh surrogate is trained on it
(line 3) and scored on a disjoint held-out part of the *training* set (never the test set) with
the semantic mismatch cost (eq. 6, or line 4's probability form), optionally minus the weighted
proxy A-distance of a discriminator between clean and perturbed images (eq. 7, lines 5-6).
CMA-ES minimises the returned costs.

All candidates of a search share one surrogate initialisation and one batch order (common random
numbers): costs then differ only through the patterns, and the two evaluators below agree.
``sequential`` trains one model after another with the shared trainer; ``batched`` trains the
whole population at once as stacked parameters under ``torch.func.vmap`` (one grouped
convolution per layer instead of P small ones), which is what makes a generation cheap.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.nn import functional as F

from benchlab import Recipe, TensorData, fit, make_optimizer, stamp

from .patterns import Pattern

COSTS = ("ce-gap", "true-prob")
# Images per forward pass when scoring a population (bounds activation memory on 28x28+ inputs).
SCORE_CHUNK = 256
# Full-batch Adam steps for the linear clean-vs-perturbed discriminator of eq. 7.
DISCRIMINATOR_STEPS = 100


@dataclass
class SearchData:
    """The training-set parts a search uses: surrogate training subset, fitness hold-out, fit mask."""

    fit: TensorData
    holdout: TensorData
    fit_mask: torch.Tensor  # which ``fit`` images carry their class pattern (the poisoned fraction)


def perturb(data: TensorData, mask: torch.Tensor, pattern: Pattern) -> torch.Tensor:
    """Images of ``data`` with the pattern of their class set where ``mask`` and the class is attacked."""
    index = (mask & (data.y < pattern.classes)).nonzero().squeeze(1)
    x = data.x.clone()
    x[index] = stamp(data.x[index], data.y[index], pattern.locations, pattern.values)
    return x


class StackedModels:
    """P copies of one architecture as stacked parameters, trained and evaluated under vmap."""

    def __init__(self, model: nn.Module, count: int):
        self.base = copy.deepcopy(model).to("meta")
        self.params = {k: v.detach().unsqueeze(0).repeat(count, *[1] * v.ndim).requires_grad_(True)
                       for k, v in model.named_parameters()}
        self.buffers = {k: v.unsqueeze(0).repeat(count, *[1] * v.ndim) for k, v in model.named_buffers()}

    def _forward(self, params, buffers, x):
        return functional_call(self.base, (params, buffers), (x,))

    def logits(self, x: torch.Tensor, shared: bool) -> torch.Tensor:
        """(P, N, K) logits; ``x`` is (N, ...) for every model if ``shared`` else (P, N, ...)."""
        run = vmap(self._forward, in_dims=(0, 0, None if shared else 0), randomness="different")
        return run(self.params, self.buffers, x)

    def train(self, xs: torch.Tensor, y: torch.Tensor, recipe: Recipe, seed: int) -> None:
        """The shared trainer's loop (same batch order and optimizer), for all P models at once.

        Per-element optimizers (SGD, Adam, RMSprop) on stacked tensors with the sum of per-model
        losses give each model exactly the update it would get alone.
        """
        optimizer = make_optimizer(self.params.values(), recipe)
        steps = -(-len(y) // recipe.batch_size)
        scheduler = None
        if recipe.schedule == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, recipe.epochs * steps)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        self.base.train()
        for _ in range(recipe.epochs):
            order = torch.randperm(len(y), generator=generator).to(y.device)
            for start in range(0, len(y), recipe.batch_size):
                index = order[start : start + recipe.batch_size]
                logits = self.logits(xs[:, index], shared=False)
                per_model = F.cross_entropy(logits.flatten(0, 1), y[index].repeat(len(xs)), reduction="none")
                loss = per_model.view(len(xs), -1).mean(1).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
        self.base.eval()


class Fitness:
    """Callable: list of patterns -> numpy array of costs (lower is a stronger attack)."""

    def __init__(self, data: SearchData, build: Callable[[], nn.Module], recipe: Recipe, seed: int,
                 cost: str = "ce-gap", divergence: float = 0.0, batched: bool = True):
        if cost not in COSTS:
            raise ValueError(f"unknown cost {cost!r}; valid: {', '.join(COSTS)}")
        self.data, self.build, self.recipe, self.seed = data, build, recipe, seed
        self.cost, self.divergence, self.batched = cost, divergence, batched
        self.evaluations = 0

    def __call__(self, patterns: list[Pattern]) -> np.ndarray:
        fit_set, holdout = self.data.fit, self.data.holdout
        xs_fit = torch.stack([perturb(fit_set, self.data.fit_mask, p) for p in patterns])
        every = torch.ones(len(holdout), dtype=torch.bool, device=holdout.device)
        xs_hold = torch.stack([perturb(holdout, every, p) for p in patterns])
        clean, perturbed = self._train_and_score(xs_fit, xs_hold)
        costs = semantic_cost(clean, perturbed, holdout.y, self.cost)
        if self.divergence:
            costs = costs - self.divergence * proxy_a_distance(fit_set.x, xs_fit, holdout.x, xs_hold)
        self.evaluations += len(patterns)
        return costs.double().cpu().numpy()

    def _fresh_model(self) -> nn.Module:
        with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG stream untouched
            torch.manual_seed(self.seed)  # one shared initialisation for every candidate
            model = self.build()
        return model.to(self.data.fit.device)

    @torch.no_grad()
    def _score(self, model_logits, x_clean, xs_hold):
        chunks = [(model_logits(x_clean[i : i + SCORE_CHUNK], False),
                   model_logits(xs_hold[:, i : i + SCORE_CHUNK], True))
                  for i in range(0, len(x_clean), SCORE_CHUNK)]
        return torch.cat([c for c, _ in chunks], 1), torch.cat([p for _, p in chunks], 1)

    def _train_and_score(self, xs_fit, xs_hold):
        y, x_clean = self.data.fit.y, self.data.holdout.x
        if self.batched:
            stacked = StackedModels(self._fresh_model(), len(xs_fit))
            stacked.train(xs_fit, y, self.recipe, self.seed)
            return self._score(lambda x, per_model: stacked.logits(x, shared=not per_model), x_clean, xs_hold)
        models = []
        for x in xs_fit:
            model = self._fresh_model()
            fit(model, TensorData(x, y), self.recipe, seed=self.seed)
            models.append(model.eval())

        def logits(x, per_model):
            return torch.stack([m(x[j] if per_model else x) for j, m in enumerate(models)])

        return self._score(logits, x_clean, xs_hold)


def semantic_cost(clean: torch.Tensor, perturbed: torch.Tensor, y: torch.Tensor, cost: str) -> torch.Tensor:
    """Per-model cost from (P, M, K) logits on clean and pattern-carrying hold-out images.

    ``ce-gap``: minus eq. 6, -(CE(x, y) - CE(x + delta, y)) averaged over the hold-out.
    ``true-prob``: Algorithm 1 line 4, mean of F(x)_y + sum_{j != y} (1 - F(x)_j) on clean x.
    """
    count, size, classes = clean.shape
    target = y.repeat(count)
    if cost == "ce-gap":
        ce_clean = F.cross_entropy(clean.flatten(0, 1), target, reduction="none").view(count, size)
        ce_pert = F.cross_entropy(perturbed.flatten(0, 1), target, reduction="none").view(count, size)
        return -(ce_clean - ce_pert).mean(1)
    probs = clean.softmax(-1)
    true = probs.gather(2, y.view(1, -1, 1).expand(count, -1, 1)).squeeze(2)
    others = (1 - probs).sum(-1) - (1 - true)
    return (true + others).mean(1)


def proxy_a_distance(clean_fit, xs_fit, clean_hold, xs_hold) -> torch.Tensor:
    """Eq. 7 per candidate: 2(1 - 2 eps) of a linear clean-vs-perturbed discriminator.

    One logistic regression per candidate (batched), trained on the surrogate subset (clean = 1,
    perturbed = 0) and tested on the hold-out; eps is its balanced error there.
    """
    count = len(xs_fit)
    centre = clean_fit.flatten(1).mean(0)

    def inputs(clean, perturbed):
        clean = clean.flatten(1).unsqueeze(0).expand(count, -1, -1)
        return torch.cat((clean, perturbed.flatten(2)), 1) - centre

    x_fit, x_hold = inputs(clean_fit, xs_fit), inputs(clean_hold, xs_hold)
    n_fit, n_hold = len(clean_fit), len(clean_hold)
    target = torch.cat((torch.ones(n_fit), torch.zeros(n_fit))).to(x_fit.device)
    weight = torch.zeros(count, x_fit.shape[-1], device=x_fit.device, requires_grad=True)
    bias = torch.zeros(count, 1, device=x_fit.device, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=0.05)
    for _ in range(DISCRIMINATOR_STEPS):
        logits = torch.einsum("pnd,pd->pn", x_fit, weight) + bias
        losses = F.binary_cross_entropy_with_logits(logits, target.expand(count, -1), reduction="none")
        loss = losses.mean(1).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        says_clean = (torch.einsum("pnd,pd->pn", x_hold, weight) + bias) > 0
        error = 0.5 * ((~says_clean[:, :n_hold]).float().mean(1) + says_clean[:, n_hold:].float().mean(1))
    return 2 * (1 - 2 * error)
