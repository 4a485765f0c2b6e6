"""A small reader for IDX files, the format of MNIST and Fashion-MNIST (optionally gzipped).

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the values in C order. See http://yann.lecun.com/exdb/mnist/.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from .base import MalformedDataset

# IDX type code -> big-endian numpy dtype.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
GZIP_MAGIC = b"\x1f\x8b"

# The four files of an MNIST-format dataset, by split, as (images, labels) base names.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path, ndim: int | None = None) -> np.ndarray:
    """Read one IDX file (gzip detected by content, not name) into a native-order numpy array."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise MalformedDataset(f"{path}: corrupt gzip data ({error})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise MalformedDataset(f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'})")
    dims = raw[3]
    if ndim is not None and dims != ndim:
        raise MalformedDataset(f"{path}: IDX file has {dims} dimensions, expected {ndim}")
    header = 4 + 4 * dims
    if len(raw) < header:
        raise MalformedDataset(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{dims}I", raw[4:header])
    dtype = np.dtype(IDX_TYPES[raw[2]])
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) - header != expected:
        raise MalformedDataset(
            f"{path}: header declares shape {shape} ({expected} bytes of data) "
            f"but the file holds {len(raw) - header} bytes"
        )
    # astype copies into native byte order, which also makes the array writable for torch.
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def find_idx(directory: Path, base: str) -> Path | None:
    """The file ``base`` or ``base.gz`` in ``directory`` (uncompressed preferred), or None."""
    for candidate in (directory / base, directory / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_idx_set(directory: Path) -> dict[str, tuple[Path, Path]] | None:
    """Paths of all four MNIST-format files in ``directory`` by split, or None if any is absent."""
    found = {}
    for split, names in IDX_FILES.items():
        paths = tuple(find_idx(directory, name) for name in names)
        if None in paths:
            return None
        found[split] = paths
    return found


def read_idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) and labels (N,) from an IDX pair, checking that they belong together."""
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if len(images) != len(labels):
        raise MalformedDataset(
            f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels"
        )
    if images.dtype != np.uint8:
        raise MalformedDataset(f"{images_path}: expected unsigned byte pixels, found {images.dtype}")
    return images, labels
