"""Progress inside cells: phases reported by the core, fit and plugins reach the driver on every
executor; the driver's display stays quiet off a terminal; the time left comes from recorded cells."""

import io
from collections import Counter

import pytest

import benchlab
from benchlab import progress as progress_module
from benchlab import progress_display
from benchlab.cell import Settings
from benchlab.eta import Durations, estimates
from benchlab.matrix import load_matrix
from benchlab.progress import Phase, Progress
from benchlab.progress_display import MatrixProgress
from benchlab.runner import run_matrix
from benchlab.store import ResultsStore

EPOCHS = 3
SMALL = f"""
name = "small"
seeds = [0]
[recipe]
epochs = {EPOCHS}
[[block]]
name = "small"
datasets = ["digits:per_class=40"]
attacks = ["clean", "fgsm"]
defenses = ["erm", "weight-decay"]
victims = ["mlp"]
"""


def _events(sink_events: list[Phase]) -> dict[str, list[Phase]]:
    by_cell: dict[str, list[Phase]] = {}
    for event in sink_events:
        by_cell.setdefault(event.cell_id, []).append(event)
    return by_cell


def test_reporter_throttles_steps_but_never_a_new_phase_or_the_last_step():
    seen = []

    class Sink:
        interval = 3600.0  # nothing within a phase gets through on time alone

        def __call__(self, event):
            seen.append(event.text())

    reporter = Progress("id", "label", Sink())
    assert list(reporter.steps(range(5), "batch")) == [0, 1, 2, 3, 4]
    with reporter.within("crafting"):
        reporter.phase("trial", 0, 2)
        reporter.phase("trial", 1, 2)
        reporter.phase("trial", 2, 2)
    assert seen == ["batch 0/5", "batch 5/5", "crafting", "crafting › trial 0/2", "crafting › trial 2/2"]
    Progress().phase("nothing listens")  # no sink: a no-op


def test_a_failing_sink_is_dropped_and_never_fails_the_caller():
    calls = []

    def sink(event):
        calls.append(event)
        raise ConnectionError("driver gone")

    reporter = Progress("id", "label", sink)
    reporter.phase("a")
    reporter.phase("b")
    assert len(calls) == 1


# test_parallel_executors_fill_the_same_rows (tests/test_runner.py) checks that the epochs of process and
# Ray workers reach the driver too: its runs are already paid for. Any executor passes this test.
@pytest.mark.parametrize("executor", ["local"])
def test_cells_report_their_phases_epochs_and_batches_to_the_driver(tmp_path, registry, monkeypatch, executor):
    monkeypatch.setattr(progress_module, "SEND_INTERVAL", 0.0)  # every step, to check each epoch
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    events: list[Phase] = []
    summary = run_matrix(load_matrix(str(path), registry), Settings(out=str(tmp_path / "run")), executor=executor,
                         workers=2, show_progress=False, on_progress=events.append)
    assert summary.counts["ok"] == 4
    rows = {r["cell_id"]: r for r in ResultsStore(tmp_path / "run").rows()}
    by_cell = _events(events)
    assert by_cell.keys() == rows.keys()
    for cell_id, cell_events in by_cell.items():
        row = rows[cell_id]
        texts = [e.text() for e in cell_events]
        assert texts[0] == "loading data"
        assert cell_events[0].label.startswith(f"{row['dataset']} | {row['attack']} | {row['defense']}")
        epochs = [e.k for e in cell_events if e.name == "training epoch"]
        # the cell that trains the shared model reports every epoch; the one that restores it none
        assert epochs == (list(range(EPOCHS + 1)) if not row["metrics"]["cache_hit_model"] else [])
        assert all(e.n == EPOCHS for e in cell_events if e.name == "training epoch")
        if row["attack"] == "fgsm":
            batches = [e for e in cell_events if e.name == "attacking › batch"]
            assert batches and batches[-1].k == batches[-1].n and texts.index("attacking") < texts.index(
                batches[-1].text())


