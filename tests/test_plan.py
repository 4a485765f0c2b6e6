"""benchlab plan: durations learned from recorded rows, fallbacks, the simulated schedule, the command."""

import re

import pytest
from click.testing import CliRunner

from benchlab.cli import main
from benchlab.matrix import Matrix
from benchlab.plan import DEFAULT_SECONDS, DurationModel, calibration_cells, make_plan
from benchlab.store import ResultsStore


def _row(attack, defense, victim, dataset="digits", threat="poison", epochs=5, **metrics):
    spent = sum(v for k, v in metrics.items() if k.startswith("seconds_"))
    return {"status": "ok", "threat": threat, "attack": attack, "defense": defense, "victim": victim,
            "dataset": dataset, "params": {"recipe": {"epochs": epochs}}, "metrics": metrics,
            "duration_s": spent + 1.0}


def _cells(registry, attacks, defenses=("erm",), victims=("mlp",), datasets=("digits",), seeds=(0,), epochs=5):
    block = {"name": "b", "datasets": list(datasets), "attacks": list(attacks), "defenses": list(defenses),
             "victims": list(victims), "seeds": list(seeds), "recipe": {"epochs": epochs}, "budgets": {}}
    return Matrix("m", [block]).expand(registry)


def test_durations_fall_back_from_exact_to_coarser_to_other_dataset_to_default(registry):
    (exact,) = _cells(registry, ["uniform-noise:eps=0.3"])
    (other_eps,) = _cells(registry, ["uniform-noise:eps=0.2"])
    rows = [_row(exact.attack, "erm", "mlp", seconds_craft=2.0, cache_hit_poison=False, seconds_fit=10.0,
                 cache_hit_model=False),
            _row("uniform-noise:eps=0.1", "erm", "mlp", dataset="other", seconds_craft=8.0, cache_hit_poison=False,
                 seconds_fit=40.0, cache_hit_model=True)]  # a restored model says nothing of training
    model = DurationModel(rows, sizes={"digits": 100.0, "big": 400.0, "other": 100.0})
    assert (model.estimate("craft", exact).seconds, model.estimate("craft", exact).source) == (2.0, "recorded")
    assert model.estimate("fit", exact).seconds == 10.0
    (longer,) = _cells(registry, ["uniform-noise:eps=0.3"], epochs=10)
    assert model.estimate("fit", longer).seconds == pytest.approx(20.0)  # scaled by epochs
    assert model.estimate("craft", other_eps).source == "coarser"  # the same attack with other parameters
    assert model.estimate("craft", other_eps).seconds == pytest.approx(2.0)
    (big,) = _cells(registry, ["uniform-noise:eps=0.1"], datasets=["digits"])
    big = big.__class__(**{**big.__dict__, "dataset": "big"})
    estimate = model.estimate("craft", big)  # only recorded on smaller datasets: scaled by size
    assert estimate.source == "other dataset" and estimate.seconds == pytest.approx(4 * 8.0)
    (random_pixels,) = _cells(registry, ["random-pixels"])
    assert model.estimate("craft", random_pixels).source == "default"
    assert model.estimate("craft", random_pixels).seconds == DEFAULT_SECONDS["craft"]
    assert model.estimate("overhead", exact).seconds == pytest.approx(1.0)


def test_a_defense_recorded_on_another_dataset_outranks_other_defenses_on_this_one(registry):
    (pgd_at,) = _cells(registry, ["clean"], defenses=["pgd-at"], datasets=["fashion-mnist"])
    rows = [_row("clean", "erm", "mlp", dataset="fashion-mnist", seconds_fit=10.0, cache_hit_model=False),
            _row("clean", "erm", "mlp", seconds_fit=2.0, cache_hit_model=False),
            _row("clean", "pgd-at", "mlp", seconds_fit=30.0, cache_hit_model=False)]  # digits only
    estimate = DurationModel(rows).estimate("fit", pgd_at)
    # pgd-at's digits time, scaled by how much slower fashion-mnist trains erm (5x): not erm's 10 s
    assert estimate.source == "other dataset" and estimate.seconds == pytest.approx(150.0)


def test_a_defense_never_recorded_on_a_victim_costs_erm_on_it_times_the_defense_factor(registry):
    (pgd_at_lenet,) = _cells(registry, ["clean"], defenses=["pgd-at"], victims=["lenet5"])
    rows = [_row("clean", "erm", "mlp", seconds_fit=2.0, cache_hit_model=False),
            _row("clean", "pgd-at", "mlp", seconds_fit=20.0, cache_hit_model=False),  # 10x erm on the MLP
            _row("clean", "erm", "lenet5", seconds_fit=4.0, cache_hit_model=False)]
    estimate = DurationModel(rows, registry=registry).estimate("fit", pgd_at_lenet)
    assert estimate.source == "coarser" and estimate.seconds == pytest.approx(40.0)  # not erm's 4 s


def test_a_cell_without_recipe_epochs_is_scaled_to_its_victims_default_epochs(registry):
    block = {"name": "b", "datasets": ["digits"], "attacks": ["clean"], "defenses": ["erm"], "victims": ["lenet5"],
             "seeds": [0], "recipe": {}, "budgets": {}}
    (cell,) = Matrix("m", [block]).expand(registry)
    rows = [_row("clean", "erm", "lenet5", epochs=5, seconds_fit=10.0, cache_hit_model=False)]
    default = registry.get("victims", "lenet5").recipe.epochs
    assert DurationModel(rows, registry=registry).estimate("fit", cell).seconds == pytest.approx(10.0 * default / 5)


