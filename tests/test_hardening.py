"""Hardening: the cache and matrix files as trust boundaries, whole-request validation, honest
resume, executor-independent numerics, clean exits, one-line user errors."""

import numpy as np
import pytest
import torch
from recorded import numbers

from benchlab import cell as cell_module
from benchlab.cache import ArtifactCache
from benchlab.cell import Settings, run_cell
from benchlab.matrix import Matrix
from benchlab.sklearn_io import UntrustedArtifact, estimator_from_tensor, estimator_to_tensor


def _cell(registry, victim="random-forest:trees=5", defense="erm", attack="random-noise:eps=0.1"):
    block = {"name": "t", "datasets": ["digits:per_class=30"], "attacks": [attack], "defenses": [defense],
             "victims": [victim], "seeds": [0], "recipe": {"epochs": 1}, "budgets": {}}
    (cell,) = Matrix("t", [block]).expand(registry)
    return cell


def _tamper_model(tmp_path, tensors):
    """Replace the cached model with ``tensors`` under a matching SHA-256 sidecar: only loading can tell."""
    (path,) = (tmp_path / "cache" / "model").glob("*.safetensors")
    cache = ArtifactCache(tmp_path / "cache")
    _, info = cache.load("model", path.stem)
    cache.save("model", path.stem, tensors, info)
    cell_module._fitted_memo.clear()
    return path.stem


def _quarantined(tmp_path, key):
    return sorted(p.name for p in (tmp_path / "cache" / "quarantine" / "model").glob(f"{key}.*"))


# ---- 1. the cache is a trust boundary --------------------------------------------------------------

def _write_primitive(path):
    """A pipeline whose first step writes an svmlight file to ``path`` when it predicts."""
    from sklearn.datasets import dump_svmlight_file
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    forest = RandomForestClassifier(n_estimators=2, random_state=0).fit(np.random.rand(20, 64), np.arange(20) % 10)
    writer = FunctionTransformer(func=dump_svmlight_file, kw_args={"y": np.zeros(1), "f": str(path)})
    return Pipeline([("write", writer), ("forest", forest)])


def test_a_cached_function_transformer_is_refused_and_writes_no_file(tmp_path, registry):
    target = tmp_path / "written-by-the-cache.svmlight"
    with pytest.raises(UntrustedArtifact, match="dump_svmlight_file"):
        estimator_from_tensor(estimator_to_tensor(_write_primitive(target)))
    settings = Settings(out=str(tmp_path))
    cell = _cell(registry)
    cell_module._fitted_memo.clear()
    first = run_cell(cell, settings)
    key = _tamper_model(tmp_path, {"estimator": estimator_to_tensor(_write_primitive(target))})
    second = run_cell(cell, settings)
    assert not target.exists()
    assert second["status"] == "ok" and second["metrics"]["cache_hit_model"] is False
    assert second["metrics"]["test_acc"] == first["metrics"]["test_acc"]
    assert any(name.endswith(".reason") for name in _quarantined(tmp_path, key))


def test_only_the_estimators_benchlab_creates_are_restored():
    from sklearn.linear_model import LogisticRegression

    foreign = LogisticRegression(max_iter=50).fit(np.random.rand(20, 4), np.arange(20) % 2)
    with pytest.raises(UntrustedArtifact, match="LogisticRegression"):
        estimator_from_tensor(estimator_to_tensor(foreign))


@pytest.mark.parametrize("victim,payload", [
    ("random-forest:trees=5", {"estimator": torch.randint(0, 255, (500,), dtype=torch.uint8)}),  # garbage skops
    ("mlp", {"not.a.weight": torch.zeros(3)}),  # a state dict of the wrong model
])
def test_a_verified_artifact_that_does_not_load_is_quarantined_and_rebuilt(tmp_path, registry, victim, payload):
    settings = Settings(out=str(tmp_path))
    cell = _cell(registry, victim)
    cell_module._fitted_memo.clear()
    first = run_cell(cell, settings)
    key = _tamper_model(tmp_path, payload)
    second = run_cell(cell, settings)
    assert second["status"] == "ok" and second["metrics"]["cache_hit_model"] is False
    assert second["metrics"]["test_acc"] == first["metrics"]["test_acc"]
    names = _quarantined(tmp_path, key)
    assert any(n.endswith(".safetensors") for n in names) and any(n.endswith(".reason") for n in names)
    cell_module._fitted_memo.clear()
    assert run_cell(cell, settings)["metrics"]["cache_hit_model"] is True  # the rebuilt one is reused


