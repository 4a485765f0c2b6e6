"""Trainer throughput: benchlab's ``fit`` vs a plain DataLoader training loop.

Both train the same model (same initial weights), batch size, learning rate and data for the same
number of epochs; the ratio of their times, measured in the same run, is the figure reported, not
the absolute seconds. The baseline is the loop a user writes from the PyTorch tutorial: a shuffled
``DataLoader`` over a ``TensorDataset`` and ``torch.optim.SGD`` with its defaults. ``fit`` also
evaluates the final model on the whole training set (its ``train_acc``), so it does strictly more
work. The breakdown re-times the baseline with one of benchlab's choices added at a time.
"""

import pytest
import torch
from conftest import median_times
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from benchlab.plugins import get_registry
from benchlab.train import Recipe, cross_entropy, fit

BATCH = 128
EPOCHS = 3
RECIPE = Recipe(optimizer="sgd", lr=0.05, momentum=0.9, epochs=EPOCHS, batch_size=BATCH)


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


def _model(victim):
    torch.manual_seed(0)
    return get_registry().create("victims", victim).build((1, 28, 28), 10)


def _plain_loop(model, train, *, indexed=False, channels_last=False, fused=None):
    """The tutorial loop; each keyword switches on one of ``fit``'s choices for the breakdown."""
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=RECIPE.lr, momentum=RECIPE.momentum,
                                nesterov=True, fused=fused)
    model.train()
    generator = torch.Generator().manual_seed(0)
    for _ in range(EPOCHS):
        if indexed:
            order = torch.randperm(len(train), generator=generator)
            batches = ((train.x.index_select(0, i), train.y.index_select(0, i)) for i in order.split(BATCH))
        else:
            batches = DataLoader(TensorDataset(train.x, train.y), batch_size=BATCH, shuffle=True,
                                 generator=generator)
        for x, y in batches:
            loss, _ = cross_entropy(model, x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


ROUNDS = 7


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("victim", ["mlp", "lenet5"])
def test_trainer_vs_dataloader(benchmark, data, victim, threads):
    variants = {
        "dataloader": lambda: _plain_loop(_model(victim), data),
        "indexed": lambda: _plain_loop(_model(victim), data, indexed=True),
        "indexed+channels_last": lambda: _plain_loop(_model(victim), data, indexed=True, channels_last=True),
        "indexed+channels_last+fused": lambda: _plain_loop(_model(victim), data, indexed=True,
                                                           channels_last=True, fused=True),
        "benchlab fit": lambda: fit(_model(victim), data, RECIPE, seed=0),
        # Opt-in, not the headline: bfloat16 autocast changes the numbers (AMX / tensor cores).
        "benchlab fit bf16": lambda: fit(_model(victim), data, RECIPE.override(precision="bf16"), seed=0),
    }
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        # Interleaved round after round, medians compared: the VM's noisy neighbours slow all alike.
        seconds = median_times(variants, ROUNDS)
        benchmark.pedantic(variants["benchlab fit"], rounds=3, iterations=1)
    finally:
        torch.set_num_threads(before)
    baseline = seconds["dataloader"]
    speedups = {name: baseline / value for name, value in seconds.items()}
    benchmark.extra_info.update(images=len(data), epochs=EPOCHS, threads=threads,
                                **{f"{k}_s": v for k, v in seconds.items()},
                                **{f"{k}_speedup": v for k, v in speedups.items()})
    steps = ", ".join(f"{k} {v:.2f}x" for k, v in speedups.items() if k != "dataloader")
    print(f"\n{victim}, {threads} thread(s): {len(data)} images x {EPOCHS} epochs, DataLoader {baseline:.3f}s "
          f"(median of {ROUNDS}); {steps} (fit includes its final train-set evaluation)")


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_batch_gather_index_select_vs_advanced_indexing(benchmark, one_thread, shape):
    """One epoch of batch-128 gathers from a 6000-image set: ``x.index_select(0, i)`` (``fit``) vs ``x[i]``."""
    x = torch.rand(6000, *shape)
    batches = torch.randperm(6000, generator=torch.Generator().manual_seed(0)).split(BATCH)

    def advanced():
        for i in batches:
            x[i]

    def index_select():
        for i in batches:
            x.index_select(0, i)

    seconds = median_times({"advanced": advanced, "index_select": index_select}, ROUNDS)
    benchmark.pedantic(index_select, rounds=5, iterations=1)
    ratio = seconds["advanced"] / seconds["index_select"]
    benchmark.extra_info.update(speedup=ratio)
    print(f"\ngather {shape}: x[i] {1e6 * seconds['advanced'] / len(batches):.0f} us/batch, index_select "
          f"{1e6 * seconds['index_select'] / len(batches):.0f} us/batch: {ratio:.2f}x")
