"""Code identity: which code computed a result, so that changed code recomputes and unchanged code reuses.

A component class (attack, defense, victim, dataset) is identified by its distribution and that
distribution's version (``importlib.metadata``; the in-tree plugins ship in the ``benchlab``
distribution), its ``version`` attribute, and a SHA-256 of the source it runs: the module defining
the class plus every module of the same top-level package that it imports, transitively. Imports are
read with :mod:`ast` over the whole module, so imports inside functions count too. A top-level
package's ``__init__`` is followed only when something is imported from it (it usually just
registers the plugin's hooks: editing one module of a plugin leaves its other components alone).

Imports of other packages are not followed. The core is hashed once, as the *cell semantics*: the
public API (``benchlab/__init__.py``) and :mod:`benchlab.cell` with every core module they import,
except the infrastructure in :data:`INFRASTRUCTURE`, which decides where, whether and how results
are scheduled, cached, stored and shown but not what a cell computes. Any change to the training
loop, the interfaces, the data handling or the cell itself therefore recomputes every cell.

Everything is computed once per class (and once for the core) per process.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from .cache import cache_key
from .params import _fmt, parse_spec

if TYPE_CHECKING:
    from .interfaces import Plugin
    from .plugins import Registry

CORE = "benchlab"
CORE_ROOTS = ("benchlab", "benchlab.cell")
INFRASTRUCTURE = frozenset(f"benchlab.{name}" for name in (
    "cache", "cli", "code_identity", "heap", "hookspecs", "leaderboard", "lineage", "manifest", "matrix",
    "metrics", "params", "plugins", "runner", "sklearn_io", "store", "testing",
))
DIGITS = 16  # hex digits of a source hash kept in records


def component(cls: type) -> dict:
    """Distribution, versions and source hash of one plugin class (JSON-able, cached per class)."""
    return dict(_component(cls))


@functools.cache
def _component(cls: type) -> tuple:
    module = cls.__module__
    top = module.partition(".")[0]
    skip = INFRASTRUCTURE if top == CORE else frozenset()
    distribution, dist_version = _distribution(top)
    record = {"class": f"{module}.{cls.__qualname__}", "distribution": distribution,
              "distribution_version": dist_version, "version": str(getattr(cls, "version", "")),
              "source": _source_hash(_closure((module,), top, skip))}
    return tuple(record.items())


@functools.lru_cache(maxsize=1)
def core() -> dict:
    """The core's cell semantics: benchlab's version and the hash of the modules that compute a cell."""
    modules = _closure(CORE_ROOTS, CORE, INFRASTRUCTURE)
    return {"distribution": CORE, "distribution_version": _distribution(CORE)[1], "source": _source_hash(modules)}


def cell_code(registry: Registry, dataset: Plugin, attack: Plugin, defense: Plugin, victim: Plugin) -> dict:
    """The code identity of a cell: each component's, a transfer attack's source models', the core's."""
    code = {"dataset": component(type(dataset)), "attack": component(type(attack)),
            "defense": component(type(defense)), "victim": component(type(victim))}
    if hasattr(attack, "source_victim"):  # evasion attacks can be transferred (benchlab.transfer)
        if attack.source_victim is not None:
            code["source_victim"] = component(type(attack.source_victim))
        if attack.values.get("source"):
            code["source_defense"] = component(registry.get("defenses", parse_spec(attack.values["source"]).name))
    code["core"] = core()
    return code


def code_version(code: dict) -> str:
    """A short digest of a cell's code identity: the ``version`` shown in rows and leaderboards."""
    return cache_key("code", code)[:12]


def short(record: dict | None) -> str:
    """One component's identity for a table cell: ``distribution version / v<class version> / source``."""
    if not record:
        return "unknown"
    dist = f"{record.get('distribution') or '?'} {record.get('distribution_version') or '?'}"
    version = f" / v{record['version']}" if record.get("version") else ""
    return f"{dist}{version} / {str(record.get('source'))[:8]}"


def canonical_spec(plugin: Plugin) -> str:
    """``name:key=value,...`` with every declared parameter, defaults included, in declaration order.

    Parameters left unset (None: the plugin or the budget decides at run time) are omitted."""
    parts = [f"{p.name}={_fmt(plugin.values[p.name])}" for p in plugin.params if plugin.values.get(p.name) is not None]
    return f"{plugin.name}:{','.join(parts)}" if parts else plugin.name


def clear() -> None:
    """Forget the cached identities (after editing sources in a running process, as tests do)."""
    _component.cache_clear()
    core.cache_clear()
    _distribution.cache_clear()
    _distributions.cache_clear()
    _parsed_imports.cache_clear()


@functools.lru_cache(maxsize=1)
def _distributions() -> dict:
    return metadata.packages_distributions()


@functools.cache
def _distribution(top: str) -> tuple[str | None, str | None]:
    names = _distributions().get(top) or []
    if not names:
        return None, None
    try:
        return names[0], metadata.version(names[0])
    except metadata.PackageNotFoundError:
        return names[0], None


def _module_file(name: str) -> Path | None:
    """The file of module ``name``, found without importing it."""
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__file__", None):
        return Path(module.__file__)
    top, *rest = name.split(".")
    package = sys.modules.get(top)
    for root in getattr(package, "__path__", None) or []:
        base = Path(root).joinpath(*rest)
        candidates = (base.parent / f"{base.name}.py", base / "__init__.py") if rest else (base / "__init__.py",)
        for candidate in candidates:
            if candidate.is_file():
                return candidate
    return None


def _closure(roots: tuple[str, ...], top: str, skip: frozenset) -> dict[str, Path | None]:
    """Module name -> file, for ``roots`` and the modules of package ``top`` they import, transitively."""
    found: dict[str, Path | None] = {}
    pending = [r for r in roots if r not in skip]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        path = found[name] = _module_file(name)
        if path is None or path.suffix != ".py":
            continue
        for imported in _imports(name, path):
            if (imported == top or imported.startswith(top + ".")) and imported not in skip and imported not in found:
                if _module_file(imported) is not None:
                    pending.append(imported)
    return found


def _imports(name: str, path: Path) -> frozenset[str]:
    """The module names an ``import`` or ``from ... import`` anywhere in the module may load."""
    try:
        stat = path.stat()
    except OSError:
        return frozenset()
    return _parsed_imports(name, path, stat.st_mtime_ns, stat.st_size)  # an edited file is parsed again


@functools.cache
def _parsed_imports(name: str, path: Path, mtime_ns: int, size: int) -> frozenset[str]:
    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return frozenset()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            submodules = [f"{base}.{alias.name}" for alias in node.names]
            named = [m for m in submodules if _module_file(m) is not None]
            out.update(named)
            if len(named) < len(submodules):  # something defined in ``base`` itself is imported
                out.add(base)
    return frozenset(out)


def _source_hash(modules: dict[str, Path | None]) -> str:
    digest = hashlib.sha256()
    for name in sorted(modules):
        path = modules[name]
        try:
            content = path.read_bytes() if path is not None else b"<no source>"
        except OSError:
            content = b"<unreadable>"
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    return digest.hexdigest()[:DIGITS]
