"""OneChannelConv2d against nn.Conv2d as the first layer of grayscale victims, same run, same weights.

Two workloads that need the gradient with respect to a 1-channel input:

* an attack's input gradient: forward + backward to x of the cross-entropy, batch 128 of 28x28
  images (what PGD, C&W, DeepFool and adversarial training do at every step);
* DeepConfuse's generator step (``benchmarks/test_deepconfuse_iteration.py``): the pseudo-update,
  the outer loss and the double backward through the surrogate's weight gradient to the generator;
* the training steps of two defenses that differentiate input gradients with respect to the weights
  (double backpropagation): margin maximization and the adversary critic, batch 100 of digits.

The figure is the speed-up native / OneChannelConv2d of interleaved medians; gradients are checked
equal before timing, so the two sides compute the same thing.
"""

from __future__ import annotations

import copy

import pytest
import torch
from benchlab_deepconfuse.confuse import ConfuseSettings
from conftest import median_times
from test_adversary_critic_step import _model, adversary_critic_step, batch, margin_step  # noqa: F401 (fixture)
from test_deepconfuse_iteration import Iteration, data  # noqa: F401 (fixture)
from torch import nn
from torch.nn import functional as F

from benchlab.nn.one_channel_conv import OneChannelConv2d
from benchlab.plugins import get_registry

pytestmark = pytest.mark.usefixtures("one_thread")
ROUNDS = 15


def to_native(model: nn.Module) -> nn.Module:
    """``model`` with its OneChannelConv2d layers turned into plain nn.Conv2d (same parameters), in place."""
    for module in model.modules():
        if isinstance(module, OneChannelConv2d):
            module.__class__ = nn.Conv2d
    return model


def compare(benchmark, label: str, native, one_channel, rounds: int = ROUNDS) -> float:
    """Interleaved medians of the two sides, the speed-up native / OneChannelConv2d, recorded and printed."""
    seconds = median_times({"native": native, "one_channel": one_channel}, rounds)
    benchmark.pedantic(one_channel, rounds=5, iterations=1)
    speedup = seconds["native"] / seconds["one_channel"]
    benchmark.extra_info.update(speedup=speedup, **{f"{k}_ms": 1000 * v for k, v in seconds.items()})
    print(f"\n{label}: nn.Conv2d {1000 * seconds['native']:.1f} ms, "
          f"OneChannelConv2d {1000 * seconds['one_channel']:.1f} ms: {speedup:.2f}x")
    return speedup


@pytest.mark.parametrize("victim", ["lenet5", "deepconfuse-cnn", "lenet5-ac", "graynet", "cnn5", "resnet20"])
def test_input_gradient(benchmark, victim):
    torch.manual_seed(0)
    fast = get_registry().create("victims", victim).build((1, 28, 28), 10).eval()
    native = to_native(copy.deepcopy(fast))
    x, y = torch.rand(128, 1, 28, 28), torch.randint(0, 10, (128,))

    def input_gradient(model):
        def step():
            image = x.clone().requires_grad_()
            return torch.autograd.grad(F.cross_entropy(model(image), y), image)[0]
        return step

    torch.testing.assert_close(input_gradient(fast)(), input_gradient(native)(), rtol=1e-4, atol=1e-7)
    compare(benchmark, f"{victim} input gradient, batch 128", input_gradient(native), input_gradient(fast))


@pytest.mark.parametrize("batch_size", [128, 64])
def test_deepconfuse_generator_step(benchmark, data, batch_size):  # noqa: F811 (the imported fixture)
    settings = ConfuseSettings(batch_size=batch_size)
    fast, native = Iteration(data, settings), Iteration(data, settings)
    to_native(native.surrogate)
    compare(benchmark, f"DeepConfuse generator step, batch {batch_size}", native.generator_step, fast.generator_step)


@pytest.mark.parametrize("make_step", [margin_step, adversary_critic_step], ids=["margin", "adversary-critic"])
@pytest.mark.parametrize("victim", ["lenet5", "lenet5-ac"])
def test_double_backprop_defense_step(benchmark, batch, victim, make_step):  # noqa: F811 (the imported fixture)
    x, y, info = batch
    # _model reseeds, so both sides also draw the same critic initialisation.
    native = make_step(to_native(_model(victim, info)), x, y)
    fast = make_step(_model(victim, info), x, y)
    compare(benchmark, f"{make_step.__name__} on {victim}, digits batch {len(y)}", native, fast, rounds=7)
