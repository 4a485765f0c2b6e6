"""The plugin interfaces: Victim, Defense, PoisonAttack, EvasionAttack and DatasetSource.

Every plugin class declares a ``name`` (lowercase, hyphens), a tuple of :class:`~benchlab.params.Param`
and a ``version`` that enters every cache key. Instances carry their validated parameter values in
``self.p`` (attribute access) and their canonical spec text in ``self.spec``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from .classifier import Classifier
from .data import DatasetInfo, DataSplits, TensorData
from .metrics import Metric
from .params import Param, format_spec
from .train import History, Recipe
from .transfer import SOURCE_PARAMS, check_source, with_source_params

if TYPE_CHECKING:
    from .context import Context, CraftingContext
    from .plugins import Registry

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
NORMS = ("l0", "l1", "l2", "linf")


class Plugin:
    """Common base: declared parameters, canonical spec, cache identity and compatibility."""

    kind: ClassVar[str] = "plugin"
    name: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    version: ClassVar[str] = "1"
    # A cheap configuration for contract tests and smoke runs (e.g. fewer iterations).
    test_spec: ClassVar[str | None] = None
    # Metrics this component adds to its cells' rows (see benchlab.metrics).
    declared_metrics: ClassVar[tuple[Metric, ...]] = ()
    # The registry that created this instance (set by Registry.create; None when built directly):
    # nested specs (Param(kind=...)) resolve through it, so a private registry resolves its own names.
    registry: Registry | None = None

    def __init__(self, **values: Any):
        unknown = set(values) - {p.name for p in self.params}
        if unknown:
            raise TypeError(f"{self.name}: unknown parameters {sorted(unknown)}")
        # Direct construction gets the declared defaults; the registry has already validated values.
        values = {p.name: values.get(p.name, p.default) for p in self.params}
        self.values = values
        self.p = SimpleNamespace(**values)
        self.spec = format_spec(self.name, self.params, values)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec}>"

    @classmethod
    def summary(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def create(self, kind: str, spec: str) -> Plugin:
        """A component of ``kind`` created by the registry that created this one (``victims``, ``mlp``)."""
        if self.registry is None:
            raise RuntimeError(f"{self.spec} was built directly, not by a registry, so it cannot create "
                               f"{kind[:-1]} {spec!r}: build it with registry.create({self.kind + 's'!r}, ...)")
        return self.registry.create(kind, spec)

    def nested(self, param: str) -> Plugin | None:
        """The component named by the nested-spec parameter ``param`` (``Param(kind=...)``); None when unset."""
        declared = next(p for p in self.params if p.name == param)
        value = self.values.get(param)
        return None if value is None else self.create(declared.kind, value)

    def identity(self) -> dict:
        """What makes this plugin's output what it is: enters cache keys and cell ids."""
        return {"kind": self.kind, "name": self.name, "version": self.version, "params": self.values}

    def incompatibility(self, info: DatasetInfo, victim: Victim | None) -> str | None:
        """Return a reason when this plugin cannot run on (dataset, victim); None when it can."""
        return None


