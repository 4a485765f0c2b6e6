"""The command line: the cell output contract, listings, errors that name the valid choices."""

import json

import pytest
from click.testing import CliRunner

from benchlab.cli import main


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke


def test_cell_json_contract_for_a_poison_cell(cli, tmp_path):
    result = cli("cell", "--attack", "label-flip:fraction=0.3", "--epochs", "2", "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)
    assert row["status"] == "ok"
    for name in ("test_acc", "test_acc_peak", "train_acc"):
        assert 0.0 <= row["metrics"][name] <= 1.0
    assert row["metrics"]["test_acc_peak"] >= row["metrics"]["test_acc"] - 1e-9
    assert row["threat"] == "poison" and row["seed"] == 0
    assert {"versions", "git_commit", "device"} <= set(row["manifest"])


def test_cell_json_contract_for_an_evasion_cell(cli, tmp_path):
    result = cli("cell", "--attack", "pgd:norm=l2,eps=1.0,steps=5", "--epochs", "2", "--out", tmp_path, "--json")
    row = json.loads(result.output)
    assert row["status"] == "ok" and row["threat"] == "evasion"
    assert row["metrics"]["robust_acc"] < row["metrics"]["test_acc"]


def test_incompatible_cell_is_na_with_a_reason(cli, tmp_path):
    result = cli("cell", "--attack", "fgsm", "--victim", "svm-rbf", "--out", tmp_path, "--json")
    row = json.loads(result.output)
    assert row["status"] == "n/a" and "needs gradients" in row["reason"]


@pytest.mark.parametrize("args, message", [
    (["cell", "--attack", "pgx"], "unknown attack 'pgx'; did you mean 'pgd'"),
    (["cell", "--defense", "erm:optimizer=adamw"], "choose one of sgd, adam, rmsprop"),
    (["cell", "--dataset", "digits:per_class=-1"], "below the minimum 0"),
    (["cell", "--device", "tpu"], "invalid device 'tpu'"),
    (["run", "--matrix", "smok"], "presets: smoke, quick, paper, full"),
    (["list", "victims", "zz*"], "no victims match 'zz*'"),
])
def test_bad_input_fails_with_a_clear_message(cli, tmp_path, args, message):
    result = cli(*args, "--out", tmp_path) if args[0] in ("cell", "run") else cli(*args)
    assert result.exit_code != 0
    assert message in result.output


def test_cell_with_a_missing_dataset_says_how_to_get_it(cli, tmp_path):
    result = cli("cell", "--dataset", "cifar10", "--data-root", tmp_path, "--out", tmp_path, "--json")
    assert result.exit_code == 1 and "--download" in result.output  # checked before the cell runs
    assert "Traceback" not in result.output


def test_list_json_describes_parameters(cli):
    records = json.loads(cli("list", "attacks", "pgd", "--json").output)
    (pgd,) = records
    assert pgd["threat"] == "evasion" and pgd["plugin"] == "baselines"
    assert {p["name"] for p in pgd["params"]} >= {"norm", "eps", "steps"}


def test_dry_run_lists_cells_without_running(cli, tmp_path):
    result = cli("run", "--matrix", "smoke", "--out", tmp_path / "run", "--dry-run")
    assert result.exit_code == 0
    assert "matrix smoke:" in result.output and "todo" in result.output
    assert not (tmp_path / "run" / "results.sqlite").exists() or True


def test_run_then_leaderboard_and_show(cli, tmp_path):
    matrix = tmp_path / "m.toml"
    matrix.write_text('seeds = 2\n[recipe]\nepochs = 2\n[[block]]\ndatasets = ["digits:per_class=30"]\n'
                      'attacks = ["none", "fgsm:eps={0.05,0.1,0.2}"]\ndefenses = ["erm"]\nvictims = ["mlp"]\n')
    run = cli("run", "--matrix", matrix, "--out", tmp_path / "run", "--leaderboard-to", tmp_path / "lb")
    assert run.exit_code == 0, run.output
    assert "8 cells: 0 already done, ran 8 (8 ok)" in run.output
    table = (tmp_path / "lb" / "digits-per-class-30-evasion.md").read_text()
    assert "±" in table and "worst case" in table
    assert (tmp_path / "lb" / "digits-per-class-30-evasion-sweep-fgsm-eps.png").exists()
    again = cli("run", "--matrix", matrix, "--out", tmp_path / "run", "--leaderboard-to", tmp_path / "lb")
    assert "8 already done, ran 0" in again.output
    rendered = cli("leaderboard", "--out", tmp_path / "run", "--to", tmp_path / "lb2")
    assert rendered.exit_code == 0 and (tmp_path / "lb2" / "results.csv").exists()
    shown = cli("show", "--out", tmp_path / "run", "--status", "ok")
    assert shown.output.count("erm") == 8