def test_a_poison_that_verifies_but_does_not_decode_is_rebuilt(tmp_path, registry):
    settings = Settings(out=str(tmp_path))
    cell = _cell(registry, "mlp", attack="uniform-noise:eps=0.1")
    first = run_cell(cell, settings)
    (path,) = (tmp_path / "cache" / "poison").glob("*.safetensors")
    ArtifactCache(tmp_path / "cache").save("poison", path.stem, {"x": torch.zeros(2)}, {})
    cell_module._fitted_memo.clear()
    second = run_cell(cell, settings)
    assert second["status"] == "ok" and second["metrics"]["cache_hit_poison"] is False
    assert second["metrics"]["test_acc"] == first["metrics"]["test_acc"]
    assert list((tmp_path / "cache" / "quarantine" / "poison").glob("*.reason"))


# ---- 2. paths from data are never trusted ------------------------------------------------------------

@pytest.mark.parametrize("name", ["/some/dir", "../../X", "a/b", "..", "", 5])
def test_a_matrix_name_must_be_a_name_not_a_path(tmp_path, registry, name):
    from benchlab.matrix import load_matrix
    from benchlab.params import SpecError

    path = tmp_path / "m.toml"
    literal = f'"{name}"' if isinstance(name, str) else name
    path.write_text(f'name = {literal}\n[[block]]\ndatasets=["digits"]\nattacks=["clean"]\n'
                    f'defenses=["erm"]\nvictims=["mlp"]\n')
    with pytest.raises(SpecError, match=r"m\.toml.*not a valid name"):
        load_matrix(str(path), registry)


def test_stale_cleanup_deletes_only_files_it_wrote_unchanged(tmp_path):
    import json

    import pandas as pd

    from benchlab.leaderboard import render

    frame = pd.DataFrame([{"cell_id": f"{seed}{attack}", "matrix": "m", "block": "b", "dataset": "digits",
                           "threat": "evasion", "attack": attack, "defense": "erm", "victim": "mlp", "seed": seed,
                           "status": "ok", "reason": None, "duration_s": 1.0, "robust_acc": 0.5, "test_acc": 0.9}
                          for seed in (0, 1) for attack in ("none", "pgd")])
    dest = tmp_path / "board"
    render(frame, dest, title="demo", blocks={"a": set(frame["cell_id"]), "b": set(frame["cell_id"])})
    (dest / "a-digits-evasion.md").write_text("edited by hand")  # no longer what benchlab wrote
    outside = tmp_path / "precious.csv"
    outside.write_text("not benchlab's")
    (dest / "README.md.bak").write_text("x")
    render(frame, dest, title="demo")  # no blocks now: the per-block files are stale
    names = {p.name for p in dest.iterdir()}
    assert "a-digits-evasion.md" in names  # edited: kept
    assert "b-digits-evasion.md" not in names and "b-digits-evasion.csv" not in names  # stale: removed
    # A foreign manifest (copied in, or written by someone else) names files benchlab did not write.
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["files"] += ["../precious.csv", "README.md.bak"]
    manifest["file_sha256"].update({"../precious.csv": "0" * 64, "notes.csv": "0" * 64})
    (dest / "manifest.json").write_text(json.dumps(manifest))
    (dest / "notes.csv").write_text("mine")
    render(frame.iloc[:0], dest, title="demo")
    assert outside.exists() and (dest / "notes.csv").exists() and (dest / "README.md.bak").exists()


# ---- 3. the whole request is validated before any work ---------------------------------------------

BLOCK = ('[[block]]\nname = "b"\ndatasets = ["digits:per_class=20"]\nattacks = ["clean"]\ndefenses = ["erm"]\n'
         'victims = ["mlp"]\n')
