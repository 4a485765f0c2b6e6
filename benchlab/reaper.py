"""No process outlives the run that started it, however the driver ends (SIGKILL included).

:func:`guard_descendants` starts a small watcher process that holds the read end of a pipe whose
write end only the driver holds. While the pipe is open the watcher records the driver's
descendants (process-pool workers, multiprocessing's resource tracker, a local Ray cluster's
GCS, raylet, agents and workers) from ``/proc`` every half second; when it reads EOF -- the
driver exited, normally or killed -- it sends SIGTERM to every recorded process still alive (the
same pid *and* start time, never a reused pid) and their children, then SIGKILL to what remains.
Linux only (``/proc``); elsewhere it does nothing.

This file runs as a script (``python reaper.py PID FD``) so the watcher imports nothing of benchlab.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

_write_end: int | None = None


def guard_descendants() -> None:
    """Start the watcher for this process (once; later calls do nothing)."""
    global _write_end
    if _write_end is not None or not os.path.isdir("/proc/self"):
        return
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, False)  # children must not keep the pipe open
    subprocess.Popen([sys.executable, "-S", os.path.abspath(__file__), str(os.getpid()), str(read_end)],
                     pass_fds=(read_end,), start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(read_end)
    _write_end = write_end  # closed by the kernel when this process ends, however it ends


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) for every process in /proc."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(name)] = (int(fields[1]), fields[19])  # ppid, starttime
    return table


def _descendants(root: int, table: dict[int, tuple[int, str]]) -> dict[int, str]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, stack = {}, [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found[child] = table[child][1]
                stack.append(child)
    return found


def _signal_alive(recorded: dict[int, str], sig: int) -> bool:
    table = _processes()
    targets = {pid for pid, start in recorded.items() if pid in table and table[pid][1] == start}
    for pid in list(targets):
        targets |= set(_descendants(pid, table))  # started after the last look
    targets.discard(os.getpid())
    for pid in targets:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    return bool(targets)


def _watch(driver: int, fd: int) -> None:
    recorded: dict[int, str] = {}
    while True:
        readable, _, _ = select.select([fd], [], [], 0.5)
        if readable and not os.read(fd, 1):
            break  # EOF: the driver is gone
        recorded.update(_descendants(driver, _processes()))
        recorded.pop(os.getpid(), None)
    if _signal_alive(recorded, signal.SIGTERM):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _signal_alive(recorded, 0):
            time.sleep(0.2)
        _signal_alive(recorded, signal.SIGKILL)


if __name__ == "__main__":
    _watch(int(sys.argv[1]), int(sys.argv[2]))
