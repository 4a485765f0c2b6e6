"""`benchlab new-plugin` writes a package whose own tests pass as generated."""

import os
import subprocess
import sys
import types

import pytest
from click.testing import CliRunner

from benchlab.cli import main
from benchlab.plugins import build_registry, make_plugin_manager
from benchlab.scaffold import package_name, write_plugin


def test_the_generated_plugin_loads_and_its_tests_pass(tmp_path):
    result = CliRunner().invoke(main, ["new-plugin", "acme", "--dest", str(tmp_path)])
    assert result.exit_code == 0, result.output
    root = tmp_path / "benchlab-acme"
    assert 'acme = "benchlab_acme"' in (root / "pyproject.toml").read_text()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=root,
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 passed" in run.stdout
    # Loaded through a plugin manager, it registers one component of each kind.
    sys.path.insert(0, str(root))
    try:
        module = __import__(package_name("acme"))
        registry = build_registry(make_plugin_manager(extra_plugins=[module], autoload=False), strict=True)
    finally:
        sys.path.remove(str(root))
    assert registry.names("attacks", "acme-*") == ["acme-fgsm", "acme-flip-to-zero"]
    assert registry.names("defenses") == ["acme-label-smoothing"] and registry.names("victims") == ["acme-mlp"]


def test_only_the_asked_kinds_are_generated(tmp_path):
    root = write_plugin("solo", ["victim"], tmp_path)
    assert sorted(p.name for p in (root / "benchlab_solo").iterdir()) == ["__init__.py", "victim.py"]
    namespace = types.ModuleType("x")
    exec((root / "tests" / "test_contracts.py").read_text(), namespace.__dict__)


def test_bad_names_and_kinds_fail_with_the_valid_choices(tmp_path):
    bad = CliRunner().invoke(main, ["new-plugin", "Acme_Plugin", "--dest", str(tmp_path)])
    assert bad.exit_code != 0 and "lowercase" in bad.output and "Traceback" not in bad.output
    with pytest.raises(ValueError, match="valid kinds: evasion, poison, defense, victim"):
        write_plugin("ok", ["evasion", "datasets"], tmp_path)
