"""How long the rest of a matrix will take, from the recorded durations of similar cells.

A cell's estimate is the median duration of the finished cells in the results database that match
it most closely: the same dataset, threat, attack, defense, victim and recipe overrides, and whether
it builds its artifact (a poison, a clean-trained model) or finds it cached; then the same without
the cache state; then coarser matches, down to any cell of the same threat model.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable

from .matrix import Cell
from .schedule import artifact_group

# From the finest match to the coarsest; "cold": the cell builds its artifact.
LEVELS = (
    ("dataset", "threat", "attack", "defense", "victim", "recipe", "cold"),
    ("dataset", "threat", "attack", "defense", "victim", "recipe"),
    ("dataset", "threat", "attack", "defense", "victim"),
    ("dataset", "threat", "defense", "victim", "recipe"),
    ("dataset", "threat", "recipe"),
    ("dataset", "threat"),
    ("threat",),
)


def _recipe(recipe) -> str:
    return json.dumps(sorted(dict(recipe).items()))


def _row_traits(row: dict) -> dict:
    metrics = row["metrics"]
    hit = metrics.get("cache_hit_poison", True) if row["threat"] == "poison" else metrics.get("cache_hit_model", True)
    return {"dataset": row["dataset"], "threat": row["threat"], "attack": row["attack"], "defense": row["defense"],
            "victim": row["victim"], "recipe": _recipe(row["params"].get("recipe", {})), "cold": not hit}


def _cell_traits(cell: Cell, cold: bool) -> dict:
    return {"dataset": cell.dataset, "threat": cell.threat, "attack": cell.attack, "defense": cell.defense,
            "victim": cell.victim, "recipe": _recipe(cell.recipe), "cold": cold}


class Durations:
    """Recorded durations of finished (ok) cells, indexed at every level of :data:`LEVELS`."""

    def __init__(self, rows: Iterable[dict]):
        self._seconds: dict[tuple, list[float]] = {}
        for row in rows:
            if row["status"] != "ok":
                continue
            traits = _row_traits(row)
            for level in LEVELS:
                key = (level, *(traits[name] for name in level))
                self._seconds.setdefault(key, []).append(row["duration_s"])

    def estimate(self, cell: Cell, cold: bool) -> float | None:
        """The median recorded duration of the closest match, None when nothing matches."""
        traits = _cell_traits(cell, cold)
        for level in LEVELS:
            found = self._seconds.get((level, *(traits[name] for name in level)))
            if found:
                return statistics.median(found)
        return None


def estimates(cells: list[Cell], rows: Iterable[dict]) -> dict[str, float | None]:
    """Each cell's estimated seconds; the first cell of each artifact group is the one that builds it."""
    durations = Durations(rows)
    seen: set[tuple] = set()
    out = {}
    for cell in cells:
        group = artifact_group(cell)
        out[cell.cell_id] = durations.estimate(cell, cold=group not in seen)
        seen.add(group)
    return out
