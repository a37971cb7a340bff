"""The worker's C heap policy (``cxpulse/heap.py``), on glibc itself.

- :func:`trim` gives the free pages in the middle of the heap back: the heap is left the way a busy worker leaves
  it (many 64 KiB blocks, under the mmap threshold, freed while one allocated after them stays alive, so nothing
  is free at the top, where glibc gives memory back on its own), and the process's RSS falls by what was freed;
- :func:`fix_mmap_threshold` keeps a 1 MiB buffer in a mapping of its own after one was freed (glibc's default
  would serve the second from the heap), and leaves a threshold the user chose alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cxpulse.heap import trim

MIB = 1024 * 1024


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _glibc() -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return hasattr(libc, "malloc_trim") and hasattr(libc, "gnu_get_libc_version")
    except OSError:
        return False


def test_trim_returns_the_free_pages_in_the_middle_of_the_heap() -> None:
    if not _glibc():  # the project's machines are Debian; this keeps the test honest elsewhere
        pytest.fail("this test needs glibc (Debian's libc6), which cxpulse's images and CI run on")
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    block = 64 * 1024
    blocks = []
    for _ in range(2400):  # 150 MiB, touched so that it is resident
        pointer = libc.malloc(block)
        libc.memset(pointer, 1, block)
        blocks.append(pointer)
    keeper = libc.malloc(block)  # alive after the others: the top of the heap is not free
    libc.memset(keeper, 1, block)
    for pointer in blocks:
        libc.free(pointer)
    before = _rss_kb()
    assert trim() is True
    after = _rss_kb()
    libc.free(keeper)
    assert before - after > 100 * 1024, (before, after)  # at least 100 of the 150 MiB freed went back


# a fresh interpreter: malloc(1 MiB), free, malloc(1 MiB) again; prints the mmapped chunks (mallinfo2's hblks) before
# and after the second malloc, and what fix_mmap_threshold answered (when the first argument says to call it)
PROBE = """
import ctypes, sys
from cxpulse.heap import fix_mmap_threshold
fixed = fix_mmap_threshold() if sys.argv[1] == "fix" else None
class MI2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MI2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.free(libc.malloc(1 << 20))
before = libc.mallinfo2().hblks
second = libc.malloc(1 << 20)
print(fixed, libc.mallinfo2().hblks - before)
"""


def _probe(mode: str, **env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60,
                          env={**clean, **env})
    assert done.returncode == 0, done.stderr
    fixed, mapped = done.stdout.split()
    return fixed, int(mapped)


def test_a_fixed_threshold_keeps_large_buffers_in_their_own_mappings() -> None:
    if not _glibc():
        pytest.fail("this test needs glibc (Debian's libc6), which cxpulse's images and CI run on")
    assert _probe("default") == ("None", 0)  # glibc raised its threshold: the second buffer came from the heap
    assert _probe("fix") == ("True", 1)  # fixed: a mapping of its own, returned to the system when freed
    # a threshold the user set is theirs: not overridden (and theirs, 4 MiB, serves 1 MiB from the heap)
    assert _probe("fix", MALLOC_MMAP_THRESHOLD_=str(4 << 20)) == ("False", 0)
    assert _probe("fix", GLIBC_TUNABLES=f"glibc.malloc.mmap_threshold={4 << 20}") == ("False", 0)
