"""The standard poisons (benchlab_poisons) on real data: budgets, and effects beyond random noise.

Victims are the registered ``mlp`` trained by ``erm`` on scikit-learn's 8x8 digits (under a second
each), and ``lenet5`` (a few seconds) where the claim is about a CNN: the one-pixel shortcut, and the
crosses with ``iss`` and ``pgd-at``. Budget: the digits' L-inf budget eps = 0.3 (MNIST's usual one)
for ``error-min``, ``adv-poison`` and their control ``uniform-noise``; one pixel for
``one-pixel-shortcut`` and its control ``random-pixels:pixels=1``; a 3x3 patch on 10 % of the images
for ``badnets``; linf 0.2 for the ``pgd-at`` cross, noise and training alike. Crafting models are the plugin's MLP surrogate (fast on a CPU), or its default CNN
in the slow LeNet-5 tests. Margins are several points below what seeds 0, 1 and 2 showed.
"""

from __future__ import annotations

import statistics

import pytest
import torch
from benchlab_poisons.one_pixel_shortcut import search_pixels

from benchlab import Context, DatasetInfo, Fitted, TensorData, stamp
from benchlab.interfaces import perturbation_norms
from benchlab.plugins import get_registry
from benchlab.testing import check_plugin

EPS = 0.3
SEEDS = (0, 1, 2)
ERROR_MIN = "error-min:surrogate=mlp"
ADV_POISON = "adv-poison:surrogate=mlp,steps=20"


@pytest.fixture(scope="module")
def splits():
    return get_registry().create("datasets", "digits").load()


def context(splits, seed: int) -> Context:
    return Context(seed=seed, device=torch.device("cpu"), info=splits.info)


_crafted: dict = {}


def craft(spec: str, splits, seed: int):
    """The poison of ``spec`` for ``seed`` on ``splits`` (memoised: budgets and effects reuse the same crafts)."""
    key = (spec, seed, splits.fingerprint())
    if key not in _crafted:
        attack = get_registry().create("attacks", spec)
        _crafted[key] = attack, attack.craft(splits.train, context(splits, seed))
    return _crafted[key]


_fitted: dict = {}


def victim_run(spec: str, splits, seed: int, victim: str = "mlp", defense: str = "erm") -> tuple[float, dict]:
    """Clean test accuracy of ``victim`` trained by ``defense`` on the poison, and the attack's metrics
    (memoised: the LeNet-5 tests share their trainings)."""
    key = (spec, seed, splits.fingerprint(), victim, defense)
    if key not in _fitted:
        registry = get_registry()
        attack, poison = craft(spec, splits, seed)
        ctx = context(splits, seed)
        fitted: Fitted = registry.create("defenses", defense).fit(registry.create("victims", victim), poison.data,
                                                                   ctx)
        _fitted[key] = (fitted.classifier.accuracy(splits.test.x, splits.test.y),
                        attack.metrics(poison, fitted, splits, ctx))
    return _fitted[key]


def mean_accuracy(spec: str, splits, victim: str = "mlp", defense: str = "erm") -> tuple[float, list[float]]:
    accs = [victim_run(spec, splits, seed, victim, defense)[0] for seed in SEEDS]
    return statistics.mean(accs), accs


@pytest.fixture(scope="module")
def noise_acc(splits):
    return mean_accuracy(f"uniform-noise:eps={EPS}", splits)


# ---- contracts and budgets -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["error-min", "adv-poison", "one-pixel-shortcut", "badnets"])
def test_contract(name):
    check_plugin("attacks", name=name)


def test_error_min_class_mode_contract():
    check_plugin("attacks", "error-min:mode=class,surrogate_steps=5,noise_steps=3,max_rounds=2")


@pytest.mark.parametrize("spec", [ERROR_MIN, f"{ERROR_MIN},mode=class", ADV_POISON])
def test_linf_poisons_stay_in_budget(spec, splits):
    for seed in SEEDS:
        _, poison = craft(spec, splits, seed)
        delta = poison.data.x - splits.train.x
        assert perturbation_norms(delta, "linf").max() <= EPS + 1e-6  # eps=None took the digits budget
        assert poison.data.x.min() >= 0 and poison.data.x.max() <= 1
        assert torch.equal(poison.data.y, splits.train.y) and poison.poisoned.all()
        assert perturbation_norms(delta, "linf").mean() > EPS / 2  # it is not a near-zero perturbation


def test_error_min_class_noise_is_one_pattern_per_class(splits):
    _, poison = craft(f"{ERROR_MIN},mode=class", splits, 0)
    noise = poison.extras["noise"]
    assert noise.shape == (10, 1, 8, 8) and noise.abs().max() <= EPS + 1e-6
    expected = (splits.train.x + noise[splits.train.y]).clamp(0, 1)
    assert torch.equal(poison.data.x, expected)