class Victim(Plugin):
    """A model factory: ``build`` returns a fresh torch module or scikit-learn estimator."""

    kind = "victim"
    framework: ClassVar[str] = "torch"  # "torch" | "sklearn"
    # True for generative models (benchlab.generative.GenerativeVictim): no labels, no classifier.
    generative: ClassVar[bool] = False
    recipe: ClassVar[Recipe] = Recipe()

    def build(self, input_shape: tuple[int, int, int], num_classes: int):
        raise NotImplementedError

    def split(self, model) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(representation, head) with ``head(rep(x)) == model(x)``, for methods acting on features."""
        raise NotImplementedError(f"victim {self.name!r} has no representation split")

    @property
    def has_split(self) -> bool:
        return type(self).split is not Victim.split


@dataclass
class Fitted:
    """What a defense returns: the classifier to evaluate and its training history.

    On a generative victim ``classifier`` is None and ``generative`` holds the trained model
    (a :class:`benchlab.generative.TrainedGenerative`); ``history`` is then its loss record.
    """

    classifier: Classifier | None
    history: History | None = None
    metrics: dict = field(default_factory=dict)
    generative: Any = None


class Defense(Plugin):
    """Owns the training procedure (and any input transform it needs at test time too)."""

    kind = "defense"
    frameworks: ClassVar[tuple[str, ...]] = ("torch",)
    # True when ``fit`` also trains generative victims (with their own objective); else n/a on them.
    trains_generative: ClassVar[bool] = False

    def fit(self, victim: Victim, train: TensorData, ctx: Context) -> Fitted:
        raise NotImplementedError

    # True when ``checkpoint`` and ``restore`` are implemented: the runner then caches fitted models
    # between cells (and the contract checks round-trip them). TrainingDefense implements both.
    checkpointable: ClassVar[bool] = False

    def checkpoint(self, fitted: Fitted) -> tuple[dict[str, torch.Tensor], dict]:
        """Tensors (safetensors, never pickle) and JSON-able info from which ``restore`` rebuilds ``fitted``."""
        raise NotImplementedError(f"defense {self.name!r} is not checkpointable")

    def restore(self, victim: Victim, tensors: dict[str, torch.Tensor], info: dict, ctx: Context) -> Fitted:
        """The fitted model ``checkpoint`` saved, on ``ctx.device``."""
        raise NotImplementedError(f"defense {self.name!r} is not checkpointable")

    def incompatibility(self, info, victim):
        if victim is not None and victim.framework not in self.frameworks:
            needed = " or ".join(self.frameworks)
            return f"defense {self.spec} needs a {needed} victim; {victim.name} is {victim.framework}"
        return None


@dataclass
class PoisonedSet:
    """A crafted training set: images (and possibly labels) plus what attack metrics need.

    A poison that stamps class-wise pixel patterns declares them through the extras ``locations``
    (K, N, 2) (row, col) and ``values`` (K, N, C), the arguments of :func:`benchlab.stamp`, and
    optionally ``attacked`` (K,) bool, the classes that carry one: see :meth:`pattern`.
    """

    data: TensorData
    poisoned: torch.Tensor  # bool mask over training examples that were changed
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return self.poisoned.float().mean().item() if len(self.poisoned) else 0.0

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"x": self.data.x, "y": self.data.y, "poisoned": self.poisoned}
        out.update({f"extra.{k}": v for k, v in self.extras.items()})
        return {k: v.detach().cpu().contiguous() for k, v in out.items()}

    def to(self, device) -> PoisonedSet:
        return PoisonedSet(self.data.to(device), self.poisoned.to(device),
                           {k: v.to(device) for k, v in self.extras.items()})

    def pattern(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """The declared pixel pattern ``(locations, values, attacked)``, or None when none is declared."""
        if "locations" not in self.extras or "values" not in self.extras:
            return None
        values = self.extras["values"]
        attacked = self.extras.get("attacked")
        if attacked is None:
            attacked = torch.ones(len(values), dtype=torch.bool)
        return self.extras["locations"], values, attacked.bool()

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> PoisonedSet:
        extras = {k[len("extra.") :]: v for k, v in tensors.items() if k.startswith("extra.")}
        return cls(TensorData(tensors["x"], tensors["y"]), tensors["poisoned"].bool(), extras)


class PoisonAttack(Plugin):
    """Training-time attack: perturbs the training set; the victim is evaluated on clean test data."""

    kind = "attack"
    threat: ClassVar[str] = "poison"
    # True for the no-poison reference: its cells share trained models with the evasion cells.
    leaves_data_clean: ClassVar[bool] = False

    def craft(self, train: TensorData, ctx: CraftingContext) -> PoisonedSet:
        """The poisoned training set. ``ctx`` is a :class:`CraftingContext`: no test set, victim or recipe."""
        raise NotImplementedError

    def metrics(self, poison: PoisonedSet, fitted: Fitted, splits: DataSplits, ctx: Context) -> dict:
        """Attack-specific metrics (documented names) beyond the standard accuracies."""
        return {}


@dataclass
class EvasionResult:
    """Adversarial inputs, with the targets of a targeted attack and per-input success if known."""

    x_adv: torch.Tensor
    target: torch.Tensor | None = None
    success: torch.Tensor | None = None
    metrics: dict = field(default_factory=dict)


class EvasionAttack(Plugin):
    """Test-time attack: perturbs test inputs against a trained classifier, batched, in [0, 1]."""

    kind = "attack"
    threat: ClassVar[str] = "evasion"
    needs_gradients: ClassVar[bool] = True
    # Minimal-norm attacks search for the smallest flip; the runner reports ||r|| and ||r||/||x||.
    minimal_norm: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.params = with_source_params(cls.params)  # every attack can be transferred (benchlab.transfer)

    def __init__(self, **values: Any):
        super().__init__(**values)
        check_source(self)

    @property
    def source_victim(self) -> Victim | None:
        """The victim a transferred attack crafts on when it is not the cell's (``source_victim=``)."""
        return self.nested("source_victim")

    def identity(self) -> dict:
        # Unset transfer parameters stay out of cache keys: adding them did not change any attack.
        identity = super().identity()
        unset = {p.name for p in SOURCE_PARAMS if self.values.get(p.name) is None}
        identity["params"] = {k: v for k, v in identity["params"].items() if k not in unset}
        return identity

    def perturb(self, model: Classifier, x: torch.Tensor, y: torch.Tensor, ctx: Context):
        """Return adversarial inputs (a tensor or an :class:`EvasionResult`)."""
        raise NotImplementedError

    @property
    def norm(self) -> str:
        return self.values.get("norm", "linf")

    def incompatibility(self, info, victim):
        crafted_on = self.source_victim or victim  # a transferred attack needs gradients of its source only
        if self.needs_gradients and crafted_on is not None and crafted_on.framework != "torch":
            return f"attack {self.spec} needs gradients; {crafted_on.name} is a {crafted_on.framework} model"
        return None


class DatasetSource(Plugin):
    """Loads a dataset as :class:`DataSplits` (train/test tensors in [0, 1])."""

    kind = "dataset"
    info: ClassVar[DatasetInfo]

    def load(self, data_root=None, download: bool = False) -> DataSplits:
        raise NotImplementedError


def perturbation_norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example norm of a perturbation batch (l0 counts changed pixel positions)."""
    flat = delta.flatten(1)
    if norm == "l0":
        return (delta.abs().amax(1) > 1e-8).flatten(1).sum(1).float()
    if norm == "l1":
        return flat.abs().sum(1)
    if norm == "l2":
        return flat.norm(dim=1)
    if norm == "linf":
        return flat.abs().amax(1)
    raise ValueError(f"unknown norm {norm!r}; valid norms: {', '.join(NORMS)}")