BAD_MATRICES = {
    "seeds = 2.5": ("seeds = 2.5\n" + BLOCK, "seeds = 2.5"),
    "seeds = abc": ('seeds = "abc"\n' + BLOCK, "seeds = 'abc'"),
    "negative seed": ("seeds = [-5]\n" + BLOCK, "integers >= 0"),
    "no seeds": ("seeds = []\n" + BLOCK, "no seeds"),
    "datasets string": ('[[block]]\ndatasets = "digits"\nattacks = ["clean"]\ndefenses = ["erm"]\nvictims = ["mlp"]\n',
                        "datasets must be a list of strings"),
    "block list": ("block = [1, 2]\n", "'block' must be a list of"),
    "recipe number": ("recipe = 5\n" + BLOCK, "'recipe' must be a table"),
    "recipe epoch": ("[recipe]\nepoch = 2\n" + BLOCK, "unknown \\[recipe\\] key 'epoch'"),
    "recipe optimiser": ('[recipe]\noptimiser = "adam"\n' + BLOCK, "'optimiser'"),
    "epochs five": ('[recipe]\nepochs = "five"\n' + BLOCK, "epochs = 'five' is not an integer"),
    "optimizer sgdd": ('[recipe]\noptimizer = "sgdd"\n' + BLOCK, "optimizer = 'sgdd'; choose one of sgd"),
    "budget norm": (BLOCK + "[block.budgets.digits]\nlinff = 0.2\n", "unknown norm 'linff'"),
    "budget dataset": (BLOCK + "[block.budgets.mnistt]\nlinf = 0.2\n", "unknown dataset 'mnistt'"),
    "nan eps": (BLOCK.replace('"clean"', '"pgd:eps=nan,steps=1"'), "not a finite number"),
    "inf lr": (BLOCK.replace('"erm"', '"erm:lr=inf"'), "not a finite number"),
    "nan sweep": (BLOCK.replace('"clean"', '"uniform-noise:eps={0.1,nan}"'), "not a finite number"),
    "positional after named": (BLOCK.replace('"clean"', '"pgd:eps=0.1,l2"'), "must come before"),
    "every cell excluded": (BLOCK + 'exclude_victims = ["mlp"]\n', "0 cells"),
}


@pytest.mark.parametrize("case", list(BAD_MATRICES))
def test_an_invalid_matrix_is_rejected_up_front_naming_file_and_block(tmp_path, case):
    from click.testing import CliRunner

    from benchlab.cli import main

    text, message = BAD_MATRICES[case]
    path = tmp_path / "study.toml"
    path.write_text(text)
    for extra in (["--dry-run"], []):
        result = CliRunner().invoke(main, ["run", "--matrix", str(path), "--out", str(tmp_path / "out"), *extra])
        assert result.exit_code == 1, result.output
        assert "study.toml" in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1  # one problem, one line
        assert __import__("re").search(message, result.output), result.output
    assert not (tmp_path / "out" / "results.sqlite").exists()  # nothing invalid ever becomes a row


def test_every_problem_is_reported_at_once(tmp_path, registry):
    from benchlab.matrix import load_matrix
    from benchlab.validation import RequestError

    path = tmp_path / "study.toml"
    path.write_text('[recipe]\nepoch = 2\noptimizer = "sgdd"\n' + BLOCK + "[block.budgets.digits]\nlinff = 1\n")
    with pytest.raises(RequestError) as caught:
        load_matrix(str(path), registry)
    assert len(caught.value.problems) == 3 and all("block 'b'" in p for p in caught.value.problems)


def test_positional_values_never_fill_the_transfer_source(registry):
    assert registry.create("attacks", "pgd:l2,1.5,5").values["steps"] == 5  # norm, eps, steps
    assert registry.create("attacks", "pgd:l2,1.5,5").values["source"] is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", ["run", "cell"])
@pytest.mark.parametrize("problem", ["device", "dataset"])
def test_an_unavailable_device_or_dataset_is_an_error_before_any_cell(tmp_path, command, problem):
    from click.testing import CliRunner

    from benchlab.cli import main

    path = tmp_path / "study.toml"
    path.write_text(BLOCK.replace("digits:per_class=20", "mnist") if problem == "dataset" else BLOCK)
    args = [command, "--out", str(tmp_path / "out"), "--data-root", str(tmp_path)]
    dataset = "mnist" if problem == "dataset" else "digits"
    args += ["--matrix", str(path)] if command == "run" else ["--dataset", dataset]
    args += ["--device", "cuda"] if problem == "device" else []
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert ("CUDA is not available" if problem == "device" else "dataset 'mnist' not found") in result.output
    assert not (tmp_path / "out" / "results.sqlite").exists()


def test_cell_refuses_a_negative_seed():
    from click.testing import CliRunner

    from benchlab.cli import main

    result = CliRunner().invoke(main, ["cell", "--seed", "-1"])
    assert result.exit_code == 2 and "-1" in result.output


