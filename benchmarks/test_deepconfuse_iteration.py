"""Cost of one DeepConfuse Algorithm-2 iteration relative to one plain classifier SGD step.

Same batch (the default batch size, images of 28x28: Fashion-MNIST when installed, else upsampled digits), the paper's
MNIST CNN (``deepconfuse-cnn``) as surrogate and the 4-layer encoder-decoder generator. One
iteration = pseudo-update of f_θ on x + g'(x) with its graph (generator forward included) +
generator update (outer loss on clean data, backward to ξ', Adam step) + the classifier's SGD step
on x + g(x) + its share of the frozen-noise pass (the frozen generator's noise, computed once per
trial for the whole training set (3000 images here) when the trial visits every image, else per batch).

All parts are timed interleaved, round after round, and medians are compared, so a busy machine
slows them alike; the ratio is the figure reported, never the absolute seconds. Memory: bytes that
autograd saves for the backward pass (packed tensors, counted by ``saved_tensors_hooks``) per
plain step and per iteration, Algorithm 1's stored trajectory per trial, and the process peak RSS.

As in a matrix cell, the surrogate's 1-channel first layer is ``OneChannelConv2d`` (fast input
gradient; ``benchmarks/test_one_channel_conv.py`` times it against ``nn.Conv2d``) and the process
keeps freed memory in its heap (``benchlab.heap``; ``BENCHLAB_KEEP_HEAP=0`` for glibc's defaults).
"""

from __future__ import annotations

import resource

import pytest
import torch
from benchlab_deepconfuse.confuse import (
    ConfuseSettings,
    generator_step,
    momentum_velocity,
    poisoned,
    pseudo_update,
    surrogate_step,
)
from benchlab_deepconfuse.generator import SubPixelConvTranspose2d, build_generator, noise_of
from conftest import median_times
from torch.nn import functional as F

from benchlab.plugins import get_registry

ROUNDS = 15
TARGET_RATIO = 6.0


@pytest.fixture(scope="module")
def data():
    registry = get_registry()
    try:
        return registry.create("datasets", "fashion-mnist:per_class=300").load().train
    except FileNotFoundError:
        train = registry.create("datasets", "digits").load().train
        train.x = F.interpolate(train.x, size=28)
        return train


class Iteration:
    """The state of Algorithm 2 in the middle of a trial, and its parts as separately callable steps."""

    def __init__(self, data, settings: ConfuseSettings):
        torch.manual_seed(0)
        self.settings = settings
        self.x, self.y = data.x[: settings.batch_size], data.y[: settings.batch_size]
        self.surrogate = get_registry().create("victims", "deepconfuse-cnn").build((1, 28, 28), 10).train()
        self.generator = build_generator(1, 0.3).eval()  # g_ξ, frozen during the trial
        self.learner = build_generator(1, 0.3)  # g'_ξ
        self.adam = torch.optim.Adam(self.learner.parameters(), lr=settings.lr_g)
        self.sgd = torch.optim.SGD(self.surrogate.parameters(), lr=settings.lr_f, momentum=settings.momentum)
        self.train_x = data.x
        self.frozen = noise_of(self.generator, self.x)
        self.plain_sgd = torch.optim.SGD(self.surrogate.parameters(), lr=0.0)  # lr 0: state stays put

    def plain_step(self):
        surrogate_step(self.surrogate, self.plain_sgd, poisoned(self.x, self.frozen), self.y)

    def pseudo_update(self):
        params = dict(self.surrogate.named_parameters())
        return pseudo_update(self.surrogate, params, {}, poisoned(self.x, self.learner(self.x)), self.y,
                             self.settings.lr_f, momentum_velocity(self.surrogate, self.sgd, self.settings.momentum))

    def generator_step(self):  # pseudo-update + generator update
        velocity = momentum_velocity(self.surrogate, self.sgd, self.settings.momentum)
        generator_step(self.surrogate, self.learner, self.adam, self.x, self.y, self.settings, 10,
                       velocity=velocity)

    def classifier_step(self):
        surrogate_step(self.surrogate, self.sgd, poisoned(self.x, self.frozen), self.y)

    def frozen_noise(self):
        noise_of(self.generator, self.x)

    def frozen_noise_trial(self):  # once per trial, for the whole training set, in large batches
        noise_of(self.generator, self.train_x)

    def iteration(self):
        self.generator_step()
        self.classifier_step()


