"""What the driver shows while a matrix runs: the matrix bar, each running cell's phase under it
(:mod:`benchlab.progress`), and the time left estimated from recorded similar cells (:mod:`benchlab.eta`).

On a terminal each running cell has a live line under the bar. Elsewhere (CI logs) nothing is
redrawn: a line is written when a cell enters a new phase, and again with its progress (say, the
epoch it has reached) after ``HEARTBEAT_INTERVAL`` seconds in one phase, so an hour-long phase shows
it is alive; at most one line every ``LOG_INTERVAL`` seconds.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable

from tqdm.auto import tqdm

from .progress import Phase

LOG_INTERVAL = 10.0
HEARTBEAT_INTERVAL = 120.0


class MatrixProgress:
    """The driver's view of a run. ``phase`` takes events from any thread; ``done`` a finished row.

    ``estimates``: each cell's expected seconds (None: nothing similar recorded); ``slots``: how
    many cells run at once, which divides the time left.
    """

    def __init__(self, name: str, estimates: dict[str, float | None], slots: int, *, show: bool = True,
                 on_phase: Callable[[Phase], None] | None = None, file=None):
        self.file = file or sys.stderr
        self.show = show
        self.live = show and self.file.isatty()
        self.on_phase = on_phase
        self.slots = max(1, slots)
        self._left = {cell: seconds for cell, seconds in estimates.items() if seconds is not None}
        self._unknown = {cell for cell, seconds in estimates.items() if seconds is None}
        self._lines: dict[str, tqdm] = {}
        self._spare: list[tqdm] = []
        self._logged: dict[str, tuple[str, float]] = {}  # cell -> phase last written, when
        self._last_log = 0.0
        self._lock = threading.RLock()
        self.bar = tqdm(total=len(estimates), desc=f"matrix {name}", unit="cell", disable=not show, file=self.file)
        if self.eta() is not None:
            self.bar.set_postfix_str(self.eta_text(), refresh=False)
            if show and not self.live:
                self.bar.write(f"matrix {name}: {self.eta_text()}", file=self.file)

    def eta(self) -> float | None:
        """Seconds left by the recorded durations of the cells not finished (None: none estimated)."""
        return sum(self._left.values()) / self.slots if self._left else None

    def eta_text(self) -> str:
        text = f"{tqdm.format_interval(self.eta())} left by similar recorded cells"
        return text + (f" (+{len(self._unknown)} never recorded)" if self._unknown else "")

    def phase(self, event: Phase) -> None:
        with self._lock:
            if self.on_phase is not None:
                self.on_phase(event)
            if self.live:
                self._line(event.cell_id).set_description_str(f"  {event.label}: {event.text()}")
            elif self.show:
                now = time.monotonic()
                name, at = self._logged.get(event.cell_id, (None, 0.0))
                due = name != event.name or now - at >= HEARTBEAT_INTERVAL
                if due and now - self._last_log >= LOG_INTERVAL:
                    self._logged[event.cell_id], self._last_log = (event.name, now), now
                    self.bar.write(f"  {event.label}: {event.text()}", file=self.file)

    def _line(self, cell_id: str) -> tqdm:
        if cell_id not in self._lines:
            self._lines[cell_id] = self._spare.pop() if self._spare else tqdm(
                bar_format="{desc}", position=len(self._lines) + 1, leave=False, file=self.file)
        return self._lines[cell_id]

    def done(self, row: dict, counts: Counter) -> None:
        with self._lock:
            cell = row["cell_id"]
            self._left.pop(cell, None)
            self._unknown.discard(cell)
            self._logged.pop(cell, None)
            if cell in self._lines:
                line = self._lines.pop(cell)
                line.set_description_str("")
                self._spare.append(line)
            parts = [" ".join(f"{k}={v}" for k, v in sorted(counts.items()))]
            if self.eta() is not None:
                parts.append(self.eta_text())
            self.bar.set_postfix_str(", ".join(parts), refresh=False)
            self.bar.update()  # one redraw per finished cell

    def close(self) -> None:
        with self._lock:
            for line in [*self._lines.values(), *self._spare]:
                line.close()
            self.bar.close()
