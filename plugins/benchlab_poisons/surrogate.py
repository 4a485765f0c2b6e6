"""The crafting models of the gradient poisons: a small CNN or MLP, trained step by step on the device.

The papers craft on a ResNet-18; for the small images benchlab runs on, a two-block CNN (or an MLP)
is the surrogate. Its initialisation and batch order come from the cell's seeded generator, so a
poison is reproducible and the global RNG is left alone.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from benchlab import Param, chunks

SURROGATES = ("cnn", "mlp")


def surrogate_params(lr: float = 1e-3, batch_size: int = 128) -> tuple[Param, ...]:
    return (
        Param("surrogate", str, "cnn", "crafting model: a two-block CNN or a two-layer MLP", choices=SURROGATES),
        Param("lr", float, lr, "Adam learning rate of the crafting model", low=0.0),
        Param("batch_size", int, batch_size, "crafting model's training batch size", low=1),
    )


def build_surrogate(kind: str, input_shape, num_classes: int, generator: torch.Generator) -> nn.Module:
    """A freshly initialised crafting model, its weights drawn from ``generator``."""
    channels, height, width = input_shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**62, (), generator=generator)))
        if kind == "mlp":
            return nn.Sequential(nn.Flatten(), nn.Linear(channels * height * width, 256), nn.ReLU(),
                                 nn.Linear(256, num_classes))
        if kind == "cnn":
            # Two conv blocks then a 2x2 adaptive pool: 8x8 digits and 32x32 CIFAR alike keep a spatial map.
            return nn.Sequential(
                nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(2),
                nn.Flatten(), nn.Linear(32 * 4, num_classes),
            )
    raise ValueError(f"unknown surrogate {kind!r}; valid: {', '.join(SURROGATES)}")


class SurrogateTrainer:
    """Adam steps of the crafting model on batches drawn (seeded) from whatever data it is handed."""

    def __init__(self, model: nn.Module, lr: float, batch_size: int, generator: torch.Generator):
        self.model, self.batch_size, self.generator = model, batch_size, generator
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self._order: torch.Tensor | None = None
        self._position = 0

    def steps(self, x: torch.Tensor, y: torch.Tensor, count: int) -> None:
        """``count`` optimiser steps, walking through seeded permutations of the data (epoch by epoch)."""
        self.model.train()
        for _ in range(count):
            if self._order is None or self._position >= len(self._order) or len(self._order) != len(x):
                self._order = torch.randperm(len(x), generator=self.generator).to(x.device)
                self._position = 0
            index = self._order[self._position : self._position + self.batch_size]
            self._position += self.batch_size
            loss = F.cross_entropy(self.model(x.index_select(0, index)), y.index_select(0, index))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.model.eval()

    def epochs(self, x: torch.Tensor, y: torch.Tensor, count: int) -> None:
        self.steps(x, y, count * -(-len(x) // self.batch_size))


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = sum((model(x[s]).argmax(1) == y[s]).sum().item() for s in chunks(len(x)))
    return correct / max(len(x), 1)