def by_name(functions) -> dict:
    return {function.__name__: function for function in functions}


def saved_bytes(function) -> int:
    """Bytes of the tensors autograd keeps for backward while ``function`` runs (each storage once)."""
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        function()
    return sum(seen.values())


SETTINGS = {
    "defaults": ConfuseSettings(),  # batches of 128, 20 steps per trial: frozen noise per batch
    "paper-batch": ConfuseSettings(batch_size=64, maxiter=100),  # the paper's batch of 64, longer trials
}


@pytest.mark.parametrize("name", list(SETTINGS))
def test_algorithm2_iteration_cost(benchmark, data, name, kept_heap):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: one intra-op thread avoids OpenMP oversubscription
    try:
        it = Iteration(data, SETTINGS[name])
        parts = median_times(by_name([it.plain_step, it.pseudo_update, it.generator_step, it.classifier_step,
                                      it.frozen_noise]), ROUNDS)
        parts.update(median_times(by_name([it.frozen_noise_trial]), rounds=3))
        benchmark.pedantic(it.iteration, rounds=5, iterations=1)
    finally:
        torch.set_num_threads(threads)
    plain = parts["plain_step"]
    generator_update = parts["generator_step"] - parts["pseudo_update"]
    # FrozenNoise: one whole-set pass per trial of maxiter steps when they visit every image, else per batch.
    whole_set = it.settings.maxiter * it.settings.batch_size >= len(it.train_x)
    frozen = parts["frozen_noise_trial"] / it.settings.maxiter if whole_set else parts["frozen_noise"]
    iteration = parts["generator_step"] + parts["classifier_step"] + frozen
    ratio = iteration / plain
    breakdown = {
        "pseudo_update": parts["pseudo_update"] / plain,
        "generator_update": generator_update / plain,
        "classifier_update": parts["classifier_step"] / plain,
        "frozen_noise_amortised": frozen / plain,
        "frozen_noise_per_batch": parts["frozen_noise"] / plain,
    }
    memory = {
        "saved_plain_mb": saved_bytes(it.plain_step) / 2**20,
        "saved_iteration_mb": saved_bytes(it.iteration) / 2**20,
        "algorithm1_trajectory_mb_per_trial": it.settings.maxiter * sum(
            p.numel() * p.element_size() for p in it.surrogate.parameters()) / 2**20,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    benchmark.extra_info.update(ratio=ratio, target=TARGET_RATIO, plain_ms=1000 * plain, heap_kept=kept_heap,
                                **breakdown, **memory)
    lines = [f"\n[{name}] Algorithm-2 iteration = {ratio:.2f}x one plain SGD step (target <= {TARGET_RATIO}x; "
             f"plain step {1000 * plain:.1f} ms, batch {it.settings.batch_size}, 28x28, 1 thread, "
             f"heap kept: {kept_heap})"]
    lines += [f"  {name:<24} {value:5.2f}x" for name, value in breakdown.items()]
    lines += [f"  {name:<34} {value:8.1f}" for name, value in memory.items()]
    print("\n".join(lines))


def test_sub_pixel_last_layer_vs_transposed_convolution(benchmark, one_thread):
    """The generator's last layer (16 -> 1 channels, 16x16 -> 32x32, batch 128), forward + backward."""

    torch.manual_seed(0)
    sub_pixel = SubPixelConvTranspose2d(16, 1)
    transposed = torch.nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1)
    transposed.load_state_dict(sub_pixel.state_dict())
    x = torch.randn(128, 16, 16, 16, requires_grad=True)

    def step(layer):
        return lambda: layer(x).square().sum().backward()

    seconds = median_times({"transposed": step(transposed), "sub_pixel": step(sub_pixel)}, rounds=15)
    benchmark.pedantic(step(sub_pixel), rounds=5, iterations=1)
    ratio = seconds["transposed"] / seconds["sub_pixel"]
    benchmark.extra_info.update(speedup=ratio, **{f"{k}_ms": 1000 * v for k, v in seconds.items()})
    print(f"\nlast layer fwd+bwd: ConvTranspose2d {1000 * seconds['transposed']:.1f} ms, sub-pixel "
          f"{1000 * seconds['sub_pixel']:.1f} ms: {ratio:.2f}x")
