"""Per-trial diagnostics of the generator's training: is it converging, and towards class structure?

After each trial: the mean pseudo-update objective of the trial, and, for the generator g_ξ the trial
held frozen, the class share of its noise on a fixed probe of training images and the clean accuracy,
on that probe, of the surrogate the trial trained on its poison (the attack's own goal, measured on
the surrogate).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .generator import noise_of

PROBE_SIZE = 1024  # images: enough for a stable class share, cheap next to a trial
FIELDS = ("objective", "class_share", "surrogate_acc")


def class_share(noise: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """Share of the noise's variance explained by the class (0: same pattern for all, 1: class-wise)."""
    flat = noise.flatten(1).double()
    centred = flat - flat.mean(0)
    total = centred.pow(2).sum()
    between = sum(centred[labels == c].mean(0).pow(2).sum() * (labels == c).sum()
                  for c in range(num_classes) if (labels == c).any())
    return float(between / total) if total > 0 else 0.0


@dataclass(frozen=True)
class TrialRecord:
    objective: float  # mean L(f_θ'(x), ·) over the trial's generator steps
    class_share: float  # of the noise of the trial's frozen generator g_ξ, on the probe
    surrogate_acc: float  # clean probe accuracy of the surrogate trained in the trial on g_ξ's poison

    def values(self) -> tuple[float, float, float]:
        return tuple(getattr(self, name) for name in FIELDS)


def probe_indices(n: int, seed: int) -> torch.Tensor:
    """A fixed, seeded subset of the training set (all of it when it is small)."""
    if n <= PROBE_SIZE:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:PROBE_SIZE].sort().values


@torch.no_grad()
def judge(generator: nn.Module, surrogate: nn.Module, x: torch.Tensor, y: torch.Tensor,
          num_classes: int) -> tuple[float, float]:
    """(class share of g(x), clean accuracy of the surrogate) on probe images ``x`` with labels ``y``."""
    was_training = surrogate.training
    surrogate.eval()
    correct = sum((surrogate(x[i : i + 256]).argmax(1) == y[i : i + 256]).sum().item() for i in range(0, len(x), 256))
    surrogate.train(was_training)
    return class_share(noise_of(generator, x), y, num_classes), correct / max(1, len(x))


def as_tensor(records: list[TrialRecord]) -> torch.Tensor:
    """(trials, 3) float tensor, columns in ``FIELDS`` order (what travels in the poison's extras)."""
    return torch.tensor([r.values() for r in records], dtype=torch.float64).reshape(-1, len(FIELDS))
