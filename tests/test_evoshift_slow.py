"""End to end: an EvoShift search beats the random-pixels pattern it starts from (digits), and
vibCE stops the nuisance pattern from deciding the label (Fashion-MNIST subset).

Both poisons carry N_p = 2 pixels per class, all training images; the searched pattern must lower
the clean test accuracy of GrayNet (the victim's own Adam recipe, two training seeds) clearly
more than random placement does. Runs the search for real (48 surrogates), so it is marked slow.
The vibCE check uses 28x28 Fashion-MNIST: on 8x8 digits the pattern never dominates plain CE
(alpha_N < 0.2 there), so there is nothing for vibCE to remove (see the plugin README).
"""

from __future__ import annotations

import pytest
import torch

from benchlab.context import Context
from benchlab.datasets.base import DatasetMissing
from benchlab.plugins import get_registry
from benchlab.train import fit

SEARCH = "popsize=8,generations=6,subset=400,epochs=8"


def victim_accuracy(poison, splits, seed: int) -> float:
    victim = get_registry().create("victims", "graynet")
    torch.manual_seed(seed)
    model = victim.build(splits.info.input_shape, splits.info.num_classes)
    fit(model, poison.data, victim.recipe, seed=seed)
    model.eval()
    with torch.no_grad():
        return (model(splits.test.x).argmax(1) == splits.test.y).float().mean().item()


@pytest.mark.slow
def test_evoshift_hurts_more_than_random_pixels_of_the_same_budget(digits):
    registry = get_registry()
    ctx = Context(seed=0, device=torch.device("cpu"), info=digits.info, registry=registry)
    searched = registry.create("attacks", f"evoshift:pixels=2,{SEARCH}").craft(digits.train, ctx)
    random = registry.create("attacks", "random-pixels:pixels=2").craft(digits.train, ctx)
    fitness = searched.extras["fitness"]
    assert fitness[1:].min() < fitness[0].min()  # the search moved past generation 0
    evo = sum(victim_accuracy(searched, digits, seed) for seed in (0, 1)) / 2
    rand = sum(victim_accuracy(random, digits, seed) for seed in (0, 1)) / 2
    assert evo < rand - 0.03, f"EvoShift {evo:.3f} vs random pixels {rand:.3f}"


@pytest.mark.slow
def test_vibce_lowers_nuisance_sensitivity_without_losing_semantics():
    registry = get_registry()
    try:
        splits = registry.create("datasets", "fashion-mnist:per_class=50,test_per_class=20").load()
    except DatasetMissing as missing:
        pytest.skip(str(missing))
    ctx = Context(seed=0, device=torch.device("cpu"), info=splits.info, registry=registry)
    poison = registry.create("attacks", "evoshift:pixels=5,generations=0").craft(splits.train, ctx)
    victim = registry.create("victims", "graynet")
    metrics = {}
    for name in ("erm", "vibce"):
        fitted = registry.create("defenses", name).fit(victim, poison.data, ctx)
        metrics[name] = registry.create("attacks", "evoshift").metrics(poison, fitted, splits, ctx)
    assert metrics["vibce"]["alpha_n"] < metrics["erm"]["alpha_n"] - 0.08, metrics
    assert metrics["vibce"]["alpha_s"] > metrics["erm"]["alpha_s"] - 0.03, metrics
