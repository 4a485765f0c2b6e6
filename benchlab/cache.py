"""Content-addressed artifact cache for poisons and trained victims.

Keys hash everything that determines an artifact (plugin names, versions, parameters, code identity, dataset
fingerprint, seed, recipe). Tensors are stored with safetensors (no pickle, nothing executable);
a JSON sidecar records the file's SHA-256, which is verified before every reuse. A file that fails
the check, or verifies but does not decode (garbage skops bytes, a wrong state dict, refused types),
is moved to ``ROOT/quarantine/`` with a note of why, never deleted, and rebuilt. Writes go to a
temporary file and are renamed into place, and a file lock keeps two workers from computing the
same artifact twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

log = logging.getLogger(__name__)

MAX_SIDECAR_BYTES = 1 << 20  # a sidecar is a few hundred bytes: a larger one is not ours


def write_atomically(path: Path, payload: bytes) -> None:
    """``path`` holds its old bytes or all of ``payload``, never a part: a temporary file, renamed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


def write_sidecar(meta_path: Path, meta: dict) -> None:
    """An artifact's sidecar, written atomically after its data: a half-written artifact never verifies."""
    write_atomically(meta_path, json.dumps(meta, sort_keys=True, default=str).encode())


def cache_key(*parts) -> str:
    """Stable hash of JSON-able parts (dict order does not matter)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ArtifactCache:
    """``ROOT/<kind>/<key>.safetensors`` plus ``<key>.json`` (hash + metadata)."""

    def __init__(self, root: str | Path, salt: str = "", remote_url: str | None = None, remote=None):
        self.root = Path(root)
        # A second level behind this one (benchlab.remote_cache at remote_url, or benchlab.depot's
        # client on Ray): fetched on a miss, pushed on save.
        self.remote = remote
        if remote_url and remote is None:
            from .remote_cache import remote_cache

            self.remote = remote_cache(remote_url)
        # Mixed into every key (the runner passes the cell's numerics): artifacts made under other
        # settings are never reused, whoever built the key (the runner or a plugin).
        self.salt = salt
        self.hits = 0
        self.misses = 0
        self.rebuilt = 0
        self._held: set[tuple[str, str]] = set()

    def _paths(self, kind: str, key: str) -> tuple[Path, Path]:
        key = cache_key(key, self.salt) if self.salt else key
        folder = self.root / kind
        return folder / f"{key}.safetensors", folder / f"{key}.json"

    def load(self, kind: str, key: str) -> tuple[dict[str, torch.Tensor], dict] | None:
        """Verified tensors and metadata, or None when absent or corrupted (then quarantined)."""
        data_path, meta_path = self._paths(kind, key)
        if not (data_path.exists() and meta_path.exists()) and self.remote is not None:
            self.remote.fetch(kind, data_path, meta_path)
        if not data_path.exists() or not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if file_sha256(data_path) != meta["sha256"]:
                raise ValueError("SHA-256 mismatch")
            tensors = load_file(data_path)
        except (OSError, ValueError, KeyError, SafetensorError) as error:
            self.quarantine(kind, key, f"corrupted: {error}")
            return None
        return tensors, meta.get("info", {})

    def quarantine(self, kind: str, key: str, reason: str) -> Path:
        """Move an artifact that cannot be used aside, to ``ROOT/quarantine/<kind>/``, with a
        ``.reason`` note: it is rebuilt, and the bad file stays for inspection."""
        log.warning("cache artifact %s/%s is unusable (%s); quarantined and rebuilt", kind, key, reason)
        self.rebuilt += 1
        folder = self.root / "quarantine" / kind
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{self._paths(kind, key)[0].stem}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}"  # the file's name
        for path in self._paths(kind, key):
            if path.exists():
                os.replace(path, folder / f"{stem}{path.suffix}")
        (folder / f"{stem}.reason").write_text(reason + "\n")
        return folder / stem

    def save(self, kind: str, key: str, tensors: dict[str, torch.Tensor], info: dict | None = None) -> None:
        data_path, meta_path = self._paths(kind, key)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        # Clone: safetensors refuses tensors that share storage (tied weights, views).
        tensors = {k: v.detach().to("cpu").clone().contiguous() for k, v in tensors.items()}
        tmp = data_path.with_suffix(f".tmp{os.getpid()}")
        save_file(tensors, tmp)
        meta = {"sha256": file_sha256(tmp), "info": info or {}}
        os.replace(tmp, data_path)
        write_sidecar(meta_path, meta)
        if self.remote is not None:
            self.remote.push(kind, data_path, meta_path)

    @contextmanager
    def lock(self, kind: str, key: str):
        """Hold the artifact's file lock: another worker computing the same artifact waits, then
        finds it saved. Re-entrant within this cache object (a nested flock would deadlock)."""
        if (kind, key) in self._held:
            yield
            return
        lock_path = self._paths(kind, key)[0].with_suffix(".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._held.add((kind, key))
            try:
                yield
            finally:
                self._held.discard((kind, key))
                fcntl.flock(handle, fcntl.LOCK_UN)

    def get_or_create(
        self, kind: str, key: str, compute: Callable[[], tuple[dict[str, torch.Tensor], dict]],
        decode: Callable[[dict[str, torch.Tensor], dict], object] | None = None,
    ) -> tuple[object, dict, bool]:
        """Return ``(value, info, was_cached)``, computing and saving on a miss; ``value`` is
        ``decode(tensors, info)`` (default: the tensors). A cached artifact ``decode`` rejects is
        quarantined and recomputed."""
        decode = decode or (lambda tensors, info: tensors)
        with self.lock(kind, key):
            found = self.load(kind, key)
            if found is not None:
                try:
                    value = decode(*found)
                except Exception as error:  # verified bytes that are still not a usable artifact
                    self.quarantine(kind, key, f"does not decode: {type(error).__name__}: {error}")
                else:
                    self.hits += 1
                    return value, found[1], True
            self.misses += 1
            tensors, info = compute()
            self.save(kind, key, tensors, info)
            return decode(tensors, info), info, False
