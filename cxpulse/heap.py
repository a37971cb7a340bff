"""The worker's C heap (glibc malloc): large buffers in their own mappings, and free pages given back.

Why: a worker loaded with a simulated week held 505 MiB of RSS (issue 9: at most 500 MB) against 346 MiB once
restarted from its checkpoint with the same state. A census run inside the loaded worker (session 11) showed
glibc's heaps holding 77-118 MiB of *free* memory (``mallinfo2().fordblks``), against 23-34 MiB after the restart.

- **A fixed mmap threshold** (:func:`fix_mmap_threshold`). By default glibc serves a request above 128 KiB with a
  mapping of its own, returned to the system when freed; but each such free raises the threshold to the freed
  size (up to 32 MiB). A worker frees large buffers all the time (Kafka fetch responses, bulk changelog writes,
  a batch's lists), so after a few batches they all come from the heap instead, where they leave free holes
  between live blocks that glibc gives back only at the top of the heap. Fixed at 128 KiB, they stay mappings.
  Measured with ``bench/days.py --days 7 --skip-replay --worker-env MALLOC_MMAP_THRESHOLD_=131072`` (the same as
  this call): RSS after the week 434 MiB (peak 456) against 505 MiB (peak 505).
- **A trim every few seconds** (:func:`trim`, the worker's ``trim_heap`` timer): ``malloc_trim(0)`` also returns
  the free pages in the middle of a heap (``MADV_DONTNEED``). In the loaded worker: 417 -> 367 MiB in 28 ms.

A threshold the user set (``MALLOC_MMAP_THRESHOLD_``, or ``GLIBC_TUNABLES`` naming ``mmap_threshold``) is left
alone. Only glibc has these calls: elsewhere (musl, macOS) both do nothing and say so once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
from typing import Any

log = logging.getLogger("cxpulse.worker")

MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value, kept fixed
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


@functools.cache
def _glibc() -> Any:
    """glibc, with ``malloc_trim`` and ``mallopt`` typed; None where they are missing (looked up once)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):
        log.info("not glibc: the C heap is left to its allocator's defaults")
        return None
    return libc


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Serve every allocation above ``threshold`` bytes with a mapping of its own, for good (see the module doc).
    True when set; False when the user chose a threshold already or this is not glibc. Call once at start."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "mmap_threshold" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold))


def trim() -> bool:
    """Return the allocator's free pages to the system; True when some were returned (glibc's answer)."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))


__all__ = ["MMAP_THRESHOLD", "fix_mmap_threshold", "trim"]
