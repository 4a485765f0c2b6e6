"""Loading that survives one bad plugin: broken imports, name collisions, blocked plugins, presets."""

import functools
import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
import types

import pytest
from click.testing import CliRunner

import benchlab
from benchlab import plugins
from benchlab.cli import main
from benchlab.matrix import load_matrix
from benchlab.params import SpecError
from benchlab.plugins import PluginError, build_registry, get_registry, make_plugin_manager

ATTACK = '''
import benchlab


class {cls}(benchlab.EvasionAttack):
    """A demo evasion attack: adds eps to every pixel."""

    name = "{name}"
    needs_gradients = False
    params = (benchlab.Param("eps", float, 0.1, low=0.0, high=1.0),)

    def perturb(self, model, x, y, ctx):
        return (x + self.p.eps).clamp(0, 1)


@benchlab.hookimpl
def register_attacks(register):
    register({cls})
'''

# (distribution, package, entry-point name, module text)
PACKAGES = [
    ("benchlab-broken", "benchlab_broken", "broken", "raise ImportError('no module named torch_nightly')\n"),
    ("benchlab-twin-a", "benchlab_twin_a", "twin-a", ATTACK.format(cls="TwinA", name="demo-twin")),
    ("benchlab-twin-b", "benchlab_twin_b", "twin-b", ATTACK.format(cls="TwinB", name="demo-twin")),
    ("benchlab-same-a", "benchlab_same_a", "same", ATTACK.format(cls="SameA", name="demo-same-a")),
    ("benchlab-same-b", "benchlab_same_b", "same", ATTACK.format(cls="SameB", name="demo-same-b")),
    ("benchlab-fine", "benchlab_fine", "fine", ATTACK.format(cls="Fine", name="demo-fine")),
]

MATRIX = '''
name = "survives"
[recipe]
epochs = 1
[[block]]
name = "fine"
datasets = ["digits:per_class=10,test_per_class=5"]
attacks = ["demo-fine"]
defenses = ["erm"]
victims = ["mlp:hidden1=8,hidden2=8"]
'''


@pytest.fixture(scope="module")
def bad_site(tmp_path_factory):
    """A site with a plugin that fails to import, two registering the same attack name, two sharing an
    entry-point name, and a fine one."""
    root = tmp_path_factory.mktemp("bad")
    projects = []
    for dist, package, entry, text in PACKAGES:
        project = root / dist
        (project / package).mkdir(parents=True)
        (project / package / "__init__.py").write_text(text)
        (project / "pyproject.toml").write_text(textwrap.dedent(f'''
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "{dist}"
            version = "1.0"
            [project.entry-points.benchlab]
            {entry} = "{package}"
            [tool.setuptools]
            packages = ["{package}"]
        '''))
        projects.append(str(project))
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), *projects], check=True, capture_output=True)
    return site


