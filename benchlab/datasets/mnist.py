"""``mnist`` and ``fashion-mnist``: 28x28 grayscale IDX datasets, read from disk or fetched by torchvision."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from ..data import DatasetInfo, DataSplits
from .base import GRAY28_BUDGETS, DatasetMissing, SubsampledSource, missing_message, resolve_root
from .idx import IDX_FILES, find_idx_set, read_idx_pair

DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_DIR_ENV = "BENCHLAB_FASHION_MNIST_DIR"

LAYOUT_FILES = ", ".join(f"{name}[.gz]" for names in IDX_FILES.values() for name in names)


class IDXSource(SubsampledSource):
    """Base for MNIST-format datasets in torchvision's layout ``<data_root>/<folder>/raw/``."""

    folder: ClassVar[str]  # torchvision's class name, which is also its directory name

    def search_dirs(self, root: Path) -> list[Path]:
        return [root / self.folder / "raw"]

    def installed(self, data_root=None) -> bool:
        """Whether the four IDX files are on disk (checked without reading them)."""
        return any(find_idx_set(d) for d in self.search_dirs(resolve_root(data_root)) if d.is_dir())

    def how_to_get(self) -> str:
        return (f"pass --data-root DIR containing {self.folder}/raw/ with {LAYOUT_FILES} "
                f"(torchvision's layout), or add --download")

    def load(self, data_root=None, download: bool = False) -> DataSplits:
        root = resolve_root(data_root)
        directories = self.search_dirs(root)
        for directory in directories:
            found = find_idx_set(directory)
            if found:
                return self.splits(*(
                    self.tensor_data(*read_idx_pair(*found[split]), False, f"{directory} ({split} split)")
                    for split in IDX_FILES
                ))
        if download:
            return self.download(root)
        where = "looked in " + ", ".join(map(str, directories))
        raise DatasetMissing(missing_message(self.name, where, data_root, self.how_to_get()))

    def download(self, root: Path) -> DataSplits:
        import torchvision.datasets

        # Looked up at call time (not imported at module level) so tests can stand in a fake class.
        dataset_class = getattr(torchvision.datasets, self.folder)
        train, test = (dataset_class(str(root), train=flag, download=True) for flag in (True, False))
        where = f"torchvision {self.folder} in {root}"
        return self.splits(*(
            self.tensor_data(ds.data.numpy(), ds.targets.numpy(), False, where) for ds in (train, test)
        ))


class MNIST(IDXSource):
    """MNIST handwritten digits (LeCun et al.), 60k/10k 28x28 gray, from IDX files or torchvision."""

    name = "mnist"
    folder = "MNIST"
    info = DatasetInfo("mnist", (1, 28, 28), 10, tuple(str(i) for i in range(10)), budgets=GRAY28_BUDGETS)


class FashionMNIST(IDXSource):
    """Fashion-MNIST (Zalando), 60k/10k 28x28 gray: Debian package, IDX files or torchvision."""

    name = "fashion-mnist"
    folder = "FashionMNIST"
    info = DatasetInfo(
        "fashion-mnist", (1, 28, 28), 10,
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        budgets=GRAY28_BUDGETS,
    )

    def search_dirs(self, root: Path) -> list[Path]:
        # The Debian package needs no download and no --data-root, so it is tried first.
        debian = Path(os.environ.get(FASHION_MNIST_DIR_ENV) or DEBIAN_FASHION_MNIST_DIR)
        return [debian, *super().search_dirs(root)]

    def how_to_get(self) -> str:
        return f"apt-get install dataset-fashion-mnist, or {super().how_to_get()}"
