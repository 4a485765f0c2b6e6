"""Keep freed memory in the process heap between training steps, on glibc (Linux).

PyTorch's CPU tensors come from ``malloc``. glibc gives the top of its heap back to the kernel when
more than a threshold of it is free: twice its mmap threshold, which starts at 128 kB and only grows
when the process frees a larger mmapped block (up to 32 MB). In a fresh process, a step whose
transient tensors exceed that frees them, returns the pages, and page-faults them in again the
next step. DeepConfuse's generator step (double backward through the surrogate) frees about 35 MB
per step: in a fresh process, thousands of minor page faults and 13 ms of kernel time per 120 ms
step at batch 128 on the 2-core development VM. A process that has already freed a 32 MB block
(another workload, earlier) has the high thresholds and no faults; a plain training step takes none
either way.

:func:`keep_freed_memory` sets both thresholds with ``mallopt``, so every process behaves like the
warmed one: allocations up to 32 MB come from the heap, and up to 512 MB of free heap stays mapped,
the way jemalloc or tcmalloc (the allocators PyTorch's CPU performance guide suggests preloading)
keep memory for reuse. The peak RSS is unchanged. Every cell calls it
(:func:`benchlab.cell.run_cell`, recorded in its manifest); ``BENCHLAB_KEEP_HEAP=0``, or a
``glibc.malloc`` setting in ``GLIBC_TUNABLES`` (the user's own choice), leaves malloc alone.
"""

from __future__ import annotations

import ctypes
import functools
import os

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's ceiling on 64-bit: 4 * 1024 * 1024 * sizeof(long)
TRIM_THRESHOLD = 512 * 2**20
SWITCH = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True when they are in effect."""
    setting = os.environ.get("BENCHLAB_KEEP_HEAP", "1").strip().lower()
    if setting not in SWITCH:
        raise ValueError(f"BENCHLAB_KEEP_HEAP={setting!r}: valid values are {', '.join(SWITCH)}")
    if not SWITCH[setting] or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc: macOS, Windows, musl
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # Both: setting either one alone turns glibc's dynamic mmap threshold off and makes things worse.
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
