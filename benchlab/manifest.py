"""What produced a result: package and plugin versions, git commit, device, platform."""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

PACKAGES = ("benchlab", "torch", "torchvision", "timm", "scikit-learn", "skops", "numpy", "pluggy", "cma")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the benchlab checkout (suffixed ``+dirty`` with local changes), if it is one."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


@functools.lru_cache(maxsize=4)
def _static(device_type: str, device_name: str) -> dict:
    from .plugins import get_plugin_manager

    plugins = {name: getattr(dist, "version", None) if dist else None
               for name, dist in _plugin_dists(get_plugin_manager()).items()}
    return {
        "versions": {name: _version(name) for name in PACKAGES},
        "plugins": plugins,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "device": device_name,
        "cuda": torch.version.cuda if device_type == "cuda" else None,
    }


def _plugin_dists(pm) -> dict:
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    return {name: dists.get(id(plugin)) for name, plugin in pm.list_name_plugin() if plugin is not None}


def manifest(device: torch.device | None) -> dict:
    """The manifest recorded with every cell row (threads read now: ``--threads`` may change them)."""
    if device is None:
        static = _static("unknown", "unknown")
    else:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()})"
        static = _static(device.type, name)
    return {**static, "torch_threads": torch.get_num_threads()}
