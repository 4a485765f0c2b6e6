"""Papers' reported numbers as data: the ``paper_results.toml`` files plugins register.

A plugin that reproduces a paper ships the paper's tables as TOML (parsed with :mod:`tomllib`, never
executed) and registers it through the ``register_paper_results`` hook. The file is untrusted input:
every key is checked here, and a bad file fails with one line naming the file, the place and the key.

Layout (one file per paper)::

    [paper]                      key, title, citation (str); source (str, optional)
    [[table]]                    key, title, where, paper_data, differences (str)
                                 blocks (list of matrix block names or fnmatch patterns)
                                 metric (str), units (str, optional), scale / offset (paper value =
                                 offset + scale * our value; default 1 / 0), digits (int, default 1)
    [[table.cell]]               key, row, column (str); value, std (number, optional: the paper's);
                                 where (str, optional); attack, defense, victim (regular expressions
                                 matched in full against our display specs); metric / scale / offset
                                 (optional per-cell overrides)
    [[table.claim]]              kind, text; per kind:
                                 order    cells: keys from the highest to the lowest value; tie (default 0)
                                 gap      a, b: ours(a) - ours(b) in [min, max] (paper units; either optional)
                                 bound    a: ours(a) in [min, max]
                                 best     cell, among: cell is the highest (``lowest = true``: the lowest)
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field

CLAIM_KINDS = ("order", "gap", "bound", "best")


class PaperResultsError(ValueError):
    """A paper results file that does not follow the layout above."""


@dataclass(frozen=True)
class Cell:
    key: str
    row: str
    column: str
    value: float | None
    std: float | None
    where: str
    selector: dict[str, re.Pattern]
    metric: str
    scale: float
    offset: float


@dataclass(frozen=True)
class Claim:
    kind: str
    text: str
    cells: tuple[str, ...]  # every cell key the claim reads, in its order
    minimum: float | None = None
    maximum: float | None = None
    tie: float = 0.0
    lowest: bool = False


@dataclass(frozen=True)
class Table:
    key: str
    title: str
    where: str
    paper_data: str
    differences: str
    blocks: tuple[str, ...]
    units: str
    digits: int
    cells: dict[str, Cell]
    claims: tuple[Claim, ...]


@dataclass(frozen=True)
class Paper:
    key: str
    title: str
    citation: str
    source: str
    tables: tuple[Table, ...] = field(default=())
    origin: str = ""


def load_paper(text: str, origin: str = "<text>") -> Paper:
    """Parse and validate one paper results file (its text; ``origin`` names it in errors)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PaperResultsError(f"{origin}: not valid TOML: {error}") from None
    check = _Checker(origin)
    paper = check.table(data, "paper", "")
    tables = check.list_of_tables(data, "table", "")
    if not tables:
        raise PaperResultsError(f"{origin}: no [[table]] entries")
    seen: set[str] = set()
    parsed = []
    for index, raw in enumerate(tables):
        table = _table(check, raw, f"table[{index}]")
        if table.key in seen:
            raise PaperResultsError(f"{origin}: table key {table.key!r} appears twice")
        seen.add(table.key)
        parsed.append(table)
    return Paper(check.text(paper, "key", "paper"), check.text(paper, "title", "paper"),
                 check.text(paper, "citation", "paper"), check.text(paper, "source", "paper", required=False),
                 tuple(parsed), origin)


def _table(check: _Checker, raw: dict, where: str) -> Table:
    key = check.text(raw, "key", where)
    where = f"table {key!r}"
    metric = check.text(raw, "metric", where)
    scale = check.number(raw, "scale", where, default=1.0)
    offset = check.number(raw, "offset", where, default=0.0)
    digits = check.number(raw, "digits", where, default=1)
    if digits != int(digits) or not 0 <= digits <= 6:
        raise PaperResultsError(f"{check.origin}: {where}: digits must be an integer from 0 to 6, not {digits!r}")
    blocks = check.strings(raw, "blocks", where)
    cells: dict[str, Cell] = {}
    for index, cell in enumerate(check.list_of_tables(raw, "cell", where)):
        parsed = _cell(check, cell, f"{where} cell[{index}]", metric, scale, offset)
        if parsed.key in cells:
            raise PaperResultsError(f"{check.origin}: {where}: cell key {parsed.key!r} appears twice")
        cells[parsed.key] = parsed
    claims = tuple(_claim(check, claim, f"{where} claim[{index}]", cells)
                   for index, claim in enumerate(check.list_of_tables(raw, "claim", where)))
    return Table(key, check.text(raw, "title", where), check.text(raw, "where", where),
                 check.text(raw, "paper_data", where), check.text(raw, "differences", where), tuple(blocks),
                 check.text(raw, "units", where, required=False), int(digits), cells, claims)


