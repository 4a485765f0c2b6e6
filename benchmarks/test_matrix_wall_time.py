"""Wall time of the ``smoke`` matrix on the local executor (one thread per cell), and how much faster
its rerun is, which finds every cell done (``resume``: first run / rerun).

The timed call is the whole first run (the registry loaded, no artifact cached); cells run one
after the other, so the load beside the run weighs on this figure more than on the ratios of the
other benchmarks.
"""

import time

from benchlab.cell import Settings
from benchlab.matrix import load_matrix
from benchlab.plugins import get_registry
from benchlab.runner import run_matrix


def test_smoke_matrix_first_run_and_rerun(benchmark, tmp_path):
    matrix = load_matrix("smoke", get_registry())
    settings = Settings(out=str(tmp_path / "run"))
    summary = benchmark.pedantic(run_matrix, args=(matrix, settings), kwargs={"show_progress": False},
                                 rounds=1, iterations=1)
    first = benchmark.stats.stats.median
    tick = time.perf_counter()
    rerun = run_matrix(matrix, settings, show_progress=False)
    rerun_s = time.perf_counter() - tick
    assert rerun.skipped == len(rerun.cells)  # the rerun computes nothing
    benchmark.extra_info.update(cells=len(summary.cells), ran=sum(summary.counts.values()), first_run_s=first,
                                rerun_s=rerun_s, resume_speedup=first / rerun_s)
    print(f"\nsmoke: {len(summary.cells)} cells, first run {first:.1f} s, rerun {rerun_s:.1f} s")
