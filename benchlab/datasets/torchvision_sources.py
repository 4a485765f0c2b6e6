"""``cifar10``, ``svhn`` and ``stl10``: colour datasets read through torchvision.datasets.

torchvision parses the files and verifies their md5 sums; we take its numpy arrays (``.data`` and
``.targets``/``.labels``) as tensors in one step instead of iterating it image by image.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from ..data import DatasetInfo, DataSplits
from .base import (
    COLOUR_BUDGETS,
    DatasetMissing,
    MalformedDataset,
    SubsampledSource,
    missing_message,
    resolve_root,
)


class TorchvisionSource(SubsampledSource):
    """Base for a dataset whose labelled train and test splits come from one torchvision class."""

    torchvision_class: ClassVar[str]
    files: ClassVar[tuple[str, ...]]  # what the two splits need, relative to the data root
    layout: ClassVar[str]  # the same, for humans
    channels_last: ClassVar[bool] = False  # layout of the class's ``.data`` array
    label_attribute: ClassVar[str] = "labels"

    def open(self, dataset_class, root: Path, split: str, download: bool):
        return dataset_class(str(root), split=split, download=download)

    def dataset_class(self):
        import torchvision.datasets

        # Looked up at call time so tests can stand in a fake class.
        return getattr(torchvision.datasets, self.torchvision_class)

    def load(self, data_root=None, download: bool = False) -> DataSplits:
        root = resolve_root(data_root)
        missing = [name for name in self.files if not (root / name).is_file()]
        if missing and not download:
            where = (f"none of its files are under {root}" if len(missing) == len(self.files)
                     else f"{root} lacks {', '.join(missing)}")
            how = f"pass --data-root DIR (expected layout {self.layout}), or add --download"
            raise DatasetMissing(missing_message(self.name, where, data_root, how))
        dataset_class = self.dataset_class()
        loaded = []
        for split in ("train", "test"):
            try:
                dataset = self.open(dataset_class, root, split, download)
            except RuntimeError as error:
                # The files exist (checked above), so torchvision's "not found or corrupted" means an
                # md5 mismatch, e.g. a truncated copy; with --download it may also be a failed fetch.
                hint = "" if download else (
                    " (the files are present, so they failed its md5 check: they are corrupt or partial; "
                    "delete them and re-run with --download)"
                )
                raise MalformedDataset(
                    f"{self.name}: torchvision could not load the {split} split from {root}: {error}{hint}"
                ) from error
            labels = getattr(dataset, self.label_attribute)
            where = f"{self.name} {split} split in {root}"
            loaded.append(self.tensor_data(dataset.data, labels, self.channels_last, where))
        return self.splits(*loaded)


class CIFAR10(TorchvisionSource):
    """CIFAR-10 (Krizhevsky 2009), 50k/10k 32x32 colour in 10 classes, via torchvision."""

    name = "cifar10"
    info = DatasetInfo(
        "cifar10", (3, 32, 32), 10,
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        budgets=COLOUR_BUDGETS,
    )
    torchvision_class = "CIFAR10"
    files = tuple(
        f"cifar-10-batches-py/{name}"
        for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]
    )
    layout = "DIR/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}"
    channels_last = True  # torchvision transposes CIFAR's planar rows to (N, 32, 32, 3)
    label_attribute = "targets"

    def open(self, dataset_class, root, split, download):
        return dataset_class(str(root), train=split == "train", download=download)


class SVHN(TorchvisionSource):
    """SVHN street-view house numbers (Netzer et al. 2011), 73k/26k 32x32 colour digits, via torchvision."""

    name = "svhn"
    info = DatasetInfo("svhn", (3, 32, 32), 10, tuple(str(i) for i in range(10)), budgets=COLOUR_BUDGETS)
    torchvision_class = "SVHN"
    # torchvision keeps SVHN's .mat files directly in the root, not in a subdirectory.
    files = ("train_32x32.mat", "test_32x32.mat")
    layout = "DIR/train_32x32.mat and DIR/test_32x32.mat"
    # torchvision already maps SVHN's label 10 (digit 0) to 0 and transposes X to (N, 3, 32, 32).


class STL10(TorchvisionSource):
    """STL-10 (Coates et al. 2011), labelled 5k/8k 96x96 colour in 10 classes, via torchvision."""

    name = "stl10"
    info = DatasetInfo(
        "stl10", (3, 96, 96), 10,
        ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"),
        budgets=COLOUR_BUDGETS,
    )
    torchvision_class = "STL10"
    files = tuple(f"stl10_binary/{split}_{part}.bin" for split in ("train", "test") for part in "Xy")
    layout = "DIR/stl10_binary/{train_X.bin, train_y.bin, test_X.bin, test_y.bin}"

    def dataset_class(self):
        base = super().dataset_class()
        # torchvision's integrity check also hashes the 2.7 GB unlabeled_X.bin, which the labelled
        # splits never read; dropping it from train_list (whose third entry only the unlabeled
        # splits use) lets a copy without it load, and saves hashing it on every load.
        train_list = [entry for entry in base.train_list if not entry[0].startswith("unlabeled")]
        return type("LabelledSTL10", (base,), {"train_list": train_list})
