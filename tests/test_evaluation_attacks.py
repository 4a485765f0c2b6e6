"""autoattack, square, the batched deepfool, and the reliability flags (benchlab.reliability).

Data: the embedded digits (8x8, 1347 train / 450 test images), MLPs and LeNet-5 trained 10 epochs.
Budgets: linf eps = 0.1 and l2 eps = 0.5 (the dataset's defaults, 0.3 and 1.0, take every attack
to ~0 % on an undefended MLP, which would make "at most" trivially true). Every budgeted
adversarial batch is checked against its budget.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from benchlab.cell import _evasion_metrics
from benchlab.classifier import TorchClassifier
from benchlab.context import Context
from benchlab.data import DataSplits
from benchlab.interfaces import Fitted, perturbation_norms
from benchlab.leaderboard import render, table
from benchlab.reliability import ZERO_GRADIENT_SHARE, evasion_flags
from benchlab.testing import check_plugin

BUDGETS = [("linf", 0.1), ("l2", 0.5)]
SEEDS = (0, 1, 2)
N_TEST = 100


def train(registry, digits, defense: str, victim: str = "mlp", seed: int = 0) -> TorchClassifier:
    victim_plugin = registry.create("victims", victim)
    ctx = Context(seed=seed, device=torch.device("cpu"), info=digits.info, victim=victim_plugin,
                  recipe_overrides={"epochs": 10})
    return registry.create("defenses", defense).fit(victim_plugin, digits.train, ctx).classifier


def context(digits, seed: int = 0) -> Context:
    return Context(seed=seed, device=torch.device("cpu"), info=digits.info)


def attacked(registry, spec: str, model, x, y, ctx) -> torch.Tensor:
    """The attack's output, with the box and (for budgeted attacks) the budget asserted."""
    attack = registry.create("attacks", spec)
    x_adv = attack.perturb(model, x, y, ctx)
    assert x_adv.shape == x.shape and x_adv.min() >= 0 and x_adv.max() <= 1
    eps = attack.values.get("eps")
    if eps is not None:
        norms = perturbation_norms(x_adv - x, attack.norm)
        assert norms.max() <= eps * (1 + 1e-4) + 1e-6, f"{spec}: {attack.norm} norm {norms.max():.5f} > {eps}"
    return x_adv


@pytest.fixture(scope="module")
def models(registry, digits):
    return {defense: train(registry, digits, defense) for defense in ("erm", "gaussian-noise")}


@pytest.fixture(scope="module")
def test_slice(digits):
    return digits.test.x[:N_TEST], digits.test.y[:N_TEST]


@pytest.mark.parametrize("spec", ["autoattack:steps=5,queries=100", "autoattack:steps=5,queries=100,norm=l2",
                                  "square:queries=50", "square:queries=50,norm=l2", "deepfool:steps=10"])
def test_contract(spec):
    check_plugin("attacks", spec)


# ---------------------------------------------------------------- autoattack and square


@pytest.mark.parametrize("defense", ["erm", "gaussian-noise"])
@pytest.mark.parametrize(("norm", "eps"), BUDGETS)
def test_autoattack_is_at_most_pgd(registry, digits, models, test_slice, defense, norm, eps):
    """AutoAttack (here 10 iterations per gradient attack and 100 Square queries, for time) never
    leaves more inputs correct than PGD of the same budget, seed by seed."""
    model, (x, y) = models[defense], test_slice
    for seed in SEEDS:
        ctx = context(digits, seed)
        spec = f"autoattack:norm={norm},eps={eps},steps=10,queries=100"
        auto = model.accuracy(attacked(registry, spec, model, x, y, ctx), y)
        pgd = model.accuracy(attacked(registry, f"pgd:norm={norm},eps={eps}", model, x, y, ctx), y)
        assert auto <= pgd, (seed, auto, pgd)
        assert auto < model.accuracy(x, y) - 0.2  # and it does attack


@pytest.mark.parametrize(("norm", "eps"), BUDGETS)
def test_square_hurts_more_than_random_noise(registry, digits, models, test_slice, norm, eps):
    model, (x, y) = models["erm"], test_slice
    for seed in SEEDS:
        ctx = context(digits, seed)
        square = model.accuracy(attacked(registry, f"square:norm={norm},eps={eps},queries=500", model, x, y, ctx), y)
        noise = model.accuracy(attacked(registry, f"random-noise:norm={norm},eps={eps}", model, x, y, ctx), y)
        assert square < noise - 0.15, (seed, square, noise)


