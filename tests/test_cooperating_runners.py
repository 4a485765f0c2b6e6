"""Several runners on one --out: leases in the results database split the cells between them."""

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from benchlab.leases import Leases, owner_is_gone
from benchlab.matrix import load_matrix
from benchlab.store import ResultsStore

MATRIX = """
name = "shared"
seeds = [0, 1]
[recipe]
epochs = {epochs}
[[block]]
name = "shared"
datasets = ["digits:per_class=30"]
attacks = ["clean", "uniform-noise", "label-flip", "fgsm"]
defenses = ["erm"]
victims = ["mlp", "random-forest:trees=5"]
"""


def _runner(tmp_path, name, epochs, lease_seconds):
    matrix = tmp_path / "shared.toml"
    matrix.write_text(MATRIX.format(epochs=epochs))
    env = {**os.environ, "BENCHLAB_LEASE_SECONDS": str(lease_seconds)}
    return subprocess.Popen([sys.executable, "-m", "benchlab.cli", "run", "--matrix", str(matrix),
                             "--out", str(tmp_path / "out"), "--leaderboard-to", str(tmp_path / f"lb-{name}")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _ok_count(stdout):
    return int(re.search(r"ran \d+ \((\d+) ok", stdout).group(1))


def _ok_rows(out):
    return [r for r in ResultsStore(out).rows() if r["status"] == "ok"]


@pytest.mark.slow  # two runners in subprocesses
def test_two_runners_started_together_compute_disjoint_cells_and_finish_the_matrix(tmp_path, registry):
    runners = [_runner(tmp_path, name, epochs=2, lease_seconds=60) for name in "ab"]
    outputs = [r.communicate(timeout=600) for r in runners]
    for runner, (_stdout, stderr) in zip(runners, outputs):
        assert runner.returncode == 0, stderr[-3000:]
    rows = _ok_rows(tmp_path / "out")
    matrix = load_matrix(str(tmp_path / "shared.toml"), registry)
    assert len(rows) == sum(c.reason is None for c in matrix.expand(registry)) > 8
    counts = [_ok_count(stdout) for stdout, _ in outputs]
    assert sum(counts) == len(rows) and min(counts) > 0  # each cell computed once, by one of them
    assert len({r["manifest"]["runner"] for r in rows}) == 2
    with sqlite3.connect(tmp_path / "out" / "results.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0  # all released


def _leased(db_path, pid):
    try:
        with sqlite3.connect(db_path, timeout=5) as db:
            return db.execute("SELECT cell_id, expires FROM leases WHERE owner LIKE ?", (f"%:{pid}:%",)).fetchone()
    except sqlite3.OperationalError:  # no database or table yet
        return None


@pytest.mark.slow  # two runners
def test_a_killed_runners_cell_is_taken_over_by_the_other_runner(tmp_path, registry):
    lease = 6
    first, second = (_runner(tmp_path, name, epochs=8, lease_seconds=lease) for name in "ab")
    db_path = tmp_path / "out" / "results.sqlite"
    deadline = time.time() + 300
    while not (_leased(db_path, first.pid) and _leased(db_path, second.pid)) and time.time() < deadline:
        assert first.poll() is None and second.poll() is None, "a runner ended before both had leased a cell"
        time.sleep(0.2)
    first.send_signal(signal.SIGSTOP)  # frozen: it can neither finish nor renew the cell it holds
    held = _leased(db_path, first.pid)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert held is not None
    stdout, stderr = second.communicate(timeout=600)
    assert second.returncode == 0, stderr[-3000:]
    rows = {r["cell_id"]: r for r in _ok_rows(tmp_path / "out")}
    matrix = load_matrix(str(tmp_path / "shared.toml"), registry)
    assert len(rows) == sum(c.reason is None for c in matrix.expand(registry))
    taken_over = rows[held[0]]
    assert taken_over["manifest"]["runner"].split(":")[1] == str(second.pid)
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0


def test_a_lease_of_a_runner_gone_from_this_machine_is_taken_over_at_once(tmp_path, registry):
    matrix = load_matrix("smoke", registry)
    cell = next(c for c in matrix.expand(registry) if c.reason is None)
    ResultsStore(tmp_path)
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = Leases(tmp_path / "results.sqlite", seconds=600, owner=f"{socket.gethostname()}:{ended.stdout.strip()}:x")
    remote = Leases(tmp_path / "results.sqlite", seconds=600, owner="another-host:1:y")
    assert gone.claim(cell) and owner_is_gone(gone.owner) and not owner_is_gone(remote.owner)
    mine = Leases(tmp_path / "results.sqlite", seconds=600)
    assert mine.next_expiry([cell.cell_id]) == 0.0 and mine.claim(cell)  # no wait for a dead local runner
    mine.release(cell.cell_id)
    assert remote.claim(cell) and not mine.claim(cell)  # another machine's runner: its lease holds


def test_a_lease_is_exclusive_until_released_or_expired(tmp_path, registry):
    matrix = load_matrix("smoke", registry)
    cell = next(c for c in matrix.expand(registry) if c.reason is None)
    ResultsStore(tmp_path)
    mine = Leases(tmp_path / "results.sqlite", seconds=0.5)
    other = Leases(tmp_path / "results.sqlite", seconds=0.5)
    assert mine.claim(cell) and mine.claim(cell)  # re-claiming one's own lease renews it
    assert not other.claim(cell) and cell.cell_id in other.held_elsewhere
    mine.release(cell.cell_id)
    assert other.claim(cell) and not mine.claim(cell)
    time.sleep(0.6)  # the other runner stops renewing: its lease lapses
    assert mine.claim(cell)
    row = {"cell_id": cell.cell_id, "matrix": "smoke", "block": cell.block, "dataset": cell.dataset,
           "threat": cell.threat, "attack": cell.attack, "defense": cell.defense, "victim": cell.victim,
           "seed": cell.seed, "status": "ok", "metrics": {}, "params": {}, "manifest": {},
           "started_at": time.time(), "duration_s": 0.0}
    ResultsStore(tmp_path).record(row, lease_owner=mine.owner)  # the row and the lease's end: one transaction
    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0
    assert not other.claim(cell) and cell.cell_id in other.done_elsewhere  # recorded since it started
