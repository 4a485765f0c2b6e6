"""A plugin package installed for one test: importable, with an entry point that spawned worker
processes (which rebuild their registry from entry points) find as well as the test's own process."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

from benchlab import plugins


def install_plugin(root: Path, module: str, source: str, monkeypatch) -> object:
    """Write ``module`` (with ``source``) and its distribution's entry point under ``root``, put
    ``root`` on ``sys.path`` (spawned workers inherit it) and make this process's registry see it."""
    (root / module).mkdir(parents=True, exist_ok=True)
    (root / module / "__init__.py").write_text(textwrap.dedent(source))
    dist = root / f"{module}-0.1.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[benchlab]\n{module} = {module}\n")
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    pm = plugins.make_plugin_manager()
    registry = plugins.build_registry(pm)
    monkeypatch.setattr(plugins, "_default", lambda: (pm, registry))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    return registry
