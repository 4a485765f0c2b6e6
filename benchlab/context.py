"""The per-cell context handed to every plugin call: seed, device, dataset, cache, progress."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .cache import cache_key
from .data import DatasetInfo, TensorData
from .progress import Progress
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
class CraftingContext:
    """What poison crafting sees: seed, device, dataset description, cache, data location, registry.

    Deliberately no test set, no victim and no recipe overrides: a poison is cached per attack,
    dataset and seed and shared by every defense and victim, so it must not depend on them (and a
    training-time attacker does not hold the clean test set).
    """

    seed: int
    device: torch.device
    info: DatasetInfo
    cache: ArtifactCache | None = None
    # Where the cell is (ctx.progress.phase("crafting", k, n)): shown under the runner's matrix bar.
    progress: Progress = field(default_factory=Progress)
    # Where the run loads datasets from (--data-root, --download): a plugin that loads a second
    # dataset, such as a transfer source, must read it from the same place.
    data_root: Path | None = None
    download: bool = False
    # The registry of the run: ``create`` resolves nested specs (a surrogate victim, a source dataset).
    registry: Registry | None = None
    # What computes the cell: its Numerics.key() and code identity (benchlab.code_identity). Both
    # enter the keys of a plugin's own artifacts, so changed code or numerics rebuild them.
    numerics: tuple = ()
    code: dict = field(default_factory=dict)

    def create(self, kind: str, spec: str) -> Plugin:
        """A registered component (``ctx.create("victims", "graynet")``) from the run's registry."""
        if self.registry is None:
            raise RuntimeError(f"this context has no registry to create {kind[:-1]} {spec!r} from")
        return self.registry.create(kind, spec)

    def generator(self, salt: int = 0) -> torch.Generator:
        """A CPU generator seeded from the cell seed (``salt`` separates independent streams)."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + salt)

    def cached(self, kind: str, key_parts: tuple, compute: Callable[[], tuple[dict, dict]]):
        """A plugin's own artifact (a trained generator, a search): ``(tensors, info, was_cached)``.

        The key is the hash of ``kind`` and ``key_parts`` (everything that determines the artifact:
        parameters, ``data.fingerprint()``, seed); ``compute`` returns ``(tensors, JSON-able info)``,
        stored as safetensors and verified before reuse. Without a cache it is simply computed.
        """
        if self.cache is None:
            tensors, info = compute()
            return tensors, info, False
        return self.cache.get_or_create(kind, self._key(kind, key_parts), compute)

    def artifact(self, kind: str, key_parts: tuple) -> ArtifactSlot | None:
        """A plugin artifact it updates in place (a resumable search): load and save under a key the
        core builds from ``kind`` and ``key_parts``, as for :meth:`cached`; None without a cache."""
        return None if self.cache is None else ArtifactSlot(self.cache, kind, self._key(kind, key_parts))

    def _key(self, kind: str, key_parts: tuple) -> str:
        return cache_key(kind, *key_parts, self.code, self.numerics)

    def artifact_dir(self, *parts: str) -> Path | None:
        """A folder in the run's cache for files a plugin writes (figures): ``<cache>/<parts...>``.

        None without a cache (a bare context in unit tests): write nothing then.
        """
        return None if self.cache is None else Path(self.cache.root, *parts)


@dataclass(frozen=True)
class ArtifactSlot:
    """One artifact in the run's cache: ``load()`` (verified tensors and info, or None) and ``save``."""

    cache: ArtifactCache
    kind: str
    key: str

    def load(self) -> tuple[dict[str, torch.Tensor], dict] | None:
        return self.cache.load(self.kind, self.key)

    def save(self, tensors: dict[str, torch.Tensor], info: dict | None = None) -> None:
        self.cache.save(self.kind, self.key, tensors, info)


@dataclass
class Context(CraftingContext):
    """Everything a plugin may need besides its own parameters and the data it is given."""

    # Field overrides for victims' training recipes (e.g. fewer epochs in the smoke matrix).
    recipe_overrides: dict = field(default_factory=dict)
    # The clean test set, for per-epoch monitoring only (never for model selection).
    monitor: TensorData | None = None
    victim: Victim | None = None
    # Supplied by the runner: reference(defense, victim or None) is that victim (None: the cell's)
    # trained by that defense on clean data, cached like any model (transfer attacks, benchlab.transfer).
    reference: Callable[[str, str | None], Classifier] | None = None

    def recipe(self, victim: Victim, **changes) -> Recipe:
        """The victim's recipe with the matrix overrides, then the caller's ``changes``, applied."""
        return victim.recipe.override(**self.recipe_overrides).override(**changes)

    def crafting(self) -> CraftingContext:
        """This cell's context narrowed to what poison crafting may see (no test set, victim or recipe)."""
        narrowed = {f.name: getattr(self, f.name) for f in fields(CraftingContext)}
        narrowed["code"] = {role: self.code[role] for role in ("dataset", "attack", "core") if role in self.code}
        return CraftingContext(**narrowed)