# ---- 4. honest resume ---------------------------------------------------------------------------------

def _run_cli(*args):
    from click.testing import CliRunner

    from benchlab.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def test_environment_failures_are_retried_and_code_failures_keep_the_run_failing(tmp_path, monkeypatch):
    from benchlab.datasets.base import DatasetMissing
    from benchlab.store import ResultsStore

    path = tmp_path / "study.toml"
    path.write_text(BLOCK.replace('["clean"]', '["clean", "label-flip"]') + "seeds = [0]\n[block.recipe]\nepochs = 1\n")
    real = cell_module._execute

    def broken(cell, settings, device):
        if cell.attack == "clean":
            raise DatasetMissing("the data went away mid-run")
        raise RuntimeError("a bug in the attack")

    monkeypatch.setattr(cell_module, "_execute", broken)
    out = tmp_path / "out"
    first = _run_cli("run", "--matrix", path, "--out", out, "--leaderboard-to", tmp_path / "board")
    assert first.exit_code == 1 and "2 cells failed" in first.output and "--retry-failed" in first.output
    kinds = {r["attack"]: r["manifest"]["failure_kind"] for r in ResultsStore(out).rows()}
    assert kinds == {"clean": "environment", "label-flip": "code"}
    shown = _run_cli("show", "--out", out)
    assert "1 x [environment] DatasetMissing" in shown.output and "1 x [code] RuntimeError" in shown.output
    assert "Traceback" not in shown.output

    monkeypatch.setattr(cell_module, "_execute", real)  # the environment is fixed
    second = _run_cli("run", "--matrix", path, "--out", out, "--leaderboard-to", tmp_path / "board")
    statuses = {r["attack"]: r["status"] for r in ResultsStore(out).rows()}
    assert statuses == {"clean": "ok", "label-flip": "failed"}  # retried without --retry-failed
    assert second.exit_code == 1 and "1 cells failed" in second.output  # the code failure is still there
    third = _run_cli("run", "--matrix", path, "--out", out, "--leaderboard-to", tmp_path / "board", "--retry-failed")
    assert third.exit_code == 0, third.output
    assert {r["status"] for r in ResultsStore(out).rows()} == {"ok"}


def test_show_on_a_folder_without_a_database_creates_none(tmp_path):
    result = _run_cli("show", "--out", tmp_path)
    assert result.exit_code == 1 and "no results database" in result.output
    assert list(tmp_path.iterdir()) == []
    assert _run_cli("leaderboard", "--out", tmp_path, "--to", tmp_path / "b").exit_code == 1
    assert not (tmp_path / "results.sqlite").exists()


def test_cell_prints_a_failure_without_its_traceback_unless_verbose(tmp_path, monkeypatch):
    def broken(cell, settings, device):
        raise RuntimeError("a bug in the attack")

    monkeypatch.setattr(cell_module, "_execute", broken)
    quiet = _run_cli("cell", "--out", tmp_path)
    assert quiet.exit_code == 1 and "RuntimeError: a bug in the attack" in quiet.output
    assert "Traceback" not in quiet.output
    assert "Traceback" in _run_cli("-v", "cell", "--out", tmp_path).output


# ---- 5. numerics are fixed per cell, recorded, and part of every identity ------------------------------

def test_threads_enter_the_cell_identity_and_the_artifact_keys(tmp_path, registry):
    from benchlab.numerics import Numerics

    block = {"name": "t", "datasets": ["digits:per_class=30"], "attacks": ["clean"], "defenses": ["erm"],
             "victims": ["mlp"], "seeds": [0], "recipe": {"epochs": 1}, "budgets": {}}
    (one,) = Matrix("t", [block], numerics=Numerics(threads=1)).expand(registry)
    (two,) = Matrix("t", [block], numerics=Numerics(threads=2)).expand(registry)
    assert one.cell_id != two.cell_id
    before = torch.get_num_threads()
    settings = Settings(out=str(tmp_path))
    cell_module._fitted_memo.clear()
    first = run_cell(one, settings)
    cell_module._fitted_memo.clear()
    second = run_cell(two, settings)
    assert first["manifest"]["numerics"]["threads"] == first["manifest"]["torch_threads"] == 1
    assert second["manifest"]["numerics"]["threads"] == second["manifest"]["torch_threads"] == 2
    assert second["metrics"]["cache_hit_model"] is False  # never reuses a model trained under 1 thread
    assert torch.get_num_threads() == before  # restored after the cell


