"""Results identity: rows and artifacts tied to the code that made them, versions never mixed,
declared metrics on the leaderboard, and databases of earlier versions still readable."""

import importlib
import json
import sqlite3
import sys
import textwrap

import pandas as pd
import pytest
from click.testing import CliRunner

import benchlab
from benchlab import code_identity, plugins
from benchlab.cell import Settings
from benchlab.cli import _render, main
from benchlab.leaderboard import COVERAGE, WORST, render, table
from benchlab.lineage import split_current
from benchlab.matrix import installed_cell_id, load_matrix
from benchlab.metrics import TableMetrics
from benchlab.plugins import Registry
from benchlab.runner import run_matrix
from benchlab.store import ResultsStore
from benchlab.testing import check_class

# A poison plugin whose strength lives in a helper module imported inside a function (the code
# identity must follow it), and a module of the same package the attack never imports.
SHIFT_INIT = '''
import benchlab
from .attack import ShiftPoison

@benchlab.hookimpl
def register_attacks(register):
    register(ShiftPoison)
'''
SHIFT_ATTACK = '''
import benchlab
import torch

class ShiftPoison(benchlab.PoisonAttack):
    """Adds a constant to every training pixel (a test plugin)."""
    name = "idtest-shift"
    params = (benchlab.Param("scale", float, 1.0, "multiplies the helper's amount"),)

    def craft(self, train, ctx):
        from .helpers import AMOUNT
        x = (train.x + self.p.scale * AMOUNT).clamp(0, 1)
        mask = torch.ones(len(train), dtype=torch.bool)
        return benchlab.PoisonedSet(benchlab.TensorData(x, train.y), mask)
'''
OTHER_INIT = '''
import benchlab

class Darken(benchlab.EvasionAttack):
    """Scales test inputs down (an unrelated test plugin)."""
    name = "idtest-darken"
    needs_gradients = False

    def perturb(self, model, x, y, ctx):
        return x * FACTOR

FACTOR = 0.5

@benchlab.hookimpl
def register_attacks(register):
    register(Darken)
'''
MATRIX = """
name = "identity"
seeds = [0]
[recipe]
epochs = 1
[[block]]
name = "identity"
datasets = ["digits:per_class=20"]
attacks = ["idtest-shift", "idtest-darken"]
defenses = ["erm"]
victims = ["mlp"]
"""


class TempPlugins:
    """Two plugin packages written to a directory, (re)imported and registered through a plugin manager."""

    def __init__(self, root, monkeypatch):
        self.root = root
        self.monkeypatch = monkeypatch
        monkeypatch.syspath_prepend(str(root))
        monkeypatch.setattr(sys, "dont_write_bytecode", True)  # an edit within one second must be seen
        self.write("idtest_shift/__init__.py", SHIFT_INIT)
        self.write("idtest_shift/attack.py", SHIFT_ATTACK)
        self.write("idtest_shift/helpers.py", "AMOUNT = 0.25\n")
        self.write("idtest_shift/unused.py", "NOTHING = 0\n")
        self.write("idtest_other/__init__.py", OTHER_INIT)

    def write(self, name, text):
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))

    def load(self):
        """A fresh import of both packages (as a new process would see them) and a registry with them."""
        for name in [m for m in sys.modules if m.startswith(("idtest_shift", "idtest_other"))]:
            del sys.modules[name]
        importlib.invalidate_caches()
        modules = [importlib.import_module("idtest_shift"), importlib.import_module("idtest_other")]
        pm = plugins.make_plugin_manager(extra_plugins=modules)
        registry = plugins.build_registry(pm)
        self.monkeypatch.setattr(plugins, "_default", lambda: (pm, registry))
        return registry


@pytest.fixture
def temp_plugins(tmp_path, monkeypatch):
    yield TempPlugins(tmp_path / "src", monkeypatch)
    for name in [m for m in sys.modules if m.startswith(("idtest_shift", "idtest_other"))]:
        del sys.modules[name]


