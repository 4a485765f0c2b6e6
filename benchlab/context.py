"""The per-cell context handed to every plugin call: seed, device, dataset, cache, progress."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .data import DatasetInfo, TensorData
from .train import Recipe

if TYPE_CHECKING:
    from .cache import ArtifactCache
    from .classifier import Classifier
    from .interfaces import Plugin, Victim
    from .plugins import Registry


def resolve_device(device: str | None = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; anything else must be a valid torch device."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"invalid device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return resolved


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Context:
    """Everything a plugin may need besides its own parameters and the data it is given."""

    seed: int
    device: torch.device
    info: DatasetInfo
    cache: ArtifactCache | None = None
    progress: bool = False
    # Field overrides for victims' training recipes (e.g. fewer epochs in the smoke matrix).
    recipe_overrides: dict = field(default_factory=dict)
    # The clean test set, for per-epoch monitoring only (never for model selection).
    monitor: TensorData | None = None
    victim: Victim | None = None
    # Supplied by the runner: reference(defense, victim or None) is that victim (None: the cell's)
    # trained by that defense on clean data, cached like any model (transfer attacks, benchlab.transfer).
    reference: Callable[[str, str | None], Classifier] | None = None
    # Where the run loads datasets from (--data-root, --download): a plugin that loads a second
    # dataset, such as a transfer source, must read it from the same place.
    data_root: Path | None = None
    download: bool = False
    # The registry of the run: ``create`` resolves nested specs (a surrogate victim, a source dataset).
    registry: Registry | None = None

    def recipe(self, victim: Victim, **changes) -> Recipe:
        """The victim's recipe with the matrix overrides, then the caller's ``changes``, applied."""
        return victim.recipe.override(**self.recipe_overrides).override(**changes)

    def create(self, kind: str, spec: str) -> Plugin:
        """A registered component (``ctx.create("victims", "graynet")``) from the run's registry."""
        if self.registry is None:
            raise RuntimeError(f"this context has no registry to create {kind[:-1]} {spec!r} from")
        return self.registry.create(kind, spec)

    def generator(self, salt: int = 0) -> torch.Generator:
        """A CPU generator seeded from the cell seed (``salt`` separates independent streams)."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + salt)
