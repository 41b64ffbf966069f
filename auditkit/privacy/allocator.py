"""Keep large freed blocks in the process for reuse (glibc only).

Opacus materialises per-sample gradients every step: for one MiniLM layer and a batch of 64
that is ~450 MB. glibc serves blocks that big with a fresh ``mmap`` and unmaps them on free,
so every step page-faults the memory in again. Raising the mmap and trim thresholds keeps it
in the heap: on 2 CPU cores a DP step (ew) got ~25% faster and a non-private one ~20–25%
(``benchmarks/results/privacy.json``). The cost is that the peak stays resident until exit.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 30  # blocks below 1 GiB come from the heap
TRIM_THRESHOLD = 2 << 30  # twice the mmap threshold, as glibc's own dynamic rule keeps it

_done = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; False where there is no glibc."""
    global _done
    if _done:
        return True
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    _done = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    return _done
