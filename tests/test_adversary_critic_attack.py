"""The high-confidence attack A_f: reaches C, reports failures, beats random noise, differentiates right."""

from __future__ import annotations

import pytest
import torch
from benchlab_adversary_critic.high_confidence import closest_boundary_target, high_confidence_attack
from torch import nn

from benchlab.context import Context
from benchlab.testing import check_plugin


@pytest.fixture(scope="module")
def trained(registry, digits):
    """A small mlp3 trained on digits, its context and a 150-image test slice."""
    victim = registry.create("victims", "mlp3:width=64")
    ctx = Context(seed=0, device=torch.device("cpu"), info=digits.info, monitor=digits.test, victim=victim,
                  recipe_overrides={"epochs": 15})
    fitted = registry.create("defenses", "erm").fit(victim, digits.train, ctx)
    assert fitted.history.final_test_acc > 0.9
    return fitted.classifier, ctx, digits.test.x[:150], digits.test.y[:150]


def l2(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1)


def target_probability(classifier, x, target):
    with torch.no_grad():
        return classifier.logits(x).softmax(1).gather(1, target[:, None]).squeeze(1)


def test_contracts():
    check_plugin("attacks", "high-confidence:steps=50")
    check_plugin("victims", "mlp3:width=32")
    check_plugin("victims", "lenet5-ac")


def test_lenet5_ac_is_the_authors_architecture(registry):
    """32C5-P-64C5-P-512 on 28x28 (released code): 4x4x64 maps reach the 512-unit layer."""
    model = registry.create("victims", "lenet5-ac").build((1, 28, 28), 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(c.out_channels, c.kernel_size, c.padding) for c in convs] == [(32, (5, 5), (0, 0)), (64, (5, 5), (0, 0))]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(64 * 4 * 4, 512), (512, 10)]


@pytest.mark.parametrize("spec", ["high-confidence", "high-confidence:confidence=0.9,target=random"])
def test_reaches_confidence_on_a_trained_model_and_reports_the_rest(registry, trained, spec):
    classifier, ctx, x, y = trained
    result = registry.create("attacks", spec).perturb(classifier, x, y, ctx)
    p_target = target_probability(classifier, result.x_adv, result.target)
    confidence = classifier.logits(x).softmax(1).amax(1).detach() if "confidence=" not in spec else 0.9
    reached = (p_target >= confidence - 1e-5) & (classifier.predict(result.x_adv) == result.target)
    assert result.success.float().mean() > 0.9 and result.metrics["hc_success_rate"] > 0.9
    assert torch.equal(result.success, reached)  # failures are reported, not hidden
    assert (result.target != classifier.predict(x)).all()


def test_too_few_steps_are_reported_as_failures(registry, trained):
    classifier, ctx, x, y = trained
    attack = registry.create("attacks", "high-confidence:confidence=0.99,steps=2")
    result = attack.perturb(classifier, x, y, ctx)
    p_target = target_probability(classifier, result.x_adv, result.target)
    assert result.metrics["hc_success_rate"] < 0.5 and (~result.success).any()
    assert (p_target[~result.success] < 0.99).all()


def test_hurts_more_than_a_random_perturbation_of_the_same_norm(registry, trained):
    classifier, ctx, x, y = trained
    result = registry.create("attacks", "high-confidence").perturb(classifier, x, y, ctx)
    norms = l2(result.x_adv - x)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    random = (x + noise / l2(noise).view(-1, 1, 1, 1) * norms.view(-1, 1, 1, 1)).clamp(0, 1)
    assert classifier.accuracy(result.x_adv, y) < 0.1
    assert classifier.accuracy(random, y) > 0.6


def test_closest_boundary_is_exact_for_a_linear_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    x = torch.rand(40, 1, 3, 4)
    logits = model(x).detach()
    source = logits.argmax(1)
    weight = model[1].weight.detach()
    gap = (logits - logits.gather(1, source[:, None])).abs()
    distance = gap / (weight[None] - weight[source][:, None]).norm(dim=2)
    distance[torch.arange(40), source] = float("inf")
    assert torch.equal(closest_boundary_target(model, x, source), distance.argmin(1))


def test_differentiable_forward_equals_the_evaluation_attack(trained):
    classifier, ctx, x, y = trained
    model = classifier.module
    source = classifier.predict(x)
    target = closest_boundary_target(model, x, source)
    evaluated, reached = high_confidence_attack(model, x, target, 0.9, steps=5)
    unrolled, reached_too = high_confidence_attack(model, x, target, 0.9, steps=5, differentiable=True)
    assert torch.allclose(evaluated, unrolled, atol=1e-5) and torch.equal(reached, reached_too)
    assert unrolled.requires_grad and not evaluated.requires_grad


def _tiny_problem():
    """A smooth tiny classifier in float64 whose attack stays inside the box, for finite differences."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    with torch.no_grad():
        model[1].weight.mul_(3)
    x = (0.35 + 0.3 * torch.rand(8, 1, 4, 4)).double()
    target = (model(x).argmax(1) + 1) % 3
    weights = torch.randn(8, 1, 4, 4, dtype=torch.float64)
    return model, x, target, weights


def _objective(model, x, target, weights, **options):
    x_adv, _ = high_confidence_attack(model, x, target, 0.6, steps=2, differentiable=True, **options)
    assert 0 < x_adv.min() and x_adv.max() < 1  # no clipping: the derivative is not cut by the box
    return (weights * x_adv).sum()


def _finite_difference_gradient(model, x, target, weights, h=1e-6, **options):
    grads = []
    with torch.no_grad():
        for p in model.parameters():
            g = torch.zeros_like(p).flatten()
            for i in range(p.numel()):
                p.view(-1)[i] += h
                up = _objective(model, x, target, weights, **options)
                p.view(-1)[i] -= 2 * h
                down = _objective(model, x, target, weights, **options)
                p.view(-1)[i] += h
                g[i] = (up - down) / (2 * h)
            grads.append(g)
    return torch.cat(grads)


def _autograd_gradient(model, x, target, weights, **options):
    grads = torch.autograd.grad(_objective(model, x, target, weights, **options), list(model.parameters()))
    return torch.cat([g.flatten() for g in grads])


def test_parameter_gradients_match_finite_differences_exactly_without_surrogates():
    model, x, target, weights = _tiny_problem()
    # slope 0 switches the straight-through surrogate off, and the full chain is kept: exact derivative.
    options = {"slope": 0.0, "detach_iterates": False}
    exact = _autograd_gradient(model, x, target, weights, **options)
    numeric = _finite_difference_gradient(model, x, target, weights, **options)
    assert torch.allclose(exact, numeric, rtol=1e-4, atol=1e-7)


def test_training_gradients_are_finite_nonzero_and_agree_in_sign_with_finite_differences():
    model, x, target, weights = _tiny_problem()
    estimate = _autograd_gradient(model, x, target, weights)  # the training settings
    numeric = _finite_difference_gradient(model, x, target, weights)
    assert torch.isfinite(estimate).all() and estimate.abs().max() > 1e-3
    large = numeric.abs() > 0.1 * numeric.abs().max()
    agreement = (estimate[large].sign() == numeric[large].sign()).float().mean()
    cosine = torch.nn.functional.cosine_similarity(estimate, numeric, dim=0)
    assert agreement > 0.8 and cosine > 0.7, (agreement, cosine)