def test_estimates_scale_with_steps_and_trees_against_the_recorded_parameters(registry):
    (pgd,) = _cells(registry, ["pgd"])  # default 10 steps
    (forest,) = _cells(registry, ["clean"], victims=["random-forest"])  # default 300 trees
    rows = [_row("pgd:steps=5", "erm", "mlp", threat="evasion", seconds_attack=2.0, cache_hit_model=True),
            _row("clean", "erm", "random-forest:trees=50", seconds_fit=1.0, cache_hit_model=False)]
    model = DurationModel(rows, registry=registry)
    assert model.estimate("attack", pgd).seconds == pytest.approx(4.0)
    assert model.estimate("fit", forest).seconds == pytest.approx(6.0)
    assert DurationModel(rows).estimate("attack", pgd).seconds == pytest.approx(2.0)  # no registry: unscaled


def test_calibration_trains_each_unrecorded_defense_and_runs_each_unrecorded_attack_once(registry):
    cells = _cells(registry, ["clean", "uniform-noise", "none", "fgsm", "pgd"],
                   defenses=["erm", "pgd-at", "weight-decay"], seeds=[0, 1])
    rows = [_row("clean", "erm", "mlp", seconds_fit=2.0, cache_hit_model=False),
            _row("fgsm", "erm", "mlp", threat="evasion", seconds_attack=1.0, seconds_fit=0.0, cache_hit_model=True)]
    chosen = calibration_cells(cells, rows)
    assert sorted((c.defense.split(":")[0], c.attack.split(":")[0]) for c in chosen) == [
        ("erm", "none"), ("erm", "pgd"), ("pgd-at", "clean"), ("weight-decay", "clean")]
    assert all(c.seed == 0 for c in chosen) and len(set(chosen)) == len(chosen)
    assert calibration_cells(cells, rows + [_row(c.attack, c.defense, "mlp", seconds_fit=1.0, seconds_attack=1.0,
                                                 threat=c.threat, cache_hit_model=False) for c in chosen]) == []


def test_the_simulated_schedule_builds_each_artifact_once_and_bounds_the_wall_time(registry):
    cells = _cells(registry, ["clean", "uniform-noise", "none", "fgsm"], defenses=["erm", "weight-decay"],
                   seeds=[0, 1])
    rows = [_row("uniform-noise", "erm", "mlp", seconds_craft=3.0, cache_hit_poison=False),
            _row("clean", "erm", "mlp", seconds_fit=10.0, cache_hit_model=False),
            _row("fgsm", "erm", "mlp", threat="evasion", seconds_attack=2.0, seconds_fit=0.0, cache_hit_model=True),
            _row("none", "erm", "mlp", threat="evasion", seconds_attack=0.5, seconds_fit=0.0, cache_hit_model=True)]
    plan = make_plan(cells, set(), rows, registry, {})
    costs = plan.sequential.costs
    crafts = sum("craft" in c.parts for c in costs.values())
    trainings = sum("fit" in c.parts for c in costs.values())
    assert crafts == 2  # uniform-noise x 2 seeds (clean crafts nothing)
    assert trainings == 2 * 2 * 2  # (clean, uniform-noise poison) x 2 defenses x 2 seeds; evasion reuses clean
    total = sum(c.seconds for c in costs.values())
    assert plan.wall(1) == pytest.approx(total)
    critical = plan.critical_path()
    assert critical.makespan <= plan.wall(2) <= plan.wall(1)
    assert plan.wall(2) >= total / 2 - 1e-9
    first, *rest = critical.critical
    assert rest and "fit" in critical.costs[first.cell_id].parts  # an artifact cell, then its dependant


def test_plan_after_a_run_estimates_unrun_seeds_from_the_recorded_ones(tmp_path, registry):
    path = tmp_path / "m.toml"
    path.write_text('name = "m"\nseeds = [0]\n[recipe]\nepochs = 2\n[[block]]\nname = "b"\n'
                    'datasets = ["digits:per_class=30"]\nattacks = ["clean", "uniform-noise", "fgsm"]\n'
                    'defenses = ["erm"]\nvictims = ["mlp", "random-forest:trees=5"]\n')
    out = tmp_path / "run"
    cli = CliRunner()
    assert cli.invoke(main, ["run", "--matrix", str(path), "--out", str(out)]).exit_code == 0
    rows = ResultsStore(out).rows()
    done = cli.invoke(main, ["plan", "--matrix", str(path), "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert re.search(r"6 cells, 1 n/a, 5 done, 0 to run", done.output)
    result = cli.invoke(main, ["plan", "--matrix", str(path), "--out", str(out), "--seeds", "2", "--workers", "1",
                               "--workers", "4"])
    assert result.exit_code == 0, result.output
    assert re.search(r"12 cells, 2 n/a, 5 done, 5 to run", result.output)
    assert "default" not in result.output.split("critical path")[0]  # every artifact matched a recorded one
    # seed 1 is estimated from seed 0's durations: its CPU time is seed 0's measured time
    cpu = re.search(r"^total .* (\d+):(\d\d):(\d\d)", result.output, re.M).groups()
    seconds = int(cpu[0]) * 3600 + int(cpu[1]) * 60 + int(cpu[2])
    assert seconds == pytest.approx(sum(r["duration_s"] for r in rows if r["status"] == "ok"), abs=2)
    assert "critical path" in result.output and "1 worker" in result.output and "4 workers" in result.output
