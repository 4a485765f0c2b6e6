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

from .cell import Settings, lost_row, run_cell
from .matrix import Cell
from .schedule import ArtifactSchedule, claim_all

log = logging.getLogger(__name__)

WORKER_RETRIES = 2  # retries of a cell whose worker died while it ran alone


def run_in_processes(cells: list[Cell], settings: Settings, workers: int, claim: Callable[[Cell], bool] = claim_all,
                     retries: int = WORKER_RETRIES) -> Iterator[dict]:
    """Rows of the cells ``claim`` grants, as they finish, on ``workers`` spawned processes."""
    schedule = ArtifactSchedule(cells)
    queue = deque(schedule.claimed(schedule.ready, claim))
    suspects: deque[Cell] = deque()
    deaths: Counter = Counter()  # worker deaths each cell was in flight for
    charged: Counter = Counter()  # ... of which it was the only cell in flight
    first_start: dict[str, float] = {}
    # spawn, not fork: forking a process that has initialised torch's thread pools is unsafe.
    context = multiprocessing.get_context("spawn")
    while queue or suspects:
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            running: dict[Future, Cell] = {}
            broken = False
            while not broken and (queue or suspects or running):
                # Suspects run alone; otherwise keep every worker busy.
                while not running and suspects:
                    cell = suspects.popleft()
                    running[pool.submit(run_cell, cell, settings)] = cell
                while queue and not suspects and len(running) < workers:
                    cell = queue.popleft()
                    first_start.setdefault(cell.cell_id, time.time())
                    running[pool.submit(run_cell, cell, settings)] = cell
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    if isinstance(future.exception(), BrokenProcessPool):
                        broken = True
                        continue
                    cell = running.pop(future)
                    row = future.result()
                    if deaths[cell.cell_id]:
                        row["manifest"]["worker_deaths"] = deaths[cell.cell_id]
                    queue.extend(schedule.claimed(schedule.finished(cell), claim))
                    yield row
            if broken:  # the futures still in `running` were taken by the death, but for late finishers
                for future in [f for f in running if f.done() and f.exception() is None]:
                    cell = running.pop(future)
                    queue.extend(schedule.claimed(schedule.finished(cell), claim))
                    yield future.result()
                lost = list(running.values())
                log.warning("a worker process died with %d cell(s) in flight (%s); they run again on a fresh "
                            "pool, one at a time", len(lost), "; ".join(c.label() for c in lost))
                for cell in lost:
                    deaths[cell.cell_id] += 1
                    charged[cell.cell_id] += len(lost) == 1
                    if charged[cell.cell_id] > retries:
                        reason = (f"WorkerLost: the worker process died while running this cell alone "
                                  f"{charged[cell.cell_id]} times (killed, out of memory, or crashed in "
                                  f"native code); {deaths[cell.cell_id]} worker deaths in all")
                        queue.extend(schedule.claimed(schedule.finished(cell), claim))
                        yield lost_row(cell, settings, reason, first_start.get(cell.cell_id, time.time()))
                    else:
                        suspects.append(cell)
