"""Matrix specifications (presets and TOML files) and their expansion into cells.

A matrix is a list of *blocks*; each block is a cross product of datasets × attacks × defenses ×
victims × seeds. Axis entries are plugin specs (``pgd:norm=l2``), wildcard patterns over registered
names (``*``, ``adv-*``) or brace sweeps (``uniform-noise:eps={0,0.1,0.3}``). Top-level keys are
defaults for every block. Presets ship as TOML in ``benchlab/matrices/`` and plugins add blocks to a
preset through the ``register_matrices`` hook.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .cache import cache_key
from .code_identity import canonical_spec, cell_code, code_version
from .generative import generative_incompatibility
from .interfaces import Plugin
from .lineage import logical_key
from .numerics import Numerics
from .params import SpecError, closest, parse_spec
from .plugins import PluginError, Registry
from .validation import check_matrix_data

PRESETS = ("smoke", "quick", "paper", "full", "standard")
AXES = ("datasets", "attacks", "defenses", "victims")
BLOCK_KEYS = {*AXES, *(f"exclude_{a}" for a in AXES), "name", "seeds", "recipe", "budgets", "description",
              "metric", "requires"}
_BRACES = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class Cell:
    """One (dataset, attack, defense, victim, seed) combination, resolved to canonical specs."""

    block: str
    dataset: str
    attack: str
    defense: str
    victim: str
    seed: int
    threat: str
    recipe: tuple = ()  # sorted (field, value) overrides of the victim's training recipe
    numerics: tuple = ()  # Numerics.key(): threads, matmul precision, determinism (benchlab.numerics)
    identity: str = field(default="", compare=False)
    reason: str | None = field(default=None, compare=False)  # set when the cell is n/a
    # What the row records: the code that computes the cell (benchlab.code_identity) and every
    # component's full canonical spec, defaults included (the fields above are the short display specs).
    code: dict = field(default_factory=dict, compare=False)
    specs: dict = field(default_factory=dict, compare=False)

    @property
    def cell_id(self) -> str:
        return self.identity

    @property
    def logical_key(self) -> str:
        return logical_key(self.dataset, self.threat, self.attack, self.defense, self.victim, self.seed,
                           dict(self.recipe))

    @property
    def code_version(self) -> str | None:
        return code_version(self.code) if self.code else None

    def label(self) -> str:
        return f"{self.dataset} | {self.attack} | {self.defense} | {self.victim} | seed {self.seed}"


@dataclass
class Matrix:
    name: str
    blocks: list[dict]
    description: str = ""
    source: str = ""  # the file (or preset) it was loaded from, for error messages
    numerics: Numerics = field(default_factory=Numerics)  # part of every cell's identity
    # Blocks left out because a plugin they need is missing, blocked or broken: name -> reason.
    skipped: dict[str, str] = field(default_factory=dict)

    def block_cells(self, registry: Registry) -> dict[str, set[str]]:
        """Each block's logical cells (``benchlab.lineage.logical_key``), before deduplication: the
        leaderboard renders one table per block, from the rows of any code that computed its cells."""
        return {block["name"]: {cell.logical_key for cell in _expand_block(block, registry, self.numerics)}
                for block in self.blocks}

    def expand(self, registry: Registry) -> list[Cell]:
        """All cells of all blocks, deduplicated, in an order that maximises artifact reuse."""
        cells: dict[str, Cell] = {}
        for block in self.blocks:
            for cell in _expand_block(block, registry, self.numerics):
                cells.setdefault(cell.cell_id, cell)
        # Same dataset, then same poison, then same trained victim: consecutive cells share artifacts.
        return sorted(cells.values(), key=lambda c: (c.dataset, c.seed, c.threat != "poison",
                                                     c.attack if c.threat == "poison" else "",
                                                     c.defense, c.victim, c.attack))


def load_matrix(name_or_path: str, registry: Registry, seeds: int | None = None) -> Matrix:
    """A preset by name, or a TOML file by path; ``seeds`` overrides the seed list with range(N)."""
    path = Path(name_or_path)
    if name_or_path in PRESETS or name_or_path in registry.matrices:  # plugins may add presets of their own
        shipped = resources.files("benchlab").joinpath("matrices", f"{name_or_path}.toml")
        data = tomllib.loads(shipped.read_text()) if name_or_path in PRESETS else {}
        data["block"] = [*data.get("block", []), *registry.matrices.get(name_or_path, [])]
        if not data["block"]:
            raise SpecError(f"preset {name_or_path!r} has no blocks yet: no installed plugin contributes to it")
        name, where = name_or_path, f"preset {name_or_path!r}"
    elif path.suffix == ".toml" or path.exists():
        if not path.exists():
            raise SpecError(f"matrix file {str(path)!r} does not exist")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as error:
            raise SpecError(f"matrix file {path}: {error}") from None
        name, where = _valid_name(data.get("name", path.stem), path), f"matrix file {path}"
    else:
        presets = [*PRESETS, *(p for p in registry.matrices if p not in PRESETS)]
        raise SpecError(f"unknown matrix {name_or_path!r}; presets: {', '.join(presets)}, or a path to a .toml file")
    check_matrix_data(data, where, registry)
    try:
        blocks = _blocks(data, seeds)
    except SpecError as error:
        raise SpecError(f"{where}: {error}") from None
    available, skipped = [], {}
    for block in blocks:
        reason = unavailable(block, registry)
        if reason is None:
            available.append(block)
        else:
            skipped[block["name"]] = reason
    return Matrix(name, available, data.get("description", ""), where, skipped=skipped)


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def _valid_name(name, path: Path) -> str:
    """A matrix name names the leaderboard folder: a plain name, never a path."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise SpecError(f"matrix file {path}: name {name!r} is not a valid name: use letters, digits, '-', '_' "
                        f"and '.' (it names the leaderboard folder; it is not a path)")
    return name


