"""The adversary critic, its objectives and the defenses of the plugin (adversary-critic, vat)."""

from __future__ import annotations

import pytest
import torch
from benchlab_adversary_critic.critic import AdversaryCritic, critic_objective
from benchlab_adversary_critic.defense import AdversaryCriticDefense
from benchlab_adversary_critic.mapping import CONFIDENCE_DECAY, ClassConfidence, cycle_consistency
from benchlab_adversary_critic.margin import margin_sensitivity, most_sensitive_class, multiclass_hinge
from benchlab_adversary_critic.vat import kl_from_logits, virtual_adversarial_direction
from torch import nn

from benchlab.context import Context
from benchlab.data import TensorData
from benchlab.testing import check_plugin


def fit(registry, digits, defense: str, victim: str = "mlp3:width=64", epochs: int = 10):
    ctx = Context(seed=0, device=torch.device("cpu"), info=digits.info, monitor=digits.test,
                  recipe_overrides={"epochs": epochs})
    fitted = registry.create("defenses", defense).fit(registry.create("victims", victim), digits.train, ctx)
    return fitted, ctx


@pytest.mark.parametrize("spec", ["adversary-critic", "vat", "margin"])
def test_contract(spec):
    check_plugin("defenses", spec)


def _critic():
    torch.manual_seed(0)
    return AdversaryCritic((1, 4, 4), num_classes=3, width=16).eval()  # eval: noise off, deterministic


def test_critic_uses_the_label_only_at_the_final_layer():
    critic = _critic()
    x = torch.rand(5, 1, 4, 4)
    scores = critic.head(critic.body(x))
    for k in range(3):
        assert torch.allclose(critic(x, torch.full((5,), k)), scores[:, k])
    assert not any(isinstance(m, nn.Embedding) for m in critic.modules())


def test_gradient_penalty_is_computed_at_real_and_adversarial_inputs_separately():
    critic = _critic()
    x_real, x_adv = torch.rand(6, 1, 4, 4), torch.rand(6, 1, 4, 4)
    y_real, y_adv = torch.randint(0, 3, (6,)), torch.randint(0, 3, (6,))

    def expected(x, y):  # (||grad_x D_y(x)|| - 1)^2 at x itself, no interpolation
        x = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x, y).sum(), x)
        return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()

    _, parts = critic_objective(critic, x_real, y_real, x_adv, y_adv, grad_weight=10.0)
    assert torch.allclose(parts["penalty_real"], expected(x_real, y_real))
    assert torch.allclose(parts["penalty_adv"], expected(x_adv, y_adv))
    _, moved = critic_objective(critic, x_real, y_real, x_adv.flip(0), y_adv.flip(0), grad_weight=10.0)
    # The real term ignores the adversarial batch.
    assert torch.equal(moved["penalty_real"], parts["penalty_real"])


def test_cycle_consistency_is_zero_at_a_fixed_point_and_positive_elsewhere():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.rand(8, 1, 4, 4)
    source = model(x).argmax(1)
    p_source = model(x).softmax(1).gather(1, source[:, None]).squeeze(1).detach()
    # x is its own adversarial example and already above the source confidence: a fixed point.
    fixed = cycle_consistency(model, x, x, source, 0.5 * p_source, steps=5, overshoot=0.0)
    assert fixed.item() == 0.0
    moved = cycle_consistency(model, x, (x + 0.2 * torch.rand_like(x)).clamp(0, 1), source, p_source + 0.05,
                              steps=5, overshoot=0.0)
    assert moved.item() > 0 and moved.requires_grad


def test_class_confidence_is_a_running_mean_per_predicted_class():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x = torch.rand(30, 1, 2, 2)
    probs = model(x).softmax(1).detach()
    confidence = ClassConfidence.estimate(model, TensorData(x, torch.zeros(30, dtype=torch.long)), 3)
    pred = probs.argmax(1)
    for k in pred.unique():
        assert torch.isclose(confidence.values[k], probs.amax(1)[pred == k].mean())
    before = confidence.values.clone()
    logits = torch.tensor([[5.0, 0.0, 0.0], [4.0, 0.0, 0.0]])  # only class 0 in this batch
    confidence.update(logits)
    batch = logits.softmax(1).amax(1).mean()
    assert torch.isclose(confidence.values[0], CONFIDENCE_DECAY * before[0] + (1 - CONFIDENCE_DECAY) * batch)
    assert torch.equal(confidence.values[1:], before[1:])


def test_one_step_trains_both_players_and_backpropagates_through_the_attack(registry, digits):
    victim = registry.create("victims", "mlp3:width=32")
    x, y = digits.train.x[:50], digits.train.y[:50]
    updates = {}
    for lam in (0.0, 0.5):
        torch.manual_seed(0)
        model = victim.build(digits.info.input_shape, 10)
        critic = AdversaryCritic(digits.info.input_shape, 10, width=32)
        start_f, start_d = [p.clone() for p in model.parameters()], [p.clone() for p in critic.parameters()]
        defense = AdversaryCriticDefense(lam=lam, lam_rec=0.0)
        opt_f = torch.optim.SGD(model.parameters(), lr=0.1)
        opt_d = torch.optim.SGD(critic.parameters(), lr=0.1)
        confidence = ClassConfidence(torch.full((10,), 0.9))
        stats = defense.step(model, critic, opt_f, opt_d, confidence, x, y)
        assert stats["flipped"] > 0
        assert any(not torch.equal(a, b) for a, b in zip(start_d, critic.parameters()))
        updates[lam] = torch.cat([(p - s).flatten() for p, s in zip(model.parameters(), start_f)])
    # With SGD the update is the gradient: the critic term changes it only through A_f's dependence on f.
    assert not torch.allclose(updates[0.0], updates[0.5])