def _smoke_metrics(tmp_path, registry, executor, blocks):
    from benchlab.matrix import load_matrix
    from benchlab.runner import run_matrix
    from benchlab.store import ResultsStore

    smoke = load_matrix("smoke", registry)
    matrix = Matrix("smoke", [b for b in smoke.blocks if blocks is None or b["name"] in blocks], source="smoke")
    out = tmp_path / executor
    summary = run_matrix(matrix, Settings(out=str(out), matrix="smoke"), executor=executor, workers=2,
                         show_progress=False)
    assert summary.unfinished == 0 and summary.failed == 0
    return {r["cell_id"]: numbers(r) for r in ResultsStore(out).rows()}


def _same(a: dict, b: dict) -> bool:
    """Equal metrics, NaN equal to NaN (e.g. rho_adv_flipped when nothing flipped)."""
    return a.keys() == b.keys() and all(a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]) for k in a)


@pytest.mark.slow  # 3-4 min on 2 loaded cores; the fast version is
# test_runner.py::test_parallel_executors_fill_the_same_rows (a tiny matrix, the same three executors)
def test_smoke_gives_identical_metrics_on_every_executor(tmp_path, registry, blocks=None):
    pytest.importorskip("ray")
    local = _smoke_metrics(tmp_path, registry, "local", blocks)
    assert len(local) >= 91
    for executor in ("process", "ray"):
        other = _smoke_metrics(tmp_path, registry, executor, blocks)
        assert other.keys() == local.keys()
        assert [k for k in local if not _same(local[k], other[k])] == [], executor


# ---- 6. no process outlives its driver -----------------------------------------------------------------

_DRIVER = """
import importlib.util, subprocess, sys, time
spec = importlib.util.spec_from_file_location("reaper", sys.argv[1])
reaper = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reaper)
reaper.guard_descendants()
child = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                          "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)"])
print(child.pid, flush=True)
time.sleep(600)
"""


def test_the_reaper_ends_the_descendants_of_a_sigkilled_driver(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    import benchlab.reaper as reaper

    driver = subprocess.Popen([sys.executable, "-c", _DRIVER, reaper.__file__], stdout=subprocess.PIPE, text=True)
    int(driver.stdout.readline())  # the child runs; give the watcher time to see the grandchild too
    deadline = time.time() + 20
    while time.time() < deadline and len(reaper._descendants(driver.pid, reaper._processes())) < 3:
        time.sleep(0.1)
    time.sleep(1)
    seen = reaper._descendants(driver.pid, reaper._processes())  # watcher, child, grandchild
    assert len(seen) >= 3
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    deadline = time.time() + 15
    while time.time() < deadline and _alive(seen):
        time.sleep(0.2)
    assert not _alive(seen), [_cmdline(p) for p in _alive(seen)]


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["process", "ray"])
def test_no_worker_outlives_a_sigkilled_driver(tmp_path, executor):
    import os
    import signal
    import subprocess
    import sys
    import time

    from benchlab.reaper import _descendants, _processes

    path = tmp_path / "study.toml"
    path.write_text(BLOCK.replace('["clean"]', '["clean", "label-flip", "uniform-noise"]')
                    .replace('["mlp"]', '["mlp", "lenet5"]') + "seeds = [0, 1, 2]\n[block.recipe]\nepochs = 30\n")
    driver = subprocess.Popen([sys.executable, "-m", "benchlab.cli", "run", "--matrix", str(path), "--out",
                               str(tmp_path / "out"), "--executor", executor, "--workers", "2",
                               "--leaderboard-to", str(tmp_path / "board")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen: dict = {}
    deadline = time.time() + 120
    while time.time() < deadline and driver.poll() is None:
        seen.update(_descendants(driver.pid, _processes()))
        workers = [p for p in seen if "multiprocessing" in _cmdline(p) or "ray" in _cmdline(p)]
        if len(workers) >= (3 if executor == "process" else 4) and (tmp_path / "out" / "cache").exists():
            break
        time.sleep(0.2)
    assert driver.poll() is None, driver.communicate()[1][-2000:]
    time.sleep(1)
    seen.update(_descendants(driver.pid, _processes()))
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    deadline = time.time() + 30
    while time.time() < deadline and _alive(seen):
        time.sleep(0.5)
    assert not _alive(seen), [_cmdline(p) for p in _alive(seen)]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(recorded: dict) -> list[int]:
    from benchlab.reaper import _processes

    table = _processes()
    return [pid for pid, start in recorded.items() if pid in table and table[pid][1] == start
            and _state(pid) != "Z"]


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "?"


# ---- property: random specs and matrix files never crash the parser and never make a row -----------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_NAMES = ["pgd", "fgsm", "clean", "label-flip", "uniform-noise", "erm", "weight-decay", "mlp", "random-forest",
          "svm-rbf", "digits", "deepconfuse", "nope", ""]
_KEYS = ["eps", "norm", "steps", "source", "source_victim", "lr", "trees", "per_class", "fraction", "x", ""]
_VALUES = ["0.1", "1", "-1", "nan", "inf", "-inf", "1e400", "l2", "linf", "erm", "mlp", "true", "", "{0,0.1}",
           "{}", "{a;b}", "0x10", "1_0", " ", "=", "10"]
_spec_part = st.one_of(st.sampled_from(_VALUES), st.builds(lambda k, v: f"{k}={v}", st.sampled_from(_KEYS),
                                                          st.sampled_from(_VALUES)))
specs = st.one_of(
    st.builds(lambda n, parts: n + (":" + ",".join(parts) if parts else ""), st.sampled_from(_NAMES),
              st.lists(_spec_part, max_size=4)),
    st.text(alphabet="abcdefgl:=,{};.0123456789-_ *?[]", max_size=30),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["attacks", "defenses", "victims", "datasets"]), text=specs)
