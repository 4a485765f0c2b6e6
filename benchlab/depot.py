"""Artifacts through Ray, not through a path: on the Ray executor, workers never touch ``--out``.

A worker caches in node-local scratch (``<tmp>/benchlab-scratch-<run>/<node>``); behind that
first level sits the *depot*, a Ray actor pinned to the driver's node, the one process that reads
and writes ``OUT/cache`` for the run. A worker's miss asks the depot, which returns the artifact's
bytes and sidecar through Ray's object store; an artifact a worker builds is sent to the depot,
which checks its SHA-256 against its sidecar and moves it into ``OUT/cache`` (data first, sidecar
last, each under a temporary name), so the next cell needing it, on any node, gets it from there.
The worker verifies what it receives again, through the local cache's own checks.

Artifact names are validated (a kind and a hex key, nothing else), so a worker cannot make the
depot read or write outside ``OUT/cache``. With ``--cache-url`` the depot keeps that second level
behind ``OUT/cache`` for the whole run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

from .cache import MAX_SIDECAR_BYTES, write_atomically, write_sidecar

KIND = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
DATA_NAME = re.compile(r"^[0-9a-f]{24}\.safetensors$")


def _check(kind: str, name: str) -> None:
    if not (isinstance(kind, str) and KIND.match(kind) and isinstance(name, str) and DATA_NAME.match(name)):
        raise ValueError(f"not an artifact name: {kind!r}/{name!r}")


def _sidecar(data_path: Path) -> Path:
    return data_path.with_suffix(".json")


class Depot:
    """The driver-side keeper of ``OUT/cache`` (run as a Ray actor by the ray executor)."""

    def __init__(self, cache_root: str, cache_url: str | None = None):
        self.root = Path(cache_root)
        self.remote = None
        if cache_url:
            from .remote_cache import remote_cache

            self.remote = remote_cache(cache_url)
        self.counts = {"get": 0, "hit": 0, "put": 0, "refused": 0}

    def _paths(self, kind: str, name: str) -> tuple[Path, Path]:
        _check(kind, name)
        data_path = self.root / kind / name
        return data_path, _sidecar(data_path)

    def get(self, kind: str, name: str) -> tuple[bytes, dict] | None:
        """The artifact's bytes and sidecar if ``OUT/cache`` (or the remote behind it) has it and it
        verifies; None otherwise (the worker then builds it)."""
        self.counts["get"] += 1
        data_path, meta_path = self._paths(kind, name)
        if not (data_path.exists() and meta_path.exists()) and self.remote is not None:
            self.remote.fetch(kind, data_path, meta_path)
        try:
            if meta_path.stat().st_size > MAX_SIDECAR_BYTES:
                return None
            meta = json.loads(meta_path.read_text())
            data = data_path.read_bytes()
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            return None  # a bad file in OUT/cache: the worker rebuilds, and its put replaces it
        self.counts["hit"] += 1
        return data, meta

    def put(self, kind: str, name: str, data: bytes, meta: dict) -> bool:
        """Keep an artifact a worker built: verified against its sidecar, written atomically."""
        data_path, meta_path = self._paths(kind, name)
        if not isinstance(meta, dict) or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            self.counts["refused"] += 1
            return False
        data_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(data_path, data)
        write_sidecar(meta_path, meta)
        self.counts["put"] += 1
        if self.remote is not None:
            self.remote.push(kind, data_path, meta_path)
        return True

    def stats(self) -> dict:
        return dict(self.counts)


class DepotClient:
    """The worker side: the second level of a worker's scratch cache (the interface of
    :class:`~benchlab.remote_cache.RemoteCache`)."""

    def __init__(self, handle):
        self.handle = handle

    def fetch(self, kind: str, data_path: Path, meta_path: Path) -> bool:
        import ray

        got = ray.get(self.handle.get.remote(kind, data_path.name))
        if got is None:
            return False
        data, meta = got
        data_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(data_path, data)
        write_sidecar(meta_path, meta)
        return True

    def push(self, kind: str, data_path: Path, meta_path: Path) -> None:
        import ray

        ray.get(self.handle.put.remote(kind, data_path.name, data_path.read_bytes(), json.loads(meta_path.read_text())))


def scratch_root(out: str) -> str:
    """The base of the workers' node-local caches for a run under ``out``."""
    digest = hashlib.sha256(str(Path(out).resolve()).encode()).hexdigest()[:12]
    return str(Path(tempfile.gettempdir()) / f"benchlab-scratch-{digest}")


def _private(folder: Path) -> str:
    """``folder``, created private to this user; a fresh temporary folder instead when it exists
    but belongs to someone else or others may write to it (they could plant artifacts there)."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = folder.stat()
        if status.st_uid == os.getuid() and not status.st_mode & 0o022:
            return str(folder)
    except OSError:
        pass
    return tempfile.mkdtemp(prefix="benchlab-scratch-")


def run_cell_on_node(cell, settings):
    """A Ray task: the cell with its cache in this node's scratch, the depot behind it."""
    import ray

    from .cell import run_cell

    node = ray.get_runtime_context().get_node_id()[:16]
    row = run_cell(cell, dataclasses.replace(settings, scratch=_private(Path(settings.scratch) / node)))
    row["manifest"]["ray_node"] = node  # which node computed it
    return row
