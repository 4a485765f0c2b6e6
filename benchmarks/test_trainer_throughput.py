"""Trainer throughput: benchlab's on-device indexed batches vs a plain DataLoader loop.

Both train the same model with the same batch size, optimizer and data for one epoch; the ratio
of their times (measured in the same run) is the figure reported, not the absolute seconds.
"""

import time

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from benchlab.plugins import get_registry
from benchlab.train import Recipe, cross_entropy, fit, make_optimizer

BATCH = 128


@pytest.fixture(scope="module")
def data():
    # Fashion-MNIST-sized images (28x28) when installed, else digits upsampled to the same size.
    registry = get_registry()
    try:
        splits = registry.create("datasets", "fashion-mnist:per_class=600").load()
    except FileNotFoundError:
        splits = registry.create("datasets", "digits").load()
        splits.train.x = nn.functional.interpolate(splits.train.x, size=28).repeat(4, 1, 1, 1)
        splits.train.y = splits.train.y.repeat(4)
    return splits.train


def _model():
    torch.manual_seed(0)
    return get_registry().create("victims", "lenet5").build((1, 28, 28), 10)


def _dataloader_epoch(model, train):
    loader = DataLoader(TensorDataset(train.x, train.y), batch_size=BATCH, shuffle=True)
    optimizer = make_optimizer(model.parameters(), Recipe())
    model.train()
    for x, y in loader:
        loss, _ = cross_entropy(model, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def _benchlab_epoch(model, train):
    fit(model, train, Recipe(epochs=1, batch_size=BATCH), seed=0)


def _best_of(function, model, train, repeats=3):
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        function(model, train)
        times.append(time.perf_counter() - tick)
    return min(times)


def test_trainer_vs_dataloader(benchmark, data):
    model = _model()
    _benchlab_epoch(model, data)  # warm-up: first-call allocations
    baseline = _best_of(_dataloader_epoch, model, data)
    ours = benchmark.pedantic(_benchlab_epoch, args=(model, data), rounds=3, iterations=1)
    ours = min(benchmark.stats.stats.data)
    ratio = baseline / ours
    benchmark.extra_info.update(dataloader_s=baseline, benchlab_s=ours, speedup=ratio, images=len(data))
    print(f"\ntrainer: {len(data)} images, DataLoader {baseline:.3f}s, benchlab {ours:.3f}s, speed-up {ratio:.2f}x")
