"""The torchattacks wrapper: contracts, parameter validation, and each attack beating random noise."""

from __future__ import annotations

import pytest
import torch
import torchattacks
from benchlab_torchattacks.adapter import ClassifierModule, frozen
from benchlab_torchattacks.catalogue import CATALOGUE
from benchlab_torchattacks.search_cw import BinarySearchCW

from benchlab.context import Context
from benchlab.params import SpecError
from benchlab.testing import check_plugin


@pytest.fixture(scope="module")
def trained(registry, digits):
    """An MLP trained on digits, the context, and a 120-image test slice."""
    victim = registry.create("victims", "mlp")
    ctx = Context(seed=0, device=torch.device("cpu"), info=digits.info, monitor=digits.test, victim=victim,
                  recipe_overrides={"epochs": 10})
    fitted = registry.create("defenses", "erm").fit(victim, digits.train, ctx)
    return fitted.classifier, ctx, digits.test.x[:120], digits.test.y[:120]


def l2(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1)


def random_same_norm(x: torch.Tensor, norms: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """x plus a random direction of the same per-example l2 norm, clipped to [0, 1]."""
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    noise = noise / l2(noise).view(-1, 1, 1, 1) * norms.view(-1, 1, 1, 1)
    return (x + noise).clamp(0, 1)


@pytest.mark.parametrize("spec", ["ta:pgd,steps=3", "ta:fgsm", "ta:apgd,norm=l2,steps=3",
                                  "ta-deepfool:steps=10", "ta-cw:steps=20,lr=0.05"])
def test_contract(spec):
    check_plugin("attacks", spec)


def test_generic_name_validates_attack_and_parameters(registry):
    with pytest.raises(SpecError, match="choose one of fgsm, bim, pgd"):
        registry.create("attacks", "ta:nope")
    with pytest.raises(SpecError, match="ta:deepfool does not take c; it takes steps, overshoot"):
        registry.create("attacks", "ta:deepfool,c=1")
    with pytest.raises(SpecError, match="required"):
        registry.create("attacks", "ta")


def test_minimal_norm_and_norm_follow_the_selected_attack(registry):
    for name, entry in CATALOGUE.items():
        attack = registry.create("attacks", f"ta:{name}")
        assert attack.minimal_norm is entry.minimal_norm, name
    assert registry.create("attacks", "ta:deepfool").norm == "l2"
    assert registry.create("attacks", "ta:pgd").norm == "linf"
    assert registry.create("attacks", "ta:apgd,norm=l2").norm == "l2"
    assert registry.get("attacks", "ta-deepfool").minimal_norm
    assert registry.get("attacks", "ta-cw").minimal_norm


def test_budget_filled_by_a_matrix_is_dropped_for_minimal_norm_attacks(registry, digits):
    from benchlab.matrix import with_budget

    deepfool = with_budget(registry, "ta:deepfool", digits.info.budgets)
    assert deepfool.values["eps"] is None and deepfool.spec == "ta:attack=deepfool"
    pgd = with_budget(registry, "ta:pgd", digits.info.budgets)
    assert pgd.values["eps"] == digits.info.budgets["linf"]


def test_adapter_leaves_the_victim_in_eval_mode_without_gradients(trained):
    classifier, ctx, x, y = trained
    module = ClassifierModule(classifier, ctx.device)
    torchattacks.DeepFool(module, steps=3)(x[:5], y[:5])
    assert not classifier.module.training  # a fresh module starts training: the adapter must not
    assert any(p.grad is not None for p in classifier.module.parameters())  # DeepFool calls backward()
    classifier.module.zero_grad(set_to_none=True)
    with frozen(module):
        torchattacks.DeepFool(module, steps=3)(x[:5], y[:5])
    assert all(p.grad is None and p.requires_grad for p in classifier.module.parameters())


def test_pgd_hurts_more_than_random_noise_of_the_budget(registry, trained):
    classifier, ctx, x, y = trained
    attack = registry.create("attacks", "ta:pgd,eps=0.1,steps=10")
    adversarial = classifier.accuracy(attack.perturb(classifier, x, y, ctx), y)
    noise = (2 * torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(0)) - 1) * 0.1
    random = classifier.accuracy((x + noise).clamp(0, 1), y)
    assert adversarial < random - 0.3


@pytest.mark.parametrize("spec", ["ta-deepfool", "ta-cw:steps=100,lr=0.05,search_steps=4"])
def test_minimal_norm_attack_flips_what_random_directions_of_its_norm_do_not(registry, trained, spec):
    classifier, ctx, x, y = trained
    correct = classifier.predict(x) == y
    x_adv = registry.create("attacks", spec).perturb(classifier, x, y, ctx)
    norms = l2(x_adv - x)
    flipped = (classifier.predict(x_adv) != y)[correct].float().mean()
    random_flipped = (classifier.predict(random_same_norm(x, norms)) != y)[correct].float().mean()
    assert flipped > 0.95 and random_flipped < 0.3
    assert norms[correct].mean() < 0.3 * l2(x).mean()  # small: far inside the image norm


def test_deepfool_overshoot_on_the_total_flips_what_per_step_overshoot_leaves(trained):
    classifier, ctx, x, y = trained
    x, y = x[:60], y[:60]
    module = ClassifierModule(classifier, ctx.device)
    plain = torchattacks.DeepFool(module, steps=10)(x, y)  # stalled inputs stay stalled: few steps suffice
    ours = CATALOGUE["deepfool"].build(module, {"steps": 50, "overshoot": 0.02})(x, y)
    assert (classifier.predict(ours) != y).float().mean() >= (classifier.predict(plain) != y).float().mean()
    assert (classifier.predict(ours) != y).float().mean() > 0.97


def test_cw_binary_search_finds_smaller_perturbations_than_one_large_c(trained):
    classifier, ctx, x, y = trained
    module = ClassifierModule(classifier, ctx.device)
    correct = classifier.predict(x) == y
    fixed = BinarySearchCW(module, c=10.0, steps=100, lr=0.05)(x, y)
    searched = BinarySearchCW(module, c=10.0, steps=100, lr=0.05, search_steps=4)(x, y)
    for x_adv in (fixed, searched):
        assert (classifier.predict(x_adv) != y)[correct].float().mean() > 0.95
    assert l2(searched - x)[correct].mean() < 0.9 * l2(fixed - x)[correct].mean()
