"""Leaderboards from results-as-data: mean ± std over seeds, worst-case ranking, sweeps, files."""

import json

import pandas as pd
import pytest

from benchlab.leaderboard import WORST, render, sweeps, table


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


def test_render_of_an_empty_run(tmp_path):
    render(pd.DataFrame(), tmp_path, title="empty")
    assert "No results yet." in (tmp_path / "README.md").read_text()
