"""How a replay reads an event file (JSON lines): one binary handle with a large buffer.

Why a module of its own: the single-process replay (``cxpulse/commands/replay.py``) and every process of a split
replay (``cxpulse/parallel_replay.py``) read the same files the same way; the command used to import the split
replay's module for its buffer size alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

# bytes per read of the event file: Python's default (8 KiB) costs a system call per ~20 lines; a week's file
# (415 MB) was read line by line in 0.40-0.59 s with it and 0.32 s with 1 MiB (measured), in every process
READ_BUFFER = 1 << 20


def open_events(path: Path) -> BinaryIO:
    """``path`` opened for reading lines of bytes with a :data:`READ_BUFFER` buffer."""
    return path.open("rb", buffering=READ_BUFFER)
