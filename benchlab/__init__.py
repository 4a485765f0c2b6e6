"""benchlab: which defense survives which attack, on which architecture?

The public surface is small: the hook marker for plugin authors, the interfaces they implement,
and the registry and runner entry points.
"""

from .classifier import Classifier, SklearnClassifier, TorchClassifier
from .context import Context
from .data import DatasetInfo, DataSplits, TensorData
from .defense_base import TrainingDefense
from .hookspecs import hookimpl
from .interfaces import (
    DatasetSource,
    Defense,
    EvasionAttack,
    EvasionResult,
    Fitted,
    PoisonAttack,
    PoisonedSet,
    Victim,
)
from .metrics import Metric
from .params import Param, SpecError
from .poisoning import poison_mask, stamp
from .train import History, Recipe

__version__ = "0.1.0"

__all__ = [
    "Classifier", "Context", "DataSplits", "DatasetInfo", "DatasetSource", "Defense", "EvasionAttack",
    "EvasionResult", "Fitted", "History", "Metric", "Param", "PoisonAttack", "PoisonedSet", "Recipe",
    "SklearnClassifier", "SpecError", "TensorData", "TorchClassifier", "TrainingDefense", "Victim",
    "hookimpl", "poison_mask", "stamp", "__version__",
]
