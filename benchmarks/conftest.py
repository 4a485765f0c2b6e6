"""Shared benchmark helpers: ratios are measured in the same run, on a pinned thread count.

Every benchmark reports a ratio between two ways of doing the same work, both timed here, so a
noisy or busy machine slows both sides alike; absolute seconds are recorded but never asserted.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import pytest
import torch

from benchlab.heap import keep_freed_memory

_load_at_start = os.getloadavg()


def pytest_benchmark_update_machine_info(config, machine_info):
    """What the figures were taken on, for benchmarks/render.py: cores and the load beside the run
    (1-minute load average at the start and at the end of the session) and the torch build."""
    machine_info["cpu_count"] = os.cpu_count()
    machine_info["load_average_start"] = _load_at_start[0]
    machine_info["load_average_end"] = os.getloadavg()[0]
    machine_info["torch"] = torch.__version__


def best_of(function: Callable[[], object], repeats: int = 3, warmup: bool = False) -> float:
    """The fastest of ``repeats`` timed calls (the least disturbed by other processes)."""
    if warmup:
        function()  # first-call allocations and kernel selection are not what we measure
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        function()
        times.append(time.perf_counter() - tick)
    return min(times)


def median_times(functions: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of each function, timed interleaved round after round after one warm-up
    call each, so a burst of load from elsewhere hits every contender instead of one."""
    for function in functions.values():
        function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            tick = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - tick)
    return {name: statistics.median(values) for name, values in times.items()}


@pytest.fixture(name="best_of")
def best_of_fixture():
    return best_of


@pytest.fixture
def one_thread():
    """One intra-op thread for the test: on a shared 2-core machine torch's thread pool spin-waits
    and small graphs run 10x slower, which makes ratios meaningless."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def kept_heap() -> bool:
    """Benchmarks run the way a cell runs: with :mod:`benchlab.heap`'s malloc thresholds
    (``BENCHLAB_KEEP_HEAP=0`` measures glibc's defaults instead)."""
    return keep_freed_memory()