def test_square_is_black_box_and_autoattack_is_not(registry, digits):
    assert registry.get("attacks", "square").needs_gradients is False
    assert registry.get("attacks", "autoattack").needs_gradients is True
    forest = registry.create("victims", "random-forest")
    assert registry.create("attacks", "square").incompatibility(digits.info, forest) is None
    assert "needs gradients" in registry.create("attacks", "autoattack").incompatibility(digits.info, forest)


def test_autoattack_is_seeded(registry, digits, models, test_slice):
    model, (x, y) = models["erm"], test_slice
    first = attacked(registry, "autoattack:steps=3,queries=50", model, x[:30], y[:30], context(digits, 4))
    again = attacked(registry, "autoattack:steps=3,queries=50", model, x[:30], y[:30], context(digits, 4))
    assert torch.equal(first, again)


# ---------------------------------------------------------------- deepfool


@pytest.mark.parametrize(("victim", "n"), [("mlp", 200), ("lenet5", 40)])
def test_deepfool_matches_ta_deepfool(registry, digits, victim, n):
    """Same outputs as the per-image reference: max |difference| per image measured, and at most 2 %
    of the images may differ by more than 1e-4 (float rounding can decide a decision-boundary tie)."""
    model = train(registry, digits, "erm", victim)
    x, y, ctx = digits.test.x[:n], digits.test.y[:n], context(digits)
    ours = attacked(registry, "deepfool", model, x, y, ctx)
    reference = attacked(registry, "ta-deepfool", model, x, y, ctx)
    difference = (ours - reference).flatten(1).abs().amax(1)
    assert (difference > 1e-4).float().mean() <= 0.02, difference.max()
    agree = difference <= 1e-4
    assert torch.equal(model.predict(ours)[agree], model.predict(reference)[agree])


def test_deepfool_is_minimal_norm_and_beats_random_directions(registry, digits, models):
    model = models["erm"]
    attack = registry.create("attacks", "deepfool")
    assert attack.minimal_norm and attack.norm == "l2"
    assert "eps" not in {p.name for p in type(attack).params}  # matrices fill no budget into it
    splits = DataSplits(digits.train, digits.test.subset(slice(0, 150)), digits.info)
    metrics = _evasion_metrics(attack, Fitted(model), splits, context(digits))
    assert {"perturbation_norm", "rho_adv", "rho_adv_flipped"} <= set(metrics)
    assert metrics["attack_success_rate"] > 0.95
    x, y = splits.test.x, splits.test.y
    x_adv = attack.perturb(model, x, y, context(digits))
    norms = perturbation_norms(x_adv - x, "l2")
    direction = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    random = (x + direction / perturbation_norms(direction, "l2").view(-1, 1, 1, 1) * norms.view(-1, 1, 1, 1))
    correct = model.predict(x) == y
    assert (model.predict(random.clamp(0, 1)) != y)[correct].float().mean() < 0.3


# ---------------------------------------------------------------- reliability flags


