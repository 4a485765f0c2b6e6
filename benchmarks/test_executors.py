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

import pytest

from benchlab.cell import Settings
from benchlab.matrix import load_matrix
from benchlab.plugins import get_registry
from benchlab.runner import run_matrix

MATRIX = """
name = "executors"
seeds = [0, 1, 2]
[recipe]
epochs = 10
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


@pytest.mark.timeout(3600)  # three cold runs of the matrix (and a Ray cluster's start) on a shared machine
def test_executors_against_local(benchmark, tmp_path, one_thread):
    path = tmp_path / "executors.toml"
    path.write_text(MATRIX)
    matrix = load_matrix(str(path), get_registry())
    info = benchmark.extra_info
    info["local_s"] = local = _timed_run(matrix, tmp_path / "local")
    print(f"local {local:.1f} s", flush=True)  # each figure as it is measured
    process = benchmark.pedantic(lambda: _timed_run(matrix, tmp_path / "process", executor="process", workers=2),
                                 rounds=1, iterations=1)
    info.update(process_2_s=process, process_vs_local_ratio=process / local)
    print(f"process (2 workers) {process:.1f} s: {process / local:.2f} x local", flush=True)
    warm = _timed_run(matrix, tmp_path / "local")  # every cell finished: only the check and the skip
    info.update(warm_s=warm, warm_vs_cold_ratio=warm / local)
    print(f"warm rerun {warm:.2f} s: {warm / local:.3f} x cold", flush=True)
    if importlib.util.find_spec("ray") is not None:
        ray = _timed_run(matrix, tmp_path / "ray", executor="ray", workers=2)
        info.update(ray_2_s=ray, ray_vs_process_ratio=ray / process)
        print(f"ray (2 workers) {ray:.1f} s: {ray / process:.2f} x process", flush=True)