@pytest.mark.parametrize("spec,stop_acc", [(ERROR_MIN, 0.99), (f"{ERROR_MIN},mode=class", 0.9)])
def test_error_min_stops_at_the_papers_threshold(spec, stop_acc, splits):
    attack, poison = craft(spec, splits, 0)
    assert float(poison.extras["surrogate_acc"]) >= stop_acc
    assert 1 <= int(poison.extras["rounds"]) <= attack.p.max_rounds


def test_one_pixel_shortcut_changes_one_pixel_per_image(splits):
    for seed in SEEDS:
        _, poison = craft("one-pixel-shortcut", splits, seed)
        locations, values = poison.extras["locations"], poison.extras["values"]
        assert locations.shape == (10, 1, 2) and values.shape == (10, 1, 1)
        assert len({tuple(loc) for loc in locations[:, 0].tolist()}) == 10  # a distinct pixel per class
        assert set(values.flatten().tolist()) <= {0.0, 1.0}  # boundary colours only
        l0 = perturbation_norms(poison.data.x - splits.train.x, "l0")
        assert l0.max() == 1 and poison.poisoned.all()
        x, y = poison.data.x, poison.data.y
        rows, cols = locations[y, 0, 0], locations[y, 0, 1]
        assert torch.equal(x[torch.arange(len(x)), 0, rows, cols], values[y, 0, 0])


def test_one_pixel_shortcut_search_maximises_the_papers_objective():
    # Class 0's images are noisy everywhere except pixel (1, 2), which is always 0.2: the most
    # consistent deviation is white there; class 1 may not take the same position.
    x = torch.rand(40, 1, 4, 4) * 0.6 + 0.2
    x[:, :, 1, 2] = 0.2
    y = torch.arange(40) % 2
    locations, values = search_pixels(x, y, 2)
    assert locations[0, 0].tolist() == [1, 2] and values[0, 0].tolist() == [1.0]
    assert locations[1, 0].tolist() != [1, 2]


def test_one_pixel_shortcut_colour_and_fraction():
    info = DatasetInfo("toy", (3, 5, 6), 4)
    x, y = torch.rand(40, 3, 5, 6), torch.arange(40) % 4
    ctx = Context(seed=0, device=torch.device("cpu"), info=info)
    poison = get_registry().create("attacks", "one-pixel-shortcut:fraction=0.5").craft(TensorData(x, y), ctx)
    assert poison.extras["values"].shape == (4, 1, 3) and poison.poisoned.sum() == 20
    l0 = perturbation_norms(poison.data.x - x, "l0")
    assert (l0[~poison.poisoned] == 0).all() and l0.max() == 1


def test_badnets_changes_only_the_patch_and_the_labels(splits):
    attack, poison = craft("badnets", splits, 0)
    train = splits.train
    assert poison.poisoned.sum() == round(0.1 * len(train))
    changed_pixels = (poison.data.x != train.x)[:, 0]  # (N, 8, 8)
    outside = changed_pixels.clone()
    outside[:, 5:, 5:] = False  # the 3x3 bottom-right patch
    assert not outside.any() and not changed_pixels[~poison.poisoned].any()
    assert (poison.data.y[poison.poisoned] == attack.p.target).all()
    assert torch.equal(poison.data.y[~poison.poisoned], train.y[~poison.poisoned])
    patch = poison.data.x[poison.poisoned][:, 0, 5:, 5:]
    assert torch.equal(patch, torch.tensor([[1.0, 0, 1], [0, 1, 0], [1, 0, 1]]).expand_as(patch))


def test_badnets_rejects_a_target_outside_the_classes(splits):
    reason = get_registry().create("attacks", "badnets:target=12").incompatibility(splits.info, None)
    assert "target=12" in reason and "0..9" in reason


# ---- effects on an erm-trained victim ----------------------------------------------------------

@pytest.mark.slow
def test_error_min_lowers_lenet5_accuracy_far_below_uniform_noise(splits):
    # The paper's crafting model is a CNN, its victims CNNs: the default CNN surrogate against LeNet-5.
    # Near chance (the paper's CIFAR-10 claim) is not reached on 8x8 digits: LeNet-5 still learns
    # the digits beside the noise (README).
    noise, noise_accs = mean_accuracy(f"uniform-noise:eps={EPS}", splits, "lenet5")
    acc, accs = mean_accuracy("error-min", splits, "lenet5")
    assert acc < noise - 0.10, (accs, noise_accs)
    assert max(accs) < min(noise_accs), (accs, noise_accs)


