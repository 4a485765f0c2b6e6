"""Baseline victims: every architecture builds for any input size, splits exactly, and has the
published size; timm models resolve offline with helpful errors; sklearn victims learn digits."""

from __future__ import annotations

import socket

import pytest
import torch
from benchlab_baselines import victims
from torch import nn

from benchlab.context import Context
from benchlab.params import SpecError

TORCH_VICTIMS = ["mlp", "lenet5", "deepconfuse-cnn", "cnn5", "graynet", "colornet", "resnet20", "resnet32",
                 "densenet40", "timm:resnet18"]
SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]



def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_victim_is_registered_and_documented(registry):
    for cls in victims.ALL:
        assert registry.get("victims", cls.name) is cls
        assert cls.summary() and "Reference" in cls.__doc__, cls.name
        assert cls.framework in ("torch", "sklearn")


@pytest.mark.parametrize("spec", TORCH_VICTIMS)
def test_torch_victim_builds_for_any_input_and_splits_exactly(registry, spec):
    victim = registry.create("victims", spec)
    assert victim.framework == "torch" and victim.has_split
    for shape in SHAPES:
        torch.manual_seed(0)
        model = victim.build(shape, 10)
        x = torch.rand(2, *shape)
        # Training mode must work too (BatchNorm on the smallest maps, gradients reach the input layer).
        model.train()
        model(x).sum().backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
        model.eval()
        with torch.no_grad():
            out = model(x)
            rep, head = victim.split(model)
            z = rep(x)
            assert out.shape == (2, 10), (spec, shape)
            assert z.ndim == 2 and z.shape[0] == 2
            torch.testing.assert_close(head(z), out)


@pytest.mark.parametrize("spec, low, high", [
    ("resnet20", 0.26e6, 0.28e6),  # paper: 0.27M
    ("resnet32", 0.45e6, 0.48e6),  # paper: 0.46M
    ("densenet40", 0.95e6, 1.1e6),  # paper: 1.0M
])
def test_parameter_counts_match_the_papers(registry, spec, low, high):
    assert low <= n_params(registry.create("victims", spec).build((3, 32, 32), 10)) <= high


def test_resnet_shortcut_options(registry):
    option_a = registry.create("victims", "resnet20").build((3, 32, 32), 10)
    option_b = registry.create("victims", "resnet20:shortcut=b").build((3, 32, 32), 10)
    # Option B adds two 1x1 projections (16->32, 32->64) with their BatchNorms.
    assert n_params(option_b) - n_params(option_a) == 16 * 32 + 32 * 64 + 2 * (32 + 64)


def test_mlp_params_shape_the_network(registry):
    model = registry.create("victims", "mlp:hidden1=30,hidden2=20,dropout=0.3").build((1, 8, 8), 10)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 30), (30, 20), (20, 10)]
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.3, 0.3]
    plain = registry.create("victims", "mlp").build((1, 8, 8), 10)
    assert not any(isinstance(m, nn.Dropout) for m in plain.modules())


def test_timm_builds_offline_with_the_requested_head_and_channels(registry, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("timm victim tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    victim = registry.create("victims", "timm:resnet18")
    assert victim.p.model == "resnet18" and victim.spec == "timm:model=resnet18"
    model = victim.build((1, 28, 28), 10)
    assert model.conv1.in_channels == 1 and model.get_classifier().out_features == 10
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_timm_unknown_or_missing_name_is_a_helpful_error(registry):
    with pytest.raises(SpecError, match="resnet18"):
        registry.create("victims", "timm:resnet181")
    with pytest.raises(SpecError, match="required"):
        registry.create("victims", "timm")


@pytest.mark.parametrize("spec, attribute, value", [
    ("random-forest:trees=60", "n_estimators", 60),
    ("svm-rbf:gamma=0.05,C=3", "gamma", 0.05),
])
def test_sklearn_victims_fit_and_predict_digits(registry, digits, spec, attribute, value):
    victim = registry.create("victims", spec)
    assert victim.framework == "sklearn" and not victim.has_split
    assert getattr(victim.build(digits.info.input_shape, 10), attribute) == value
    ctx = Context(seed=0, device=torch.device("cpu"), info=digits.info, monitor=digits.test)
    fitted = registry.create("defenses", "erm").fit(victim, digits.train, ctx)
    predictions = fitted.classifier.predict(digits.test.x)
    assert predictions.shape == digits.test.y.shape and predictions.dtype == torch.long
    assert fitted.classifier.logits(digits.test.x[:5]).shape == (5, 10)
    assert fitted.history.final_test_acc > 0.9
