"""Robust training defenses (benchlab_robust): each has the effect its paper claims, on digits.

``iss``: two class-wise shortcut poisons on every training digit, against a 50-tree random forest
(a scikit-learn victim, so the squeezing is shown to work there too). An additive pattern of one
high-frequency 8x8 DCT basis function per class at amplitude 20/255 took erm to 0.11-0.13 test
accuracy over three seeds and iss (JPEG quality 10) back to 0.95-0.96; three pixels per class
stamped at 0 or 1 took erm to 0.41-0.54 and iss to 0.63-0.72. Trained on clean digits, iss stayed
within 0.03 of erm (0.94-0.96 against 0.96-0.97).

Budgets: digits' linf budget is 0.3 (l2: 1.0). On 8x8 digits an MLP adversarially trained at 0.3
stays near chance, so the adversarial-training tests train and attack at linf eps = 0.2. With that
eps, 10 epochs and the MLP, three seeds gave (robust accuracy on the 450 test digits, PGD-20; and
AutoAttack standard on the first 120; the test uses 100): erm 0.00-0.01 / 0.00; pgd-at 0.32-0.33 / 0.18-0.23;
trades 0.32-0.34 / 0.17-0.20; fast-at 0.27-0.32 / 0.18-0.23. The margins asserted below sit under
the smallest of those gaps, and the tests run seed 0. At the digits l2 budget 1.0 (eps filled by
the budget mechanism), PGD-20 l2 accuracy over three seeds was erm 0.01-0.05, pgd-at 0.30-0.32,
trades 0.28-0.31, fast-at 0.25-0.29.
"""

from __future__ import annotations

import math

import pytest
import torch
import torchattacks
from benchlab_robust.iss import jpeg
from torch import nn

from benchlab import TensorData, stamp
from benchlab.context import Context
from benchlab.data import DatasetInfo
from benchlab.matrix import with_budget
from benchlab.testing import check_plugin

EPS = 0.2
EPOCHS = 10
AUTOATTACK_IMAGES = 100
ADVERSARIAL = ("pgd-at", "trades", "fast-at")


def context(info, seed=0, epochs=EPOCHS, victim=None):
    return Context(seed=seed, device=torch.device("cpu"), info=info, recipe_overrides={"epochs": epochs},
                   victim=victim)


def fit(registry, splits, defense, victim="mlp", seed=0, epochs=EPOCHS, train=None):
    victim = registry.create("victims", victim)
    data = train if train is not None else splits.train
    return registry.create("defenses", defense).fit(victim, data, context(splits.info, seed, epochs, victim))


@pytest.fixture(scope="module")
def models(registry, digits):
    torch.set_num_threads(1)  # module fixtures run before the function-scoped thread setting
    specs = {"erm": "erm", **{name: f"{name}:eps={EPS}" for name in ADVERSARIAL}}
    return {name: fit(registry, digits, spec).classifier for name, spec in specs.items()}


@pytest.fixture(scope="module")
def robust_accuracy(registry, digits, models):
    """PGD-20 on the whole test set and AutoAttack (standard, torchattacks) on its first images."""
    x, y = digits.test.x, digits.test.y
    ctx = context(digits.info)
    pgd = registry.create("attacks", f"pgd:eps={EPS},steps=20")
    out = {}
    for name, model in models.items():
        x_pgd = pgd.perturb(model, x, y, ctx)
        head_x, head_y = x[:AUTOATTACK_IMAGES], y[:AUTOATTACK_IMAGES]
        autoattack = torchattacks.AutoAttack(model.module, norm="Linf", eps=EPS, version="standard",
                                             n_classes=digits.info.num_classes, seed=0)
        x_aa = autoattack(head_x, head_y)
        assert (x_aa - head_x).abs().max() <= EPS + 1e-6
        out[name] = {"clean": model.accuracy(x, y), "pgd": model.accuracy(x_pgd, y),
                     "pgd_head": model.accuracy(x_pgd[:AUTOATTACK_IMAGES], head_y),
                     "autoattack": model.accuracy(x_aa, head_y)}
    return out


