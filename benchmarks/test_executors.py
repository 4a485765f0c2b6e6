"""Executors on a CPU-bound matrix: ``process`` with 2 workers and ``ray`` with 2 workers against
``local``, and a warm rerun (every cell finished) against the cold run.

Each contender runs the same matrix into a fresh run directory (cold: empty database and cache),
timed in the same session; the ratios are the figures reported (``extra_info``), not the seconds.
On a 2-core machine the ideal ``process`` ratio is 0.5; start-up (spawning workers, importing torch
in each, a local Ray cluster) and the artifact schedule (a cell waits for its poison or model) add
to it. Ray is optional: its contender is skipped without it.
"""

import importlib.util
import time

from benchlab.cell import Settings
from benchlab.matrix import load_matrix
from benchlab.plugins import get_registry
from benchlab.runner import run_matrix

MATRIX = """
name = "executors"
seeds = [0, 1]
[recipe]
epochs = 4
[[block]]
name = "cpu-bound"
datasets = ["digits"]
attacks = ["clean", "uniform-noise", "label-flip", "fgsm"]
defenses = ["erm", "weight-decay"]
victims = ["lenet5"]
"""


def _timed_run(matrix, out, **options) -> float:
    tick = time.perf_counter()
    summary = run_matrix(matrix, Settings(out=str(out)), show_progress=False, **options)
    seconds = time.perf_counter() - tick
    assert summary.unfinished == 0 and summary.failed == 0
    return seconds


def test_executors_against_local(benchmark, tmp_path, one_thread):
    path = tmp_path / "executors.toml"
    path.write_text(MATRIX)
    matrix = load_matrix(str(path), get_registry())
    local = _timed_run(matrix, tmp_path / "local")
    process = benchmark.pedantic(lambda: _timed_run(matrix, tmp_path / "process", executor="process", workers=2),
                                 rounds=1, iterations=1)
    warm = _timed_run(matrix, tmp_path / "local")  # every cell finished: only the check and the skip
    info = {"cells": len(matrix.expand(get_registry())), "local_s": local, "process_2_s": process,
            "process_vs_local": process / local, "warm_vs_cold": warm / local}
    if importlib.util.find_spec("ray") is not None:
        ray = _timed_run(matrix, tmp_path / "ray", executor="ray", workers=2)
        info.update(ray_2_s=ray, ray_vs_process=ray / process)
    benchmark.extra_info.update(info)
    print({k: round(v, 3) for k, v in info.items()})

