"""Declared metrics: what a component adds to a cell's row, and how the leaderboard should read it.

"Better" is always from the defender's side, because leaderboards rank defenses: a backdoor's
attack success rate is declared ``higher_is_better=False``, so its block's worst case is the highest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Metric:
    """One metric a component reports: its row key, direction, meaning, and whether it is the
    headline its blocks are ranked by."""

    name: str
    higher_is_better: bool
    help: str
    headline: bool = False

    def describe(self) -> dict:
        return asdict(self)
