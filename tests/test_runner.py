"""The matrix runner: recording, failures, determinism, caching, kill-and-resume, executors."""

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from recorded import numbers

import benchlab
import benchlab.progress
from benchlab.cell import Settings, run_cell
from benchlab.heap import keep_freed_memory
from benchlab.matrix import Matrix, load_matrix
from benchlab.runner import ArtifactSchedule, artifact_group, run_matrix
from benchlab.store import ResultsStore

TINY = """
name = "tiny"
seeds = [0]
[recipe]
epochs = 2
[[block]]
name = "tiny"
datasets = ["digits:per_class=40"]
attacks = ["clean", "uniform-noise", "none", "fgsm"]
defenses = ["erm", "weight-decay"]
victims = ["mlp", "random-forest:trees=10"]
"""


def _matrix(tmp_path, text=TINY, name="tiny.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


class ExplodingAttack(benchlab.PoisonAttack):
    """Always raises (to check that one failing cell never kills the matrix)."""

    name = "test-exploding"

    def craft(self, train, ctx):
        raise RuntimeError("boom from the test plugin")


@pytest.fixture
def exploding(registry):
    registry.add("attacks", ExplodingAttack, plugin="tests")
    yield "test-exploding"
    del registry.entries["attacks"]["test-exploding"]


def test_matrix_records_every_cell_and_a_failing_plugin_does_not_stop_it(tmp_path, registry, exploding):
    text = TINY.replace('attacks = ["clean"', f'attacks = ["{exploding}", "clean"')
    matrix = load_matrix(str(_matrix(tmp_path, text)), registry)
    summary = run_matrix(matrix, Settings(out=str(tmp_path / "run")), show_progress=False)
    rows = ResultsStore(tmp_path / "run").rows()
    assert len(rows) == len(summary.cells) == 5 * 2 * 2
    by_status = {s: [r for r in rows if r["status"] == s] for s in ("ok", "failed", "n/a")}
    assert {r["attack"] for r in by_status["failed"]} == {exploding}
    assert all("boom from the test plugin" in r["reason"] for r in by_status["failed"])
    # weight-decay cannot train a random forest, fgsm cannot differentiate one: n/a with a reason
    assert by_status["n/a"] and all(r["reason"] for r in by_status["n/a"])
    assert all(r["victim"].startswith("random-forest") for r in by_status["n/a"])
    ok = by_status["ok"]
    assert ok and all(0 <= r["metrics"]["test_acc"] <= 1 for r in ok)
    manifest = ok[0]["manifest"]
    assert manifest["versions"]["torch"] == torch.__version__.split("+")[0] or manifest["versions"]["torch"]
    assert manifest["device"].startswith("cpu") and "git_commit" in manifest
    assert {r["manifest"]["heap_kept"] for r in rows} == {keep_freed_memory()}  # benchlab.heap, every row
    # the evasion cells and the clean poison cell of one (defense, victim) share one trained model
    shared = [r for r in ok if r["attack"].split(":")[0] in ("clean", "none", "fgsm")
              and r["defense"] == "erm" and r["victim"] == "mlp"]
    assert sorted(r["metrics"]["cache_hit_model"] for r in shared) == [False, True, True]


def test_rerun_skips_finished_cells(tmp_path, registry):
    matrix = load_matrix(str(_matrix(tmp_path)), registry)
    settings = Settings(out=str(tmp_path / "run"))
    first = run_matrix(matrix, settings, show_progress=False)
    before = {r["cell_id"]: r["finished_at"] for r in ResultsStore(settings.out).rows()}
    tick = time.perf_counter()
    second = run_matrix(matrix, settings, show_progress=False)
    assert second.skipped == len(first.cells) and sum(second.counts.values()) == 0
    assert time.perf_counter() - tick < 5
    assert {r["cell_id"]: r["finished_at"] for r in ResultsStore(settings.out).rows()} == before


def _cell(registry, attack="uniform-noise", defense="erm", victim="mlp", seed=0):
    block = {"name": "t", "datasets": ["digits:per_class=40"], "attacks": [attack], "defenses": [defense],
             "victims": [victim], "seeds": [seed], "recipe": {"epochs": 2}, "budgets": {}}
    (cell,) = Matrix("t", [block]).expand(registry)
    return cell


def test_same_seed_gives_identical_metrics_and_another_seed_differs(tmp_path, registry):
    rows = [run_cell(_cell(registry, "uniform-noise"), Settings(out=str(tmp_path / name))) for name in "ab"]
    assert rows[0]["status"] == "ok", rows[0]["reason"]
    assert numbers(rows[0]) == numbers(rows[1])
    other = run_cell(_cell(registry, "uniform-noise", seed=1), Settings(out=str(tmp_path / "c")))
    assert numbers(other) != numbers(rows[0])


def test_poison_is_crafted_once_and_reused_by_other_defenses_and_victims(tmp_path, registry):
    settings = Settings(out=str(tmp_path))
    first = run_cell(_cell(registry, "uniform-noise", "erm", "mlp"), settings)
    second = run_cell(_cell(registry, "uniform-noise", "weight-decay", "lenet5"), settings)
    assert first["metrics"]["cache_hit_poison"] is False
    assert second["metrics"]["cache_hit_poison"] is True
    assert len(list((tmp_path / "cache" / "poison").glob("*.safetensors"))) == 1


def test_corrupted_cache_file_is_detected_and_rebuilt(tmp_path, registry, caplog):
    from benchlab import cell as cell_module

    settings = Settings(out=str(tmp_path))
    cell = _cell(registry, "uniform-noise")
    first = run_cell(cell, settings)
    for path in (tmp_path / "cache").rglob("*.safetensors"):
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF  # flip bits in the tensor payload
        path.write_bytes(bytes(data))
    cell_module._fitted_memo.clear()
    with caplog.at_level("WARNING"):
        second = run_cell(cell, settings)
    assert second["status"] == "ok"
    assert second["metrics"]["cache_hit_poison"] is False and second["metrics"]["cache_hit_model"] is False
    assert "corrupted" in caplog.text
    assert numbers(second) == numbers(first)  # rebuilt deterministically
    cell_module._fitted_memo.clear()
    third = run_cell(cell, settings)
    assert third["metrics"]["cache_hit_poison"] is True and third["metrics"]["cache_hit_model"] is True


def _count_rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM cells WHERE status = 'ok'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_killed_run_resumes_without_recomputing_or_losing_rows(tmp_path):
    matrix = _matrix(tmp_path, TINY.replace("epochs = 2", "epochs = 6"))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "benchlab.cli", "run", "--matrix", str(matrix), "--out", str(out),
               "--leaderboard-to", str(tmp_path / "lb")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while _count_rows(out / "results.sqlite") < 3 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, f"the run ended before it could be killed: {process.communicate()[1][-3000:]}"
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = {r["cell_id"]: r["finished_at"] for r in ResultsStore(out).rows()}
    assert 3 <= len(before) < 16
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = ResultsStore(out).rows()
    assert len(rows) == 16 and len({r["cell_id"] for r in rows}) == 16
    after = {r["cell_id"]: r["finished_at"] for r in rows}
    assert all(after[k] == v for k, v in before.items()), "a finished cell was recomputed or lost"
    assert f"{len(before)} already done" in result.stdout


@pytest.mark.parametrize("executor", ["process", pytest.param("ray", marks=pytest.mark.slow)])
def test_parallel_executors_fill_the_same_rows(tmp_path, registry, monkeypatch, executor):
    if executor == "ray":
        pytest.importorskip("ray")
    matrix = load_matrix(str(_matrix(tmp_path)), registry)
    local = run_matrix(matrix, Settings(out=str(tmp_path / "local")), show_progress=False)
    monkeypatch.setattr(benchlab.progress, "SEND_INTERVAL", 0.0)  # every epoch reaches the driver
    events = []
    summary = run_matrix(matrix, Settings(out=str(tmp_path / executor)), executor=executor, workers=2,
                         show_progress=False, on_progress=events.append)
    assert summary.counts == local.counts and summary.unfinished == 0
    trained = {r["cell_id"] for r in ResultsStore(tmp_path / executor).rows()
               if r["status"] == "ok" and r["victim"] == "mlp" and not r["metrics"]["cache_hit_model"]}
    epochs = {c: [e.k for e in events if e.cell_id == c and e.name == "training epoch"] for c in trained}
    assert trained and all(ks == [0, 1, 2] for ks in epochs.values())  # the workers' epochs, in the driver
    expected = {r["cell_id"]: numbers(r) for r in ResultsStore(tmp_path / "local").rows()}
    got = {r["cell_id"]: numbers(r) for r in ResultsStore(tmp_path / executor).rows()}
    assert got.keys() == expected.keys()
    assert got == expected  # identical numerics on every executor: identical metrics
    rows = ResultsStore(tmp_path / executor).rows()
    assert {r["manifest"]["torch_threads"] for r in rows} == {1}
    # clean, none and fgsm share one clean-trained mlp per defense: the cache lock makes the workers
    # train it once between them, whichever worker gets there first
    for defense in ("erm", "weight-decay"):
        shared = [r for r in rows if r["victim"] == "mlp" and r["defense"] == defense
                  and r["attack"].split(":")[0] in ("clean", "none", "fgsm")]
        assert len(shared) == 3 and sum(not r["metrics"]["cache_hit_model"] for r in shared) == 1


def test_parallel_executors_start_a_cell_only_after_its_artifact_is_built(registry):
    cells = load_matrix("smoke", registry).expand(registry)
    schedule = ArtifactSchedule(cells)
    groups = [artifact_group(c) for c in cells]
    assert [artifact_group(c) for c in schedule.ready] == list(dict.fromkeys(groups))  # one each, in order
    assert len(set(groups)) < len(cells)  # the smoke matrix has groups with several cells
    # Finish cells in an order unrelated to submission; every release must follow its group's first cell.
    built, released, queue = set(), [], list(reversed(schedule.ready))
    while queue:
        cell = queue.pop(0)
        built.add(artifact_group(cell))
        for follower in schedule.finished(cell):
            assert artifact_group(follower) in built
            released.append(follower)
            queue.append(follower)
    started = schedule.ready + released
    assert sorted(c.cell_id for c in started) == sorted(c.cell_id for c in cells)  # each exactly once


def test_threads_option_applies_per_cell_is_recorded_and_restored(tmp_path, registry):
    text = TINY.replace('attacks = ["clean", "uniform-noise", "none", "fgsm"]', 'attacks = ["clean"]')
    matrix = load_matrix(str(_matrix(tmp_path, text)), registry)
    before = torch.get_num_threads()
    run_matrix(matrix, Settings(out=str(tmp_path / "run")), threads=before + 1, show_progress=False)
    rows = [r for r in ResultsStore(tmp_path / "run").rows() if r["status"] == "ok"]
    assert rows and {r["manifest"]["torch_threads"] for r in rows} == {before + 1}
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be >= 1, not 0"):
        run_matrix(matrix, Settings(out=str(tmp_path / "run")), threads=0, show_progress=False)
    with pytest.raises(ValueError, match="threads=4 exceeds the 2 CPUs of the local Ray cluster"):
        run_matrix(matrix, Settings(out=str(tmp_path / "run")), executor="ray", workers=2, threads=4,
                   show_progress=False)


class _SignClassifier(benchlab.Classifier):
    """Class 1 when the first pixel exceeds 0.5: an attack's effect is known exactly."""

    def logits(self, x):
        first = x.flatten(1)[:, :1]
        return torch.cat([0.5 - first, first - 0.5], 1)


class _HalfFlipAttack(benchlab.EvasionAttack):
    """Moves the first pixel across 0.5 on even inputs only; odd inputs fail (r = 0)."""

    name = "test-half-flip"
    minimal_norm = True
    params = (benchlab.Param("norm", str, "l2"),)

    def perturb(self, model, x, y, ctx):
        x_adv = x.clone()
        x_adv[::2, 0, 0, 0] = 1.0 - x[::2, 0, 0, 0]
        return x_adv


def test_rho_adv_flipped_averages_only_over_the_inputs_the_attack_flipped():
    from benchlab.cell import _evasion_metrics
    from benchlab.data import DataSplits, TensorData

    x = torch.full((4, 1, 2, 2), 0.5)
    x[:, 0, 0, 0] = torch.tensor([0.2, 0.2, 0.9, 0.9])
    y = _SignClassifier().predict(x)
    splits = DataSplits(train=TensorData(x, y), test=TensorData(x, y), info=None)
    fitted = benchlab.Fitted(classifier=_SignClassifier())
    ctx = type("Ctx", (), {"seed": 0, "progress": benchlab.Progress()})()
    metrics = _evasion_metrics(_HalfFlipAttack(), fitted, splits, ctx=ctx)
    ratios = torch.tensor([0.6, 0.0, 0.8, 0.0]) / x.flatten(1).norm(dim=1)
    assert metrics["robust_acc"] == pytest.approx(0.5)
    assert metrics["rho_adv"] == pytest.approx(ratios.mean().item())
    assert metrics["rho_adv_flipped"] == pytest.approx(ratios[::2].mean().item())
