"""Whole-request validation: a matrix (or one cell) is checked completely before any cell runs.

A matrix file is untrusted input. Everything a run needs is checked up front -- the file's
structure and types, every seed, recipe key and value, budget key and value, every plugin spec
and parameter, the device, and that each dataset is on disk -- and every problem found is
reported, one line each, naming the file and block. ``run``, ``run --dry-run`` and ``cell`` all
pass through here, so an invalid request never becomes a row.
"""

from __future__ import annotations

import math
from dataclasses import fields

from .params import SpecError, closest
from .train import OPTIMIZERS, PRECISIONS, Recipe

AXES = ("datasets", "attacks", "defenses", "victims")
BUDGET_NORMS = ("linf", "l2", "l1", "l0")
SCHEDULES = ("none", "cosine")
_RECIPE_CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "precision": PRECISIONS}
_ARTICLE = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
_RECIPE_LOW = {"lr": 0.0, "momentum": 0.0, "weight_decay": 0.0, "epochs": 0, "batch_size": 1}


class RequestError(SpecError):
    """One or more problems with a request; the message has one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def check_matrix_data(data: dict, where: str, registry) -> None:
    """Structure and value types of a parsed matrix TOML (before its blocks are merged)."""
    problems: list[str] = []
    raw_blocks = data.get("block", [{}])
    if not isinstance(raw_blocks, list) or not all(isinstance(b, dict) for b in raw_blocks):
        raise RequestError([f"{where}: 'block' must be a list of [[block]] tables, not {raw_blocks!r}"])
    for key in ("recipe", "budgets"):
        if key in data and not isinstance(data[key], dict):
            problems.append(f"{where}: {key!r} must be a table ([{key}]), not {data[key]!r}")
    if problems:
        raise RequestError(problems)
    defaults = {k: v for k, v in data.items() if k not in ("block", "name", "description")}
    for index, raw in enumerate(raw_blocks or [{}]):
        name = raw.get("name", f"block{index + 1}")
        here = f"{where}, block {name!r}"
        if not isinstance(name, str):
            problems.append(f"{where}, block {index + 1}: 'name' must be a string, not {name!r}")
        block = {**defaults, **raw}
        for key in ("recipe", "budgets"):
            if not isinstance(raw.get(key, {}), dict):
                problems.append(f"{here}: {key!r} must be a table ([block.{key}]), not {raw[key]!r}")
                block[key] = {}
            else:
                block[key] = {**defaults.get(key, {}), **raw.get(key, {})}
        problems += [f"{here}: {p}" for p in _block_problems(block, registry)]
    if problems:
        raise RequestError(problems)


def _block_problems(block: dict, registry) -> list[str]:
    problems = []
    for axis in (*AXES, *(f"exclude_{a}" for a in AXES)):
        value = block.get(axis, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            example = '["digits"]' if axis.endswith("datasets") else '["name", "name:key=value"]'
            problems.append(f"{axis} must be a list of strings (e.g. {axis} = {example}), not {value!r}")
    if "seeds" in block:
        problems += seed_problems(block["seeds"])
    problems += recipe_problems(block.get("recipe", {}))
    problems += budget_problems(block.get("budgets", {}), registry)
    return problems


def seed_problems(value) -> list[str]:
    """Seeds: a count N >= 1 (seeds 0..N-1) or a non-empty list of distinct integers >= 0."""
    if _is_int(value):
        return [] if value >= 1 else [f"seeds = {value!r}: a seed count must be >= 1"]
    if not isinstance(value, list):
        return [f"seeds = {value!r}: use a count (seeds = 3) or a list of integers >= 0 (seeds = [0, 1])"]
    if not value:
        return ["seeds = []: no seeds, so no cells; give at least one seed"]
    bad = [s for s in value if not _is_int(s) or s < 0]
    if bad:
        return [f"seeds = {value!r}: seeds must be integers >= 0 (not {', '.join(map(repr, bad))})"]
    return []


def recipe_problems(recipe: dict) -> list[str]:
    problems = []
    defaults = {f.name: f.default for f in fields(Recipe)}
    for key, value in recipe.items():
        if key not in defaults:
            problems.append(f"unknown [recipe] key {key!r}; {closest(key, defaults)}")
            continue
        kind = type(defaults[key])
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind is int:
            ok = _is_int(value)
        elif kind is float:
            ok = _is_number(value)
        else:
            ok = isinstance(value, str)
        if not ok:
            problems.append(f"[recipe] {key} = {value!r} is not {_ARTICLE[kind]}")
        elif key in _RECIPE_CHOICES and value not in _RECIPE_CHOICES[key]:
            problems.append(f"[recipe] {key} = {value!r}; choose one of {', '.join(_RECIPE_CHOICES[key])}")
        elif key in _RECIPE_LOW and value < _RECIPE_LOW[key]:
            problems.append(f"[recipe] {key} = {value!r} is below the minimum {_RECIPE_LOW[key]}")
    return problems


def budget_problems(budgets: dict, registry) -> list[str]:
    """``[block.budgets.<dataset>]`` tables of ``<norm> = value`` (finite, >= 0)."""
    problems = []
    datasets = registry.names("datasets")
    for dataset, table in budgets.items():
        if dataset not in datasets:
            problems.append(f"[budgets.{dataset}]: unknown dataset {dataset!r}; {closest(dataset, datasets)}")
            continue
        if not isinstance(table, dict):
            problems.append(f"[budgets.{dataset}] must be a table of norm = value, not {table!r}")
            continue
        for norm, value in table.items():
            if norm not in BUDGET_NORMS:
                    problems.append(f"[budgets.{dataset}]: unknown norm {norm!r}; {closest(norm, BUDGET_NORMS)}")
            elif not _is_number(value) or value < 0:
                problems.append(f"[budgets.{dataset}] {norm} = {value!r} must be a finite number >= 0")
    return problems


def check_request(matrix, registry, *, device: str = "auto", data_root=None, download: bool = False,
                  check_data: bool = True) -> list:
    """Expand ``matrix`` checking every spec, the device and the datasets; return its cells.

    Raises :class:`RequestError` listing every problem, and when the matrix expands to no cell.
    """
    from .cell import load_dataset
    from .context import resolve_device
    from .matrix import _expand_block

    where = matrix.source or f"matrix {matrix.name!r}"
    problems = []
    try:
        resolve_device(device)
    except ValueError as error:
        problems.append(f"--device: {error}")
    cells: dict = {}
    for block in matrix.blocks:
        try:
            for cell in _expand_block(block, registry, matrix.numerics):
                cells.setdefault(cell.cell_id, cell)
        except SpecError as error:
            problems.append(f"{where}, block {block['name']!r}: {error}")
    if problems:
        raise RequestError(problems)
    if not cells:
        raise RequestError([f"{where}: the matrix expands to 0 cells (every entry excluded, or no seeds)"])
    if check_data:
        from .datasets.base import DatasetMissing, MalformedDataset

        for spec in sorted({c.dataset for c in cells.values() if c.reason is None}):
            try:
                load_dataset(spec, data_root, download, "cpu")
            except (DatasetMissing, MalformedDataset, OSError, RuntimeError, ValueError) as error:
                blocks = sorted({c.block for c in cells.values() if c.dataset == spec})
                problems.append(f"{where}, block {', '.join(map(repr, blocks))}: dataset {spec!r} is not "
                                f"available: {error}".splitlines()[0])
    if problems:
        raise RequestError(problems)
    return matrix.expand(registry)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
