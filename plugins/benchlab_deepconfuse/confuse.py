"""Training the noise generator: Algorithms 1 and 2 of DeepConfuse (Feng, Cai & Zhou, NeurIPS 2019).

Both alternate, within each of T trials, between training a freshly initialised surrogate f_θ by
SGD on the poisoned data x + g_ξ(x), and updating ξ through a *pseudo-update* of f_θ (eq. 5):

    θ' = θ − α_f ∇_θ L(f_θ(x + g(x)), y)          (graph kept: θ' is a function of ξ)
    ξ  ← ξ + α_g ∇_ξ L(f_θ'(x), y)                 (ascent on clean data; Section 3)
    ξ  ← ξ − α_g ∇_ξ L(f_θ'(x), η(y))              (label-specific variant, descent; Section 4)

Algorithm 1 first trains f_θ for the whole trial, storing its trajectory (θ_i, batch_i), then
replays it to update g_ξ. Algorithm 2 (memory-efficient) updates a copy g'_ξ in the same loop,
keeps f_θ training on the frozen g_ξ of the trial's start, and copies g' back at the end of the
trial. The pseudo-update is one ``torch.func.functional_call`` with the surrogate's own
parameters and ``create_graph=True``, so the surrogate is never rebuilt or deep-copied. When the
surrogate trains with momentum μ, θ' = θ − α_f (μ·b + ∇_θ L) is the exact next iterate of its
optimiser (μ = 0 gives the paper's plain-SGD step).

Cost: the frozen generator's noise is computed without a graph, once per trial for the whole
training set when the trial sees it all (else per batch); the generator gradient is taken with
``torch.autograd.grad`` restricted to ξ, so nothing is accumulated into the surrogate's ``.grad``.
The generator gradient needs the surrogate's input gradient twice (through its forward, and in the
double backward of its first layer's weight gradient): the baselines' grayscale victims build that
layer as ``OneChannelConv2d``, which avoids oneDNN's slow kernel for 1-channel inputs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from benchlab import Progress, TensorData

from .diagnostics import TrialRecord, judge, probe_indices
from .generator import noise_of


SELECT = ("last", "best")


@dataclass(frozen=True)
class ConfuseSettings:
    """Everything Algorithms 1 and 2 need besides the data, the generator and the surrogate."""

    trials: int = 15
    maxiter: int = 20  # surrogate SGD steps per trial; 0: one pass over the training set
    batch_size: int = 128
    lr_f: float = 0.05  # α_f: surrogate SGD rate, also the pseudo-update's step (paper: 0.01)
    momentum: float = 0.9  # surrogate SGD momentum μ (paper: plain SGD, μ = 0)
    lr_g: float = 1e-3  # α_g: Adam rate of the generator (paper: 1e-4)
    shift: int = 0  # 0: untargeted (ascent on y); k: label-specific with η(y) = (y + k) mod K
    algorithm: int = 2
    # last: the final g_ξ (paper); best: the g_ξ whose trial's surrogate scored lowest on clean data
    select: str = "last"


def poisoned(x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """What a victim trains on, x + g(x) clipped to [0, 1], with a straight-through gradient.

    The forward value is exactly the victim's training image. The clip's true gradient is zero
    wherever x + g(x) leaves [0, 1], and on digits most background pixels sit at 0: with it, noise
    that starts negative there never receives a gradient again, so the generator could never learn
    to *add* strokes (which the label-specific variant needs). Passing the gradient straight
    through keeps every pixel of the noise trainable.
    """
    raw = x + noise
    return raw + (raw.clamp(0.0, 1.0) - raw).detach()


def generator_objective(surrogate: nn.Module, params: dict, buffers: dict, generator: nn.Module,
                        x: torch.Tensor, y: torch.Tensor, target: torch.Tensor, lr_f: float,
                        velocity: dict | None = None) -> torch.Tensor:
    """L(f_θ'(x), target) with θ' = θ − α_f ∇_θ L(f_θ(x + g(x)), y): differentiable in ξ (eq. 5).

    ``velocity`` (μ times the momentum buffers) makes θ' the exact next iterate of momentum SGD.
    """
    fast = pseudo_update(surrogate, params, buffers, poisoned(x, generator(x)), y, lr_f, velocity)
    return F.cross_entropy(functional_call(surrogate, (fast, buffers), (x,)), target)


def pseudo_update(surrogate: nn.Module, params: dict, buffers: dict, x_adv: torch.Tensor, y: torch.Tensor,
                  lr_f: float, velocity: dict | None = None) -> dict:
    """θ' = θ − α_f (μ·b + ∇_θ L(f_θ(x_adv), y)), keeping the graph so θ' stays differentiable in x_adv."""
    inner = F.cross_entropy(functional_call(surrogate, (params, buffers), (x_adv,)), y)
    grads = torch.autograd.grad(inner, tuple(params.values()), create_graph=True)
    velocity = velocity or {}
    return {name: p - lr_f * (g + velocity[name] if name in velocity else g)
            for (name, p), g in zip(params.items(), grads)}


def generator_step(surrogate: nn.Module, generator: nn.Module, optimizer: torch.optim.Optimizer,
                   x: torch.Tensor, y: torch.Tensor, settings: ConfuseSettings, num_classes: int,
                   params: dict | None = None, velocity: dict | None = None) -> torch.Tensor:
    """One update of ``generator`` through a pseudo-update of ``surrogate`` (at ``params``, else its own)."""
    params = dict(surrogate.named_parameters()) if params is None else params
    # Cloned buffers: the pseudo-forwards must not move BatchNorm running statistics.
    buffers = {name: b.clone() for name, b in surrogate.named_buffers()}
    if settings.shift:
        target, sign = (y + settings.shift) % num_classes, 1.0  # descend towards η(y)
    else:
        target, sign = y, -1.0  # ascend the clean loss
    loss = generator_objective(surrogate, params, buffers, generator, x, y, target, settings.lr_f, velocity)
    weights = [p for p in generator.parameters() if p.requires_grad]
    grads = torch.autograd.grad(sign * loss, weights)
    for weight, grad in zip(weights, grads):
        weight.grad = grad
    optimizer.step()
    return loss.detach()  # no host sync per step: the trial's mean is read once


def momentum_velocity(surrogate: nn.Module, sgd: torch.optim.Optimizer, momentum: float) -> dict:
    """μ·b for each parameter with a momentum buffer (none before the first step, or when μ = 0)."""
    if not momentum:
        return {}
    out = {}
    for name, p in surrogate.named_parameters():
        buffer = sgd.state.get(p, {}).get("momentum_buffer")
        if buffer is not None:
            out[name] = momentum * buffer
    return out


def batches(n: int, size: int, steps: int, generator: torch.Generator, device) -> Iterator[torch.Tensor]:
    """``steps`` mini-batch index tensors, reshuffling after every pass over the ``n`` examples."""
    order, start = torch.randperm(n, generator=generator), 0
    for _ in range(steps):
        if start + size > n and start > 0:
            order, start = torch.randperm(n, generator=generator), 0
        yield order[start : start + size].to(device)
        start += size


class FrozenNoise:
    """g_ξ(x) of the generator frozen for a trial: one pass over the whole training set when the trial
    visits every image at least once on average, else computed per batch (never with a graph)."""

    def __init__(self, generator: nn.Module, x: torch.Tensor, whole_set: bool):
        self.generator, self.x = generator, x
        self.noise = noise_of(generator, x) if whole_set else None

    def __call__(self, index: torch.Tensor) -> torch.Tensor:
        if self.noise is not None:
            return self.noise[index]
        with torch.no_grad():
            return self.generator(self.x[index])


def surrogate_step(surrogate: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                   y: torch.Tensor) -> None:
    """θ_{i+1} = θ_i − α_f ∇_θ L(f_θ(x_adv), y): the surrogate's ordinary SGD step."""
    loss = F.cross_entropy(surrogate(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def train_generator(generator: nn.Module, make_surrogate: Callable[[], nn.Module], train: TensorData,
                    num_classes: int, settings: ConfuseSettings, *, seed: int = 0, progress: Progress | None = None,
                    on_trial: Callable[[int, nn.Module], None] | None = None) -> list[TrialRecord]:
    """Train ``generator`` in place with Algorithm ``settings.algorithm``; returns one diagnostic
    record per trial: the mean generator objective L(f_θ'(x), ·) (rising when untargeted, falling
    when targeted), the class share of the noise and the surrogate's clean accuracy on a fixed probe.

    ``make_surrogate()`` returns a freshly initialised surrogate f_θ on the data's device (it is
    called under a trial-specific torch seed). ``on_trial(t, surrogate)`` is called after each trial.
    ``progress`` (a cell's ``ctx.progress``) hears ``trial k/trials``.
    """
    if settings.algorithm not in (1, 2):
        raise ValueError(f"algorithm must be 1 (stored trajectory) or 2 (memory-efficient), not {settings.algorithm}")
    if settings.select not in SELECT:
        raise ValueError(f"select must be one of {', '.join(SELECT)}, not {settings.select!r}")
    x, y = train.x, train.y
    sampler = torch.Generator().manual_seed(seed)
    steps = settings.maxiter or -(-len(train) // settings.batch_size)
    # Algorithm 2 trains a copy g' and copies it back; Algorithm 1 updates g_ξ itself after the trial.
    learner = copy.deepcopy(generator) if settings.algorithm == 2 else generator
    optimizer = torch.optim.Adam(learner.parameters(), lr=settings.lr_g)
    generator.requires_grad_(settings.algorithm == 1)
    probe = probe_indices(len(x), seed).to(x.device)
    history, best = [], None  # best: (surrogate accuracy, generator state) of the most damaging g_ξ
    for trial in (progress or Progress()).steps(range(settings.trials), "trial"):
        torch.manual_seed(seed * 100_003 + trial)
        surrogate = make_surrogate().train()
        sgd = torch.optim.SGD(surrogate.parameters(), lr=settings.lr_f, momentum=settings.momentum)
        frozen = FrozenNoise(generator, x, steps * settings.batch_size >= len(x))
        losses, trajectory = [], []  # Algorithm 1's (θ_i, μ·b_i, batch_i): grows with maxiter x surrogate size
        for index in batches(len(train), settings.batch_size, steps, sampler, x.device):
            xb, yb = x[index], y[index]
            velocity = momentum_velocity(surrogate, sgd, settings.momentum)
            if settings.algorithm == 2:
                losses.append(generator_step(surrogate, learner, optimizer, xb, yb, settings, num_classes,
                                             velocity=velocity))
            else:
                trajectory.append(({n: p.detach().clone() for n, p in surrogate.named_parameters()}, velocity, index))
            surrogate_step(surrogate, sgd, poisoned(xb, frozen(index)), yb)
        # The surrogate has trained on the poison of the frozen g_ξ: judge that generator before updating it.
        share, accuracy = judge(generator, surrogate, x[probe], y[probe], num_classes)
        if settings.select == "best" and (best is None or accuracy < best[0]):
            best = (accuracy, copy.deepcopy(generator.state_dict()))
        for state, velocity, index in trajectory:
            params = {n: p.requires_grad_() for n, p in state.items()}
            losses.append(generator_step(surrogate, learner, optimizer, x[index], y[index], settings,
                                         num_classes, params=params, velocity=velocity))
        if settings.algorithm == 2:
            generator.load_state_dict(learner.state_dict())
        objective = torch.stack(losses).mean().item() if losses else float("nan")
        history.append(TrialRecord(objective, share, accuracy))
        if on_trial is not None:
            on_trial(trial, surrogate)
    if best is not None:
        generator.load_state_dict(best[1])
    generator.requires_grad_(False)
    return history
