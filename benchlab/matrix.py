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
from .interfaces import Plugin
from .params import SpecError, closest, parse_spec
from .plugins import Registry

PRESETS = ("smoke", "quick", "paper", "full", "standard")
AXES = ("datasets", "attacks", "defenses", "victims")
BLOCK_KEYS = {*AXES, *(f"exclude_{a}" for a in AXES), "name", "seeds", "recipe", "budgets", "description"}
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
    identity: str = field(default="", compare=False)
    reason: str | None = field(default=None, compare=False)  # set when the cell is n/a

    @property
    def cell_id(self) -> str:
        return self.identity

    def label(self) -> str:
        return f"{self.dataset} | {self.attack} | {self.defense} | {self.victim} | seed {self.seed}"


@dataclass
class Matrix:
    name: str
    blocks: list[dict]
    description: str = ""

    def block_cell_ids(self, registry: Registry) -> dict[str, set[str]]:
        """Each block's cell ids, before deduplication: the leaderboard renders one table per block."""
        return {block["name"]: {cell.cell_id for cell in _expand_block(block, registry)} for block in self.blocks}

    def expand(self, registry: Registry) -> list[Cell]:
        """All cells of all blocks, deduplicated, in an order that maximises artifact reuse."""
        cells: dict[str, Cell] = {}
        for block in self.blocks:
            for cell in _expand_block(block, registry):
                cells.setdefault(cell.cell_id, cell)
        # Same dataset, then same poison, then same trained victim: consecutive cells share artifacts.
        return sorted(cells.values(), key=lambda c: (c.dataset, c.seed, c.threat != "poison",
                                                     c.attack if c.threat == "poison" else "",
                                                     c.defense, c.victim, c.attack))


def load_matrix(name_or_path: str, registry: Registry, seeds: int | None = None) -> Matrix:
    """A preset by name, or a TOML file by path; ``seeds`` overrides the seed list with range(N)."""
    path = Path(name_or_path)
    if name_or_path in PRESETS:
        text = resources.files("benchlab").joinpath("matrices", f"{name_or_path}.toml").read_text()
        data = tomllib.loads(text)
        data["block"] = [*data.get("block", []), *registry.matrices.get(name_or_path, [])]
        if not data["block"]:
            raise SpecError(f"preset {name_or_path!r} has no blocks yet: no installed plugin contributes to it")
        name = name_or_path
    elif path.suffix == ".toml" or path.exists():
        if not path.exists():
            raise SpecError(f"matrix file {str(path)!r} does not exist")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as error:
            raise SpecError(f"matrix file {path}: {error}") from None
        name = data.get("name", path.stem)
    else:
        presets = [*PRESETS, *(p for p in registry.matrices if p not in PRESETS)]
        raise SpecError(f"unknown matrix {name_or_path!r}; presets: {', '.join(presets)}, or a path to a .toml file")
    return Matrix(name, _blocks(data, seeds), data.get("description", ""))


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


def _expand_block(block: dict, registry: Registry):
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
                    reasons = (p.incompatibility(info, victim) for p in (victim, defense, attack))
                    reason = next(filter(None, reasons), None)
                    for seed in block["seeds"]:
                        identity = cache_key(dataset.identity(), attack.identity(), defense.identity(),
                                             victim.identity(), seed, recipe)
                        yield Cell(block["name"], dataset.spec, attack.spec, defense.spec, victim.spec, seed,
                                   attack.threat, recipe, identity, reason)


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
    return "\n".join(lines)
