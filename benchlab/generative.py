"""Generative victims: models that learn the training images themselves, not their labels.

A :class:`GenerativeVictim` builds a torch module and trains it with its own objective (``fit``);
trained, it reconstructs images (``reconstruct``) and draws new ones (``sample``). A poison cell on
it trains the model on the poisoned training images and scores it on the clean test images
(:mod:`benchlab.generative_metrics`). Evasion attacks and defenses that only train classifiers are
n/a on it; a defense that trains generative models says so with ``trains_generative = True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from .interfaces import Victim
from .train import Recipe

if TYPE_CHECKING:
    from .context import Context

# Reconstructions and samples are computed in batches of this many images.
GENERATIVE_BATCH = 256


@dataclass
class GenerativeHistory:
    """Per-epoch mean of each loss term the model's objective reports (name -> list)."""

    losses: dict[str, list[float]] = field(default_factory=dict)

    def add(self, epoch_means: dict[str, float]) -> None:
        for name, value in epoch_means.items():
            self.losses.setdefault(name, []).append(value)

    def as_dict(self) -> dict:
        return {"losses": self.losses}


class GenerativeVictim(Victim):
    """A generative model factory: ``build`` a module, ``fit`` it on images, then reconstruct and sample.

    Subclasses implement ``build(input_shape)`` (``num_classes`` is passed but unused: the model never
    sees labels), ``fit``, ``reconstruct`` and ``sample``. Images are (N, C, H, W) in [0, 1].
    """

    generative = True
    recipe: ClassVar[Recipe] = Recipe(optimizer="adam", lr=3e-4, beta1=0.5, epochs=30, batch_size=64)

    def build(self, input_shape: tuple[int, int, int], num_classes: int = 0) -> nn.Module:
        raise NotImplementedError

    def fit(self, model: nn.Module, images: torch.Tensor, recipe: Recipe, ctx: Context) -> GenerativeHistory:
        """Train ``model`` in place on ``images`` (on the model's device) with the model's own objective."""
        raise NotImplementedError

    def reconstruct(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Deterministic reconstructions of ``x`` (e.g. decoded mean latents), in [0, 1]."""
        raise NotImplementedError

    def sample(self, model: nn.Module, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` new images drawn with the CPU ``generator``, in [0, 1]."""
        raise NotImplementedError


class TrainedGenerative:
    """A trained generative model as metrics see it: batched, in eval mode, without gradients."""

    def __init__(self, victim: GenerativeVictim, module: nn.Module):
        self.victim = victim
        self.module = module.eval()

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        self.module.eval()
        return torch.cat([self.victim.reconstruct(self.module, x[i : i + GENERATIVE_BATCH].to(self.device))
                          for i in range(0, len(x), GENERATIVE_BATCH)])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        self.module.eval()
        sizes = [min(GENERATIVE_BATCH, n - i) for i in range(0, n, GENERATIVE_BATCH)]
        return torch.cat([self.victim.sample(self.module, size, generator) for size in sizes])


def generative_incompatibility(attack, defense, victim: Victim) -> str | None:
    """Why a cell cannot run because of a generative victim (decided at matrix expansion), or None.

    Checked by the core before the components' own ``incompatibility``, so no override skips it.
    """
    if not victim.generative:
        return None
    if attack.threat != "poison":
        return f"{attack.threat} attack {attack.spec} needs a classifier; {victim.name} is a generative model"
    if not defense.trains_generative:
        return f"defense {defense.spec} trains classifiers only; {victim.name} is a generative model"
    return None
