"""Reading a log file line by line like ``tail -F``: across rotation (rename + new file) and truncation.

Why by (device, inode) and not by name: logrotate renames ``queue_log`` to ``queue_log.1`` (or a dated name)
and Asterisk opens a new ``queue_log``. A reader that only knows the name would either miss the old file's
last lines or read the new file from a wrong offset. Here the open file is followed until it is drained, and
only then the new file under the name is opened from its start. When the reader was not running during a
rotation, the saved (device, inode) is looked for among the files beside the name (``queue_log*``) and that
file is finished first.

Only whole lines (ending in a newline) are returned while following: a line Asterisk is still writing waits
for its end. Without following, a last line without newline is returned too.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import BinaryIO

from cxpulse.sources.position import FilePosition

log = logging.getLogger(__name__)


class LineReader:
    """See the module docstring. :meth:`read` returns ``[(offset, line)]``; :attr:`position` is after them."""

    def __init__(self, path: Path, start: FilePosition | None, follow: bool) -> None:
        self.path = path
        self.follow = follow
        self._handle: BinaryIO | None = None
        self._identity: tuple[int, int] = (0, 0)
        self._offset = 0
        self._draining_rotated = False
        self.rotations = 0
        self.truncations = 0
        self._open_initial(start)

    # -- opening ----------------------------------------------------------------------------------------------
    def _open(self, path: Path, offset: int) -> bool:
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return False
        stat = os.fstat(handle.fileno())
        if offset > stat.st_size:  # the file was truncated (copytruncate) since the position was saved
            self.truncations += 1
            offset = 0
        handle.seek(offset)
        if self._handle is not None:
            self._handle.close()
        self._handle, self._identity, self._offset = handle, (stat.st_dev, stat.st_ino), offset
        return True

    def _open_initial(self, start: FilePosition | None) -> None:
        if start is None:
            if not self._open(self.path, 0) and not self.follow:
                raise FileNotFoundError(self.path)
            return
        saved = (start.device, start.inode)
        current = self._stat_identity(self.path)
        if current == saved:
            self._open(self.path, start.offset)
            return
        rotated = self._find_rotated(saved)
        if rotated is not None:
            log.info("%s was rotated while the source was stopped: finishing %s first", self.path.name, rotated.name)
            self._open(rotated, start.offset)
            self._draining_rotated = True
            self.rotations += 1
            return
        log.warning("%s was replaced and the file the saved position points into is gone: reading the new file "
                    "from its start (lines written to the old file after the saved position are not read)",
                    self.path.name)
        self._open(self.path, 0)

    def _find_rotated(self, identity: tuple[int, int]) -> Path | None:
        for candidate in sorted(self.path.parent.glob(self.path.name + "*")):
            if candidate != self.path and self._stat_identity(candidate) == identity:
                return candidate
        return None

    @staticmethod
    def _stat_identity(path: Path) -> tuple[int, int] | None:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_dev, stat.st_ino)

    # -- reading ----------------------------------------------------------------------------------------------
    @property
    def position(self) -> FilePosition:
        """Where the next line starts, in the file being read."""
        return FilePosition(self._identity[0], self._identity[1], self._offset)

    def _read_lines(self, limit: int) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        handle = self._handle
        if handle is None:
            return out
        while len(out) < limit:
            line = handle.readline()
            if not line:
                break
            if not line.endswith(b"\n") and self.follow:
                handle.seek(self._offset)  # a line still being written: wait for its end
                break
            out.append((self._offset, line))
            self._offset += len(line)
        return out

    def read(self, limit: int = 5000) -> list[tuple[int, bytes]]:
        """Up to ``limit`` whole lines; an empty list at the end of the input (for now, when following).

        At the end of the open file, a follower checks the name: a new file there (rotation) is opened from its
        start once the old one gave everything; a shorter file under the same identity (truncation) is read
        again from its start."""
        lines = self._read_lines(limit)
        if lines or not self.follow:
            return lines
        if self._handle is None:  # following a file that did not exist yet
            self._open(self.path, 0)
            return self._read_lines(limit)
        current = self._stat_identity(self.path)
        if current is None:
            return []  # renamed away, the new file not created yet: keep the old one open
        if current != self._identity:
            lines = self._read_lines(limit)  # a last write to the old file before the switch
            if lines:
                return lines
            self.rotations += 1
            self._draining_rotated = False
            log.info("%s was rotated: reading the new file from its start", self.path.name)
            self._open(self.path, 0)
            return self._read_lines(limit)
        size = os.fstat(self._handle.fileno()).st_size
        if size < self._offset:
            self.truncations += 1
            log.info("%s was truncated: reading it again from its start", self.path.name)
            self._handle.seek(0)
            self._offset = 0
            return self._read_lines(limit)
        return []

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