def _ids(registry, path):
    cells = load_matrix(str(path), registry).expand(registry)
    return {c.attack: c.cell_id for c in cells}


def test_editing_a_component_recomputes_its_cells_and_rebuilds_its_poison_only(tmp_path, temp_plugins):
    path = tmp_path / "identity.toml"
    path.write_text(MATRIX)
    settings = Settings(out=str(tmp_path / "run"))
    registry = temp_plugins.load()
    summary = run_matrix(load_matrix(str(path), registry), settings, show_progress=False)
    assert summary.counts["ok"] == 2
    first = _ids(registry, path)
    row = next(r for r in ResultsStore(settings.out).rows() if r["attack"] == "idtest-shift")
    assert row["code_version"] and row["params"]["specs"]["attack"] == "idtest-shift:scale=1"  # default recorded
    assert row["params"]["code"]["attack"]["class"] == "idtest_shift.attack.ShiftPoison"
    assert row["params"]["code"]["attack"]["distribution"] is None  # not installed: no distribution

    # Unchanged code, unrelated edits (another plugin; a module the attack never imports): nothing changes.
    temp_plugins.write("idtest_other/__init__.py", OTHER_INIT.replace("FACTOR = 0.5", "FACTOR = 0.25"))
    temp_plugins.write("idtest_shift/unused.py", "NOTHING = 1\n")
    registry = temp_plugins.load()
    second = _ids(registry, path)
    assert second["idtest-shift"] == first["idtest-shift"]
    assert second["idtest-darken"] != first["idtest-darken"]  # the edited plugin's own cell is new
    summary = run_matrix(load_matrix(str(path), registry), settings, show_progress=False)
    assert summary.skipped == 1 and summary.counts["ok"] == 1

    # Editing the helper the attack imports inside craft(): its cell is todo again, its poison is rebuilt.
    temp_plugins.write("idtest_shift/helpers.py", "AMOUNT = 0.5\n")
    registry = temp_plugins.load()
    third = _ids(registry, path)
    assert third["idtest-shift"] != first["idtest-shift"] and third["idtest-darken"] == second["idtest-darken"]
    summary = run_matrix(load_matrix(str(path), registry), settings, show_progress=False)
    assert summary.skipped == 1 and summary.counts["ok"] == 1
    rows = [r for r in ResultsStore(settings.out).rows() if r["attack"] == "idtest-shift"]
    assert len(rows) == 2  # the old row is kept
    new = next(r for r in rows if r["cell_id"] == third["idtest-shift"])
    assert new["metrics"]["cache_hit_poison"] is False and new["code_version"] != row["code_version"]

    # The leaderboard over every row (no --matrix) recognises the installed code's rows by their specs,
    # shows them and lists the superseded one.
    assert installed_cell_id(registry, new["dataset"], new["attack"], new["defense"], new["victim"], new["seed"],
                             new["params"]["recipe"]) == new["cell_id"]
    dest = tmp_path / "board"
    _render(settings.out, dest, "identity")
    results = pd.read_csv(dest / "results.csv")
    assert {"version", "superseded", "attack_code"} <= set(results.columns)
    shift = results[results["attack"] == "idtest-shift"].set_index("cell_id")
    assert not shift.loc[third["idtest-shift"], "superseded"] and shift.loc[first["idtest-shift"], "superseded"]
    poison = pd.read_csv(next(dest.glob("*-poison.csv")), dtype=str)
    assert poison["idtest-shift"].tolist() == [f"{100 * new['metrics']['test_acc']:.1f}"]
    assert poison["version"].tolist() == [new["code_version"]]
    index = (dest / "README.md").read_text()
    assert "## Superseded rows" in index and row["code_version"] in index
    _render(settings.out, dest, "identity", include_superseded=True)
    assert list(dest.glob("superseded-1-*-poison.csv"))


