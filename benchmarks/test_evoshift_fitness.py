"""EvoShift fitness throughput: surrogate evaluations per second for one CMA-ES population.

One population = 8 candidate patterns (N_p = 1 on digits), each scored by training a fresh
GrayNet for 5 epochs on 500 training images and testing it on 500 others (the paper preset's
digits search uses 10 epochs). Every process runs one torch thread: on a shared 2-core machine
two threads per process were several times slower than one under load. Compared in the same run,
as ratios to the naive sequential loop:

* ``sequential``: one model after another with the shared trainer (the naive loop);
* ``batched``: the whole population as stacked parameters under ``torch.func.vmap``;
* ``two processes``: the sequential loop split over two worker processes (one thread each);
* ``batched, half subset``: vmap on 250 + 250 images (a cheaper, noisier fitness).

All produce the same costs for the same data (checked in tests/test_evoshift.py). On a GPU the
vmap path is expected to win by collapsing P small kernels into one; on a shared 2-core CPU the
work is compute-bound and what helps is measured here, not assumed.
"""

from __future__ import annotations

import functools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import torch
from benchlab_evoshift.patterns import decode, dimension
from benchlab_evoshift.population import Fitness, SearchData

from benchlab.plugins import get_registry

POPSIZE = 8


def _fitness(splits, batched: bool, size: int = 500) -> Fitness:
    victim = get_registry().create("victims", "graynet")
    order = torch.randperm(len(splits.train), generator=torch.Generator().manual_seed(0))
    data = SearchData(splits.train.subset(order[:size]), splits.train.subset(order[size : 2 * size]),
                      torch.ones(size, dtype=torch.bool))
    build = functools.partial(victim.build, splits.info.input_shape, splits.info.num_classes)  # picklable
    return Fitness(data, build, victim.recipe.override(epochs=5), seed=3, batched=batched)


@pytest.fixture(scope="module")
def setting():
    splits = get_registry().create("datasets", "digits").load()
    rng = np.random.default_rng(0)
    patterns = [decode(rng.random(dimension(10, 1, 1)), 10, 1, (1, 8, 8)) for _ in range(POPSIZE)]
    return splits, patterns


def _one_thread():
    torch.set_num_threads(1)


def _two_processes(pool, fitness, patterns):
    halves = [patterns[: len(patterns) // 2], patterns[len(patterns) // 2 :]]
    return np.concatenate([f.result() for f in [pool.submit(fitness, half) for half in halves]])


def test_population_fitness_throughput(benchmark, best_of, setting, one_thread):
    splits, patterns = setting
    sequential, batched = _fitness(splits, False), _fitness(splits, True)
    half = _fitness(splits, True, size=250)
    batched(patterns[:2])  # warm-up: first vmap call
    seconds = {"sequential": best_of(lambda: sequential(patterns), repeats=2)}
    benchmark.pedantic(batched, args=(patterns,), rounds=2, iterations=1)
    seconds["batched"] = min(benchmark.stats.stats.data)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context, initializer=_one_thread) as pool:
        _two_processes(pool, sequential, patterns[:2])  # warm-up: start the workers, import torch
        seconds["two processes"] = best_of(lambda: _two_processes(pool, sequential, patterns), repeats=2)
    seconds["batched, half subset"] = best_of(lambda: half(patterns), repeats=2)
    rates = {name: POPSIZE / value for name, value in seconds.items()}
    speedups = {name: seconds["sequential"] / value for name, value in seconds.items()}
    benchmark.extra_info.update({f"{name} evals/s": rate for name, rate in rates.items()})
    benchmark.extra_info.update({f"{name} speed-up": ratio for name, ratio in speedups.items()})
    print(f"\nEvoShift fitness, population {POPSIZE}, GrayNet 5 epochs on digits, one thread per process:")
    for name in seconds:
        print(f"  {name:22s} {seconds[name]:7.2f} s  {rates[name]:6.2f} evals/s  x{speedups[name]:.2f}")
