"""The results database: SQLite, one row per cell, written only by the runner, one transaction per cell.

Rows are results-as-data (as in RobustBench): metrics are a JSON object, the manifest records the
versions, device and git commit that produced them, ``code_version`` and ``params.code`` the code
identity of the cell (:mod:`benchlab.code_identity`; NULL in databases written before code identities
were recorded: those rows are of unknown code). A killed run loses nothing committed; WAL
mode keeps readers (``benchlab show``) from blocking the writer.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pandas as pd

from .lineage import lineage_columns

STATUSES = ("ok", "failed", "n/a")
DB_NAME = "results.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    cell_id     TEXT PRIMARY KEY,
    matrix      TEXT NOT NULL,
    block       TEXT NOT NULL,
    dataset     TEXT NOT NULL,
    threat      TEXT NOT NULL,
    attack      TEXT NOT NULL,
    defense     TEXT NOT NULL,
    victim      TEXT NOT NULL,
    seed        INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'n/a')),
    metrics     TEXT NOT NULL,
    reason      TEXT,
    params      TEXT NOT NULL,
    manifest    TEXT NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL NOT NULL,
    duration_s  REAL NOT NULL,
    code_version TEXT
);
CREATE INDEX IF NOT EXISTS cells_by_matrix ON cells (matrix, dataset, threat);
"""


class ResultsStore:
    """Opens (and creates) ``DIR/results.sqlite``; every write is its own committed transaction."""

    def __init__(self, path: str | Path):
        path = Path(path)
        self.path = path / DB_NAME if path.suffix != ".sqlite" else path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.executescript(SCHEMA)
            _migrate(db)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # a row reported as written survives a power cut
        return db

    def record(self, row: dict, lease_owner: str | None = None) -> None:
        """Insert or replace one cell's row atomically; with ``lease_owner``, drop that runner's lease
        on the cell in the same transaction, so a lease seen held always means an unrecorded cell."""
        if row["status"] not in STATUSES:
            raise ValueError(f"status {row['status']!r} is not one of {STATUSES}")
        values = dict(row)
        for key in ("metrics", "params", "manifest"):
            values[key] = json.dumps(values.get(key) or {}, sort_keys=True, default=jsonable)
        values.setdefault("reason", None)
        values.setdefault("finished_at", time.time())
        columns = ", ".join(values)
        marks = ", ".join(f":{k}" for k in values)
        with closing(self._connect()) as db, db:
            db.execute(f"INSERT OR REPLACE INTO cells ({columns}) VALUES ({marks})", values)
            if lease_owner is not None:
                db.execute("DELETE FROM leases WHERE cell_id = ? AND owner = ?", (row["cell_id"], lease_owner))

    def finished_ids(self, statuses=("ok", "n/a", "failed"), retry_kinds=()) -> set[str]:
        """Cells with one of ``statuses``, except failed ones whose manifest ``failure_kind`` is in
        ``retry_kinds`` (rows from before kinds were recorded count as ``unknown``)."""
        marks = ",".join("?" * len(statuses))
        query = f"SELECT cell_id FROM cells WHERE status IN ({marks})"
        if retry_kinds:
            kinds = ",".join("?" * len(retry_kinds))
            query += (f" AND NOT (status = 'failed' AND "
                      f"coalesce(json_extract(manifest, '$.failure_kind'), 'unknown') IN ({kinds}))")
        with closing(self._connect()) as db:
            rows = db.execute(query, (*statuses, *retry_kinds))
            return {r[0] for r in rows}

    def rows(self, matrix: str | None = None) -> list[dict]:
        query, args = "SELECT * FROM cells", ()
        if matrix:
            query, args = query + " WHERE matrix = ?", (matrix,)
        with closing(self._connect()) as db:
            db.row_factory = sqlite3.Row
            out = [dict(r) for r in db.execute(query + " ORDER BY started_at", args)]
        for row in out:
            for key in ("metrics", "params", "manifest"):
                row[key] = json.loads(row[key])
        return out

    def frame(self, matrix: str | None = None) -> pd.DataFrame:
        """One row per cell; metric values as columns beside the cell's identity and status."""
        return rows_frame(self.rows(matrix))


def rows_frame(rows: list[dict]) -> pd.DataFrame:
    """Stored rows as a frame: identity, status, lineage (version, recipe, logical cell), metrics."""
    records = []
    for row in rows:
        record = {k: row[k] for k in ("cell_id", "matrix", "block", "dataset", "threat", "attack",
                                      "defense", "victim", "seed", "status", "reason", "duration_s")}
        record.update(lineage_columns(row))
        record.update(row["metrics"])
        records.append(record)
    return pd.DataFrame.from_records(records)


def _migrate(db: sqlite3.Connection) -> None:
    """Add the columns later versions introduced to a database written by an earlier one."""
    columns = {info[1] for info in db.execute("PRAGMA table_info(cells)")}
    if "code_version" not in columns:
        db.execute("ALTER TABLE cells ADD COLUMN code_version TEXT")  # NULL: rows of unknown code


def jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
