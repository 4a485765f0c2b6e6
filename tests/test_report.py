"""benchlab report: the papers' numbers beside rows the runner wrote, verdicts computed from them."""

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from benchlab.cell import Settings
from benchlab.matrix import Matrix, load_matrix
from benchlab.paper_results import PaperResultsError, load_paper
from benchlab.plugins import get_plugin_manager, get_registry
from benchlab.report import NOT_REPRODUCED, PRESET, REPRODUCED, recorded_rows, registered_papers, render
from benchlab.runner import run_matrix
from benchlab.store import ResultsStore, rows_frame

BLOCK = {"name": "toy-table", "datasets": ["digits:per_class=40"], "attacks": ["clean", "label-flip:fraction=0.8"],
         "defenses": ["erm"], "victims": ["random-forest:trees=10"], "seeds": [0, 1], "recipe": {}, "budgets": {}}
UNRUN = {**BLOCK, "name": "toy-unrun", "attacks": ["uniform-noise"]}

PAPER = """
[paper]
key = "toy"
title = "A toy paper"
citation = "Nobody, *Toy*, 2000."

[[table]]
key = "t1"
title = "Table 1: label flips hurt"
where = "Table 1, page 3"
paper_data = "MNIST"
differences = "digits, 400 images"
blocks = ["toy-*"]
metric = "test_acc"
units = "%"
scale = 100

[[table.cell]]
key = "clean"
row = "forest"
column = "clean"
value = 97.0
std = 0.5
attack = "clean"
defense = "erm"
victim = "random-forest.*"

[[table.cell]]
key = "flip"
row = "forest"
column = "80 % flipped"
value = 20.0
attack = "label-flip:fraction=0\\\\.8"
defense = "erm"
victim = "random-forest.*"

[[table.claim]]
kind = "gap"
text = "flipping 80 % of the labels costs at least 30 points"
a = "clean"
b = "flip"
min = 30

[[table.claim]]
kind = "order"
text = "clean above flipped"
cells = ["clean", "flip"]
"""


