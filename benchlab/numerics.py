"""The numeric settings that can change a cell's result, fixed per cell on every executor.

The torch thread count changes the summation order of parallel reductions (so a model trained
with 1 or 4 threads can end a few examples apart), the float32 matmul precision lets torch use
TF32 or bf16 passes, and the deterministic-algorithms flag swaps kernels. The runner applies one
:class:`Numerics` around every cell -- in this process, a worker process or a Ray task alike --,
records it in the row's manifest, and makes it part of the cell's identity and of every artifact
key, so identical cells give identical metrics on every executor and a resumed run under other
settings never mixes rows or reuses artifacts made under them.

One thread per cell is the default: parallelism comes from running cells side by side
(``--executor process|ray``), and on a machine shared with other jobs more threads than free
cores make OpenMP spin-wait (see the README for the measured wall times).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch

MATMUL_PRECISIONS = ("highest", "high", "medium")
DEFAULT_THREADS = 1


@dataclass(frozen=True)
class Numerics:
    threads: int = DEFAULT_THREADS  # torch intra-op threads
    matmul_precision: str = "highest"  # torch.set_float32_matmul_precision: highest = plain fp32
    deterministic: bool = False  # torch.use_deterministic_algorithms (warn-only where none exists)

    def __post_init__(self):
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise ValueError(f"threads must be >= 1, not {self.threads!r}")
        if self.matmul_precision not in MATMUL_PRECISIONS:
            raise ValueError(f"matmul precision {self.matmul_precision!r}; choose one of "
                             f"{', '.join(MATMUL_PRECISIONS)}")

    def as_dict(self) -> dict:
        """What enters cell identities, artifact keys and manifests."""
        return asdict(self)

    def key(self) -> tuple:
        return tuple(sorted(self.as_dict().items()))

    @classmethod
    def from_key(cls, key: tuple) -> Numerics:
        return cls(**dict(key)) if key else cls()

    def apply(self) -> None:
        torch.set_num_threads(self.threads)
        torch.set_float32_matmul_precision(self.matmul_precision)
        torch.use_deterministic_algorithms(self.deterministic, warn_only=True)

    @contextmanager
    def applied(self):
        """Apply for the duration of a cell, then restore the process's previous settings."""
        before = (torch.get_num_threads(), torch.get_float32_matmul_precision(),
                  torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
        self.apply()
        try:
            yield self
        finally:
            torch.set_num_threads(before[0])
            torch.set_float32_matmul_precision(before[1])
            torch.use_deterministic_algorithms(before[2], warn_only=before[3])
