"""Shared plumbing for file-backed dataset sources: errors, the data root, subsampling, budgets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..data import DataSplits, TensorData, per_class_subsample, uint8_images
from ..interfaces import DatasetSource
from ..params import Param

# Default attack budgets per norm, by kind of image (see DatasetInfo.budgets).
GRAY28_BUDGETS = {"linf": 0.3, "l2": 1.5, "l1": 10.0, "l0": 5}
COLOUR_BUDGETS = {"linf": 8 / 255, "l2": 0.5, "l1": 10.0, "l0": 5}

DATA_ROOT_ENV = "BENCHLAB_DATA_ROOT"


class DatasetMissing(FileNotFoundError):
    """A dataset that is not on disk (and was not to be downloaded); the message says how to get it."""


class MalformedDataset(ValueError):
    """A dataset file that exists but cannot be read as what it claims to be; the message names it."""


def default_data_root() -> Path:
    """Where datasets live when no ``--data-root`` is given: $BENCHLAB_DATA_ROOT, else the user cache."""
    if os.environ.get(DATA_ROOT_ENV):
        return Path(os.environ[DATA_ROOT_ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "benchlab" / "data"


def resolve_root(data_root) -> Path:
    return Path(data_root).expanduser() if data_root is not None else default_data_root()


def missing_message(name: str, where: str, data_root, how: str) -> str:
    """The text of a DatasetMissing error: what was not found where, and how to get the data."""
    note = ""
    if data_root is None:
        # Without this, users assume their --data-root was searched when it was never passed.
        note = (f" (no --data-root was given, so only the default data root {default_data_root()} "
                f"was searched; set {DATA_ROOT_ENV} to change it)")
    return f"dataset {name!r} not found: {where}{note}. To get it: {how}."


class SubsampledSource(DatasetSource):
    """Base for sources with optional per-class subsampling of the training and test sets."""

    params = (
        Param("per_class", int, 0, "keep at most this many training images per class (0 = all)", low=0),
        Param("test_per_class", int, 0, "keep at most this many test images per class (0 = all)", low=0),
    )

    def tensor_data(self, images: np.ndarray, labels, channels_last: bool, where) -> TensorData:
        """uint8 images and integer labels as a TensorData, refusing labels outside the class range."""
        y = torch.as_tensor(np.asarray(labels).astype(np.int64).reshape(-1))
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.info.num_classes):
            raise MalformedDataset(
                f"{where}: labels range over [{int(y.min())}, {int(y.max())}] but {self.name} has "
                f"{self.info.num_classes} classes"
            )
        x = uint8_images(images, channels_last=channels_last)
        if tuple(x.shape[1:]) != self.info.input_shape:
            shape = tuple(x.shape[1:])
            raise MalformedDataset(f"{where}: images are {shape}, expected {self.info.input_shape}")
        return TensorData(x, y)

    def splits(self, train: TensorData, test: TensorData) -> DataSplits:
        # Fixed seeds: the same spec always selects the same examples, so cache keys stay meaningful.
        return DataSplits(
            per_class_subsample(train, self.p.per_class, seed=0),
            per_class_subsample(test, self.p.test_per_class, seed=1),
            self.info,
        )