def _benchlab(*args, site, cwd=None, **env):
    environ = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(filter(None, [str(site),
                                                                              os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "benchlab.cli", *args], capture_output=True, text=True,
                          env=environ, timeout=300, cwd=cwd)


@pytest.mark.slow
def test_plugins_lists_each_bad_plugin_with_reason_and_fix(bad_site):
    result = _benchlab("plugins", "--json", site=bad_site)
    assert result.returncode == 0, result.stderr
    records = {(r["name"], r["distribution"]): r for r in json.loads(result.stdout)}
    broken = records["broken", "benchlab-broken"]
    assert broken["status"] == "import failed" and "torch_nightly" in broken["reason"]
    assert "BENCHLAB_BLOCK_PLUGINS=broken" in broken["fix"]
    for name, other in (("twin-a", "twin-b"), ("twin-b", "twin-a")):
        twin = next(r for (n, _), r in records.items() if n == name)
        assert twin["status"] == "name collision" and "'demo-twin'" in twin["reason"]
        assert f"BENCHLAB_BLOCK_PLUGINS={other}" in twin["fix"]
    same = [r for (n, _), r in records.items() if n == "same"]
    assert {r["distribution"] for r in same} == {"benchlab-same-a", "benchlab-same-b"}
    assert all(r["status"] == "entry-point collision" and "pip uninstall" in r["fix"] for r in same)
    assert records["fine", "benchlab-fine"]["status"] == "ok"
    assert records["baselines", "benchlab"]["status"] == "ok"
    table = _benchlab("plugins", site=bad_site)
    assert table.returncode == 0 and "import failed" in table.stdout and "fix: " in table.stdout


@pytest.mark.slow
def test_run_works_around_bad_plugins(bad_site, tmp_path):
    (tmp_path / "m.toml").write_text(MATRIX)
    result = _benchlab("run", "--matrix", "m.toml", "--out", "out", "--threads", "1", site=bad_site, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1 ok" in result.stdout
    typo = _benchlab("list", "attacks", "demo-twin", site=bad_site)
    assert typo.returncode != 0 and "name collision" in typo.stderr  # says which plugins were left out


@pytest.mark.slow
def test_strict_mode_makes_a_bad_plugin_an_error(bad_site):
    for result in (_benchlab("--strict", "plugins", site=bad_site),
                   _benchlab("plugins", site=bad_site, BENCHLAB_STRICT_PLUGINS="1")):
        assert result.returncode != 0
        assert "torch_nightly" in result.stderr and "Traceback" not in result.stderr


def test_blocking_lwa_leaves_the_rest_of_paper_runnable(monkeypatch):
    monkeypatch.setenv("BENCHLAB_BLOCK_PLUGINS", "lwa")
    registry = build_registry(make_plugin_manager())
    assert "lwa" not in registry.loaded and registry.left_out["lwa"].status == "blocked"
    matrix = load_matrix("paper", registry)
    assert matrix.skipped and all("lwa" in reason for reason in matrix.skipped.values())
    assert any(name.startswith("adversary-critic-table1") for name in matrix.skipped)
    cells = matrix.expand(registry)
    assert cells and {c.block.split("-")[0] for c in cells} >= {"deepconfuse", "evoshift"}


def test_blocking_lwa_dry_run_names_the_skipped_blocks(tmp_path):
    result = subprocess.run([sys.executable, "-m", "benchlab.cli", "run", "--matrix", "paper", "--dry-run",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "BENCHLAB_BLOCK_PLUGINS": "lwa"})
    assert result.returncode == 0, result.stderr
    assert "skipped, needs plugin 'lwa', which is blocked" in result.stdout
    assert "block adversary-critic-table1-digits-mlp skipped" in result.stderr


def test_an_unknown_name_is_still_an_error_when_no_plugin_is_left_out(registry, tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text(MATRIX.replace("demo-fine", "pgdd"))
    matrix = load_matrix(str(path), registry)
    assert not matrix.skipped
    with pytest.raises(SpecError, match="unknown attack 'pgdd'"):
        matrix.expand(registry)


def _module(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook, function in hooks.items():
        setattr(module, hook, benchlab.hookimpl(function))
    return module


def test_a_preset_registered_only_by_a_plugin_loads_by_name():
    block = {"name": "mine", "datasets": ["digits"], "attacks": ["clean"], "defenses": ["erm"], "victims": ["mlp"]}
    plugin = _module("preset_plugin", register_matrices=lambda register: register("my-preset", block))
    registry = build_registry(make_plugin_manager(extra_plugins=[plugin]))
    matrix = load_matrix("my-preset", registry)
    assert [b["name"] for b in matrix.blocks] == ["mine"] and len(matrix.expand(registry)) == 1


def test_a_private_registry_resolves_nested_specs_to_its_own_components():
    class PrivateDefense(benchlab.TrainingDefense):
        """A defense only the private registry knows."""

        name = "private-erm"

    plugin = _module("private_plugin", register_defenses=lambda register: register(PrivateDefense))
    registry = build_registry(make_plugin_manager(extra_plugins=[plugin]))
    attack = registry.create("attacks", "pgd:source=private-erm,source_victim=lenet5")
    assert attack.registry is registry and attack.source_victim.name == "lenet5"
    assert type(attack.nested("source")) is PrivateDefense
    with pytest.raises(SpecError, match="private-erm"):
        get_registry().create("attacks", "pgd:source=private-erm")


def test_a_hook_that_raises_leaves_only_its_plugin_out():
    def register_attacks(register):
        raise RuntimeError("half-written plugin")

    bad = _module("raising_plugin", register_attacks=register_attacks)
    registry = build_registry(make_plugin_manager(extra_plugins=[bad]))
    assert "pgd" in registry.names("attacks")
    (problem,) = [p for p in registry.problems if p.plugin.startswith("raising_plugin") or "half" in p.reason]
    assert problem.status == "bad registration" and "half-written plugin" in problem.reason
    with pytest.raises(PluginError, match="half-written plugin"):
        build_registry(make_plugin_manager(extra_plugins=[bad]), strict=True)


# ---- the same, in-process and fast: fake entry points next to the installed ones ---------------------------
class FakeEntryPoint:
    def __init__(self, name, dist, text):
        self.name, self.value, self.text = name, f"{dist.replace('-', '_')}", text
        self.dist = types.SimpleNamespace(name=dist, version="1.0")

    def load(self):
        module = types.ModuleType(self.value)
        exec(self.text, module.__dict__)
        return module


@pytest.fixture
def bad_entry_points(monkeypatch):
    real = importlib.metadata.entry_points
    fakes = [FakeEntryPoint(entry, dist, text) for dist, _, entry, text in PACKAGES]

    def entry_points(**select):
        if select.get("group") != plugins.ENTRY_POINT_GROUP:
            return real(**select)
        return [*real(**select), *fakes]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    # A registry of its own for the test; the session's (held by the `registry` fixture) comes back after.
    monkeypatch.setattr(plugins, "_default", functools.lru_cache(maxsize=1)(plugins._default.__wrapped__))
    yield


def test_bad_plugins_are_listed_with_reason_and_fix_and_run_still_works(bad_entry_points, tmp_path, monkeypatch):
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    records = {(r["name"], r["distribution"]): r for r in json.loads(result.output)}
    broken = records["broken", "benchlab-broken"]
    assert broken["status"] == "import failed" and "torch_nightly" in broken["reason"]
    assert "BENCHLAB_BLOCK_PLUGINS=broken" in broken["fix"]
    twins = {n: r for (n, _), r in records.items() if n.startswith("twin-")}
    assert {r["status"] for r in twins.values()} == {"name collision"}
    assert "BENCHLAB_BLOCK_PLUGINS=twin-b" in twins["twin-a"]["fix"]
    same = [r for (n, _), r in records.items() if n == "same"]
    assert len(same) == 2 and all(r["status"] == "entry-point collision" for r in same)
    assert records["fine", "benchlab-fine"]["status"] == "ok" and records["baselines", "benchlab"]["status"] == "ok"
    (tmp_path / "m.toml").write_text(MATRIX)
    monkeypatch.chdir(tmp_path)
    run = CliRunner().invoke(main, ["run", "--matrix", "m.toml", "--out", "out", "--threads", "1"])
    from benchlab.store import ResultsStore

    assert run.exit_code == 0, [r["reason"] for r in ResultsStore("out").rows()]
    assert "1 ok" in run.output
    strict = CliRunner().invoke(main, ["--strict", "plugins"])
    assert strict.exit_code != 0 and "torch_nightly" in strict.output
