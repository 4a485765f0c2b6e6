"""A second-level artifact cache at any fsspec URL (``--cache-url``): a shared directory, an object
store. Runs on other machines or days reuse each other's poisons and trained models through it.

The local cache (``OUT/cache``) stays the first level: a local miss looks here, and a fetched file
is verified against the SHA-256 of its sidecar before it is moved into the local cache (so the
local checks then apply too); a file that does not verify is left out and the artifact rebuilt.
Every artifact saved locally is also pushed: data first, then the sidecar, each written under a
temporary name and moved into place, so a reader never sees a half-written file or data without
its checksum. A remote that fails (unreachable, no permission) costs a warning, never the cell.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import uuid
from pathlib import Path

import fsspec

from .cache import MAX_SIDECAR_BYTES, file_sha256, write_sidecar

log = logging.getLogger(__name__)


class RemoteCache:
    def __init__(self, url: str):
        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url)

    def _remote(self, kind: str, name: str) -> str:
        return f"{self.root.rstrip('/')}/{kind}/{name}"

    def fetch(self, kind: str, data_path: Path, meta_path: Path) -> bool:
        """Copy the artifact into the local cache's ``data_path`` / ``meta_path`` if the remote has it
        and it verifies; True when it did."""
        data_remote, meta_remote = (self._remote(kind, p.name) for p in (data_path, meta_path))
        tmp = data_path.with_name(f"{data_path.name}.fetch{os.getpid()}")
        try:
            if not self.fs.exists(meta_remote):
                return False
            if self.fs.size(meta_remote) > MAX_SIDECAR_BYTES:
                raise ValueError("oversized sidecar")
            meta = json.loads(self.fs.cat_file(meta_remote))
            data_path.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(data_remote, str(tmp))
            digest = file_sha256(tmp)
            if digest != meta["sha256"]:
                raise ValueError(f"SHA-256 mismatch ({digest[:12]} != {str(meta['sha256'])[:12]})")
        except Exception as error:  # absent, unreachable or bad: the artifact is built here
            tmp.unlink(missing_ok=True)
            log.warning("remote cache %s: %s/%s not used (%s: %s)", self.url, kind, data_path.name,
                        type(error).__name__, error)
            return False
        os.replace(tmp, data_path)
        write_sidecar(meta_path, meta)
        return True

    def push(self, kind: str, data_path: Path, meta_path: Path) -> None:
        """Upload an artifact of the local cache, data first and sidecar last, each moved into place."""
        try:
            self.fs.makedirs(self._remote(kind, ""), exist_ok=True)
            for path in (data_path, meta_path):
                final = self._remote(kind, path.name)
                tmp = self._remote(kind, f".{path.name}.{uuid.uuid4().hex}.tmp")
                self.fs.put_file(str(path), tmp)
                self.fs.mv(tmp, final)
        except Exception as error:
            log.warning("remote cache %s: %s/%s not pushed (%s: %s)", self.url, kind, data_path.name,
                        type(error).__name__, error)


@functools.lru_cache(maxsize=4)
def remote_cache(url: str) -> RemoteCache:
    """One client per URL and process."""
    return RemoteCache(url)