def _evasion_rows(versions_and_values):
    rows = []
    for version, seed, value, finished in versions_and_values:
        rows.append({"cell_id": f"{version}-{seed}", "matrix": "m", "block": "b", "dataset": "digits",
                     "threat": "evasion", "attack": "pgd", "defense": "erm", "victim": "mlp", "seed": seed,
                     "status": "ok", "reason": None, "duration_s": 1.0, "version": version, "recipe": "",
                     "finished_at": finished, "robust_acc": value, "test_acc": 0.9})
    return pd.DataFrame(rows)


def test_two_versions_of_one_seed_never_aggregate(tmp_path):
    # v1 ran seeds 0 and 1; v2 (the installed code) so far only seed 0.
    frame = _evasion_rows([("v1", 0, 0.40, 1.0), ("v1", 1, 0.42, 2.0), ("v2", 0, 0.60, 3.0)])
    current, superseded = split_current(frame, installed={"v2-0", "v2-1"})
    assert set(current["cell_id"]) == {"v2-0"} and set(superseded["cell_id"]) == {"v1-0", "v1-1"}
    render(frame, tmp_path, installed={"v2-0", "v2-1"})
    shown = pd.read_csv(tmp_path / "digits-evasion.csv", dtype=str)
    assert shown["pgd"].tolist() == ["60.0"]  # neither 50.0 ± 14.1 nor a mean over v1's seed 1
    # Without installed code (a removed plugin), the most recently finished identity is current.
    newest, _ = split_current(frame.assign(finished_at=[5.0, 6.0, 3.0]))
    assert set(newest["cell_id"]) == {"v1-0", "v1-1"}
    with pytest.raises(ValueError, match="different code versions"):
        table(frame, "robust_acc")


class Backdoor(benchlab.PoisonAttack):
    """A test poison declaring a lower-is-better headline metric."""

    name = "idtest-backdoor"
    declared_metrics = (benchlab.Metric("idtest_asr", False, "share of triggered test images sent to the target",
                                        headline=True),)


def _poison_frame():
    rows = []
    for seed in (0, 1):
        for defense, acc, asr in (("strong", 0.85, 0.10), ("weak", 0.91, 0.95), ("middling", 0.88, 0.50)):
            rows.append({"cell_id": f"{defense}{seed}", "matrix": "m", "block": "backdoors", "dataset": "digits",
                         "threat": "poison", "attack": "idtest-backdoor", "defense": defense, "victim": "mlp",
                         "seed": seed, "status": "ok", "reason": None, "duration_s": 1.0,
                         "test_acc": acc + 0.01 * seed, "idtest_asr": asr + 0.01 * seed})
    return pd.DataFrame(rows)


def test_a_declared_headline_ranks_its_block_in_its_direction(tmp_path):
    registry = Registry()
    registry.add("attacks", Backdoor, plugin="tests")
    metrics = TableMetrics.from_registry(registry, attacks=["idtest-backdoor"])
    assert metrics.choose("poison", ["idtest-backdoor"]) == "idtest_asr"
    render(_poison_frame(), tmp_path / "headline", metrics=metrics)
    shown = pd.read_csv(tmp_path / "headline" / "digits-poison.csv", dtype=str)
    assert shown["defense"].tolist() == ["strong", "middling", "weak"]  # lowest attack success first
    assert shown["idtest-backdoor (clean acc)"].tolist() == ["85.5 ± 0.7", "88.5 ± 0.7", "91.5 ± 0.7"]
    assert "(idtest_asr, %, lower is better" in (tmp_path / "headline" / "README.md").read_text()
    result = table(_poison_frame(), "idtest_asr", higher_is_better=False)
    assert result.loc[("weak", "mlp"), WORST] == pytest.approx(0.955) and result[COVERAGE].eq(1).all()

    # --metric (or a block's metric key) overrides the headline: clean accuracy puts the weak defense first.
    forced = TableMetrics.from_registry(registry, forced="test_acc", attacks=["idtest-backdoor"])
    render(_poison_frame(), tmp_path / "forced", metrics=forced)
    assert pd.read_csv(tmp_path / "forced" / "digits-poison.csv")["defense"].tolist()[0] == "weak"
    by_block = TableMetrics.from_registry(registry, blocks=[{"name": "b", "metric": "test_acc"}],
                                          attacks=["idtest-backdoor"])
    assert by_block.choose("poison", ["idtest-backdoor"], block="b") == "test_acc"
    with pytest.raises(benchlab.SpecError, match="unknown metric 'idtest_ars'; did you mean 'idtest_asr'"):
        TableMetrics.from_registry(registry, forced="idtest_ars")


