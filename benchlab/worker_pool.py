"""The ``process`` executor: a pool of worker processes that survives the death of a worker.

A worker killed under a cell (the kernel's out-of-memory killer, a segfault in native code, a
SIGKILL) breaks a :class:`~concurrent.futures.ProcessPoolExecutor` and every cell in flight with
it. The cells in flight become suspects and run again on a fresh pool, one at a time, so that a
further death names its cell; a cell whose worker dies while it runs alone is charged, and after
``retries`` charged deaths it is recorded as failed (kind ``lost``) and the run goes on. At most
``workers`` cells are in flight at once, so the cells a death takes are exactly the ones known.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

from .cell import Settings, lost_row, run_cell
from .matrix import Cell
from .schedule import ArtifactSchedule, claim_all

log = logging.getLogger(__name__)

WORKER_RETRIES = 2  # retries of a cell whose worker died while it ran alone


def run_in_processes(cells: list[Cell], settings: Settings, workers: int, claim: Callable[[Cell], bool] = claim_all,
                     retries: int = WORKER_RETRIES) -> Iterator[dict]:
    """Rows of the cells ``claim`` grants, as they finish, on ``workers`` spawned processes. A cell
    is claimed only when a worker is free for it."""
    schedule = ArtifactSchedule(cells)
    offered = deque(schedule.ready)
    suspects: deque[Cell] = deque()
    deaths: Counter = Counter()  # worker deaths each cell was in flight for
    charged: Counter = Counter()  # ... of which it was the only cell in flight
    first_start: dict[str, float] = {}
    cell = schedule.next_claimed(offered, claim)
    while cell or suspects:
        with _spawned_pool(workers) as pool:
            running: dict[Future, Cell] = {}
            broken = False
            while not broken:
                # Suspects run alone; otherwise keep every worker busy. A worker can die between the
                # wait and a submit: the pool then refuses the submit, and the cell stays queued.
                if suspects and not running:
                    if _submitted(pool, running, suspects[0], settings):
                        suspects.popleft()
                    else:
                        broken = True
                while not broken and cell and not suspects and len(running) < workers:
                    first_start.setdefault(cell.cell_id, time.time())
                    if _submitted(pool, running, cell, settings):
                        cell = schedule.next_claimed(offered, claim)
                    else:
                        broken = True
                if broken or not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    if isinstance(future.exception(), BrokenProcessPool):
                        broken = True
                        continue
                    finished = running.pop(future)
                    row = future.result()
                    if deaths[finished.cell_id]:
                        row["manifest"]["worker_deaths"] = deaths[finished.cell_id]
                    offered.extend(schedule.finished(finished))
                    cell = cell or schedule.next_claimed(offered, claim)
                    yield row
            if broken:  # the futures still in `running` were taken by the death, but for late finishers
                for future in [f for f in running if f.done() and f.exception() is None]:
                    offered.extend(schedule.finished(running.pop(future)))
                    yield future.result()
                lost = list(running.values())
                if lost:
                    log.warning("a worker process died with %d cell(s) in flight (%s); they run again on a fresh "
                                "pool, one at a time", len(lost), "; ".join(c.label() for c in lost))
                for victim in lost:
                    deaths[victim.cell_id] += 1
                    charged[victim.cell_id] += len(lost) == 1
                    if charged[victim.cell_id] > retries:
                        reason = (f"WorkerLost: the worker process died while running this cell alone "
                                  f"{charged[victim.cell_id]} times (killed, out of memory, or crashed in "
                                  f"native code); {deaths[victim.cell_id]} worker deaths in all")
                        offered.extend(schedule.finished(victim))
                        yield lost_row(victim, settings, reason, first_start.get(victim.cell_id, time.time()))
                    else:
                        suspects.append(victim)
                cell = cell or schedule.next_claimed(offered, claim)


@contextmanager
def _spawned_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``workers`` spawned processes (not forked: forking a process that has initialised
    torch's thread pools is unsafe), shut down without waiting for its workers to exit: torch's
    interpreter teardown takes most of a second each, which the run spends recording instead."""
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield pool
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _submitted(pool: ProcessPoolExecutor, running: dict[Future, Cell], cell: Cell, settings: Settings) -> bool:
    """Submit ``cell`` to ``pool`` and track its future; False if a worker death has broken the pool."""
    try:
        running[pool.submit(run_cell, cell, settings)] = cell
    except BrokenProcessPool:
        return False
    return True