def test_vat_direction_raises_the_divergence_more_than_random_directions(registry, digits):
    fitted, _ = fit(registry, digits, "erm", epochs=10)
    model, x = fitted.classifier.module, digits.test.x[:100]
    reference = torch.log_softmax(model(x), 1).detach()
    torch.manual_seed(0)
    direction = virtual_adversarial_direction(model, x, reference, xi=1e-2, iterations=1)
    random = torch.randn_like(x)
    random = random / random.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    with torch.no_grad():
        adversarial = kl_from_logits(reference, model(x + 0.5 * direction))
        baseline = kl_from_logits(reference, model(x + 0.5 * random))
    assert adversarial > 5 * baseline


def mean_rho(registry, classifier, ctx, digits, attack: str) -> float:
    x, y = digits.test.x[:200], digits.test.y[:200]
    result = registry.create("attacks", attack).perturb(classifier, x, y, ctx)
    x_adv = getattr(result, "x_adv", result)
    return ((x_adv - x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)).mean().item()


def test_margin_terms_match_the_linear_svm_on_a_linear_model():
    """For z = Wx + b the input gradients are the rows W_k: the penalty is max_k ||W_k - W_y||²."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 4))
    weight = model[1].weight.detach()
    x = torch.rand(5, 1, 2, 3, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 1])
    logits = model(x)
    expected_hinge = torch.stack([
        (1 + max(logits[i, k] for k in range(4) if k != y[i]) - logits[i, y[i]]).clamp_min(0) for i in range(5)])
    assert torch.allclose(multiclass_hinge(logits, y), expected_hinge)
    gaps = torch.stack([(weight - weight[c]).square().sum(1) for c in y.tolist()])  # (B, K)
    gradients = weight.expand(5, 4, 6)  # (N, K, D): every example's input gradients are the rows W_k
    assert torch.equal(most_sensitive_class(gradients, y), gaps.argmax(1))
    penalty = margin_sensitivity(logits, x, y)
    assert torch.allclose(penalty, gaps.amax(1), rtol=1e-5)
    penalty.sum().backward()  # differentiable in the parameters (double backpropagation)
    assert model[1].weight.grad.abs().sum() > 0


def test_margin_maximization_widens_the_deepfool_margin_over_erm(registry, digits):
    """The effect margin maximization claims: larger minimal l2 perturbations, accuracy kept."""
    rho, accuracy = {}, {}
    for defense in ("erm", "margin"):
        fitted, ctx = fit(registry, digits, defense, epochs=20)
        accuracy[defense] = fitted.classifier.accuracy(digits.test.x, digits.test.y)
        rho[defense] = mean_rho(registry, fitted.classifier, ctx, digits, "ta-deepfool")
    assert accuracy["margin"] > accuracy["erm"] - 0.02, accuracy
    assert rho["margin"] > 1.3 * rho["erm"], rho


@pytest.mark.slow
def test_vat_and_adversary_critic_widen_the_margin_over_erm(registry, digits):
    """The effect both defenses claim: larger minimal adversarial perturbations, clean accuracy kept.

    The critic needs a classifier of some width to act on (with width 64 it has no effect within
    20 epochs), hence the 256-unit MLP here.
    """
    critic = "adversary-critic:critic_width=256,pretrain_epochs=5"
    runs = {"erm": 20, "vat:eps=0.83": 20, critic: 15}
    rho = {}
    for defense, epochs in runs.items():
        fitted, ctx = fit(registry, digits, defense, victim="mlp3:width=256", epochs=epochs)
        assert fitted.classifier.accuracy(digits.test.x, digits.test.y) > 0.93, defense
        rho[defense] = {attack: mean_rho(registry, fitted.classifier, ctx, digits, attack)
                        for attack in ("ta-deepfool", "high-confidence")}
    for attack in ("ta-deepfool", "high-confidence"):
        assert rho["vat:eps=0.83"][attack] > 1.2 * rho["erm"][attack], rho
        assert rho[critic][attack] > 1.08 * rho["erm"][attack], rho


def test_adversary_critic_trains_through_the_recipe(registry, digits):
    """The classifier's optimizer comes from the recipe: a matrix override of lr reaches it (lr=0 learns nothing)."""
    victim = registry.create("victims", "mlp3:width=16")
    defense = registry.create("defenses", "adversary-critic:critic_width=16,batch_size=64,pretrain_epochs=1,epochs=1")
    accuracy = {}
    for lr in (0.0, 1e-2):
        ctx = Context(seed=0, device=torch.device("cpu"), info=digits.info, recipe_overrides={"lr": lr})
        assert defense.recipe(victim, ctx).optimizer == "adam" and defense.recipe(victim, ctx).beta1 == 0.5
        fitted = defense.fit(victim, digits.train, ctx)
        accuracy[lr] = fitted.classifier.accuracy(digits.test.x, digits.test.y)
    assert accuracy[0.0] < 0.3 < accuracy[1e-2]


def test_the_step_schedule_halves_the_rate_every_forty_percent_of_the_epochs(digits):
    from benchlab import Recipe, fit

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    fit(model, digits.train.subset(slice(0, 64)), Recipe(epochs=5, batch_size=64, schedule="step"), seed=0,
        optimizer=optimizer)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.025)  # halved after epochs 2 and 4
