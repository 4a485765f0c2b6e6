"""Progress inside a cell: the phase it is in (loading data, crafting, training epoch k/n, attacking
batch k/n), reported by the core and by plugins through ``ctx.progress`` and carried to the driver.

A cell's :class:`Progress` reporter sends :class:`Phase` events to a sink: a plain callable when the
cell runs in the driver (local executor), a queue the driver drains otherwise (a multiprocessing
manager queue for process workers, a Ray queue actor for Ray workers). Sends are throttled: a new
phase always goes out, further steps of the same phase at most every ``interval`` seconds, and its
last step always. Progress never fails a cell: a sink that raises is dropped.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

# Seconds between two sends of the same phase from a worker: enough for a live line, cheap enough
# for batch loops (a send to a process or Ray queue is a round trip).
SEND_INTERVAL = 0.5


@dataclass(frozen=True)
class Phase:
    """One cell is at step ``k`` of ``n`` of phase ``name`` (``k``/``n`` None when not counted)."""

    cell_id: str
    label: str
    name: str
    k: int | None = None
    n: int | None = None

    def text(self) -> str:
        if self.k is None:
            return self.name
        return f"{self.name} {self.k}/{self.n}" if self.n else f"{self.name} {self.k}"


class Progress:
    """A cell's reporter: ``phase(name, k, n)`` says where the cell is; ``steps`` wraps a loop and
    ``within`` nests phases ("crafting › training epoch 3/10").

    Without a sink (a bare context in unit tests, a plugin used outside a run) it does nothing.
    """

    def __init__(self, cell_id: str = "", label: str = "", sink: Callable[[Phase], None] | None = None):
        self.cell_id, self.label, self._sink = cell_id, label, sink
        self._interval = getattr(sink, "interval", 0.0)
        self._last: tuple[str, float] | None = None
        self._prefix = ""

    def phase(self, name: str, k: int | None = None, n: int | None = None) -> None:
        if self._sink is None:
            return
        name = self._prefix + name
        now = time.monotonic()
        if self._last and self._last[0] == name and k != n and now - self._last[1] < self._interval:
            return
        self._last = (name, now)
        try:
            self._sink(Phase(self.cell_id, self.label, name, k, n))
        except Exception as error:  # the display is not worth a cell
            log.debug("progress of %s no longer reported: %s", self.label, error)
            self._sink = None

    @contextmanager
    def within(self, name: str) -> Iterator[Progress]:
        """Enter phase ``name``; the phases reported inside are shown as its steps."""
        outer = self._prefix
        self.phase(name)
        self._prefix = f"{outer}{name} › "
        try:
            yield self
        finally:
            self._prefix = outer

    def steps(self, iterable: Iterable[T], name: str, total: int | None = None) -> Iterator[T]:
        """Yield from ``iterable``, reporting ``name k/total`` as each item is done."""
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.phase(name, 0, total)
        for k, item in enumerate(iterable, 1):
            yield item
            self.phase(name, k, total)


@dataclass
class CallbackSink:
    """The sink of cells run in the driver: events go straight to ``receive``."""

    receive: Callable[[Phase], None]
    interval: float = SEND_INTERVAL

    def __call__(self, event: Phase) -> None:
        self.receive(event)


@dataclass
class QueueSink:
    """The sink of cells run elsewhere: events go onto a queue the driver drains (picklable: it
    travels to the worker with the cell's settings)."""

    queue: object
    interval: float = SEND_INTERVAL

    def __call__(self, event: Phase) -> None:
        self.queue.put_nowait(event)


class PhaseChannel:
    """The driver's end of the events of one run: the sink for an executor, and a thread that feeds
    queued events to ``receive`` until :meth:`close` (which delivers what is still queued)."""

    def __init__(self, receive: Callable[[Phase], None], interval: float | None = None):
        self.receive = receive
        self.interval = SEND_INTERVAL if interval is None else interval
        self._manager = None
        self._ray_queue = None
        self._drainers: list[tuple[threading.Thread, threading.Event]] = []

    def sink(self, executor: str):
        """What the cells' settings carry: a sink, or for Ray a :class:`RaySink` the Ray executor
        connects once its cluster is up."""
        if executor == "local":
            return CallbackSink(self.receive, self.interval)
        if executor == "process":
            try:  # spawn, like the process pool: the manager is a server process the workers put to
                self._manager = multiprocessing.get_context("spawn").Manager()
            except Exception as error:  # the run goes on, without phases
                log.warning("no progress from the workers: %s", error)
                return None
            return QueueSink(self._drain(self._manager.Queue()), self.interval)
        return RaySink(self)

    def _drain(self, events):
        stop = threading.Event()
        thread = threading.Thread(target=self._feed, args=(events, stop), daemon=True, name="benchlab-progress")
        thread.start()
        self._drainers.append((thread, stop))
        return events

    def _feed(self, events, stop: threading.Event) -> None:
        while True:
            stopping = stop.is_set()  # read before the get: a final pass empties the queue
            try:
                event = events.get(timeout=0.2) if not stopping else events.get_nowait()
            except queue.Empty:
                if stopping:
                    return
                continue
            except Exception as error:  # the queue's server went away: nothing more will come
                log.debug("progress queue closed: %s", error)
                return
            self.receive(event)

    def connect_ray(self) -> QueueSink | None:
        from ray.util.queue import Queue

        try:
            self._ray_queue = Queue()
        except Exception as error:  # the run goes on, without phases
            log.warning("no progress from the Ray workers: %s", error)
            return None
        return QueueSink(self._drain(self._ray_queue), self.interval)

    def close(self) -> None:
        for thread, stop in self._drainers:
            stop.set()
            thread.join(timeout=10)
        self._drainers.clear()
        if self._ray_queue is not None:
            self._ray_queue.shutdown()
            self._ray_queue = None
        if self._manager is not None:
            self._manager.shutdown()
            self._manager = None


@dataclass
class RaySink:
    """A Ray run's sink before the cluster is up: the executor calls :meth:`connect` after
    ``ray.init`` and :meth:`disconnect` before shutting the cluster down."""

    channel: PhaseChannel

    def connect(self) -> QueueSink | None:
        return self.channel.connect_ray()

    def disconnect(self) -> None:
        self.channel.close()
