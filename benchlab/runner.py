"""The matrix runner: skips finished cells, executes the rest on an executor, records every row.

Executors: ``local`` (this process, the default), ``process`` (N worker processes on this machine)
and ``ray`` (a Ray cluster, or a local one started on demand). Workers only compute and *return*
rows; the driver alone writes the database, one transaction per cell, as each result arrives. A
killed run therefore loses only cells in flight, and a rerun picks up exactly those.

Parallel executors start one cell per artifact (a poison, or a clean-trained model) and release
the other cells that start from it only when that cell has finished: a worker never sits on the
cache lock of an artifact another worker is still building while other cells could run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import multiprocessing
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from .cell import RETRIED_FAILURES, Settings, run_cell
from .eta import estimates
from .matrix import Cell, Matrix
from .plugins import get_registry
from .progress import Phase, PhaseChannel, RaySink
from .progress_display import MatrixProgress
from .reaper import guard_descendants
from .store import ResultsStore
from .validation import check_request

log = logging.getLogger(__name__)
EXECUTORS = ("local", "process", "ray")


@dataclass
class RunSummary:
    cells: list[Cell]
    skipped: int = 0
    counts: Counter = field(default_factory=Counter)
    unfinished: int = 0
    failed_before: int = 0  # skipped cells whose recorded row is a failure (of code)

    @property
    def failed(self) -> int:
        return self.counts["failed"] + self.failed_before

    @property
    def cell_ids(self) -> set[str]:
        return {c.cell_id for c in self.cells}

    def line(self) -> str:
        parts = [f"{self.counts[s]} {s}" for s in ("ok", "failed", "n/a") if self.counts[s]]
        text = f"{len(self.cells)} cells: {self.skipped} already done"
        text += f", ran {sum(self.counts.values())} ({', '.join(parts) or 'none'})"
        if self.failed_before:
            text += f"; {self.failed_before} of the done cells had failed"
        if self.unfinished:
            text += f", {self.unfinished} unfinished (rerun to resume)"
        return text


def run_matrix(
    matrix: Matrix,
    settings: Settings,
    *,
    executor: str = "local",
    workers: int = 2,
    retry_failed: bool = False,
    ray_address: str | None = None,
    gpus_per_cell: float = 0.0,
    threads: int | None = None,
    show_progress: bool = True,
    on_progress: Callable[[Phase], None] | None = None,
) -> RunSummary:
    """Run every cell of ``matrix`` not yet in the database under ``settings.out``.

    ``threads``: torch intra-op threads per cell, the same on every executor (default
    ``matrix.numerics``: 1, see :mod:`benchlab.numerics`); part of each cell's identity.
    ``on_progress``: called in the driver with every phase event of the running cells
    (:mod:`benchlab.progress`), whatever the executor.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; valid executors: {', '.join(EXECUTORS)}")
    if threads is not None:
        matrix = dataclasses.replace(matrix, numerics=dataclasses.replace(matrix.numerics, threads=threads))
    threads = matrix.numerics.threads
    if executor == "ray" and ray_address is None and threads > workers:
        # a task asking for more CPUs than the local cluster has would wait forever
        raise ValueError(f"threads={threads} exceeds the {workers} CPUs of the local Ray cluster "
                         f"(workers); raise workers or lower threads")
    # The whole request is checked before any work: nothing invalid ever becomes a row.
    cells = check_request(matrix, get_registry(), device=settings.device, data_root=settings.data_root,
                          download=settings.download)
    store = ResultsStore(settings.out)
    # Failures of the environment or of the request (and rows older than failure kinds) are
    # retried automatically; failures of code only with retry_failed.
    done = store.finished_ids(("ok", "n/a") if retry_failed else ("ok", "n/a", "failed"),
                              retry_kinds=(*RETRIED_FAILURES, "unknown"))
    todo = [c for c in cells if c.cell_id not in done]
    summary = RunSummary(cells, skipped=len(cells) - len(todo))
    summary.failed_before = len(done & {c.cell_id for c in cells} - store.finished_ids(("ok", "n/a")))
    # n/a cells cost nothing: record them here rather than shipping them to workers.
    runnable = [c for c in todo if c.reason is None]
    for cell in (c for c in todo if c.reason is not None):
        _record(store, summary, run_cell(cell, settings))
    progress = MatrixProgress(matrix.name, estimates(runnable, store.rows() if runnable else []),
                              1 if executor == "local" else workers,
                              show=show_progress, on_phase=on_progress)
    channel = PhaseChannel(progress.phase) if runnable and (show_progress or on_progress) else None
    settings = dataclasses.replace(settings, progress=channel and channel.sink(executor))
    try:
        for row in _execute(runnable, settings, executor, workers, ray_address, gpus_per_cell, threads):
            _record(store, summary, row)
            progress.done(row, summary.counts)
    finally:
        if channel is not None:
            channel.close()
        progress.close()
        summary.unfinished = len(runnable) - summary.counts["ok"] - summary.counts["failed"]
    return summary


def _record(store: ResultsStore, summary: RunSummary, row: dict) -> None:
    store.record(row)
    summary.counts[row["status"]] += 1
    if row["status"] == "failed":
        log.warning("cell failed: %s | %s | %s | %s | seed %s: %s", row["dataset"], row["attack"],
                    row["defense"], row["victim"], row["seed"], row["reason"].splitlines()[0])


