"""EvoShift plugin: pattern decoding, the resumable CMA-ES search, alpha metrics, vibCE, SVF, contracts.

Fast checks on scikit-learn's 8x8 digits; the end-to-end "EvoShift hurts more than random pixels"
and "vibCE resists the pattern" checks are in test_evoshift_slow.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from benchlab_evoshift import population
from benchlab_evoshift.evoshift import EvoShift
from benchlab_evoshift.jacobsen import label_positions
from benchlab_evoshift.patterns import Pattern, decode, dimension, encode
from benchlab_evoshift.population import Fitness, SearchData
from benchlab_evoshift.search import ResumableCMA
from benchlab_evoshift.sensitivity import sensitivity_metrics
from benchlab_evoshift.svf import resize, sample_locations, spatial_value_function, transfer_pattern
from benchlab_evoshift.vibce import VIBCE, vib_loss
from torch import nn

from benchlab import stamp
from benchlab.cache import ArtifactCache
from benchlab.classifier import TorchClassifier
from benchlab.context import Context
from benchlab.data import DatasetInfo, DataSplits, TensorData
from benchlab.interfaces import Fitted, PoisonedSet
from benchlab.plugins import get_registry
from benchlab.testing import check_plugin


def context(splits, seed=0, cache=None, **changes) -> Context:
    return Context(seed=seed, device=torch.device("cpu"), info=splits.info, cache=cache,
                   monitor=splits.test, registry=get_registry(), **changes)


# ---- pattern parameterisation (Section V-A) ------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 5, 7)])
@pytest.mark.parametrize("pixels", [1, 2, 5])
def test_decoded_patterns_are_valid_and_set_exactly_n_pixels(shape, pixels):
    channels, height, width = shape
    classes = 4
    rng = np.random.default_rng(0)
    for trial in range(25):
        # Out-of-box values and forced collisions (all pixels of a class on one spot) included.
        vector = rng.normal(0.5, 0.8, dimension(classes, pixels, channels))
        if trial % 5 == 0:
            vector.reshape(classes, pixels, -1)[:, :, :2] = 0.3
        pattern = decode(vector, classes, pixels, shape)
        assert pattern.locations.shape == (classes, pixels, 2)
        assert pattern.values.shape == (classes, pixels, channels)
        assert pattern.locations.dtype == torch.long
        assert (pattern.locations[..., 0] >= 0).all() and (pattern.locations[..., 0] < height).all()
        assert (pattern.locations[..., 1] >= 0).all() and (pattern.locations[..., 1] < width).all()
        assert (pattern.values >= 0).all() and (pattern.values <= 1).all()
        # A sentinel image outside [0, 1] shows exactly which positions a pattern sets.
        blank = torch.full((classes, channels, height, width), -1.0)
        stamped = stamp(blank, torch.arange(classes), pattern.locations, pattern.values)
        changed = (stamped != -1.0).any(1).flatten(1).sum(1)
        assert changed.tolist() == [pixels] * classes


def test_encode_inverts_decode_on_locations():
    pattern = Pattern(torch.tensor([[[0, 0], [7, 7]], [[3, 4], [0, 7]]]), torch.rand(2, 2, 1))
    back = decode(encode(pattern, (1, 8, 8)), 2, 2, (1, 8, 8))
    assert torch.equal(back.locations, pattern.locations)
    assert torch.allclose(back.values, pattern.values)


def test_generation_zero_is_exactly_random_pixels(digits):
    ctx = context(digits)
    random = _attack("random-pixels:pixels=2,fraction=0.5").craft(digits.train, ctx)
    evo = EvoShift(pixels=2, generations=0, fraction=0.5).craft(digits.train, context(digits))
    assert torch.equal(evo.data.x, random.data.x) and torch.equal(evo.poisoned, random.poisoned)
    assert torch.equal(evo.extras["locations"], random.extras["locations"])


def test_partial_attack_touches_only_the_first_classes(digits):
    poison = EvoShift(pixels=1, generations=0, classes=3).craft(digits.train, context(digits))
    changed = (poison.data.x != digits.train.x).flatten(1).any(1)
    assert changed.any() and (digits.train.y[changed] < 3).all()
    assert poison.extras["attacked"].tolist() == [True] * 3 + [False] * 7


# ---- the search (Algorithm 1) --------------------------------------------------------------------
def _search_data(digits, size=200):
    order = torch.randperm(len(digits.train), generator=torch.Generator().manual_seed(0))
    fit, hold = digits.train.subset(order[:size]), digits.train.subset(order[size : 2 * size])
    return SearchData(fit, hold, torch.ones(size, dtype=torch.bool))


def _graynet_fitness(digits, batched, epochs=5, **kw):
    from benchlab.plugins import get_registry

    victim = get_registry().create("victims", "graynet")
    return Fitness(_search_data(digits), lambda: victim.build((1, 8, 8), 10),
                   victim.recipe.override(epochs=epochs), seed=7, batched=batched, **kw)


def test_batched_and_sequential_fitness_agree(digits):
    rng = np.random.default_rng(1)
    patterns = [decode(rng.random(dimension(10, 1, 1)), 10, 1, (1, 8, 8)) for _ in range(3)]
    batched = _graynet_fitness(digits, True, epochs=2)(patterns)
    sequential = _graynet_fitness(digits, False, epochs=2)(patterns)
    assert np.allclose(batched, sequential, atol=1e-4), (batched, sequential)


def test_cma_loop_improves_over_generation_zero(digits):
    fitness = _graynet_fitness(digits, True)
    shape, classes, pixels = (1, 8, 8), 10, 2
    x0 = np.full(dimension(classes, pixels, 1), 0.5)
    history = ResumableCMA(x0, 0.3, popsize=8, seed=0).run(
        lambda solutions: fitness([decode(z, classes, pixels, shape) for z in solutions]), generations=4)
    costs = np.stack(history.costs)
    assert costs[1:].min() < costs[0].min()  # a later generation beats the best random start
    assert costs[-1].mean() < costs[0].mean()  # and the whole distribution moved, not one lucky draw


def test_search_resumes_from_cache_without_retraining(digits, tmp_path, monkeypatch):
    spec = dict(pixels=1, popsize=4, subset=60, epochs=1)
    train = digits.train.subset(slice(0, 240))
    uninterrupted = EvoShift(generations=3, **spec).craft(train, context(digits))
    cache = ArtifactCache(tmp_path)
    EvoShift(generations=2, **spec).craft(train, context(digits, cache=cache))
    calls = []
    original = Fitness.__call__
    monkeypatch.setattr(Fitness, "__call__", lambda self, pats: calls.append(1) or original(self, pats))
    resumed = EvoShift(generations=3, **spec).craft(train, context(digits, cache=cache))
    assert len(calls) == 1  # only the third generation was evaluated
    assert torch.equal(resumed.extras["fitness"], uninterrupted.extras["fitness"])
    assert torch.equal(resumed.data.x, uninterrupted.data.x)
    tensors, info = cache.load("evoshift-search", next(iter(tmp_path.glob("evoshift-search/*.json"))).stem)
    assert info["generations"] == 3 and tensors["solutions"].shape == (3, 4, 30)
    assert tensors["covariance"].shape == (30, 30) and tensors["mean"].shape == (30,)


def test_divergence_term_scores_a_visible_pattern_as_more_divergent():
    clean = torch.zeros(40, 1, 4, 4)
    clean[:, 0, 1:3, 1:3] = torch.rand(40, 2, 2)
    marked = clean.clone()
    marked[:, 0, 0, 0] = 1.0  # a pixel no clean image has: perfectly separable
    invisible = clean.clone()  # identical to clean: inseparable
    xs_fit = torch.stack([marked[:20], invisible[:20]])
    xs_hold = torch.stack([marked[20:], invisible[20:]])
    distance = population.proxy_a_distance(clean[:20], xs_fit, clean[20:], xs_hold)
    assert distance[0] > 1.5 and abs(distance[1]) < 0.5


# ---- alpha_S / alpha_N (eqs. 12-13) --------------------------------------------------------------
class PixelRule(nn.Module):
    """Class 0 if pixel (0,0) is lit, else class 1 if pixel (0,1) is lit, else class 2."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # TorchClassifier reads the device from a parameter

    def forward(self, x):
        flat = x.flatten(1)
        return torch.stack((10 * flat[:, 0], 10 * flat[:, 1] - 0.1, torch.full_like(flat[:, 0], 5.0)), 1)


