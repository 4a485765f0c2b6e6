"""OneChannelConv2d is nn.Conv2d with another CPU input gradient: same values and gradients (first and
second order, every stride/padding form), same state dict, and the plain path wherever it is not needed."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from benchlab.nn import one_channel_conv
from benchlab.nn.one_channel_conv import OneChannelConv2d, conv2d
from benchlab.plugins import get_registry

LAYOUTS = [  # (kernel, stride, padding, input size)
    (5, 1, 0, (12, 12)),
    (5, 1, 2, (12, 11)),
    (3, 2, 1, (9, 12)),
    ((3, 5), (2, 1), (0, 2), (10, 9)),
]


def pair(kernel, stride, padding):
    reference = nn.Conv2d(1, 3, kernel, stride=stride, padding=padding).double()
    layer = OneChannelConv2d(3, kernel, stride=stride, padding=padding).double()
    layer.load_state_dict(reference.state_dict())
    return reference, layer


def second_order_objective(module, x, weight, bias):
    """A scalar of the input, weight and bias gradients, kept differentiable: what DeepConfuse's
    pseudo-update and input-gradient penalties differentiate."""
    out = functional_call(module, {"weight": weight, "bias": bias}, (x,))
    gx, gw, gb = torch.autograd.grad(out.tanh().square().sum(), (x, weight, bias), create_graph=True)
    return gw.sin().sum() + gx.square().sum() + gb.cos().sum()


@pytest.mark.parametrize(("kernel", "stride", "padding", "size"), LAYOUTS)
def test_values_and_gradients_match_conv2d_to_second_order(kernel, stride, padding, size):
    torch.manual_seed(0)
    reference, layer = pair(kernel, stride, padding)
    x = torch.randn(2, 1, *size, dtype=torch.float64, requires_grad=True)
    out = layer(x)
    parts = {type(node).__name__ for node, _ in out.grad_fn.next_functions}
    assert parts == {"_WeightPathBackward", "_InputPathBackward"}  # the fast path was taken
    torch.testing.assert_close(out, reference(x))
    weight, bias = (p.detach().clone().requires_grad_() for p in (reference.weight, reference.bias))
    leaves = (x, weight, bias)
    want = torch.autograd.grad(second_order_objective(reference, *leaves), leaves)
    got = torch.autograd.grad(second_order_objective(layer, *leaves), leaves)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)


def test_gradcheck_and_gradgradcheck():
    torch.manual_seed(1)
    _, layer = pair(3, 2, 1)
    x = torch.randn(2, 1, 7, 6, dtype=torch.float64, requires_grad=True)

    def conv(x, weight, bias):
        return functional_call(layer, {"weight": weight, "bias": bias}, (x,))

    inputs = (x, layer.weight.detach().clone().requires_grad_(), layer.bias.detach().clone().requires_grad_())
    assert torch.autograd.gradcheck(conv, inputs)
    assert torch.autograd.gradgradcheck(conv, inputs)


def test_no_bias_and_the_plain_path(monkeypatch):
    torch.manual_seed(2)
    layer = OneChannelConv2d(4, 3, padding=1, bias=False).double()
    reference = nn.Conv2d(1, 4, 3, padding=1, bias=False).double()
    reference.load_state_dict(layer.state_dict())
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    gx, gw = torch.autograd.grad(layer(x).square().sum(), (x, layer.weight))
    rx, rw = torch.autograd.grad(reference(x).square().sum(), (x, reference.weight))
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gw, rw)
    # An input without a gradient (training on data) never takes the custom path.
    calls = []
    monkeypatch.setattr(one_channel_conv._WeightPath, "apply", lambda *a: calls.append(a))
    monkeypatch.setattr(one_channel_conv._InputPath, "apply", lambda *a: calls.append(a))
    layer(x.detach()).sum().backward()
    assert not calls and layer.weight.grad is not None


def test_each_backward_computes_only_the_gradients_it_is_asked_for(monkeypatch):
    """An attack asks for the input gradient only, a weight update for the weight gradient only: the
    other one is skipped (the first-order input gradient is one matmul + col2im; the weight gradient one
    oneDNN call)."""
    torch.manual_seed(4)
    layer = OneChannelConv2d(6, 5)
    counts = {"input": 0, "weight": 0}
    real_input, real_weight = one_channel_conv.input_gradient, one_channel_conv._WeightGradient.apply

    def counting(name, function):
        def wrapper(*args):
            counts[name] += 1
            return function(*args)
        return wrapper

    monkeypatch.setattr(one_channel_conv, "input_gradient", counting("input", real_input))
    monkeypatch.setattr(one_channel_conv._WeightGradient, "apply", counting("weight", real_weight))
    x = torch.rand(4, 1, 12, 12).requires_grad_()
    torch.autograd.grad(layer(x).square().sum(), x)
    assert counts == {"input": 1, "weight": 0}
    torch.autograd.grad(layer(x).square().sum(), layer.weight)
    assert counts == {"input": 1, "weight": 1}
    # DeepConfuse's pattern: a create-graph weight gradient, then its gradient w.r.t. the input only
    # (the weight gradient's own backward gives the input term, again by input_gradient).
    (gw,) = torch.autograd.grad(layer(x).square().sum(), layer.weight, create_graph=True)
    torch.autograd.grad((gw * torch.randn_like(gw)).sum(), x)
    assert counts == {"input": 3, "weight": 2}


def test_in_place_change_after_the_forward_is_refused():
    layer = OneChannelConv2d(2, 3)
    x = torch.rand(2, 1, 6, 6).requires_grad_()
    leaf = x * 1.0
    out = layer(leaf)
    with torch.no_grad():
        leaf.add_(1.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        torch.autograd.grad(out.sum(), layer.weight)


def test_vmap_and_func_grad_work():
    torch.manual_seed(3)
    reference, layer = pair(5, 1, 2)
    x = torch.randn(4, 1, 9, 9, dtype=torch.float64)

    def loss(module, image):
        return module(image).square().sum()

    want = torch.func.grad(lambda image: loss(reference, image))(x)
    torch.testing.assert_close(torch.func.grad(lambda image: loss(layer, image))(x), want)
    stacked = torch.vmap(lambda image: layer(image.unsqueeze(0)))(x)
    torch.testing.assert_close(stacked.squeeze(1), reference(x))


def test_factory_and_victims_keep_their_state_dicts():
    assert type(conv2d(1, 8, 3, padding=1)) is OneChannelConv2d
    assert type(conv2d(3, 8, 3, padding=1)) is nn.Conv2d
    with pytest.raises(ValueError, match="numeric padding"):
        OneChannelConv2d(8, 3, padding="same")
    model = get_registry().create("victims", "deepconfuse-cnn").build((1, 28, 28), 10)
    first = model.features[1]
    assert isinstance(first, OneChannelConv2d)
    assert set(first.state_dict()) == {"weight", "bias"}
    colour = get_registry().create("victims", "deepconfuse-cnn").build((3, 32, 32), 10)
    assert type(colour.features[1]) is nn.Conv2d


def test_bf16_autocast_takes_the_plain_path():
    torch.manual_seed(5)
    layer = OneChannelConv2d(4, 5)
    reference = nn.Conv2d(1, 4, 5)
    reference.load_state_dict(layer.state_dict())
    x = torch.rand(3, 1, 12, 12, requires_grad=True)
    grads = []
    for module in (layer, reference):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = module(x)
        assert out.dtype == torch.bfloat16
        grads.append(torch.autograd.grad(out.float().square().sum(), (x, module.weight)))
    for got, want in zip(*grads, strict=True):
        torch.testing.assert_close(got, want)