@pytest.mark.parametrize("defense", ADVERSARIAL)
def test_adversarial_training_raises_pgd_and_autoattack_accuracy_above_erm(robust_accuracy, defense):
    erm, robust = robust_accuracy["erm"], robust_accuracy[defense]
    assert robust["pgd"] > erm["pgd"] + 0.2, robust_accuracy
    assert robust["autoattack"] > erm["autoattack"] + 0.1, robust_accuracy
    # AutoAttack is the stronger evaluation: never above PGD on the same images.
    assert robust["autoattack"] <= robust["pgd_head"] + 1e-9, robust_accuracy
    assert robust["clean"] > 0.75, robust_accuracy  # robust, not broken


def test_l2_adversarial_training_at_the_dataset_budget_raises_l2_pgd_accuracy(registry, digits):
    x, y = digits.test.x, digits.test.y
    ctx = context(digits.info)
    attack = with_budget(registry, "pgd:norm=l2,steps=20", digits.info.budgets)
    accuracy = {}
    for name in ("erm", *ADVERSARIAL):
        spec = name if name == "erm" else f"{name}:norm=l2"
        defense = with_budget(registry, spec, digits.info.budgets, "defenses")
        assert name == "erm" or defense.p.eps == digits.info.budgets["l2"] == 1.0
        victim = registry.create("victims", "mlp")
        model = defense.fit(victim, digits.train, context(digits.info, victim=victim)).classifier
        accuracy[name] = model.accuracy(attack.perturb(model, x, y, ctx), y)
    assert all(accuracy[name] > accuracy["erm"] + 0.15 for name in ADVERSARIAL), accuracy


@pytest.mark.parametrize("name", [*ADVERSARIAL, "iss"])
def test_contract(name):
    check_plugin("defenses", name=name)


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_eps_defaults_to_the_matrix_budget(registry, name):
    budgets = {"linf": 0.3, "l2": 1.0}
    assert with_budget(registry, name, budgets, "defenses").p.eps == 0.3
    assert with_budget(registry, f"{name}:norm=l2", budgets, "defenses").p.eps == 1.0
    assert with_budget(registry, f"{name}:eps=0.05", budgets, "defenses").p.eps == 0.05
    no_budget = DatasetInfo(name="toy", input_shape=(1, 8, 8), num_classes=10)
    reason = registry.create("defenses", name).incompatibility(no_budget, registry.create("victims", "mlp"))
    assert reason and "linf" in reason