def test_alpha_metrics_match_hand_computed_values():
    x = torch.zeros(4, 1, 2, 2)
    x[1, 0, 0, 1] = 1.0
    test = TensorData(x, torch.tensor([0, 1, 2, 2]))
    info = DatasetInfo("toy", (1, 2, 2), 3)
    splits = DataSplits(test, test, info)
    locations = torch.tensor([[[0, 0]], [[0, 1]], [[1, 1]]])
    values = torch.ones(3, 1, 1)
    fitted = Fitted(TorchClassifier(PixelRule()))
    poison = PoisonedSet(test, torch.ones(4, dtype=torch.bool), {"locations": locations, "values": values})
    metrics = sensitivity_metrics(poison, fitted, splits)
    # Clean: predictions 2, 1, 2, 2 -> 3/4 right; (3/4 - 1/3) / (2/3) = 0.625.
    assert metrics["alpha_s"] == pytest.approx(0.625)
    # Overlays: class 0 -> 4/4 say 0, class 1 -> 4/4 say 1, class 2 -> 3/4 say 2 (image 1 says 1).
    assert metrics["alpha_n"] == pytest.approx(((1 + 1 + 0.75) / 3 - 1 / 3) / (2 / 3))
    poison.extras["attacked"] = torch.tensor([True, True, False])
    assert sensitivity_metrics(poison, fitted, splits)["alpha_n"] == pytest.approx(1.0)


