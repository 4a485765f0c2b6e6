"""``digits``: scikit-learn's real 8x8 handwritten digits, shipped inside scikit-learn (the embedded default)."""

from __future__ import annotations

import torch

from ..data import DatasetInfo, DataSplits, TensorData, per_class_subsample
from ..interfaces import DatasetSource
from ..params import Param


class Digits(DatasetSource):
    """scikit-learn's 1,797 real 8x8 handwritten digits (UCI), split 75/25 stratified by a fixed seed."""

    name = "digits"
    params = (
        Param("per_class", int, 0, "keep at most this many training images per class (0 = all)", low=0),
        Param("test_per_class", int, 0, "keep at most this many test images per class (0 = all)", low=0),
        Param("test_fraction", float, 0.25, "fraction of images held out as the test set", low=0.05, high=0.9),
    )
    # 8x8 images: an L2 budget scaled from MNIST's 1.5 at 28x28 by sqrt(64/784) is about 0.43;
    # we keep the MNIST-like L-inf 0.3 and use L2 1.0 so that attacks are clearly visible.
    info = DatasetInfo(
        "digits", (1, 8, 8), 10, tuple(str(i) for i in range(10)),
        budgets={"linf": 0.3, "l2": 1.0, "l1": 4.0, "l0": 2},
    )

    def load(self, data_root=None, download: bool = False) -> DataSplits:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
        y = torch.tensor(bunch.target, dtype=torch.long)
        train_idx, test_idx = train_test_split(
            range(len(y)), test_size=self.p.test_fraction, stratify=bunch.target, random_state=0
        )
        train = TensorData(x[train_idx], y[train_idx])
        test = TensorData(x[test_idx], y[test_idx])
        return DataSplits(per_class_subsample(train, self.p.per_class),
                          per_class_subsample(test, self.p.test_per_class, seed=1), self.info)

    def identity(self) -> dict:
        # An unset test_per_class stays out of the identity, so the default spec keeps its cell ids.
        identity = super().identity()
        if not self.p.test_per_class:
            identity["params"] = {k: v for k, v in identity["params"].items() if k != "test_per_class"}
        return identity

    def installed(self, data_root=None) -> bool:
        return True  # shipped inside scikit-learn