def _verdict_line(text: str, claim: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| {claim}"))


def _unrun_line(text: str, block: str) -> str:
    lines = text.split("## Blocks not run")[1].splitlines()
    return next(line for line in lines if line.startswith(f"- `{block}`: 2 cells"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    matrix = Matrix("toy", [dict(BLOCK)])
    summary = run_matrix(matrix, Settings(out=str(out), device="cpu", matrix="toy"), threads=1)
    assert summary.counts["ok"] == 4
    return out


def test_report_renders_paper_beside_ours_and_verdict_follows_the_rows(run_dir):
    registry = get_registry()
    matrix = Matrix("toy", [dict(BLOCK), dict(UNRUN)])
    paper = load_paper(PAPER, "toy.toml")
    store = ResultsStore(run_dir)
    text = render([paper], rows_frame(store.rows()), matrix, registry, "runs/toy")
    assert "| forest | 80 % flipped | 20 |" in text and "(n=2)" in text  # paper value beside ours, n shown
    assert f"**{REPRODUCED}**" in _verdict_line(text, "flipping 80 %")
    # Listed with its cost: with no durations, fixed guesses for 2 crafts and 2 fits; with this run's
    # durations, the forest's fits are priced from its recorded ones (no uniform-noise craft was recorded).
    assert "(estimates: 4 default)" in _unrun_line(text, "toy-unrun")
    priced = render([paper], rows_frame(store.rows()), matrix, registry, "runs/toy", store.rows(), ("runs/toy",))
    assert "(estimates: 2 default, 2 recorded)" in _unrun_line(priced, "toy-unrun")
    assert render([paper], rows_frame(store.rows()), matrix, registry, "runs/toy") == text  # deterministic

    # One recorded value changes: the flipped forest is as good as the clean one -> the verdicts flip.
    clean = {row["seed"]: row["metrics"]["test_acc"] for row in store.rows() if row["attack"] == "clean"}
    with sqlite3.connect(store.path) as db:
        for cell_id, seed, metrics in db.execute("SELECT cell_id, seed, metrics FROM cells WHERE attack != 'clean'"):
            metrics = {**json.loads(metrics), "test_acc": clean[seed] + 0.01}
            db.execute("UPDATE cells SET metrics = ? WHERE cell_id = ?", (json.dumps(metrics), cell_id))
    changed = render([paper], rows_frame(store.rows()), matrix, registry, "runs/toy")
    assert f"**{NOT_REPRODUCED}**" in _verdict_line(changed, "flipping 80 %")
    assert f"**{NOT_REPRODUCED}**" in _verdict_line(changed, "clean above flipped")


REPO = Path(__file__).resolve().parents[1]
# REPRODUCTION.md is rendered by `benchlab report --out reproduction` with these `--durations-from`.
DURATIONS = ("leaderboards/quick", "leaderboards/smoke", "reproduction/calibration")


def test_committed_report_is_the_render_of_the_committed_results_and_follows_them(tmp_path):
    shutil.copy(REPO / "reproduction" / "results.sqlite", tmp_path)  # never opened in place
    registry, store = get_registry(), ResultsStore(tmp_path)
    papers, matrix = registered_papers(get_plugin_manager()), load_matrix(PRESET, registry)
    durations = store.rows() + [row for folder in DURATIONS for row in recorded_rows(REPO / folder)]
    text = render(papers, rows_frame(store.rows()), matrix, registry, "reproduction", durations,
                  ("reproduction", *DURATIONS))
    assert text == (REPO / "REPRODUCTION.md").read_text(encoding="utf-8"), \
        "REPRODUCTION.md is stale: run `benchlab report --out reproduction " + \
        " ".join(f"--durations-from {folder}" for folder in DURATIONS) + "`"

    def deepconfuse_verdict(report):
        section = report.split("#### `deepconfuse-table1-fig6-digits`")[1]
        return _verdict_line(section, "DeepConfuse drops the surrogate CNN's test accuracy by at least 50 points")

    assert f"**{REPRODUCED}**" in deepconfuse_verdict(text)
    # One committed value changes: the CNN trained on DeepConfuse's digits scores like clean training.
    with sqlite3.connect(store.path) as db:
        rows = db.execute("SELECT cell_id, metrics FROM cells WHERE block = 'deepconfuse-table1-fig6-digits' "
                          "AND attack LIKE 'deepconfuse%' AND victim = 'deepconfuse-cnn'").fetchall()
        assert rows
        for cell_id, metrics in rows:
            db.execute("UPDATE cells SET metrics = ? WHERE cell_id = ?",
                       (json.dumps({**json.loads(metrics), "test_acc": 0.98}), cell_id))
    changed = render(papers, rows_frame(store.rows()), matrix, registry, "reproduction")
    assert f"**{NOT_REPRODUCED}**" in deepconfuse_verdict(changed)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('value = 97.0', 'value = "97"'), "value must be a number"),
    (lambda t: t.replace('kind = "gap"', 'kind = "exec"'), "kind 'exec' is not one of"),
    (lambda t: t.replace('b = "flip"', 'b = "nope"'), "unknown cells ['nope']"),
    (lambda t: t.replace('attack = "clean"', 'attack = "("'), "is not a regular expression"),
    (lambda t: t.replace('key = "toy"', ''), "key must be a non-empty string"),
    (lambda t: t + "\n[[[", "not valid TOML"),
])
def test_bad_paper_files_fail_with_one_line(edit, message):
    with pytest.raises(PaperResultsError, match=None) as error:
        load_paper(edit(PAPER), "toy.toml")
    assert message in str(error.value) and "toy.toml" in str(error.value) and "\n" not in str(error.value)


def test_shipped_paper_files_name_blocks_of_the_paper_preset():
    from benchlab.plugins import get_plugin_manager
    from benchlab.report import block_members, registered_papers

    registry = get_registry()
    blocks = {block["name"]: set() for block in load_matrix("paper", registry).blocks}
    papers = registered_papers(get_plugin_manager())
    assert {"deepconfuse", "lwa"} <= {paper.key for paper in papers}
    for paper in papers:
        for table in paper.tables:
            assert block_members(blocks, table.blocks), (paper.key, table.key)


def test_report_command_prices_from_durations_folders_and_names_a_folder_without_rows(run_dir, tmp_path):
    from click.testing import CliRunner

    from benchlab.cli import main

    dest = tmp_path / "R.md"
    result = CliRunner().invoke(main, ["report", "--out", str(run_dir), "--durations-from", str(run_dir),
                                       "--to", str(dest)])
    assert result.exit_code == 0, result.output
    assert f"recorded in `{run_dir}`, `{run_dir}`" in dest.read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(main, ["report", "--out", str(run_dir), "--durations-from", str(empty),
                                       "--to", str(dest)])
    assert result.exit_code != 0 and "neither a run directory" in result.output
    assert "Traceback" not in result.output
