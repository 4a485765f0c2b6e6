"""Cooperating runners on one ``--out``: a runner leases a cell in the results database before it
computes it.

A lease is a row of the ``leases`` table (cell, owner, expiry), taken in one ``BEGIN IMMEDIATE``
transaction only when the cell has no live lease of another runner and no row recorded since this
runner started. The owner renews its leases from a background thread while it runs and drops each
one in the transaction that records the cell's row. A runner that is killed stops renewing: its leases expire
and another runner takes the cells over; at once when the killed runner ran on the same machine
(its process is gone), so a run resumed after a SIGKILL does not wait out its own leases. Lease
length: ``$BENCHLAB_LEASE_SECONDS`` (default 120 s, renewed every quarter of it).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from contextlib import closing, contextmanager

from .matrix import Cell

LEASE_ENV = "BENCHLAB_LEASE_SECONDS"
DEFAULT_LEASE_SECONDS = 120.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    cell_id  TEXT PRIMARY KEY,
    owner    TEXT NOT NULL,
    expires  REAL NOT NULL
);
"""


def lease_seconds() -> float:
    text = os.environ.get(LEASE_ENV, "")
    try:
        seconds = float(text) if text else DEFAULT_LEASE_SECONDS
    except ValueError:
        raise ValueError(f"{LEASE_ENV}={text!r} is not a number of seconds") from None
    if seconds <= 0:
        raise ValueError(f"{LEASE_ENV}={text!r} must be a positive number of seconds")
    return seconds


def owner_is_gone(owner: str) -> bool:
    """Whether ``owner`` (``host:pid:tag``) was a runner on this machine whose process has ended."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's runner: only its lease's expiry tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


class Leases:
    """This runner's leases on the cells of one results database."""

    def __init__(self, db_path, seconds: float | None = None, owner: str | None = None):
        self.path = db_path
        self.seconds = seconds or lease_seconds()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.started = time.time()
        self.held_elsewhere: set[str] = set()  # refused: another runner's live lease
        self.done_elsewhere: set[str] = set()  # refused: another runner recorded it since we started
        with closing(self._connect()) as db, db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None)  # transactions spelt out
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def claim(self, cell: Cell) -> bool:
        """Lease ``cell`` to this runner, unless another runner holds it or has finished it."""
        now = time.time()
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")  # the write lock first: no two runners pass the checks together
            try:
                recorded = db.execute("SELECT 1 FROM cells WHERE cell_id = ? AND finished_at >= ?",
                                      (cell.cell_id, self.started)).fetchone()
                holder = db.execute("SELECT owner FROM leases WHERE cell_id = ? AND expires > ?",
                                    (cell.cell_id, now)).fetchone()
                if holder and holder[0] != self.owner and owner_is_gone(holder[0]):
                    holder = None  # a killed runner on this machine: take its cell over now
                if recorded:
                    self.done_elsewhere.add(cell.cell_id)
                elif holder and holder[0] != self.owner:
                    self.held_elsewhere.add(cell.cell_id)
                else:
                    db.execute("INSERT OR REPLACE INTO leases (cell_id, owner, expires) VALUES (?, ?, ?)",
                               (cell.cell_id, self.owner, now + self.seconds))
                    self.held_elsewhere.discard(cell.cell_id)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return not recorded and not (holder and holder[0] != self.owner)

    def release(self, cell_id: str) -> None:
        with closing(self._connect()) as db:
            db.execute("DELETE FROM leases WHERE cell_id = ? AND owner = ?", (cell_id, self.owner))

    def renew(self) -> None:
        with closing(self._connect()) as db:
            db.execute("UPDATE leases SET expires = ? WHERE owner = ?", (time.time() + self.seconds, self.owner))

    def release_all(self) -> None:
        with closing(self._connect()) as db:
            db.execute("DELETE FROM leases WHERE owner = ?", (self.owner,))

    def recorded_since_start(self, cell_ids) -> set[str]:
        """Which of ``cell_ids`` have a row recorded (by any runner) since this runner started."""
        ids = list(cell_ids)
        marks = ",".join("?" * len(ids))
        with closing(self._connect()) as db:
            rows = db.execute(f"SELECT cell_id FROM cells WHERE finished_at >= ? AND cell_id IN ({marks})",
                              (self.started, *ids))
            found = {r[0] for r in rows}
        self.done_elsewhere |= found
        return found

    def next_expiry(self, cell_ids) -> float | None:
        """When the first live lease of another runner on ``cell_ids`` expires (None: none left)."""
        ids = list(cell_ids)
        if not ids:
            return None
        marks = ",".join("?" * len(ids))
        with closing(self._connect()) as db:
            leases = db.execute(f"SELECT owner, expires FROM leases WHERE owner != ? AND cell_id IN ({marks})",
                                (self.owner, *ids)).fetchall()
        # a lease of a runner gone from this machine is as good as expired
        return min((0.0 if owner_is_gone(owner) else expires for owner, expires in leases), default=None)

    @contextmanager
    def kept(self):
        """Renew this runner's leases every quarter lease while the block runs; drop them after."""
        stop = threading.Event()

        def renew_until_stopped():
            while not stop.wait(self.seconds / 4):
                try:
                    self.renew()
                except sqlite3.Error:  # a busy database: the next beat renews
                    pass

        thread = threading.Thread(target=renew_until_stopped, name="benchlab-leases", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
            self.release_all()
