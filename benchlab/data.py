"""In-memory image data: float tensors in [0, 1] of shape (N, C, H, W), with a content fingerprint."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import torch


@dataclass
class TensorData:
    """Images ``x`` (float, [0, 1], NCHW) and integer labels ``y``, kept together on one device."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self):
        if self.x.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W); got shape {tuple(self.x.shape)}")
        if len(self.x) != len(self.y):
            raise ValueError(f"{len(self.x)} images but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def device(self) -> torch.device:
        return self.x.device

    def to(self, device) -> TensorData:
        return TensorData(self.x.to(device), self.y.to(device))

    def subset(self, index) -> TensorData:
        return TensorData(self.x[index], self.y[index])

    def fingerprint(self) -> str:
        return tensor_fingerprint(self.x, self.y)


def tensor_fingerprint(*tensors: torch.Tensor) -> str:
    """SHA-256 over dtype, shape and bytes of each tensor (short hex digest)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class DatasetInfo:
    """What plugins may ask of a dataset without touching its tensors."""

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    class_names: tuple[str, ...] = ()
    # Default attack budgets for this kind of data, per norm (overridable by the matrix).
    budgets: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def channels(self) -> int:
        return self.input_shape[0]

    @property
    def colour(self) -> bool:
        return self.input_shape[0] == 3


@dataclass
class DataSplits:
    """A loaded dataset: clean training and test sets plus their description."""

    train: TensorData
    test: TensorData
    info: DatasetInfo

    def fingerprint(self) -> str:
        return tensor_fingerprint(self.train.x, self.train.y, self.test.x, self.test.y)

    def to(self, device) -> DataSplits:
        return replace(self, train=self.train.to(device), test=self.test.to(device))


def per_class_subsample(data: TensorData, per_class: int, seed: int = 0) -> TensorData:
    """Keep at most ``per_class`` examples of each class, chosen by a seeded permutation."""
    if not per_class:
        return data
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=generator)
    labels = data.y.cpu()[order]
    keep = []
    for label in labels.unique().tolist():
        keep.append(order[labels == label][:per_class])
    index = torch.cat(keep).sort().values.to(data.device)
    return data.subset(index)


def uint8_images(array, channels_last: bool) -> torch.Tensor:
    """Convert an integer image array (N,H,W), (N,H,W,C) or (N,C,H,W) to float NCHW in [0, 1]."""
    x = torch.as_tensor(array)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    elif channels_last:
        x = x.permute(0, 3, 1, 2)
    return x.contiguous().float().div_(255.0)