def test_random_specs_either_resolve_or_fail_with_a_spec_error(registry, kind, text):
    import math

    from benchlab.params import SpecError

    try:
        plugin = registry.create(kind, text)
    except SpecError:
        return
    for value in plugin.values.values():  # what resolves is valid: no NaN or inf slips through
        assert not (isinstance(value, float) and not math.isfinite(value))


def _toml_value(value) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value or abs(value) == float("inf"):
            return "nan" if value != value else "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


_leaf = st.one_of(st.integers(-3, 5), st.floats(allow_nan=True, allow_infinity=True, width=32), st.booleans(),
                  specs, st.sampled_from(["digits", "digits:per_class=20", "mnist", "adam", "sgdd", "five"]))
_value = st.recursive(_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(st.sampled_from(_KEYS + ["linf", "digits"]),
                                                                     inner, max_size=2)), max_leaves=6)
_BLOCK_KEYS = ["name", "datasets", "attacks", "defenses", "victims", "seeds", "recipe", "budgets",
               "exclude_attacks", "exclude_victims", "epoch", "block"]
_GOOD = {"datasets": ["digits:per_class=20"], "attacks": ["clean"], "defenses": ["erm"], "victims": ["mlp"]}
_blocks = st.lists(st.dictionaries(st.sampled_from(_BLOCK_KEYS), _value, max_size=4)
                   .map(lambda extra: {**_GOOD, **extra}), max_size=3)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(top=st.dictionaries(st.sampled_from(["name", "seeds", "recipe", "budgets", "description", "block"]),
                           _value, max_size=3), blocks=_blocks)
def test_random_matrix_files_either_expand_or_fail_cleanly_and_never_make_a_row(registry, tmp_path_factory,
                                                                              top, blocks):
    from benchlab.matrix import load_matrix
    from benchlab.params import SpecError
    from benchlab.runner import run_matrix
    from benchlab.validation import check_request

    lines = [f"{key} = {_toml_value(value)}" for key, value in top.items()]
    for block in blocks:
        lines += ["[[block]]", *(f"{key} = {_toml_value(value)}" for key, value in block.items())]
    folder = tmp_path_factory.mktemp("m")
    path = folder / "random.toml"
    path.write_text("\n".join(lines) + "\n")
    try:
        matrix = load_matrix(str(path), registry)
        cells = check_request(matrix, registry, device="cpu", data_root=str(folder))
    except SpecError as error:
        assert "random.toml" in str(error) or "matrix" in str(error)
        try:
            run_matrix(load_matrix(str(path), registry), Settings(out=str(folder / "out"), device="cpu",
                                                                  data_root=str(folder)), show_progress=False)
        except SpecError:
            pass
        else:
            raise AssertionError("an invalid request ran")
        assert not (folder / "out" / "results.sqlite").exists()
        return
    assert cells and all(isinstance(c.seed, int) and c.seed >= 0 for c in cells)
