"""Leaderboards from results-as-data: mean ± std over seeds, worst-case ranking, sweeps, files."""

import json

import pandas as pd
import pytest

from benchlab.leaderboard import COVERAGE, WORST, render, sweeps, table


def _frame():
    rows = []
    for seed, noise in ((0, 0.0), (1, 0.1)):
        for defense, base in (("erm", 0.9), ("robust", 0.8)):
            for attack, drop in (("none", 0.0), ("pgd:eps=0.1", 0.3), ("pgd:eps=0.2", 0.5), ("pgd:eps=0.3", 0.7)):
                if defense == "robust":
                    drop /= 3
                rows.append({"cell_id": f"{seed}{defense}{attack}", "matrix": "m", "block": "b", "dataset": "digits",
                             "threat": "evasion", "attack": attack, "defense": defense, "victim": "mlp",
                             "seed": seed, "status": "ok", "reason": None, "duration_s": 1.0,
                             "robust_acc": base - drop + noise, "test_acc": base + noise})
    rows.append({**rows[0], "cell_id": "na", "victim": "random-forest", "status": "n/a", "robust_acc": None,
                 "attack": "pgd:eps=0.1", "reason": "needs gradients"})
    return pd.DataFrame(rows)


def test_table_means_stds_and_worst_case_ranking():
    result = table(_frame(), "robust_acc")
    assert list(result.index) == [("robust", "mlp"), ("erm", "mlp")]  # robust has the better worst case
    assert result.loc[("erm", "mlp"), "none"] == pytest.approx(0.95)
    assert result.loc[("erm", "mlp"), WORST] == pytest.approx(0.25)
    assert result.attrs["std"].loc[("erm", "mlp"), "none"] == pytest.approx(0.0707, abs=1e-3)


def test_sweeps_are_detected_from_attack_parameters():
    found = sweeps(_frame(), "robust_acc")
    assert list(found) == ["pgd eps"]
    erm = found["pgd eps"].query("defense == 'erm'")
    assert list(erm["value"]) == [0.1, 0.2, 0.3] and erm["mean"].is_monotonic_decreasing


def test_render_writes_tables_plots_and_manifest(tmp_path):
    written = render(_frame(), tmp_path, title="demo", manifest={"git_commit": "abc"})
    names = {p.name for p in written}
    assert {"digits-evasion.csv", "digits-evasion.md", "digits-evasion.png", "results.csv", "README.md",
            "manifest.json", "digits-evasion-sweep-pgd-eps.png"} <= names
    markdown = (tmp_path / "digits-evasion.md").read_text()
    assert "95.0 ± 7.1" in markdown
    assert "n/a" in (tmp_path / "README.md").read_text() or "n/a" in markdown
    assert json.loads((tmp_path / "manifest.json").read_text())["git_commit"] == "abc"
    csv = pd.read_csv(tmp_path / "digits-evasion.csv")
    assert list(csv["rank"]) == [1, 2]


def test_index_names_why_cells_were_not_run(tmp_path):
    frame = _frame()
    failed = {**frame.iloc[0].to_dict(), "cell_id": "boom", "status": "failed", "robust_acc": None,
              "reason": "RuntimeError: out of memory\nTraceback (most recent call last): ..."}
    render(pd.concat([frame, pd.DataFrame([failed])]), tmp_path, title="demo")
    index = (tmp_path / "README.md").read_text()
    assert "- 1 n/a: needs gradients" in index
    assert "- 1 failed: RuntimeError: out of memory" in index and "Traceback" not in index


def test_render_of_an_empty_run(tmp_path):
    render(pd.DataFrame(), tmp_path, title="empty")
    assert "No results yet." in (tmp_path / "README.md").read_text()


def test_a_row_spared_by_incompatible_attacks_ranks_below_fully_attacked_rows():
    frame = _frame()
    # a random forest only evaluated without attack (the pgd cells are n/a for it): 99% "worst case"
    spared = {**frame.iloc[0].to_dict(), "cell_id": "rf", "victim": "random-forest", "robust_acc": 0.99}
    result = table(pd.concat([frame, pd.DataFrame([spared])], ignore_index=True), "robust_acc")
    assert list(result.index)[-1] == ("erm", "random-forest")
    assert result.loc[("erm", "random-forest"), COVERAGE] == 1 and result.loc[("robust", "mlp"), COVERAGE] == 4


def test_render_with_blocks_writes_one_table_per_block_and_shares_cells(tmp_path):
    frame = _frame()
    sweep_ids = set(frame["cell_id"])
    headline_ids = set(frame[frame["attack"].isin(["none", "pgd:eps=0.1"])]["cell_id"])
    render(frame, tmp_path, title="demo", blocks={"eps sweep": sweep_ids, "headline": headline_ids})
    assert (tmp_path / "eps-sweep-digits-evasion.md").exists() and (tmp_path / "headline-digits-evasion.md").exists()
    headline = pd.read_csv(tmp_path / "headline-digits-evasion.csv")
    assert [c for c in headline.columns if c.startswith("pgd")] == ["pgd:eps=0.1"]  # the shared cells only
    assert "## headline: digits — evasion" in (tmp_path / "README.md").read_text()


def test_rerender_removes_only_the_files_the_previous_render_wrote(tmp_path):
    frame = _frame()
    render(frame, tmp_path, title="demo", blocks={"a": set(frame["cell_id"]), "b": set(frame["cell_id"])})
    (tmp_path / "notes.md").write_text("mine")
    render(frame, tmp_path, title="demo")  # no blocks now: the per-block files are stale
    names = {p.name for p in tmp_path.iterdir()}
    assert "digits-evasion.md" in names and "notes.md" in names
    assert not any(name.startswith(("a-", "b-")) for name in names)
