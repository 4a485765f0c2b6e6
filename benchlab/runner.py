"""The matrix runner: skips finished cells, executes the rest on an executor, records every row.

Executors: ``local`` (this process, the default), ``process`` (N worker processes on this machine)
and ``ray`` (a Ray cluster, or a local one started on demand). Workers only compute and *return*
rows; the driver alone writes the database, one transaction per cell, as each result arrives. Ray
workers do not touch ``--out`` at all: their artifacts go through :mod:`benchlab.depot`. A
killed run therefore loses only cells in flight, and a rerun picks up exactly those.

Parallel executors start artifact cells first (:mod:`benchlab.schedule`). A worker that dies costs
only its cell, retried a bounded number of times and then recorded as failed (kind ``lost``):
:mod:`benchlab.worker_pool` for processes, Ray's own task retries for Ray. Every cell is leased
in the database just before it starts (:mod:`benchlab.leases`), so runners sharing an ``--out``
compute disjoint cells and take over those a killed runner left.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .cell import RETRIED_FAILURES, Settings, lost_row, run_cell
from .eta import estimates
from .leases import Leases
from .matrix import Cell, Matrix
from .plugins import get_registry
from .progress import Phase, PhaseChannel, RaySink
from .progress_display import MatrixProgress
from .reaper import guard_descendants
from .schedule import ArtifactSchedule, artifact_group, claim_all  # noqa: F401 (public here too)
from .store import ResultsStore
from .validation import check_request
from .worker_pool import WORKER_RETRIES, run_in_processes

log = logging.getLogger(__name__)
EXECUTORS = ("local", "process", "ray")


@dataclass
class RunSummary:
    cells: list[Cell]
    skipped: int = 0
    counts: Counter = field(default_factory=Counter)
    unfinished: int = 0
    failed_before: int = 0  # skipped cells whose recorded row is a failure (of code)
    elsewhere: int = 0  # cells another runner on the same --out recorded while this one ran

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
        if self.elsewhere:
            text += f", {self.elsewhere} computed by other runners"
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
    leases = Leases(store.path)  # before reading what is done: later rows are other runners' work
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
        with leases.kept():  # other runners on this --out skip the cells this one computes
            pending = runnable
            while pending:
                leases.held_elsewhere.clear()
                for row in _execute(pending, settings, executor, workers, ray_address, gpus_per_cell, threads,
                                    claim=leases.claim):
                    row["manifest"]["runner"] = leases.owner
                    _record(store, summary, row, lease_owner=leases.owner)
                    progress.done(row, summary.counts)
                pending = _await_other_runners([c for c in pending if c.cell_id in leases.held_elsewhere], leases)
    finally:
        if channel is not None:
            channel.close()
        progress.close()
        summary.elsewhere = len(leases.done_elsewhere)
        summary.unfinished = len(runnable) - summary.counts["ok"] - summary.counts["failed"] - summary.elsewhere
    return summary


def _await_other_runners(cells: list[Cell], leases: Leases) -> list[Cell]:
    """Wait while other runners hold ``cells``; return those whose leases expired (or were dropped)
    unrecorded, for this runner to take over, once there are any."""
    while cells:
        recorded = leases.recorded_since_start(c.cell_id for c in cells)
        cells = [c for c in cells if c.cell_id not in recorded]
        expiry = leases.next_expiry(c.cell_id for c in cells)
        if expiry is None or expiry <= time.time():
            return cells
        log.info("%d cells are leased by other runners on this --out; waiting for them", len(cells))
        time.sleep(min(expiry - time.time() + 0.1, leases.seconds / 4, 5.0))
    return cells


def _record(store: ResultsStore, summary: RunSummary, row: dict, lease_owner: str | None = None) -> None:
    store.record(row, lease_owner)
    summary.counts[row["status"]] += 1
    if row["status"] == "failed":
        log.warning("cell failed: %s | %s | %s | %s | seed %s: %s", row["dataset"], row["attack"],
                    row["defense"], row["victim"], row["seed"], row["reason"].splitlines()[0])


def _execute(cells: list[Cell], settings: Settings, executor: str, workers: int, ray_address: str | None,
             gpus_per_cell: float, threads: int, claim: Callable[[Cell], bool] = claim_all) -> Iterator[dict]:
    """Rows of the cells of ``cells`` that ``claim`` grants (each claimed just before it starts);
    each cell applies its own numerics (threads included) wherever it runs."""
    if not cells:
        return iter(())
    if executor == "local":
        return (run_cell(cell, settings) for cell in cells if claim(cell))
    guard_descendants()  # no worker, resource tracker or Ray process outlives this driver
    if executor == "process":
        return run_in_processes(cells, settings, workers, claim)
    return _ray(cells, settings, ray_address, gpus_per_cell, workers, threads, claim)


def _ray(cells: Iterable[Cell], settings: Settings, address: str | None, gpus_per_cell: float,
         workers: int, threads: int, claim: Callable[[Cell], bool] = claim_all) -> Iterator[dict]:
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
    # Workers cache in node-local scratch; the depot, on this node, alone reads and writes OUT/cache.
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from .depot import Depot, run_cell_on_node, scratch_root

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    depot = ray.remote(num_cpus=0, max_restarts=-1)(Depot).options(scheduling_strategy=here).remote(
        str(Path(settings.out).resolve() / "cache"), settings.cache_url)
    settings = dataclasses.replace(settings, depot=depot, scratch=scratch_root(settings.out), cache_url=None)
    # Ray reruns a task whose worker or node died, up to max_retries times; after that the cell is
    # recorded as failed (kind "lost") and the run goes on.
    remote = ray.remote(num_cpus=threads, num_gpus=gpus_per_cell, max_retries=WORKER_RETRIES)(run_cell_on_node)
    # Twice the tasks the cluster can run at once are in flight: enough to keep it busy, few enough
    # that cells are claimed (cooperating runners) only shortly before they start.
    resources = ray.cluster_resources()
    capacity = resources.get("CPU", workers) // max(threads, 1)
    if gpus_per_cell:
        capacity = min(capacity, resources.get("GPU", 0) // gpus_per_cell)
    in_flight = 2 * max(int(capacity), 1)
    schedule = ArtifactSchedule(cells)
    offered = deque(schedule.ready)
    pending: dict = {}
    try:
        while True:
            while len(pending) < in_flight and (cell := schedule.next_claimed(offered, claim)):
                pending[remote.remote(cell, settings)] = (cell, time.time())
            if not pending:
                break
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                cell, started = pending.pop(ref)
                offered.extend(schedule.finished(cell))
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayError as error:
                    log.error("ray lost cell %s: %s", cell.label(), error)
                    reason = (f"WorkerLost: Ray lost this cell {WORKER_RETRIES + 1} times (a worker process or "
                              f"node died under it): {type(error).__name__}: {str(error).splitlines()[0]}")
                    yield lost_row(cell, settings, reason, started)
    finally:
        # Cells still in flight when the run stops early: a joined cluster must stop them; a cluster
        # started here is shut down below, workers and all. (Force-cancelling a task as it completes
        # can abort the driver inside Ray, so it is only done where needed.)
        if not started_here:
            for ref in pending:
                ray.cancel(ref, force=True)
        try:
            log.info("depot: %s", ray.get(depot.stats.remote(), timeout=30))
            ray.kill(depot)
        except ray.exceptions.RayError as error:  # a lost depot must not hide the run's own outcome
            log.warning("depot: %s", error)
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