def unavailable(block: dict, registry: Registry) -> str | None:
    """Why ``block`` cannot run in this installation, or None.

    A block names the plugins it needs in ``requires`` (entry-point names). When some plugin was left
    out (blocked, failed to import, colliding), a block naming a component no loaded plugin
    registers is skipped too: the component most likely came from that plugin. Otherwise an unknown
    name stays an error (a typo) when the block is expanded.
    """
    for plugin in block.get("requires", []):
        if plugin not in registry.loaded:
            problem = registry.left_out.get(plugin)
            state = f"{problem.status}: {problem.reason}" if problem else "not installed"
            return f"needs plugin {plugin!r}, which is {state}"
    if not registry.left_out:
        return None
    for axis in AXES:
        for entry in block[axis]:
            for text in expand_braces(str(entry)):
                name = parse_spec(text).name
                if not any(ch in text for ch in "*?[") and name not in registry.entries[axis]:
                    left_out = ", ".join(f"{p} ({q.status})" for p, q in registry.left_out.items())
                    return f"names {axis[:-1]} {name!r}, which no loaded plugin registers (left out: {left_out})"
    return None


def _blocks(data: dict, seeds: int | None) -> list[dict]:
    defaults = {k: v for k, v in data.items() if k not in ("block", "name", "description")}
    raw_blocks = data.get("block") or [{}]
    blocks = []
    for index, raw in enumerate(raw_blocks):
        block = {**defaults, **raw}
        for key in ("recipe", "budgets"):  # tables merge key by key
            block[key] = {**defaults.get(key, {}), **raw.get(key, {})}
        block.setdefault("name", f"block{index + 1}")
        unknown = sorted(set(block) - BLOCK_KEYS)
        if unknown:
            # "blocks" for "block" is the usual slip: name the nearest key for each unknown one
            hints = "; ".join(f"{key!r}: {closest(key, [*BLOCK_KEYS, 'block'])}" for key in unknown)
            raise SpecError(f"matrix block {block['name']!r}: unknown keys {unknown} ({hints}); "
                            f"valid keys: {', '.join(sorted(BLOCK_KEYS))}, and [[block]] tables")
        missing = [axis for axis in AXES if not block.get(axis)]
        if missing:
            raise SpecError(f"matrix block {block['name']!r}: no entries for {', '.join(missing)}")
        block["seeds"] = list(range(seeds)) if seeds else _seed_list(block.get("seeds", [0]))
        blocks.append(block)
    return blocks


def _seed_list(value) -> list[int]:
    if isinstance(value, int):
        return list(range(value))
    return [int(s) for s in value]


def expand_braces(text: str) -> list[str]:
    """``a:eps={0,0.1}`` -> ``["a:eps=0", "a:eps=0.1"]`` (nested braces are not supported)."""
    match = _BRACES.search(text)
    if not match:
        return [text]
    head, tail = text[: match.start()], text[match.end() :]
    return [out for option in match.group(1).split(";" if ";" in match.group(1) else ",")
            for out in expand_braces(head + option.strip() + tail)]