# ---- vibCE (eq. 11) ------------------------------------------------------------------------------
def test_vibce_trains_and_predicts_through_its_mean_latent(digits):
    from benchlab.plugins import get_registry

    victim = get_registry().create("victims", "graynet")
    defense = VIBCE()
    fitted = defense.fit(victim, digits.train, context(digits, recipe_overrides={"epochs": 8}))
    model = fitted.classifier.module
    x = digits.test.x[:50]
    with torch.no_grad():
        assert torch.equal(model(x), model.classifier(model.encode(x)[0]))
        assert torch.equal(fitted.classifier.logits(x), fitted.classifier.logits(x))  # no test-time sampling
    assert fitted.classifier.accuracy(digits.test.x, digits.test.y) > 0.6
    # The latent keeps I(z; x): the decoder rebuilds unseen images far better than their mean image.
    with torch.no_grad():
        rebuilt = torch.sigmoid(model.decoder(model.encode(x)[0]))
    baseline = (x - digits.train.x.mean(0)).pow(2).mean()
    assert (rebuilt - x).pow(2).mean() < 0.6 * baseline
    # Training samples z: the objective is stochastic where prediction is not.
    torch.manual_seed(0)
    first = vib_loss(model, x, digits.test.y[:50], 0.1, 1.0)[0]
    second = vib_loss(model, x, digits.test.y[:50], 0.1, 1.0)[0]
    assert first.item() != second.item()
    restored = defense.restore(victim, *defense.checkpoint(fitted), context(digits))
    assert torch.equal(restored.classifier.predict(x), fitted.classifier.predict(x))


# ---- Spatial Value Function transfer (Section V-E, eq. 9) ----------------------------------------
def test_svf_sampling_returns_the_right_count_inside_the_target():
    source = torch.tensor([[[0, 0]], [[1, 0]], [[0, 1]]])  # every source pixel in the top-left corner
    svf = resize(spatial_value_function(source, 8, 8, sigma=1.0), 28, 28)
    # Three source sigmas around the 2x2 source corner cover 12 target pixels (28 / 8 = 3.5 per pixel).
    assert svf.shape == (28, 28) and svf[:12, :12].sum() > 0.95 * svf.sum()
    locations = sample_locations(svf, classes=10, pixels=2, generator=torch.Generator().manual_seed(0))
    assert locations.shape == (10, 2, 2)
    assert (locations >= 0).all() and (locations[..., 0] < 28).all() and (locations[..., 1] < 28).all()
    assert len({tuple(p) for p in locations.view(-1, 2).tolist()}) == 20  # no two patterns share a pixel
    assert (locations < 14).all()  # importance sampling stays where the source attacked


def test_transfer_pattern_maps_gray_to_colour():
    source = Pattern(torch.tensor([[[3, 3]], [[4, 4]]]), torch.tensor([[[0.2]], [[0.9]]]))
    pattern = transfer_pattern(source, (8, 8), (3, 16, 16), classes=4, sigma=1.0,
                               generator=torch.Generator().manual_seed(0))
    assert pattern.locations.shape == (4, 1, 2) and pattern.values.shape == (4, 1, 3)
    assert torch.allclose(pattern.values[2], torch.full((1, 3), 0.2))


# ---- the Jacobsen et al. heuristic and the contracts ---------------------------------------------
def test_jacobsen_positions_encode_the_label_distinctly():
    positions = label_positions(10, 2, 8, 8)
    assert positions[:, 0].tolist() == [[0, k] for k in range(8)] + [[1, 0], [1, 1]]
    assert len({tuple(p) for p in positions.view(-1, 2).tolist()}) == 20


def _attack(spec):
    from benchlab.plugins import get_registry

    return get_registry().create("attacks", spec)


@pytest.mark.parametrize("spec", ["evoshift", "jacobsen-pixels", "evoshift-svf"])
def test_attack_contracts(spec):
    check_plugin("attacks", name=spec)


def test_vibce_contract():
    check_plugin("defenses", name="vibce")


def test_adabound_contract():
    pytest.importorskip("pytorch_optimizer")
    check_plugin("defenses", name="adabound")


def test_svf_source_is_loaded_from_the_runs_data_root(tmp_path):
    """``evoshift-svf:source=mnist`` reads MNIST from ``--data-root``, not from a default location."""
    from test_datasets import write_mnist_dir

    from benchlab.cell import Settings, run_cell
    from benchlab.matrix import Matrix
    from benchlab.plugins import get_registry

    block = {"name": "t", "datasets": ["digits:per_class=20"], "defenses": ["erm"], "victims": ["mlp"],
             "attacks": ["evoshift-svf:source=mnist,pixels=1,popsize=4,generations=1,subset=20,epochs=1"],
             "seeds": [0], "recipe": {"epochs": 1}, "budgets": {}}
    (cell,) = Matrix("t", [block]).expand(get_registry())
    missing = run_cell(cell, Settings(out=str(tmp_path / "run-a"), data_root=str(tmp_path / "empty")))
    assert missing["status"] == "failed" and "MNIST" in missing["reason"]
    write_mnist_dir(tmp_path / "data" / "MNIST" / "raw")  # tiny files in torchvision's on-disk layout
    row = run_cell(cell, Settings(out=str(tmp_path / "run-b"), data_root=str(tmp_path / "data")))
    assert row["status"] == "ok", row["reason"]
    assert {"alpha_s", "alpha_n"} <= set(row["metrics"])
