"""The baseline attacks on real data: budgets, exactness, relative strength and poisoning effects.

A tiny MLP trained on scikit-learn's 8x8 digits (about a second on CPU) is the victim; the
thresholds below leave several points of margin over what three seeds showed.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from benchlab.classifier import TorchClassifier
from benchlab.context import Context
from benchlab.data import DatasetInfo, TensorData
from benchlab.interfaces import Fitted, perturbation_norms
from benchlab.plugins import get_registry
from benchlab.train import Recipe, fit

RECIPE = Recipe(optimizer="adam", lr=3e-3, epochs=20, batch_size=64)


def train_mlp(data, seed: int = 0) -> TorchClassifier:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    fit(model, data, RECIPE, seed=seed)
    return TorchClassifier(model)


def attack(spec: str):
    return get_registry().create("attacks", spec)


@pytest.fixture(scope="module")
def splits():
    return get_registry().create("datasets", "digits").load()


@pytest.fixture(scope="module")
def ctx(splits):
    return Context(seed=0, device=torch.device("cpu"), info=splits.info)


@pytest.fixture(scope="module")
def model(splits):
    return train_mlp(splits.train)


@pytest.fixture(scope="module")
def clean_acc(model, splits):
    acc = model.accuracy(splits.test.x, splits.test.y)
    assert acc > 0.93, "the tiny victim should learn digits; the attack checks below rely on it"
    return acc


def adv_accuracy(spec, model, splits, ctx) -> float:
    x_adv = attack(spec).perturb(model, splits.test.x, splits.test.y, ctx)
    return model.accuracy(x_adv, splits.test.y)


# ---- evasion ---------------------------------------------------------------------------------

EVASION_SPECS = [
    "none", "random-noise", "random-noise:norm=l2", "fgsm", "fgsm:norm=l2,eps=0.5", "pgd",
    "pgd:norm=l2,eps=1.0", "pgd:eps=0.1,steps=5,step_size=0.05,random_start=false",
]


@pytest.mark.parametrize("spec", EVASION_SPECS)
def test_evasion_stays_in_box_and_budget(spec, model, splits, ctx):
    adv = attack(spec)
    x, y = splits.test.x, splits.test.y
    x_adv = adv.perturb(model, x, y, ctx)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    if adv.name == "none":
        assert torch.equal(x_adv, x)
        return
    eps = adv.p.eps if adv.p.eps is not None else splits.info.budgets[adv.norm]
    norms = perturbation_norms(x_adv - x, adv.norm)
    assert norms.max() <= eps + (1e-6 if adv.norm == "linf" else 1e-5)
    assert norms.mean() > 0.5 * eps  # it really perturbs (clipping at 0/1 only shrinks a little)


def test_fgsm_linf_matches_reference_implementation(model, splits, ctx):
    x, y, eps = splits.test.x, splits.test.y, 0.1
    x_ref = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model.module(x_ref), y)
    (grad,) = torch.autograd.grad(loss, x_ref)
    expected = (x + eps * grad.sign()).clamp(0, 1)
    assert torch.equal(attack("fgsm:eps=0.1").perturb(model, x, y, ctx), expected)


def test_eps_none_falls_back_to_dataset_budget(model, splits, ctx):
    x, y = splits.test.x, splits.test.y
    budget = splits.info.budgets["l2"]
    assert torch.equal(attack("fgsm:norm=l2").perturb(model, x, y, ctx),
                       attack(f"fgsm:norm=l2,eps={budget}").perturb(model, x, y, ctx))


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.5)])
def test_gradient_attacks_beat_random_noise(norm, eps, model, splits, ctx, clean_acc):
    acc = {name: adv_accuracy(f"{name}:norm={norm},eps={eps}", model, splits, ctx)
           for name in ("random-noise", "fgsm", "pgd")}
    assert acc["fgsm"] < acc["random-noise"] - 0.1, acc
    assert acc["pgd"] < acc["random-noise"] - 0.1, acc
    assert acc["pgd"] <= acc["fgsm"] + 0.01, acc
    assert acc["random-noise"] > clean_acc - 0.1, acc  # at this budget noise alone barely hurts


def test_none_leaves_accuracy_unchanged(model, splits, ctx, clean_acc):
    assert adv_accuracy("none", model, splits, ctx) == clean_acc


def test_pgd_is_seeded(model, splits, ctx):
    x, y = splits.test.x, splits.test.y
    pgd = attack("pgd:norm=l2,eps=1.0,steps=3")
    first = pgd.perturb(model, x, y, ctx)
    assert torch.equal(first, pgd.perturb(model, x, y, ctx))
    other = Context(seed=1, device=ctx.device, info=ctx.info)
    assert not torch.equal(first, pgd.perturb(model, x, y, other))


def test_gradients_leave_model_untouched(model, splits, ctx):
    x, y = splits.test.x[:64], splits.test.y[:64]
    model.module.zero_grad(set_to_none=True)  # fit() leaves the last batch's gradients behind
    free = attack("pgd:steps=2").perturb(model, x, y, ctx)
    with torch.no_grad():  # a runner evaluating under no_grad must still get a real attack
        assert torch.equal(attack("pgd:steps=2").perturb(model, x, y, ctx), free)
    assert not model.module.training
    assert all(p.grad is None for p in model.module.parameters())


# ---- poison: crafting ------------------------------------------------------------------------


def test_clean_changes_nothing(splits, ctx):
    poison = attack("clean").craft(splits.train, ctx)
    assert torch.equal(poison.data.x, splits.train.x) and torch.equal(poison.data.y, splits.train.y)
    assert poison.poisoned.dtype == torch.bool and not poison.poisoned.any()


def test_uniform_noise_budget_and_fraction(splits, ctx):
    train = splits.train
    poison = attack("uniform-noise:eps=0.1,fraction=0.3").craft(train, ctx)
    delta = poison.data.x - train.x
    changed = delta.flatten(1).abs().amax(1) > 0
    assert poison.poisoned.sum().item() == round(0.3 * len(train))
    assert torch.equal(changed, poison.poisoned)
    assert perturbation_norms(delta, "linf").max() <= 0.1 + 1e-6
    assert poison.data.x.min() >= 0 and poison.data.x.max() <= 1
    assert torch.equal(poison.data.y, train.y)
    # eps=None takes the dataset's linf budget
    full = attack("uniform-noise").craft(train, ctx)
    assert full.poisoned.all()
    assert perturbation_norms(full.data.x - train.x, "linf").max() <= splits.info.budgets["linf"] + 1e-6


def test_label_flip_flips_exactly_to_other_classes(splits, ctx):
    train = splits.train
    poison = attack("label-flip:fraction=0.25").craft(train, ctx)
    flipped = poison.data.y != train.y
    assert flipped.sum().item() == round(0.25 * len(train))
    assert torch.equal(flipped, poison.poisoned)  # every selected label changed class
    assert torch.equal(poison.data.x, train.x)
    assert poison.data.y.min() >= 0 and poison.data.y.max() < splits.info.num_classes
    assert torch.equal(attack("label-flip:fraction=0.25").craft(train, ctx).data.y, poison.data.y)


def test_random_pixels_are_classwise_and_exact(splits, ctx):
    train, pixels = splits.train, 3
    poison = attack(f"random-pixels:pixels={pixels},fraction=0.5").craft(train, ctx)
    locations, values = poison.extras["locations"], poison.extras["values"]
    assert locations.shape == (10, pixels, 2) and locations.dtype == torch.long
    assert values.shape == (10, pixels, 1) and values.dtype == torch.float32
    flat = locations[..., 0] * 8 + locations[..., 1]
    assert all(len(row.unique()) == pixels for row in flat)  # distinct positions within a class

    assert poison.poisoned.sum().item() == round(0.5 * len(train))
    l0 = perturbation_norms(poison.data.x - train.x, "l0")
    assert torch.equal(l0[poison.poisoned], torch.full_like(l0[poison.poisoned], pixels))
    assert (l0[~poison.poisoned] == 0).all()
    # Each poisoned image carries exactly its class's pixels and values.
    x, y = poison.data.x[poison.poisoned], poison.data.y[poison.poisoned]
    rows, cols = locations[y, :, 0], locations[y, :, 1]
    stamped = x[torch.arange(len(x)).unsqueeze(1), :, rows, cols]  # (n, pixels, C)
    assert torch.equal(stamped, values[y])
    # pixels=None takes the dataset's l0 budget
    default = attack("random-pixels").craft(train, ctx)
    assert default.extras["locations"].shape[1] == splits.info.budgets["l0"]


def test_random_pixels_colour_and_budget_checks():
    info = DatasetInfo("toy", (3, 4, 5), 3, budgets={"linf": 0.1})
    ctx = Context(seed=0, device=torch.device("cpu"), info=info)
    train = TensorData(torch.rand(30, 3, 4, 5), torch.arange(30) % 3)
    poison = attack("random-pixels:pixels=4").craft(train, ctx)
    x, loc, val = poison.data.x, poison.extras["locations"], poison.extras["values"]
    assert val.shape == (3, 4, 3) and loc[..., 0].max() < 4 and loc[..., 1].max() < 5
    rows, cols = loc[train.y, :, 0], loc[train.y, :, 1]
    assert torch.equal(x[torch.arange(30).unsqueeze(1), :, rows, cols], val[train.y])  # all poisoned
    assert "l0" in attack("random-pixels").incompatibility(info, None)
    assert "exceeds" in attack("random-pixels:pixels=21").incompatibility(info, None)
    assert "l2" in attack("pgd:norm=l2").incompatibility(info, None)
    assert attack("pgd").incompatibility(info, None) is None


# ---- poison: effect on a trained victim -------------------------------------------------------


def poisoned_run(spec, splits, ctx):
    poison_attack = attack(spec)
    poison = poison_attack.craft(splits.train, ctx)
    classifier = train_mlp(poison.data)
    acc = classifier.accuracy(splits.test.x, splits.test.y)
    return acc, poison_attack.metrics(poison, Fitted(classifier), splits, ctx)


def test_label_flip_hurts_accuracy(splits, ctx, clean_acc):
    acc, _ = poisoned_run("label-flip:fraction=0.4", splits, ctx)
    assert acc < clean_acc - 0.02, (acc, clean_acc)


def test_random_pixels_plant_a_shortcut(splits, ctx, clean_acc):
    acc, metrics = poisoned_run("random-pixels:pixels=3", splits, ctx)
    assert acc < clean_acc - 0.05, (acc, clean_acc)  # the model leans on the patterns...
    assert metrics["pattern_acc"] > acc + 0.05, metrics  # ...which restore accuracy when present
    # ...and a wrong class's pattern often flips the prediction (chance level is about 0.01).
    assert metrics["pattern_hijack"] > 0.05, metrics


def test_uniform_noise_is_a_weak_control(splits, ctx, clean_acc):
    acc, _ = poisoned_run("uniform-noise", splits, ctx)
    assert abs(acc - clean_acc) <= 0.04, (acc, clean_acc)