OLD_SCHEMA = """
CREATE TABLE cells (
    cell_id TEXT PRIMARY KEY, matrix TEXT NOT NULL, block TEXT NOT NULL, dataset TEXT NOT NULL,
    threat TEXT NOT NULL, attack TEXT NOT NULL, defense TEXT NOT NULL, victim TEXT NOT NULL,
    seed INTEGER NOT NULL, status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'n/a')),
    metrics TEXT NOT NULL, reason TEXT, params TEXT NOT NULL, manifest TEXT NOT NULL,
    started_at REAL NOT NULL, finished_at REAL NOT NULL, duration_s REAL NOT NULL
);
CREATE INDEX cells_by_matrix ON cells (matrix, dataset, threat);
"""


def test_a_database_of_the_previous_schema_opens_and_renders(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with sqlite3.connect(run / "results.sqlite") as db:
        db.executescript(OLD_SCHEMA)
        db.execute("INSERT INTO cells VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   ("old1", "adhoc", "cell", "digits", "evasion", "none", "erm", "mlp", 0, "ok",
                    json.dumps({"robust_acc": 0.93, "test_acc": 0.93}), None, json.dumps({"recipe": {"epochs": 1}}),
                    json.dumps({"git_commit": "abc"}), 1.0, 2.0, 1.0))
    store = ResultsStore(run)
    (row,) = store.rows()
    assert row["code_version"] is None
    assert store.frame()["version"].tolist() == ["unknown"]

    runner = CliRunner()
    shown = runner.invoke(main, ["show", "--out", str(run)])
    assert shown.exit_code == 0 and "unknown" in shown.output
    board = runner.invoke(main, ["leaderboard", "--out", str(run), "--to", str(tmp_path / "board")])
    assert board.exit_code == 0, board.output
    table_csv = pd.read_csv(tmp_path / "board" / "digits-evasion.csv", dtype=str)
    assert table_csv["none"].tolist() == ["93.0"] and table_csv["version"].tolist() == ["unknown"]
    assert "Superseded" not in (tmp_path / "board" / "README.md").read_text()


def test_list_json_shows_declared_metrics_and_code():
    result = CliRunner().invoke(main, ["list", "attacks", "random-pixels", "--json"])
    (record,) = json.loads(result.output)
    metrics = {m["name"]: m for m in record["metrics"]}
    assert metrics["pattern_hijack"]["higher_is_better"] is False and metrics["pattern_hijack"]["help"]
    assert record["code"]["distribution"] == "benchlab" and len(record["code"]["source"]) == 16


def test_code_identity_is_the_module_and_what_it_imports_from_its_own_package():
    from benchlab_evoshift.evoshift import EvoShift

    modules = code_identity._closure((EvoShift.__module__,), "benchlab_evoshift", frozenset())
    assert "benchlab_evoshift.search" in modules and "benchlab_evoshift.vibce" not in modules
    core = code_identity._closure(code_identity.CORE_ROOTS, "benchlab", code_identity.INFRASTRUCTURE)
    assert {"benchlab.cell", "benchlab.train", "benchlab.interfaces"} <= set(core)
    assert not set(core) & code_identity.INFRASTRUCTURE


def test_metric_declarations_are_checked_by_the_contract(registry):
    for kind in ("attacks", "defenses", "victims", "datasets"):
        for cls in registry.classes(kind):
            check_class(cls)
    twice = type("TwoHeadlines", (Backdoor,), {"__doc__": "Two headlines.", "declared_metrics": (
        *Backdoor.declared_metrics, benchlab.Metric("other", True, "another", headline=True))})
    with pytest.raises(AssertionError, match="more than one headline"):
        check_class(twice)