class Recorder(nn.Module):
    """Wraps a model and records each forward's input and mode (train or eval)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, []

    def forward(self, x):
        self.calls.append((x.detach().clone(), self.training))
        return self.model(x)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("name, crafted_in_train_mode", [("pgd-at", False), ("trades", False), ("fast-at", True)])
def test_adversarial_batch_stays_in_budget_and_leaves_parameter_gradients_alone(
        registry, digits, name, crafted_in_train_mode, norm):
    eps = {"linf": EPS, "l2": 1.0}[norm]
    victim = registry.create("victims", "mlp")
    defense = registry.create("defenses", f"{name}:norm={norm},eps={eps},steps=3" if name != "fast-at"
                              else f"{name}:norm={norm},eps={eps}")
    model = Recorder(victim.build(digits.info.input_shape, digits.info.num_classes)).train()
    x, y = digits.train.x[:64], digits.train.y[:64]
    loss, logits = defense.objective(model, victim, context(digits.info))(model, x, y)
    assert all(p.grad is None for p in model.parameters()), "the inner maximisation must not touch .grad"
    assert logits.shape == (64, digits.info.num_classes) and loss.requires_grad
    x_adv, final_mode = model.calls[-1]  # every objective's last forward is on the adversarial batch
    assert final_mode, "the update's forward pass runs in train mode"
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert size.max() <= eps + 1e-5 and size.min() > 0.5 * eps
    assert 0 <= x_adv.min() and x_adv.max() <= 1
    crafting_modes = {mode for _, mode in model.calls[:-1] if _.shape == x.shape}
    assert crafting_modes == {crafted_in_train_mode} or name == "trades"
    if name == "trades":  # crafted in eval mode, then clean and adversarial passes in train mode
        assert [mode for _, mode in model.calls] == [False] * 4 + [True, True]


# ---- iss --------------------------------------------------------------------------------------
SHORTCUT_AMPLITUDE = 20 / 255  # below half of JPEG-10's quantisation step at these frequencies
FOREST = "random-forest:trees=50"
SEEDS = (0, 1, 2)


def high_frequency_patterns(count: int, size: int) -> torch.Tensor:
    """``count`` distinct 8x8 DCT basis images of the highest frequencies, tiled to ``size``, peak 1."""
    pairs = sorted(((u, v) for u in range(8) for v in range(8)), key=lambda p: (-(p[0] + p[1]), p))[:count]
    position = torch.arange(size) % 8
    patterns = []
    for u, v in pairs:
        basis = torch.outer(torch.cos((2 * position + 1) * u * math.pi / 16),
                            torch.cos((2 * position + 1) * v * math.pi / 16))
        patterns.append(basis / basis.abs().max())
    return torch.stack(patterns)[:, None]


def additive_shortcut(data: TensorData, num_classes: int) -> TensorData:
    patterns = SHORTCUT_AMPLITUDE * high_frequency_patterns(num_classes, data.x.shape[-1])
    return TensorData((data.x + patterns[data.y]).clamp(0, 1), data.y)


def stamped_shortcut(data: TensorData, num_classes: int, seed: int, pixels: int = 3) -> TensorData:
    generator = torch.Generator().manual_seed(seed)
    height, width = data.x.shape[-2:]
    flat = torch.stack([torch.randperm(height * width, generator=generator)[:pixels] for _ in range(num_classes)])
    locations = torch.stack([flat // width, flat % width], dim=-1)
    values = torch.randint(0, 2, (num_classes, pixels, data.x.shape[1]), generator=generator).float()
    return TensorData(stamp(data.x, data.y, locations, values), data.y)


def test_jpeg_10_erases_the_high_frequency_shortcut_but_keeps_the_image():
    patterns = SHORTCUT_AMPLITUDE * high_frequency_patterns(10, 8)
    grey = torch.full((10, 1, 8, 8), 0.5)
    assert (jpeg(grey + patterns, 10) - jpeg(grey, 10)).abs().max() < 1e-6
    assert (jpeg(grey + 3 * patterns, 10) - jpeg(grey, 10)).abs().amax((1, 2, 3)).min() > 0.1  # not a blur-all
    image = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    assert (jpeg(image, 100) - image).abs().max() < 3 / 255


def test_grayscale_squeezing_of_colour_images(registry):
    rgb = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    squeezed = registry.create("defenses", "iss:compression=grayscale").squeeze(rgb)
    assert squeezed.shape == rgb.shape
    assert torch.equal(squeezed[:, 0], squeezed[:, 1]) and torch.equal(squeezed[:, 1], squeezed[:, 2])
    luma = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    assert (squeezed[:, 0] - luma).abs().max() < 1e-3  # torchvision weighs red 0.2989
    both = registry.create("defenses", "iss").squeeze(rgb)
    assert torch.equal(both[:, 0], both[:, 2]) and not torch.equal(both, squeezed)
    grey_info = DatasetInfo(name="toy", input_shape=(1, 8, 8), num_classes=10)
    assert "colour" in registry.create("defenses", "iss:compression=grayscale").incompatibility(grey_info, None)
    assert registry.create("defenses", "iss").incompatibility(grey_info, None) is None


@pytest.mark.parametrize("poison", ["additive", "stamped"])
def test_iss_recovers_accuracy_lost_to_a_shortcut_poison(registry, digits, poison):
    k = digits.info.num_classes
    gains, erm_poisoned = [], []
    for seed in SEEDS:
        poisoned = additive_shortcut(digits.train, k) if poison == "additive" else \
            stamped_shortcut(digits.train, k, seed)
        accuracy = {defense: fit(registry, digits, defense, FOREST, seed, train=poisoned).classifier.accuracy(
            digits.test.x, digits.test.y) for defense in ("erm", "iss")}
        gains.append(accuracy["iss"] - accuracy["erm"])
        erm_poisoned.append(accuracy["erm"])
    mean_gain = sum(gains) / len(gains)
    if poison == "additive":
        assert max(erm_poisoned) < 0.3 and min(gains) > 0.5, (erm_poisoned, gains)
    else:
        assert max(erm_poisoned) < 0.7 and min(gains) > 0.1 and mean_gain > 0.15, (erm_poisoned, gains)


def test_iss_keeps_clean_accuracy_within_a_few_points(registry, digits):
    x, y = digits.test.x, digits.test.y
    drops = [fit(registry, digits, "erm", FOREST, seed).classifier.accuracy(x, y)
             - fit(registry, digits, "iss", FOREST, seed).classifier.accuracy(x, y) for seed in SEEDS]
    assert sum(drops) / len(drops) < 0.04 and max(drops) < 0.06, drops