def test_off_a_terminal_a_line_per_new_phase_at_most_every_interval(monkeypatch):
    out = io.StringIO()  # not a tty
    display = MatrixProgress("m", {"a": None, "b": None}, 1, file=out)
    monkeypatch.setattr(progress_display, "LOG_INTERVAL", 0.0)
    for k in range(3):
        display.phase(Phase("a", "cell a", "training epoch", k, 3))
    display.phase(Phase("a", "cell a", "attacking"))
    monkeypatch.setattr(progress_display, "LOG_INTERVAL", 3600.0)
    display.phase(Phase("b", "cell b", "loading data"))  # too soon after the last line
    display.close()
    lines = [line for line in out.getvalue().replace("\r", "\n").splitlines() if line.startswith("  cell")]
    assert lines == ["  cell a: training epoch 0/3", "  cell a: attacking"]


def test_off_a_terminal_a_long_phase_writes_its_progress_again_after_the_heartbeat(monkeypatch):
    out = io.StringIO()
    display = MatrixProgress("m", {"a": None}, 1, file=out)
    monkeypatch.setattr(progress_display, "LOG_INTERVAL", 0.0)
    monkeypatch.setattr(progress_display, "HEARTBEAT_INTERVAL", 0.0)
    for k in range(3):
        display.phase(Phase("a", "cell a", "training epoch", k, 3))
    display.close()
    lines = [line for line in out.getvalue().replace("\r", "\n").splitlines() if line.startswith("  cell")]
    assert lines == [f"  cell a: training epoch {k}/3" for k in range(3)]


def _row(attack, defense, seconds, hit=True, threat="evasion", recipe=None):
    return {"status": "ok", "dataset": "digits:per_class=40", "threat": threat, "attack": attack, "defense": defense,
            "victim": "mlp", "duration_s": seconds, "params": {"recipe": recipe or {"epochs": 2}},
            "metrics": {"cache_hit_model": hit}}


def test_estimates_use_the_closest_recorded_cells(registry, tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(SMALL.replace(f"epochs = {EPOCHS}", "epochs = 2"))
    cells = {(c.attack.split(":")[0], c.defense): c for c in load_matrix(str(path), registry).expand(registry)}
    fgsm = cells["fgsm", "erm"].attack
    rows = [_row(fgsm, "erm", 10.0, hit=False), _row(fgsm, "erm", 2.0), _row(fgsm, "erm", 4.0),
            _row("pgd", "weight-decay", 7.0), _row(fgsm, "erm", 99.0, recipe={"epochs": 50}),
            _row("clean", "erm", 30.0, threat="poison")]
    durations = Durations(rows)
    assert durations.estimate(cells["fgsm", "erm"], cold=True) == 10.0  # the cell that builds the model
    assert durations.estimate(cells["fgsm", "erm"], cold=False) == 3.0  # median of the cached ones
    assert durations.estimate(cells["fgsm", "weight-decay"], cold=True) == 7.0  # same defense and victim
    assert durations.estimate(cells["clean", "weight-decay"], cold=True) == 30.0  # same threat
    # the first cell of each artifact group builds it; each cell gets a number
    got = estimates(list(cells.values()), rows)
    assert got[cells["fgsm", "erm"].cell_id] == 10.0
    assert got[cells["fgsm", "weight-decay"].cell_id] == 7.0
    assert Durations([]).estimate(cells["fgsm", "erm"], cold=True) is None


def test_driver_shows_the_time_left_by_recorded_durations():
    out = io.StringIO()
    display = MatrixProgress("m", {"a": 60.0, "b": 120.0, "c": None}, 2, file=out)
    assert display.eta() == 90.0
    display.done({"cell_id": "b"}, Counter(ok=1))
    assert display.eta() == 30.0
    display.close()
    assert "01:30 left by similar recorded cells (+1 never recorded)" in out.getvalue()


def test_progress_is_public():
    assert benchlab.Progress is Progress and benchlab.Phase is Phase
