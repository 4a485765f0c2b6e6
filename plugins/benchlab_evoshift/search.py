"""A CMA-ES loop (pycma's ask/tell) that can stop after any generation and resume from the cache.

Each generation's Gaussian draws come from a generator seeded by (seed, generation), so a
generation is reproducible on its own. What is cached after every generation is the history of
asked solutions and their costs, plus the distribution (mean, step size, covariance) and the
best-so-far solution for inspection; resuming replays the cached generations through ``tell``
(no surrogate is retrained) and continues with fresh ones. Everything is stored as safetensors
tensors plus JSON info in the run's cache (``ctx.artifact``: safetensors, no pickle).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from benchlab import ArtifactSlot

CACHE_KIND = "evoshift-search"


@dataclass
class History:
    """Asked solutions (G, P, D) and their costs (G, P), generation by generation."""

    solutions: list[np.ndarray] = field(default_factory=list)
    costs: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.costs)

    def best(self) -> tuple[np.ndarray, float, int]:
        """Best solution over all generations (Algorithm 1, line 8), its cost and generation."""
        costs = np.stack(self.costs)
        generation, member = np.unravel_index(np.argmin(costs), costs.shape)
        return self.solutions[generation][member], float(costs[generation, member]), int(generation)

    def cost_tensor(self) -> torch.Tensor:
        return torch.as_tensor(np.stack(self.costs)) if self.costs else torch.zeros(0, 0, dtype=torch.float64)


class ResumableCMA:
    """CMA-ES in the unit box [0, 1]^D, optionally injecting one known solution into generation 0."""

    def __init__(self, x0: np.ndarray, sigma0: float, popsize: int, seed: int,
                 inject: np.ndarray | None = None):
        self.seed, self.inject = seed, inject
        self._rng = np.random.default_rng([seed, 0])
        options = {"popsize": popsize, "bounds": [0.0, 1.0], "randn": self._randn, "seed": float("nan"),
                   "verbose": -9, "verb_log": 0, "verb_disp": 0}
        import cma  # loads scipy.stats (about a second): only when a search runs

        self.es = cma.CMAEvolutionStrategy(np.asarray(x0, dtype=float), sigma0, options)
        self.cma_version = cma.__version__

    def _randn(self, *shape):
        return self._rng.standard_normal(shape)

    def ask(self, generation: int) -> list[np.ndarray]:
        self._rng = np.random.default_rng([self.seed, generation])
        if generation == 0 and self.inject is not None:
            self.es.inject([self.inject], force=True)
        return self.es.ask()

    def state(self) -> dict[str, torch.Tensor]:
        es = self.es
        return {"mean": torch.as_tensor(np.asarray(es.mean, dtype=float)),
                "sigma": torch.tensor([float(es.sigma)], dtype=torch.float64),
                "covariance": torch.as_tensor(np.asarray(es.sm.C, dtype=float))}

    def run(self, evaluate: Callable[[list[np.ndarray]], np.ndarray], generations: int,
            history: History | None = None,
            on_generation: Callable[[ResumableCMA, History], None] | None = None) -> History:
        """``generations`` generations; those already in ``history`` are replayed, not evaluated."""
        cached = history or History()
        done = History()
        for generation in range(generations):
            asked = self.ask(generation)
            if generation < len(cached):
                solutions, costs = cached.solutions[generation], cached.costs[generation]
            else:
                solutions, costs = np.asarray(asked), np.asarray(evaluate(asked), dtype=float)
            self.es.tell(list(solutions), list(costs))
            done.solutions.append(np.asarray(solutions))
            done.costs.append(np.asarray(costs))
            if generation >= len(cached) and on_generation is not None:
                on_generation(self, done)
        return done


def load_history(slot: ArtifactSlot | None) -> History:
    """The cached generations of a search (empty when absent or without a cache)."""
    found = slot.load() if slot is not None else None
    if found is None:
        return History()
    tensors, _ = found
    solutions, costs = tensors["solutions"].numpy(), tensors["costs"].numpy()
    return History(list(solutions), list(costs))


def save_history(slot: ArtifactSlot | None, search: ResumableCMA, history: History) -> None:
    """Persist the history, distribution and best-so-far after a generation (overwrites)."""
    if slot is None:
        return
    best, cost, generation = history.best()
    tensors = {"solutions": torch.as_tensor(np.stack(history.solutions)), "costs": history.cost_tensor(),
               "best": torch.as_tensor(best), **search.state()}
    info = {"generations": len(history), "best_cost": cost, "best_generation": generation,
            "gen0_best_cost": float(np.min(history.costs[0])), "cma_version": search.cma_version}
    slot.save(tensors, info)
