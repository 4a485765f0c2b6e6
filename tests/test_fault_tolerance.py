"""A worker process that dies under a cell costs only that cell: retried on a fresh pool, then failed."""

from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import pytest
from installed_plugin import install_plugin
from recorded import numbers

from benchlab import worker_pool
from benchlab.cell import RETRIED_FAILURES, Settings
from benchlab.matrix import load_matrix
from benchlab.runner import run_matrix
from benchlab.store import ResultsStore
from benchlab.worker_pool import run_in_processes

KILLER = '''
import os
import signal
from pathlib import Path

import torch

import benchlab


def _crafted(name):
    with open(Path(os.environ["KILLER_MARKERS"]) / "crafts", "a") as log:
        log.write(name + "\\n")


class KillOnce(benchlab.PoisonAttack):
    """Kills its own worker process the first time it crafts (a marker file remembers), then flips labels."""

    name = "test-kill-once"

    def craft(self, train, ctx):
        marker = Path(os.environ["KILLER_MARKERS"]) / "killed-once"
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        _crafted(self.name)
        return benchlab.PoisonedSet(benchlab.TensorData(train.x, (train.y + 1) % 10),
                                    torch.ones(len(train), dtype=torch.bool))


class KillAlways(benchlab.PoisonAttack):
    """Kills its own worker process every time."""

    name = "test-kill-always"

    def craft(self, train, ctx):
        os.kill(os.getpid(), signal.SIGKILL)


@benchlab.hookimpl
def register_attacks(register):
    register(KillOnce)
    register(KillAlways)
'''

MATRIX = """
name = "killer"
seeds = [0]
[recipe]
epochs = 1
[[block]]
name = "killer"
datasets = ["digits:per_class=20"]
attacks = [{attacks}]
defenses = ["erm"]
victims = ["mlp"]
"""


@pytest.fixture
def killer(tmp_path, monkeypatch):
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv("KILLER_MARKERS", str(markers))  # the spawned workers inherit it
    registry = install_plugin(tmp_path / "site", "benchlab_test_killer", KILLER, monkeypatch)
    return registry, markers


def _matrix(tmp_path, registry, attacks):
    path = tmp_path / "killer.toml"
    path.write_text(MATRIX.format(attacks=", ".join(f'"{a}"' for a in attacks)))
    return load_matrix(str(path), registry)


def test_a_worker_killed_mid_cell_costs_that_cell_one_retry_and_the_run_completes(tmp_path, killer):
    registry, markers = killer
    matrix = _matrix(tmp_path, registry, ["test-kill-once", "clean", "uniform-noise"])
    summary = run_matrix(matrix, Settings(out=str(tmp_path / "run")), executor="process", workers=2,
                         show_progress=False)
    assert (markers / "killed-once").exists()  # a worker really died under the cell
    assert summary.counts["ok"] == 3 and summary.unfinished == 0 and summary.failed == 0
    assert (markers / "crafts").read_text().split() == ["test-kill-once"]  # crafted once, on the retry
    rows = {r["attack"]: r for r in ResultsStore(tmp_path / "run").rows()}
    assert rows["test-kill-once"]["manifest"]["worker_deaths"] == 1
    # the retried cell's numbers are those of an undisturbed run
    run_matrix(matrix, Settings(out=str(tmp_path / "local")), show_progress=False)
    local = {r["attack"]: numbers(r) for r in ResultsStore(tmp_path / "local").rows()}
    assert {a: numbers(r) for a, r in rows.items()} == local


@pytest.mark.slow  # three pools started in turn
def test_a_cell_that_always_kills_its_worker_is_recorded_as_lost_and_the_others_finish(tmp_path, killer):
    registry, _ = killer
    cells = _matrix(tmp_path, registry, ["test-kill-always", "clean"]).expand(registry)
    rows = {r["attack"]: r for r in run_in_processes(cells, Settings(out=str(tmp_path / "run")), workers=2,
                                                      retries=1)}
    assert rows["clean"]["status"] == "ok"
    lost = rows["test-kill-always"]
    assert lost["status"] == "failed" and lost["manifest"]["failure_kind"] == "lost"
    assert lost["reason"].startswith("WorkerLost: the worker process died while running this cell alone 2 times")
    assert "lost" in RETRIED_FAILURES  # a rerun (say, with fewer workers) tries it again


@pytest.mark.slow  # starts a local Ray cluster
def test_ray_retries_a_lost_task_then_records_it_as_lost(tmp_path, killer, monkeypatch):
    pytest.importorskip("ray")
    registry, markers = killer
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))  # Ray's workers find the plugin's entry point
    matrix = _matrix(tmp_path, registry, ["test-kill-once", "test-kill-always", "clean"])
    summary = run_matrix(matrix, Settings(out=str(tmp_path / "run")), executor="ray", workers=2,
                         show_progress=False)
    rows = {r["attack"]: r for r in ResultsStore(tmp_path / "run").rows()}
    assert summary.unfinished == 0 and len(rows) == 3
    assert (markers / "killed-once").exists() and rows["test-kill-once"]["status"] == "ok"
    assert rows["clean"]["status"] == "ok"
    lost = rows["test-kill-always"]
    assert lost["status"] == "failed" and lost["manifest"]["failure_kind"] == "lost"
    assert lost["reason"].startswith("WorkerLost: Ray lost this cell 3 times")


class _PoolThatDiesOnItsThirdSubmit:
    """A stand-in for the process pool: the first pool's first cell hangs until the pool's third
    submit, which finds the pool broken (its worker died meanwhile), the race a real pool has when a
    worker dies between a finished cell and the next submit. Other cells finish at once."""

    made = 0

    def __init__(self, workers, mp_context=None):
        type(self).made += 1
        self.dies = type(self).made == 1
        self.submits = 0
        self.hanging = None

    def shutdown(self, wait=True, cancel_futures=False):
        pass

    def submit(self, fn, cell, settings):
        self.submits += 1
        future = Future()
        if self.dies and self.submits == 1:
            self.hanging = future
        elif self.dies and self.submits == 3:
            self.hanging.set_exception(BrokenProcessPool("a worker died"))
            raise BrokenProcessPool("a worker died")
        else:
            future.set_result(fn(cell, settings))
        return future


def test_a_worker_death_noticed_at_submit_requeues_the_cells_instead_of_ending_the_run(tmp_path, killer,
                                                                                         monkeypatch):
    registry, _ = killer
    cells = _matrix(tmp_path, registry, ["clean", "uniform-noise", "random-noise"]).expand(registry)
    monkeypatch.setattr(worker_pool, "ProcessPoolExecutor", _PoolThatDiesOnItsThirdSubmit)
    monkeypatch.setattr(worker_pool, "run_cell", lambda cell, settings: {"cell_id": cell.cell_id, "manifest": {}})
    rows = list(run_in_processes(cells, Settings(out=str(tmp_path / "run")), workers=2))
    assert sorted(r["cell_id"] for r in rows) == sorted(c.cell_id for c in cells)
    assert [r["manifest"].get("worker_deaths") for r in rows].count(1) == 1  # the hanging cell, rerun
