"""Executors on a CPU-bound matrix: ``process`` with 2 workers and ``ray`` with 2 workers against
``local``, and a warm rerun (every cell finished) against the cold run.

Each contender runs the same matrix into a fresh run directory (cold: empty database and cache),
in interleaved rounds of the same session; the ratios of the median times are the figures reported
(``extra_info``), not the seconds.
On a 2-core machine the ideal ``process`` ratio is 0.5; start-up (spawning workers, importing torch
in each, a local Ray cluster) and the artifact schedule (a cell waits for its poison or model) add
to it. Ray is optional: its contender is skipped without it.
"""

import importlib.util
import statistics
import subprocess
import sys

import pytest

MATRIX = """
name = "executors"
seeds = [0, 1, 2]
[recipe]
epochs = 30
[[block]]
name = "cpu-bound"
datasets = ["digits"]
attacks = ["clean", "uniform-noise", "label-flip", "fgsm"]
defenses = ["erm", "weight-decay"]
victims = ["lenet5"]
"""


# One cold run in a fresh interpreter, as `benchlab run` starts: a pre-warmed interpreter would spare
# the local executor the first-use imports (torch's compiler stack under torch.optim, scikit-learn
# under the digits loader) that each process-pool worker pays.
RUN = """
import sys, time
from benchlab.cell import Settings
from benchlab.matrix import load_matrix
from benchlab.plugins import get_registry
from benchlab.runner import run_matrix
path, out, executor, workers = sys.argv[1:]
matrix = load_matrix(path, get_registry())
tick = time.perf_counter()
summary = run_matrix(matrix, Settings(out=out), executor=executor, workers=int(workers), show_progress=False)
seconds = time.perf_counter() - tick
assert summary.unfinished == 0 and summary.failed == 0, summary.counts
print(seconds)
"""


def _timed_run(path, out, executor: str = "local", workers: int = 1) -> float:
    """Seconds of ``run_matrix`` alone (imports and matrix loading excluded) in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", RUN, str(path), str(out), executor, str(workers)],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


ROUNDS = 3


@pytest.mark.timeout(3600)  # three rounds of cold runs of the matrix (and Ray clusters' starts) on a shared machine
def test_executors_against_local(benchmark, tmp_path):
    path = tmp_path / "executors.toml"
    path.write_text(MATRIX)
    contenders = {"local": {}, "process": {"executor": "process", "workers": 2}}
    if importlib.util.find_spec("ray") is not None:
        contenders["ray"] = {"executor": "ray", "workers": 2}
    # Interleaved rounds, medians: the machine's speed drifts by a third between minutes.
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(ROUNDS):
        for name, options in contenders.items():
            times[name].append(_timed_run(path, tmp_path / f"{name}-{round_}", **options))
            print(f"round {round_}: {name} {times[name][-1]:.1f} s", flush=True)  # each figure as measured
    median = {name: statistics.median(values) for name, values in times.items()}
    warm = min(_timed_run(path, tmp_path / f"local-{round_}") for round_ in range(ROUNDS))  # only checks
    info = benchmark.extra_info
    info.update(local_s=median["local"], process_2_s=median["process"],
                process_vs_local_ratio=median["process"] / median["local"],
                warm_s=warm, warm_vs_cold_ratio=warm / median["local"])
    if "ray" in median:
        info.update(ray_2_s=median["ray"], ray_vs_process_ratio=median["ray"] / median["process"])
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(", ".join(f"{k} {v:.3f}" for k, v in info.items()), flush=True)