def _cell(check: _Checker, raw: dict, where: str, metric: str, scale: float, offset: float) -> Cell:
    selector = {}
    for role in ("attack", "defense", "victim"):
        pattern = check.text(raw, role, where)
        try:
            selector[role] = re.compile(pattern)
        except re.error as error:
            raise PaperResultsError(f"{check.origin}: {where}: {role} {pattern!r} is not a regular expression "
                                    f"({error})") from None
    return Cell(check.text(raw, "key", where), check.text(raw, "row", where), check.text(raw, "column", where),
                check.number(raw, "value", where, default=None), check.number(raw, "std", where, default=None),
                check.text(raw, "where", where, required=False), selector,
                check.text(raw, "metric", where, required=False) or metric,
                check.number(raw, "scale", where, default=scale), check.number(raw, "offset", where, default=offset))


def _claim(check: _Checker, raw: dict, where: str, cells: dict[str, Cell]) -> Claim:
    kind = check.text(raw, "kind", where)
    text = check.text(raw, "text", where)
    if kind == "order":
        keys = check.strings(raw, "cells", where)
        if len(keys) < 2:
            raise PaperResultsError(f"{check.origin}: {where}: an order claim needs at least two cells")
        claim = Claim(kind, text, tuple(keys), tie=check.number(raw, "tie", where, default=0.0))
    elif kind in ("gap", "bound"):
        cells_read = (check.text(raw, "a", where),) + ((check.text(raw, "b", where),) if kind == "gap" else ())
        claim = Claim(kind, text, cells_read,
                      minimum=check.number(raw, "min", where, default=None),
                      maximum=check.number(raw, "max", where, default=None))
        if claim.minimum is None and claim.maximum is None:
            raise PaperResultsError(f"{check.origin}: {where}: a {kind} claim needs min, max or both")
    elif kind == "best":
        lowest = raw.get("lowest", False)
        if not isinstance(lowest, bool):
            raise PaperResultsError(f"{check.origin}: {where}: lowest must be true or false")
        claim = Claim(kind, text, (check.text(raw, "cell", where), *check.strings(raw, "among", where)),
                      lowest=lowest)
    else:
        raise PaperResultsError(f"{check.origin}: {where}: kind {kind!r} is not one of {', '.join(CLAIM_KINDS)}")
    unknown = [key for key in claim.cells if key not in cells]
    if unknown:
        raise PaperResultsError(f"{check.origin}: {where}: unknown cells {unknown}; cells: {', '.join(cells)}")
    return claim


@dataclass
class _Checker:
    origin: str

    def _fail(self, where: str, message: str):
        raise PaperResultsError(f"{self.origin}: {where + ': ' if where else ''}{message}")

    def table(self, data: dict, key: str, where: str) -> dict:
        value = data.get(key)
        if not isinstance(value, dict):
            self._fail(where, f"[{key}] table missing")
        return value

    def list_of_tables(self, data: dict, key: str, where: str) -> list[dict]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self._fail(where, f"{key} must be an array of tables ([[{key}]])")
        return value

    def text(self, data: dict, key: str, where: str, required: bool = True) -> str:
        value = data.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            self._fail(where, f"{key} must be a non-empty string, not {value!r}")
        return value

    def number(self, data: dict, key: str, where: str, default):
        value = data.get(key, default)
        if value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._fail(where, f"{key} must be a number, not {value!r}")
        return float(value)

    def strings(self, data: dict, key: str, where: str) -> list[str]:
        value = data.get(key)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            self._fail(where, f"{key} must be a non-empty list of strings, not {value!r}")
        return value
