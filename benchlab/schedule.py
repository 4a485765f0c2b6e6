"""Which cells a parallel executor may start, and when: artifacts first, their dependants after.

Parallel executors start one cell per artifact (a poison, or a clean-trained model) and release
the other cells that start from it only when that cell has finished: a worker never sits on the
cache lock of an artifact another worker is still building while other cells could run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from .matrix import Cell


def artifact_group(cell: Cell) -> tuple:
    """The expensive artifact a cell starts from: its poison, or (evasion) its clean-trained model."""
    if cell.threat == "poison":
        return ("poison", cell.dataset, cell.attack, cell.seed)
    return ("model", cell.dataset, cell.defense, cell.victim, cell.seed, cell.recipe)


def claim_all(cell: Cell) -> bool:
    return True


class ArtifactSchedule:
    """One cell per artifact group at first (in first-seen order), and the rest of a group once
    that cell has finished, ok or not (they then find the artifact cached, or build it themselves
    if it failed)."""

    def __init__(self, cells: Iterable[Cell]):
        groups: dict[tuple, list[Cell]] = {}
        for cell in cells:
            groups.setdefault(artifact_group(cell), []).append(cell)
        self.ready = [group[0] for group in groups.values()]
        self._waiting = {key: group[1:] for key, group in groups.items()}

    def finished(self, cell: Cell) -> list[Cell]:
        """The cells that ``cell`` finishing releases (each released once)."""
        return self._waiting.pop(artifact_group(cell), [])

    def next_claimed(self, offered: deque[Cell], claim: Callable[[Cell], bool] = claim_all) -> Cell | None:
        """Pop cells off ``offered`` until ``claim`` grants one (None when none is left). A refused
        cell (another runner computes or computed it) counts as finished here: the cells it
        releases join ``offered`` in its place."""
        while offered:
            cell = offered.popleft()
            if claim(cell):
                return cell
            offered.extend(self.finished(cell))
        return None
