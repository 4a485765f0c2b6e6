"""Plugin discovery through real entry points, blocking, hook validation, registry errors."""

import json
import os
import subprocess
import sys
import textwrap
import types

import pytest

import benchlab
from benchlab.params import SpecError
from benchlab.plugins import PluginError, Registry, build_registry, make_plugin_manager

DEMO_MODULE = '''
"""A third-party benchlab plugin, installed as its own distribution."""
import torch
import benchlab


class ShiftAttack(benchlab.EvasionAttack):
    """Adds eps to every pixel (a demo evasion attack)."""

    name = "demo-shift"
    needs_gradients = False
    params = (benchlab.Param("eps", float, 0.1, low=0.0, high=1.0),)

    def perturb(self, model, x, y, ctx):
        return (x + self.p.eps).clamp(0, 1)


@benchlab.hookimpl
def register_attacks(register):
    register(ShiftAttack)
'''


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory):
    """Build and install a separate distribution with an entry point in group 'benchlab'."""
    root = tmp_path_factory.mktemp("demo")
    project = root / "project"
    (project / "benchlab_demo").mkdir(parents=True)
    (project / "benchlab_demo" / "__init__.py").write_text(DEMO_MODULE)
    (project / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "benchlab-demo"
        version = "0.7.1"
        [project.entry-points.benchlab]
        demo = "benchlab_demo"
        [tool.setuptools]
        packages = ["benchlab_demo"]
    '''))
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(project)], check=True, capture_output=True)
    return site


def _benchlab(*args, site=None, **env):
    environ = {**os.environ, **env}
    if site is not None:
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "benchlab.cli", *args], capture_output=True, text=True,
                          env=environ, timeout=300)


def test_separately_installed_plugin_is_discovered(demo_site):
    result = _benchlab("plugins", "--json", site=demo_site)
    assert result.returncode == 0, result.stderr
    records = {r["name"]: r for r in json.loads(result.stdout)}
    assert records["demo"]["distribution"] == "benchlab-demo"
    assert records["demo"]["version"] == "0.7.1"
    assert records["demo"]["hooks"] == ["register_attacks"]
    assert records["demo"]["registered"] == {"attacks": ["demo-shift"]}
    assert "baselines" in records  # the in-tree plugins come through the same entry-point group

    listed = json.loads(_benchlab("list", "attacks", "demo-*", "--json", site=demo_site).stdout)
    assert [r["name"] for r in listed] == ["demo-shift"] and listed[0]["plugin"] == "demo"


def test_discovered_plugin_runs_in_a_cell(demo_site, tmp_path):
    result = _benchlab("cell", "--attack", "demo-shift:eps=0.5", "--victim", "mlp", "--epochs", "2",
                       "--out", str(tmp_path), "--json", site=demo_site)
    row = json.loads(result.stdout)
    assert row["status"] == "ok", row["reason"]
    assert row["metrics"]["robust_acc"] < row["metrics"]["test_acc"]


def test_blocked_plugin_is_not_loaded(demo_site):
    result = _benchlab("plugins", "--json", site=demo_site, BENCHLAB_BLOCK_PLUGINS="demo")
    status = {r["name"]: r["status"] for r in json.loads(result.stdout)}
    assert status["demo"] == "blocked" and status["baselines"] == "ok"  # listed, with why it is not loaded
    unknown = _benchlab("list", "attacks", "demo-*", site=demo_site, BENCHLAB_BLOCK_PLUGINS="demo")
    assert unknown.returncode != 0 and "no attacks match 'demo-*'" in unknown.stderr


def test_misspelled_hook_is_caught():
    typo = types.ModuleType("typo_plugin")

    @benchlab.hookimpl
    def register_atacks(register):
        pass

    typo.register_atacks = register_atacks
    with pytest.raises(PluginError, match="register_atacks"):
        make_plugin_manager(extra_plugins=[typo])


def test_registry_rejects_bad_registrations():
    registry = Registry()

    class NotAPlugin:
        name = "x"

    class BadName(benchlab.Defense):
        """Bad."""
        name = "Bad_Name"

    class One(benchlab.Defense):
        """One."""
        name = "same"

    class Two(benchlab.Defense):
        """Two."""
        name = "same"

    with pytest.raises(PluginError, match="does not subclass"):
        registry.add("defenses", NotAPlugin, plugin="p")
    with pytest.raises(PluginError, match="lowercase with hyphens"):
        registry.add("defenses", BadName, plugin="p")
    registry.add("defenses", One, plugin="p1")
    with pytest.raises(PluginError, match="registered by both 'p1' and 'p2'"):
        registry.add("defenses", Two, plugin="p2")


def test_unknown_names_suggest_the_closest(registry):
    with pytest.raises(SpecError, match="unknown attack 'pgdd'; did you mean 'pgd'"):
        registry.create("attacks", "pgdd")
    with pytest.raises(SpecError, match="unknown kind 'attack'; valid kinds: attacks"):
        registry.names("attack")


def test_wildcard_listing(registry):
    assert set(registry.names("attacks", "*noise*")) >= {"uniform-noise", "random-noise"}
    assert registry.names("datasets", "digit?") == ["digits"]


def test_in_tree_plugins_register_through_entry_points():
    pm = make_plugin_manager()
    registry = build_registry(pm)
    assert registry.plugin_of("victims", "mlp") == "baselines"
    dist_names = {dist.project_name for _, dist in pm.list_plugin_distinfo()}
    assert "benchlab" in dist_names
