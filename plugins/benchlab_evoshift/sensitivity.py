"""Semantic and nuisance sensitivity (EvoShift Section VII-B, eqs. 12-13) of class-pattern poisons.

Both read the poison extras ``locations`` (K, N, 2) and ``values`` (K, N, C) that the baselines'
``random-pixels`` and every attack of this plugin store, plus ``attacked`` (K,) when only some
classes carry a pattern (absent: all do).

* ``alpha_s`` = (clean test accuracy - 1/K) / (1 - 1/K): 1 for a classifier that ignores the
  pattern and is perfect, 0 for chance.
* ``alpha_n`` = (mean over attacked classes k of the fraction of *all* test images predicted k
  once class k's pattern is overlaid - 1/K) / (1 - 1/K): near 1 when the pattern alone decides the
  label, near 0 for a robust classifier.
"""

from __future__ import annotations

import torch

from benchlab import Classifier, Context, DataSplits, Fitted, Metric, PoisonAttack, PoisonedSet, TensorData, stamp


def normalise(accuracy: float, num_classes: int) -> float:
    """Map chance (1/K) to 0 and perfect to 1, as eqs. 12 and 13 do."""
    chance = 1.0 / num_classes
    return (accuracy - chance) / (1.0 - chance)


def alpha_s(classifier: Classifier, test: TensorData, num_classes: int) -> float:
    """Eq. 12: normalised clean test accuracy of the model trained on the poison."""
    return normalise(classifier.accuracy(test.x, test.y), num_classes)


def alpha_n(classifier: Classifier, test: TensorData, locations: torch.Tensor, values: torch.Tensor,
            attacked: torch.Tensor | None = None) -> float:
    """Eq. 13: how often overlaying class k's pattern on any test image makes the model say k."""
    num_classes = len(values)
    classes = range(num_classes) if attacked is None else attacked.nonzero().flatten().tolist()
    hits = []
    for k in classes:
        target = torch.full_like(test.y, k)
        hits.append(classifier.accuracy(stamp(test.x, target, locations, values), target))
    return normalise(sum(hits) / len(hits), num_classes) if hits else float("nan")


def sensitivity_metrics(poison: PoisonedSet, fitted: Fitted, splits: DataSplits) -> dict:
    """``alpha_s`` and ``alpha_n`` for any poison carrying class-pattern extras."""
    extras = poison.extras
    return {
        "alpha_s": alpha_s(fitted.classifier, splits.test, splits.info.num_classes),
        "alpha_n": alpha_n(fitted.classifier, splits.test, extras["locations"], extras["values"],
                           extras.get("attacked")),
    }


class PatternPoison(PoisonAttack):
    """Base of the class-pattern poisons: reports eqs. 12-13 (and search diagnostics if present)."""

    declared_metrics = (
        Metric("alpha_s", True, "semantic sensitivity (eq. 12): clean test accuracy normalised to "
                                "(acc - 1/K) / (1 - 1/K)"),
        Metric("alpha_n", False, "nuisance sensitivity (eq. 13): how often stamping class k's pattern on any "
                                 "test image makes the model predict k, normalised as alpha_s"),
        Metric("search_cost_gen0", True, "evoshift: lowest search cost in generation 0 (lower: a stronger "
                                         "pattern on the search's own hold-out)", fraction=False),
        Metric("search_cost_best", True, "evoshift: lowest search cost over all generations", fraction=False),
    )

    def metrics(self, poison: PoisonedSet, fitted: Fitted, splits: DataSplits, ctx: Context) -> dict:
        out = sensitivity_metrics(poison, fitted, splits)
        fitness = poison.extras.get("fitness")  # (generations, popsize) costs of an EvoShift search
        if fitness is not None and fitness.numel():
            out["search_cost_gen0"] = fitness[0].min().item()
            out["search_cost_best"] = fitness.min().item()
        return out