def _axis_specs(kind: str, entries: list[str], excludes: list[str], registry: Registry) -> list[str]:
    specs: list[str] = []
    for entry in entries:
        for text in expand_braces(str(entry)):
            if any(ch in text for ch in "*?["):
                matched = [n for n in registry.names(kind, text)
                           if not any(p.required for p in registry.get(kind, n).params)]
                if not matched:
                    raise SpecError(f"pattern {text!r} matches no {kind}; {closest(text, registry.names(kind))}")
                specs.extend(matched)
            else:
                registry.get(kind, parse_spec(text).name)  # fail early on unknown names
                specs.append(text)
    return [s for s in dict.fromkeys(specs)
            if not any(fnmatch.fnmatchcase(parse_spec(s).name, p) or s == p for p in excludes)]


def _expand_block(block: dict, registry: Registry, numerics: Numerics | None = None):
    numerics = numerics or Numerics()
    axes = {axis: _axis_specs(axis, list(block[axis]), list(block.get(f"exclude_{axis}", [])), registry)
            for axis in AXES}
    recipe = tuple(sorted(block["recipe"].items()))
    for dataset_spec in axes["datasets"]:
        dataset = registry.create("datasets", dataset_spec)
        info = dataset.info
        budgets = {**info.budgets, **block["budgets"].get(dataset.name, {})}
        victims = [registry.create("victims", v) for v in axes["victims"]]
        # Adversarial-training defenses declare eps too: the block's budget reaches them as well.
        defenses = [with_budget(registry, d, budgets, "defenses") for d in axes["defenses"]]
        for attack_spec in axes["attacks"]:
            attack = with_budget(registry, attack_spec, budgets)
            for defense in defenses:
                for victim in victims:
                    reasons = (generative_incompatibility(attack, defense, victim),
                               *(p.incompatibility(info, victim) for p in (victim, defense, attack)))
                    reason = next(filter(None, reasons), None)
                    code = cell_code(registry, dataset, attack, defense, victim)
                    specs = {role: canonical_spec(plugin) for role, plugin in
                             (("dataset", dataset), ("attack", attack), ("defense", defense), ("victim", victim))}
                    for seed in block["seeds"]:
                        identity = cache_key(dataset.identity(), attack.identity(), defense.identity(),
                                             victim.identity(), seed, recipe, code, numerics.as_dict())
                        yield Cell(block["name"], dataset.spec, attack.spec, defense.spec, victim.spec, seed,
                                   attack.threat, recipe, numerics.key(), identity, reason, code, specs)


def installed_cell_id(registry: Registry, dataset: str, attack: str, defense: str, victim: str, seed: int,
                      recipe: dict, numerics: Numerics | None = None) -> str | None:
    """The id a recorded cell (its display specs) has under the installed code; None when a spec no
    longer resolves (a plugin removed or renamed). Recorded specs already carry the filled budgets."""
    block = {"name": "", "datasets": [dataset], "attacks": [attack], "defenses": [defense], "victims": [victim],
             "seeds": [seed], "recipe": dict(recipe), "budgets": {}}
    try:
        (cell,) = _expand_block(block, registry, numerics)
    except (SpecError, PluginError, ValueError):
        return None
    return cell.cell_id


def with_budget(registry: Registry, spec: str, budgets: dict, kind: str = "attacks") -> Plugin:
    """Create a plugin, filling ``eps`` (per its ``norm``) and ``pixels`` (l0) from the budgets when unset."""
    parsed = parse_spec(spec)
    plugin = registry.create(kind, parsed)
    declared = {p.name for p in type(plugin).params}
    fill = {}
    if "eps" in declared and plugin.values.get("eps") is None:
        norm = plugin.values.get("norm") or "linf"
        if norm in budgets:
            fill["eps"] = budgets[norm]
    if "pixels" in declared and plugin.values.get("pixels") is None and "l0" in budgets:
        fill["pixels"] = budgets["l0"]
    return registry.create(kind, parsed, **fill) if fill else plugin


def describe(matrix: Matrix, cells: list[Cell]) -> str:
    """A human summary of an expansion (for ``--dry-run``)."""
    runnable = sum(c.reason is None for c in cells)
    lines = [f"matrix {matrix.name}: {len(cells)} cells ({runnable} runnable, {len(cells) - runnable} n/a)"]
    for block in matrix.blocks:
        mine = [c for c in cells if c.block == block["name"]]
        lines.append(f"  block {block['name']}: {len(mine)} cells, seeds {block['seeds']}")
    lines += [f"  block {name}: skipped, {reason}" for name, reason in matrix.skipped.items()]
    return "\n".join(lines)
