"""benchlab: which defense survives which attack, on which architecture?

This module is the whole public surface: everything a plugin needs is importable from ``benchlab``
(plugins import nothing else from it; ``tests/test_public_api.py`` enforces that for the in-tree
plugins). ``docs/plugins.md`` is the guide.

* interfaces: :class:`EvasionAttack`, :class:`PoisonAttack`, :class:`Defense`, :class:`TrainingDefense`,
  :class:`Victim`, :class:`GenerativeVictim`, :class:`DatasetSource`, their results (:class:`EvasionResult`, :class:`PoisonedSet`,
  :class:`Fitted`), :class:`Param`, :class:`Metric` and :data:`hookimpl`;
* budgets and norms: ``norm_param``, ``eps_param``, ``resolve_budget``, ``project``, ``perturbation_norms``...;
* chunking (``chunks``) and seeded generators (``Context.generator``, ``seed_everything``);
* progress inside a cell: ``ctx.progress`` (:class:`Progress`: ``phase``, ``steps``, ``within``);
* the training loop: ``fit``, ``evaluate``, ``cross_entropy``, ``make_optimizer``, :class:`Recipe`;
* poisoning helpers (``poison_mask``, ``random_pattern``, ``stamp``) and victim building blocks
  (:class:`SplitNet`, :class:`SplitVictim`, ``two_conv_net``, :class:`OneChannelConv2d`...).
"""

from .cache import ArtifactCache, cache_key
from .classifier import Classifier, SklearnClassifier, TorchClassifier
from .context import ArtifactSlot, Context, CraftingContext, resolve_device, seed_everything
from .data import DatasetInfo, DataSplits, TensorData, per_class_subsample
from .datasets import dataset_installed
from .defense_base import TrainingDefense
from .generative import GenerativeHistory, GenerativeVictim, TrainedGenerative
from .generative_metrics import psnr
from .hookspecs import hookimpl
from .interfaces import (
    NORMS,
    DatasetSource,
    Defense,
    EvasionAttack,
    EvasionResult,
    Fitted,
    Plugin,
    PoisonAttack,
    PoisonedSet,
    Victim,
    perturbation_norms,
)
from .metrics import Metric
from .nn import (
    MaybePool,
    OneChannelConv2d,
    SplitNet,
    SplitVictim,
    conv2d,
    conv_bn_relu,
    conv_relu,
    flat_size,
    pad_to,
    two_conv_net,
    with_fc_head,
)
from .norms import (
    CHUNK,
    TINY,
    chunks,
    eps_param,
    fraction_param,
    in_ball,
    l2_norms,
    missing_budget,
    norm_param,
    on_sphere,
    per_example,
    project,
    resolve_budget,
    steepest_direction,
)
from .params import Param, SpecError, format_spec
from .progress import Phase, Progress
from .poisoning import CRAFT_CHUNK, RANDOM_PATTERN_SALT, poison_mask, random_pattern, stamp
from .store import ResultsStore
from .train import (
    ADAM_RECIPE,
    OPTIMIZERS,
    History,
    Recipe,
    cross_entropy,
    evaluate,
    fit,
    make_optimizer,
)
from .transfer import SOURCE_PARAMS

__version__ = "0.1.0"

__all__ = [
    "ADAM_RECIPE", "CHUNK", "CRAFT_CHUNK", "NORMS", "OPTIMIZERS", "RANDOM_PATTERN_SALT", "SOURCE_PARAMS", "TINY",
    "ArtifactCache", "ArtifactSlot", "Classifier", "Context", "CraftingContext", "DataSplits", "DatasetInfo",
    "DatasetSource", "Defense",
    "EvasionAttack", "EvasionResult", "Fitted", "GenerativeHistory", "GenerativeVictim", "History", "MaybePool", "Metric", "OneChannelConv2d", "Param",
    "Phase", "Plugin", "PoisonAttack", "PoisonedSet", "Progress", "Recipe", "ResultsStore", "SklearnClassifier", "SpecError", "SplitNet",
    "SplitVictim", "TensorData", "TorchClassifier", "TrainedGenerative", "TrainingDefense", "Victim", "cache_key", "chunks",
    "conv2d", "conv_bn_relu", "conv_relu", "cross_entropy", "dataset_installed", "eps_param", "evaluate", "fit",
    "flat_size", "format_spec", "fraction_param", "hookimpl", "in_ball", "l2_norms", "make_optimizer",
    "missing_budget", "norm_param", "on_sphere", "pad_to", "per_class_subsample", "per_example", "perturbation_norms",
    "poison_mask", "project", "psnr", "random_pattern", "resolve_budget", "resolve_device", "seed_everything", "stamp",
    "steepest_direction", "two_conv_net", "with_fc_head", "__version__",
]