@pytest.mark.parametrize("spec,margin", [(ERROR_MIN, 0.03), (f"{ERROR_MIN},mode=class", 0.06)])
def test_error_min_lowers_accuracy_below_uniform_noise(spec, margin, splits, noise_acc):
    acc, accs = mean_accuracy(spec, splits)
    assert acc < noise_acc[0] - margin, (accs, noise_acc[1])
    assert max(accs) < min(noise_acc[1]), (accs, noise_acc[1])  # on every seed


@pytest.mark.slow
def test_pgd_at_at_the_poisons_eps_recovers_what_error_min_took(splits):
    # The known result: adversarial training at the noise's eps leaves nothing for error-min to take.
    # At linf 0.2: at the digits' 0.3 adversarial training leaves the MLP near chance even on clean data.
    spec, defense = "error-min:surrogate=mlp,eps=0.2", "pgd-at:eps=0.2"
    clean_erm, _ = mean_accuracy("clean", splits)
    poisoned_erm, erm_accs = mean_accuracy(spec, splits)
    clean_at, clean_at_accs = mean_accuracy("clean", splits, "mlp", defense)
    poisoned_at, at_accs = mean_accuracy(spec, splits, "mlp", defense)
    assert poisoned_erm < clean_erm - 0.02, erm_accs  # the poison takes something from erm
    assert poisoned_at > clean_at - 0.03, (at_accs, clean_at_accs)  # and nothing from pgd-at


def test_adv_poison_lowers_accuracy_far_below_uniform_noise(splits, noise_acc):
    acc, accs = mean_accuracy(ADV_POISON, splits)
    assert acc < noise_acc[0] - 0.25, (accs, noise_acc[1])


def test_one_pixel_shortcut_is_learned(splits):
    # The cheap check: the victim relies on the pixel (another class's pixel redirects it).
    for seed in SEEDS:
        attack, poison = craft("one-pixel-shortcut", splits, seed)
        ctx = context(splits, seed)
        registry = get_registry()
        fitted = registry.create("defenses", "erm").fit(registry.create("victims", "mlp"), poison.data, ctx)
        test = splits.test
        other = (test.y + 1) % 10
        hijacked = stamp(test.x, other, poison.extras["locations"], poison.extras["values"])
        assert fitted.classifier.accuracy(hijacked, other) > 0.2  # chance is about 0.01
        assert attack.metrics(poison, fitted, splits, ctx)["shortcut_acc"] > 0.99


@pytest.mark.slow
def test_one_pixel_shortcut_lowers_lenet5_accuracy_below_random_pixels(splits):
    # A CNN, the paper's setting: LeNet-5 learns the pixel before the digits (the MLP does not).
    ops, ops_accs = mean_accuracy("one-pixel-shortcut", splits, "lenet5")
    random, random_accs = mean_accuracy("random-pixels:pixels=1", splits, "lenet5")
    assert ops < random - 0.04, (ops_accs, random_accs)


def test_iss_recovers_part_of_the_one_pixel_shortcut(splits):
    # JPEG at quality 10 blurs the single boundary-valued pixel into its neighbours (Liu et al.).
    erm, erm_accs = mean_accuracy("one-pixel-shortcut", splits, "lenet5")
    iss, iss_accs = mean_accuracy("one-pixel-shortcut", splits, "lenet5", "iss")
    assert iss > erm + 0.03, (iss_accs, erm_accs)


@pytest.mark.slow
def test_one_pixel_shortcut_lowers_accuracy_below_random_pixels():
    # On a CNN (the paper's setting) and Fashion-MNIST: an MLP on 8x8 digits learns the digits
    # as fast as the pixel, and the shortcut does not displace them (README).
    try:
        splits = get_registry().create("datasets", "fashion-mnist:per_class=100,test_per_class=50").load()
    except FileNotFoundError as missing:  # DatasetMissing: apt-get install dataset-fashion-mnist
        pytest.skip(str(missing))
    accs = {spec: [victim_run(spec, splits, seed, "graynet")[0] for seed in SEEDS]
            for spec in ("one-pixel-shortcut", "random-pixels:pixels=1")}
    ops, random = accs["one-pixel-shortcut"], accs["random-pixels:pixels=1"]
    assert statistics.mean(ops) < statistics.mean(random) - 0.04, accs
    assert all(o < r for o, r in zip(ops, random)), accs


def test_badnets_backdoor_with_clean_accuracy_kept(splits):
    for seed in SEEDS:
        poisoned_acc, metrics = victim_run("badnets", splits, seed)
        clean_acc, _ = victim_run("clean", splits, seed)
        assert metrics["backdoor_success_rate"] > 0.9, metrics
        assert poisoned_acc > clean_acc - 0.03, (poisoned_acc, clean_acc)