def _execute(cells: list[Cell], settings: Settings, executor: str, workers: int,
             ray_address: str | None, gpus_per_cell: float, threads: int) -> Iterator[dict]:
    """Rows of ``cells``; each cell applies its own numerics (threads included) wherever it runs."""
    if not cells:
        return iter(())
    if executor == "local":
        return (run_cell(cell, settings) for cell in cells)
    guard_descendants()  # no worker, resource tracker or Ray process outlives this driver
    if executor == "process":
        return _process_pool(cells, settings, workers)
    return _ray(cells, settings, ray_address, gpus_per_cell, workers, threads)


def artifact_group(cell: Cell) -> tuple:
    """The expensive artifact a cell starts from: its poison, or (evasion) its clean-trained model."""
    if cell.threat == "poison":
        return ("poison", cell.dataset, cell.attack, cell.seed)
    return ("model", cell.dataset, cell.defense, cell.victim, cell.seed, cell.recipe)


class ArtifactSchedule:
    """Which cells a parallel executor may start: one per artifact group at first (in first-seen
    order), and the rest of a group once that cell has finished, ok or not (they then find the
    artifact cached, or build it themselves if it failed)."""

    def __init__(self, cells: Iterable[Cell]):
        groups: dict[tuple, list[Cell]] = {}
        for cell in cells:
            groups.setdefault(artifact_group(cell), []).append(cell)
        self.ready = [group[0] for group in groups.values()]
        self._waiting = {key: group[1:] for key, group in groups.items()}

    def finished(self, cell: Cell) -> list[Cell]:
        """The cells that ``cell`` finishing releases (each released once)."""
        return self._waiting.pop(artifact_group(cell), [])


def _process_pool(cells: list[Cell], settings: Settings, workers: int) -> Iterator[dict]:
    # spawn, not fork: forking a process that has initialised torch's thread pools is unsafe.
    context = multiprocessing.get_context("spawn")
    schedule = ArtifactSchedule(cells)
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        try:
            running = {pool.submit(run_cell, cell, settings): cell for cell in schedule.ready}
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    released = schedule.finished(running.pop(future))
                    running.update({pool.submit(run_cell, cell, settings): cell for cell in released})
                    yield future.result()
        except BrokenProcessPool:
            log.error("a worker process died; finished cells are saved, rerun to resume the rest")


def _ray(cells: Iterable[Cell], settings: Settings, address: str | None, gpus_per_cell: float,
         workers: int, threads: int) -> Iterator[dict]:
    try:
        import ray
    except ImportError:
        raise RuntimeError("the ray executor needs Ray: pip install 'benchlab[ray]'") from None
    started_here = not ray.is_initialized()
    temp_dir = None if address or not started_here else ray_temp_dir(settings.out)
    if started_here:
        # A local cluster sized by --workers when no address is given; otherwise join the cluster.
        # Its output stays out of the terminal unless -v, and its session logs go under --out.
        ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                 log_to_driver=False, ignore_reinit_error=True, configure_logging=True,
                 logging_level=logging.INFO if log.isEnabledFor(logging.INFO) else logging.ERROR,
                 _temp_dir=temp_dir)
    ray_sink = settings.progress if isinstance(settings.progress, RaySink) else None
    if ray_sink is not None:  # the workers' phase events travel through a queue on the cluster
        settings = dataclasses.replace(settings, progress=ray_sink.connect())
    remote = ray.remote(num_cpus=threads, num_gpus=gpus_per_cell, max_retries=1)(run_cell)
    schedule = ArtifactSchedule(cells)
    pending = {remote.remote(cell, settings): cell for cell in schedule.ready}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                cell = pending.pop(ref)
                pending.update({remote.remote(c, settings): c for c in schedule.finished(cell)})
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayError as error:  # the worker died twice: leave it for a rerun
                    log.error("ray lost cell %s: %s", cell.label(), error)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if ray_sink is not None:
            ray_sink.disconnect()  # delivers the last events while the cluster is up
        if started_here:
            ray.shutdown()
        if temp_dir and Path(temp_dir).is_symlink():
            Path(temp_dir).unlink(missing_ok=True)


# Ray puts Unix sockets in its session folder, whose paths may not exceed 107 bytes; the session
# folder's own name takes about 60 of them.
_SOCKET_ROOM = 40


def ray_temp_dir(out: str) -> str:
    """Ray's temp folder: ``OUT/ray``, reached through a short symlink when that path is too long
    for Ray's socket paths, so the session logs still land under ``--out``."""
    target = (Path(out) / "ray").resolve()
    target.mkdir(parents=True, exist_ok=True)
    if len(str(target)) <= _SOCKET_ROOM:
        return str(target)
    digest = hashlib.sha256(str(target).encode()).hexdigest()[:12]
    link = Path(tempfile.gettempdir()) / f"benchlab-ray-{digest}"
    if not (link.is_symlink() and link.resolve() == target):
        link.unlink(missing_ok=True)
        link.symlink_to(target, target_is_directory=True)
    return str(link)
