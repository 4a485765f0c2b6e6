"""The public surface: plugins import only ``benchlab`` itself and never another plugin; no import cycle."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import benchlab

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"
CORE = ROOT / "benchlab"


def _imports(tree: ast.AST):
    """(line, imported module) for every import statement, at any depth (lazy imports count too)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def plugin_import_violations(plugins_dir: Path) -> list[str]:
    """Imports of benchlab submodules or of another plugin package, as ``file:line: module``."""
    packages = {p.name for p in plugins_dir.iterdir() if (p / "__init__.py").exists()}
    found = []
    for path in sorted(plugins_dir.rglob("*.py")):
        own = path.relative_to(plugins_dir).parts[0]
        for line, module in _imports(ast.parse(path.read_text(), str(path))):
            top = module.split(".")[0]
            if (top == "benchlab" and module != "benchlab") or (top in packages and top != own):
                found.append(f"{path.relative_to(plugins_dir)}:{line}: {module}")
    return found


def test_plugins_import_only_the_public_surface_and_no_other_plugin():
    assert plugin_import_violations(PLUGINS) == []


def test_the_lint_catches_submodule_and_cross_plugin_imports(tmp_path):
    for name, text in {"a": "from benchlab.norms import chunks\n", "b": "import benchlab.train\n",
                       "c": "def f():\n    from a.x import y\n", "d": "from benchlab import fit\n"}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(text)
    assert plugin_import_violations(tmp_path) == ["a/__init__.py:1: benchlab.norms",
                                                  "b/__init__.py:1: benchlab.train", "c/__init__.py:2: a.x"]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def core_import_graph() -> dict[str, set[str]]:
    """benchlab module -> benchlab modules it imports at module level (not under TYPE_CHECKING)."""
    modules = {_module_name(p): p for p in CORE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.parse(path.read_text()).body:  # module level only: lazy imports cannot cycle at import
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                # "from . import x" imports the submodule x when there is one
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            edges.update(t for t in targets if t in modules and t != name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_core_has_no_import_cycle():
    graph = core_import_graph()
    assert "benchlab.transfer" in graph["benchlab.interfaces"]  # the graph sees relative imports
    # __init__ re-exports every submodule: leave it out, a submodule importing `benchlab` would show
    graph = {k: v - {"benchlab"} for k, v in graph.items() if k != "benchlab"}
    assert find_cycle(graph) is None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("module", ["benchlab.norms", "benchlab.poisoning", "benchlab.nn"])
def test_every_public_helper_is_exported_under_its_name(module):
    mod = importlib.import_module(module)
    public = [n for n, v in vars(mod).items() if not n.startswith("_") and getattr(v, "__module__", module)
              .startswith(module) and not isinstance(v, type(ast))]
    public += [n for n in vars(mod) if n.isupper() and not n.startswith("_")]
    missing = [n for n in public if getattr(benchlab, n, None) is not getattr(mod, n)]
    assert missing == []
    assert set(benchlab.__all__) <= set(dir(benchlab))