class Randomised(torch.nn.Module):
    """A toy randomised defense: Gaussian noise on the input at every forward pass."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module(x + 0.1 * torch.randn_like(x))


def flags_of(registry, digits, model, spec: str, n: int = 150) -> dict:
    """The metrics the runner records for one evasion cell (the reliability hook included)."""
    splits = DataSplits(digits.train, digits.test.subset(slice(0, n)), digits.info)
    return _evasion_metrics(registry.create("attacks", spec), Fitted(model), splits, context(digits))


@pytest.fixture(scope="module")
def toys(models):
    erm = models["erm"].module
    return {
        "normal": models["erm"],
        "randomised": TorchClassifier(Randomised(erm)),
        # Hard thresholds: zero gradient inside the graph (round), or the graph cut (a comparison).
        "thresholded": TorchClassifier(erm, transform=torch.round),
        "quantised": TorchClassifier(erm, transform=lambda x: torch.round(4 * x) / 4),
        "cut": TorchClassifier(erm, transform=lambda x: (x > 0.5).float()),
    }


@pytest.mark.parametrize("spec", ["pgd:eps=0.1", "random-noise:eps=0.1", "deepfool", "none"])
def test_flags_stay_quiet_on_a_normal_model(registry, digits, toys, spec):
    metrics = flags_of(registry, digits, toys["normal"], spec)
    assert metrics["flag_robust_above_clean"] == metrics["flag_zero_gradients"] == 0.0
    assert metrics["flag_stochastic_forward"] == 0.0 and metrics["forward_max_change"] == 0.0
    assert metrics["zero_gradient_share"] < ZERO_GRADIENT_SHARE


def test_stochastic_forward_is_flagged(registry, digits, toys):
    metrics = flags_of(registry, digits, toys["randomised"], "pgd:eps=0.1")
    assert metrics["flag_stochastic_forward"] == 1.0 and metrics["forward_max_change"] > 0.01
    assert metrics["flag_zero_gradients"] == 0.0


@pytest.mark.parametrize(("toy", "spec"), [("thresholded", "pgd:eps=0.1"), ("quantised", "pgd:eps=0.1"),
                                         ("cut", "random-noise:eps=0.1")])
def test_masked_gradients_are_flagged(registry, digits, toys, toy, spec):
    metrics = flags_of(registry, digits, toys[toy], spec)
    assert metrics["flag_zero_gradients"] == 1.0 and metrics["zero_gradient_share"] == 1.0
    assert metrics["flag_stochastic_forward"] == 0.0


def test_robust_above_clean_is_flagged(registry, digits, toys, test_slice):
    x, y = test_slice
    attack = registry.create("attacks", "none")
    common = {"clean_acc": 0.8, "transferred": False}
    assert evasion_flags(attack, toys["normal"], x, y, x, robust_acc=0.9, **common)["flag_robust_above_clean"] == 1.0
    assert evasion_flags(attack, toys["normal"], x, y, x, robust_acc=0.8, **common)["flag_robust_above_clean"] == 0.0


def test_black_box_declaration(registry, digits, toys):
    assert flags_of(registry, digits, toys["normal"], "random-noise:eps=0.1")["black_box"] == 1.0
    assert flags_of(registry, digits, toys["normal"], "pgd:eps=0.1")["black_box"] == 0.0
    assert "black_box" not in flags_of(registry, digits, toys["normal"], "none")  # compared with nothing


def leaderboard_frame(registry, digits, toys, attacks, seeds=(0, 1)) -> pd.DataFrame:
    rows = []
    for toy in ("normal", "thresholded"):
        for spec in attacks:
            for seed in seeds:
                splits = DataSplits(digits.train, digits.test.subset(slice(0, 150)), digits.info)
                metrics = _evasion_metrics(registry.create("attacks", spec), Fitted(toys[toy]), splits,
                                           context(digits, seed))
                rows.append({"cell_id": f"{toy}-{spec}-{seed}", "dataset": "digits", "threat": "evasion",
                             "attack": spec, "defense": toy, "victim": "mlp", "seed": seed, "status": "ok",
                             "reason": None, **metrics})
    return pd.DataFrame(rows)


def test_leaderboard_marks_masked_gradients_and_a_stronger_black_box_attack(registry, digits, toys, tmp_path):
    """On the thresholded model PGD's gradient is zero (only its random start moves the input), so
    random noise at the full budget beats it: the noise value gets B, the gradient attack G."""
    frame = leaderboard_frame(registry, digits, toys, ["pgd:eps=0.3", "random-noise:eps=0.3"])
    result = table(frame, "robust_acc")
    marks = result.attrs["marks"]
    assert marks[("thresholded", "mlp", "random-noise:eps=0.3")] == "BG"
    # PGD's random start alone even raises the accuracy of this model above clean (R) on some seeds.
    pgd_marks = marks[("thresholded", "mlp", "pgd:eps=0.3")]
    assert "G" in pgd_marks and "B" not in pgd_marks
    assert not any(key[0] == "normal" for key in marks)
    render(frame, tmp_path, plots=False)
    index = (tmp_path / "README.md").read_text()
    assert "[B,G]" in index and "- [B] a black-box attack" in index and "- [G] zero or non-finite" in index
    assert "[S]" not in index


@pytest.mark.slow
def test_standard_autoattack_at_its_defaults_is_at_most_pgd(registry, digits, models, test_slice):
    """The paper's settings (100 iterations, 5000 Square queries), one seed per defense."""
    (x, y) = test_slice
    for defense, model in models.items():
        ctx = context(digits)
        auto = model.accuracy(attacked(registry, "autoattack:eps=0.1", model, x, y, ctx), y)
        pgd = model.accuracy(attacked(registry, "pgd:eps=0.1", model, x, y, ctx), y)
        assert auto <= pgd, (defense, auto, pgd)
