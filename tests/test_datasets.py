"""Dataset sources: tiny files in the real on-disk formats, loaded through the real code paths.

Nothing here downloads: ``download=True`` appears only with a stand-in torchvision class.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from benchlab.datasets.base import DatasetMissing, MalformedDataset
from benchlab.datasets.idx import read_idx
from benchlab.datasets.mnist import DEBIAN_FASHION_MNIST_DIR, MNIST, FashionMNIST
from benchlab.datasets.torchvision_sources import CIFAR10, STL10, SVHN
from benchlab.plugins import get_registry

N_TRAIN, N_TEST = 30, 20  # three train / two test images of each of ten classes


@pytest.fixture(autouse=True)
def isolated_roots(tmp_path, monkeypatch):
    """Keep the default data root and the Fashion-MNIST directory away from the real machine."""
    monkeypatch.setenv("BENCHLAB_DATA_ROOT", str(tmp_path / "default-root"))
    monkeypatch.setenv("BENCHLAB_FASHION_MNIST_DIR", str(tmp_path / "no-debian-package"))


@pytest.fixture
def no_md5(monkeypatch):
    """Make torchvision's integrity checks test only that files exist.

    torchvision compares each file's md5 with the published archive's; tiny test files cannot
    match, so ``check_integrity`` (as imported by each dataset module) becomes an existence check.
    Everything else, parsing included, is torchvision's own code.
    """
    import torchvision.datasets.cifar
    import torchvision.datasets.stl10
    import torchvision.datasets.svhn

    def exists(fpath, md5=None):
        return os.path.isfile(fpath)

    for module in (torchvision.datasets.cifar, torchvision.datasets.svhn, torchvision.datasets.stl10):
        monkeypatch.setattr(module, "check_integrity", exists)


def make(source, **values):
    """A source instance with validated parameters, as the CLI would build it."""
    return get_registry().create("datasets", source.name, **values)


def labels_for(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.uint8) % 10


def random_images(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


# --- IDX (MNIST format) --------------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int16): 0x0B}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        payload = gzip.compress(payload)
    path.write_bytes(payload)
    return path


def write_mnist_dir(directory: Path, gz: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    arrays = {
        "train-images-idx3-ubyte": random_images((N_TRAIN, 28, 28), seed),
        "train-labels-idx1-ubyte": labels_for(N_TRAIN),
        "t10k-images-idx3-ubyte": random_images((N_TEST, 28, 28), seed + 1),
        "t10k-labels-idx1-ubyte": labels_for(N_TEST),
    }
    for name, array in arrays.items():
        write_idx(directory / name, array, gz)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_idx_reader_round_trips_raw_and_gzipped(tmp_path, gz):
    images = random_images((4, 5, 6), seed=3)
    assert np.array_equal(read_idx(write_idx(tmp_path / "images", images, gz), ndim=3), images)
    # Multi-byte types are big-endian on disk and must come back in native order.
    wide = np.array([-2, 0, 300, 32000], dtype=np.int16)
    assert np.array_equal(read_idx(write_idx(tmp_path / "wide", wide, gz), ndim=1), wide)


@pytest.mark.parametrize("content, fragment", [
    (b"\x01\x02\x08\x03" + b"\0" * 16, "not an IDX file"),
    (b"", "not an IDX file"),
    (b"\0\0\x08\x01" + struct.pack(">I", 5) + b"abc", r"declares shape \(5,\)"),
    (b"\0\0\x08\x03\0\0", "truncated"),
    (b"\x1f\x8b\x08\0garbage", "corrupt gzip"),
])
def test_idx_reader_names_the_malformed_file(tmp_path, content, fragment):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(MalformedDataset, match=fragment) as caught:
        read_idx(path)
    assert str(path) in str(caught.value)


def test_idx_reader_checks_dimensions(tmp_path):
    path = write_idx(tmp_path / "labels", labels_for(7))
    with pytest.raises(MalformedDataset, match="1 dimensions, expected 3"):
        read_idx(path, ndim=3)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_loads_torchvision_layout(tmp_path, gz):
    arrays = write_mnist_dir(tmp_path / "MNIST" / "raw", gz)
    splits = make(MNIST).load(data_root=tmp_path)
    assert splits.train.x.shape == (N_TRAIN, 1, 28, 28) and splits.test.x.shape == (N_TEST, 1, 28, 28)
    assert splits.train.x.dtype == torch.float32 and splits.train.y.dtype == torch.long
    assert 0.0 <= splits.train.x.min() and splits.train.x.max() <= 1.0
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"]).float().div(255).unsqueeze(1)
    assert torch.equal(splits.train.x, expected)
    assert splits.test.y.tolist() == labels_for(N_TEST).tolist()
    assert splits.info.input_shape == (1, 28, 28) and splits.info.budgets["l2"] == 1.5


def test_mnist_rejects_mismatched_pair_and_bad_labels(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist_dir(raw)
    write_idx(raw / "t10k-labels-idx1-ubyte", labels_for(N_TEST - 1))
    with pytest.raises(MalformedDataset, match="20 images but .* 19 labels"):
        make(MNIST).load(data_root=tmp_path)
    write_idx(raw / "t10k-labels-idx1-ubyte", labels_for(N_TEST) + 5)
    with pytest.raises(MalformedDataset, match=r"\(test split\): labels range over \[5, 14\]"):
        make(MNIST).load(data_root=tmp_path)


def test_fashion_mnist_prefers_package_directory(tmp_path, monkeypatch):
    package_dir = tmp_path / "debian"
    arrays = write_mnist_dir(package_dir, gz=True, seed=10)  # the Debian package ships .gz files
    write_mnist_dir(tmp_path / "root" / "FashionMNIST" / "raw", seed=20)
    monkeypatch.setenv("BENCHLAB_FASHION_MNIST_DIR", str(package_dir))
    splits = make(FashionMNIST).load(data_root=tmp_path / "root")
    expected = torch.from_numpy(arrays["t10k-images-idx3-ubyte"]).float().div(255).unsqueeze(1)
    assert torch.equal(splits.test.x, expected)
    assert splits.info.class_names[0] == "T-shirt/top"


def test_fashion_mnist_falls_back_to_data_root(tmp_path):
    arrays = write_mnist_dir(tmp_path / "FashionMNIST" / "raw", seed=20)
    splits = make(FashionMNIST).load(data_root=tmp_path)
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"]).float().div(255).unsqueeze(1)
    assert torch.equal(splits.train.x, expected)


def test_per_class_subsampling_is_seeded(tmp_path):
    write_mnist_dir(tmp_path / "MNIST" / "raw")
    full = make(MNIST).load(data_root=tmp_path)
    source = get_registry().create("datasets", "mnist:per_class=2,test_per_class=1")
    first, second = source.load(data_root=tmp_path), source.load(data_root=tmp_path)
    assert first.train.y.bincount().tolist() == [2] * 10
    assert first.test.y.bincount().tolist() == [1] * 10
    assert first.fingerprint() == second.fingerprint()
    # Every kept image is one of the originals, with its own label.
    for x, y in zip(first.train.x, first.train.y):
        match = (full.train.x == x).flatten(1).all(1).nonzero().flatten()
        assert len(match) == 1 and full.train.y[match].item() == y.item()


def test_fingerprint_is_stable_and_tracks_content(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_mnist_dir(a / "MNIST" / "raw")
    arrays = write_mnist_dir(b / "MNIST" / "raw")
    assert make(MNIST).load(data_root=a).fingerprint() == make(MNIST).load(data_root=b).fingerprint()
    images = arrays["train-images-idx3-ubyte"].copy()
    images[0, 0, 0] ^= 1
    write_idx(b / "MNIST" / "raw" / "train-images-idx3-ubyte", images)
    assert make(MNIST).load(data_root=a).fingerprint() != make(MNIST).load(data_root=b).fingerprint()


def test_missing_mnist_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetMissing) as caught:
        make(MNIST).load(data_root=tmp_path)
    message = str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "--data-root DIR" in message and "--download" in message and "train-images-idx3-ubyte" in message
    assert "no --data-root was given" not in message


def test_missing_without_data_root_says_so(tmp_path):
    with pytest.raises(DatasetMissing, match="no --data-root was given") as caught:
        make(MNIST).load()
    assert str(tmp_path / "default-root") in str(caught.value)


def test_missing_fashion_mnist_mentions_debian_package(tmp_path):
    with pytest.raises(DatasetMissing) as caught:
        make(FashionMNIST).load(data_root=tmp_path)
    message = str(caught.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "FashionMNIST/raw/" in message and "--download" in message
    assert str(tmp_path / "no-debian-package") in message


def test_download_goes_through_torchvision(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeMNIST:  # stands in for torchvision.datasets.MNIST: records the call, downloads nothing
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            n = N_TRAIN if train else N_TEST
            self.data = torch.from_numpy(random_images((n, 28, 28), seed=int(train)))
            self.targets = torch.from_numpy(labels_for(n)).long()

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    splits = make(MNIST).load(data_root=tmp_path, download=True)
    assert calls == [(str(tmp_path), True, True), (str(tmp_path), False, True)]
    assert splits.train.x.shape == (N_TRAIN, 1, 28, 28) and splits.test.y.dtype == torch.long


# --- torchvision formats -------------------------------------------------------------------------


def write_cifar10(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """The python pickle batches: each row holds the R, G and B planes of one 32x32 image."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    images = random_images((N_TRAIN + N_TEST, 3, 32, 32), seed=5)
    labels = labels_for(N_TRAIN + N_TEST)
    per_batch = N_TRAIN // 5
    batches = [(f"data_batch_{i + 1}", slice(i * per_batch, (i + 1) * per_batch)) for i in range(5)]
    for name, rows in [*batches, ("test_batch", slice(N_TRAIN, None))]:
        entry = {"batch_label": name, "labels": labels[rows].tolist(), "data": images[rows].reshape(-1, 3072),
                 "filenames": [f"{i}.png" for i in range(len(labels[rows]))]}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    meta = {"label_names": list(CIFAR10.info.class_names), "num_cases_per_batch": per_batch, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return images, labels


def test_cifar10_loads_pickle_batches(tmp_path, no_md5):
    images, labels = write_cifar10(tmp_path)
    splits = make(CIFAR10, test_per_class=1).load(data_root=tmp_path)
    assert splits.train.x.shape == (N_TRAIN, 3, 32, 32) and splits.train.x.dtype == torch.float32
    assert torch.equal(splits.train.x, torch.from_numpy(images[:N_TRAIN]).float() / 255)
    assert splits.train.y.dtype == torch.long and splits.train.y.tolist() == labels[:N_TRAIN].tolist()
    assert splits.test.y.bincount().tolist() == [1] * 10
    assert splits.info.budgets["linf"] == pytest.approx(8 / 255)


def test_cifar10_with_wrong_md5_is_reported_as_corrupt(tmp_path):
    write_cifar10(tmp_path)  # without no_md5: torchvision's real check rejects the tiny files
    with pytest.raises(MalformedDataset, match="md5 check") as caught:
        make(CIFAR10).load(data_root=tmp_path)
    assert isinstance(caught.value.__cause__, RuntimeError)  # torchvision's own "not found or corrupted"


def test_svhn_loads_mat_files_and_maps_label_10_to_0(tmp_path, no_md5):
    from scipy.io import savemat

    written = {}
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        x = random_images((32, 32, 3, n), seed=n)  # MATLAB order: H, W, C, N
        y = (labels_for(n) + 1).reshape(n, 1)  # SVHN's labels are 1..10, with 10 for the digit 0
        savemat(tmp_path / f"{split}_32x32.mat", {"X": x, "y": y})
        written[split] = x
    splits = make(SVHN).load(data_root=tmp_path)
    assert splits.train.x.shape == (N_TRAIN, 3, 32, 32)
    assert torch.equal(splits.test.x, torch.from_numpy(written["test"]).permute(3, 2, 0, 1).float() / 255)
    # Written labels 1..10 come back as 1..9 and 0: torchvision maps 10 to 0 and keeps the rest.
    assert splits.train.y.tolist() == [(int(v) + 1) % 10 for v in labels_for(N_TRAIN)]
    assert splits.train.y.dtype == torch.long


def test_stl10_loads_binary_files_without_unlabeled(tmp_path, no_md5):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    written = {}
    for split, n in (("train", 10), ("test", 20)):
        images = random_images((n, 3, 96, 96), seed=n)
        # STL-10 stores each channel column-major, i.e. as (N, C, W, H) in C order.
        (folder / f"{split}_X.bin").write_bytes(images.transpose(0, 1, 3, 2).tobytes())
        (folder / f"{split}_y.bin").write_bytes((labels_for(n) + 1).tobytes())  # 1-based on disk
        written[split] = images
    (folder / "class_names.txt").write_text("\n".join(STL10.info.class_names) + "\n")
    splits = make(STL10, test_per_class=1).load(data_root=tmp_path)  # note: no unlabeled_X.bin written
    assert splits.train.x.shape == (10, 3, 96, 96) and splits.test.x.shape == (10, 3, 96, 96)
    assert torch.equal(splits.train.x, torch.from_numpy(written["train"]).float() / 255)
    assert splits.train.y.tolist() == list(range(10)) and splits.train.y.dtype == torch.long


@pytest.mark.parametrize("source, layout", [
    (CIFAR10, "cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}"),
    (SVHN, "DIR/train_32x32.mat and DIR/test_32x32.mat"),
    (STL10, "stl10_binary/{train_X.bin, train_y.bin, test_X.bin, test_y.bin}"),
])
def test_missing_torchvision_dataset_says_how_to_get_it(tmp_path, source, layout):
    with pytest.raises(DatasetMissing) as caught:
        make(source).load(data_root=tmp_path)
    message = str(caught.value)
    assert layout in message and "--data-root DIR" in message and "--download" in message
    assert str(tmp_path) in message


def test_partial_cifar10_names_missing_files(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetMissing, match="lacks cifar-10-batches-py/data_batch_3"):
        make(CIFAR10).load(data_root=tmp_path)


# --- registration, digits and the real Debian package ----------------------------------------


def test_all_sources_are_registered_with_summaries():
    registry = get_registry()
    assert {"digits", "mnist", "fashion-mnist", "cifar10", "svhn", "stl10"} <= set(registry.names("datasets"))
    for name in ("mnist", "fashion-mnist", "cifar10", "svhn", "stl10"):
        cls = registry.get("datasets", name)
        assert cls.summary() and cls.info.name == name and len(cls.info.class_names) == 10
        assert [p.name for p in cls.params] == ["per_class", "test_per_class"]


def test_digits_default_split():
    splits = get_registry().create("datasets", "digits").load()
    assert (len(splits.train), len(splits.test)) == (1347, 450)
    assert splits.train.x.shape[1:] == (1, 8, 8)


@pytest.mark.skipif(not Path(DEBIAN_FASHION_MNIST_DIR).is_dir(),
                    reason="the Debian package dataset-fashion-mnist is not installed")
def test_real_debian_fashion_mnist(monkeypatch):
    monkeypatch.delenv("BENCHLAB_FASHION_MNIST_DIR")
    splits = make(FashionMNIST).load()
    assert (len(splits.train), len(splits.test)) == (60000, 10000)
    assert splits.train.x.shape[1:] == (1, 28, 28) and splits.train.x.dtype == torch.float32
    assert float(splits.test.x.min()) == 0.0 and float(splits.test.x.max()) == 1.0
    assert splits.train.y.bincount().tolist() == [6000] * 10


def test_digits_subsamples_the_test_set_per_class_and_keeps_its_default_identity(registry):
    splits = registry.create("datasets", "digits:test_per_class=20").load()
    assert len(splits.test) == 200 and torch.bincount(splits.test.y).tolist() == [20] * 10
    assert "test_per_class" not in registry.create("datasets", "digits").identity()["params"]
    assert registry.create("datasets", "digits").spec == "digits"
