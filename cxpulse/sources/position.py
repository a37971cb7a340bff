"""The position of a following source: which file (device, inode), how far, and the converter's state there.

Why the state travels with the offset: the converter's state after line N is only right together with
offset N; saving them in one file, atomically (write a temporary file, fsync, rename), means a crash at any
moment leaves either the old pair or the new one, never a mix. The file is written only after the output
acknowledged everything before the offset (``--follow``'s promise: nothing lost).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

VERSION = 1


@dataclass(frozen=True, slots=True)
class FilePosition:
    """A byte offset in the file identified by (device, inode): a renamed (rotated) file keeps its identity."""

    device: int
    inode: int
    offset: int


class PositionError(RuntimeError):
    """The position file exists but cannot be used; the message names it and why."""


def default_position_path(state_dir: str | os.PathLike[str], source: str, input_path: Path) -> Path:
    """``<state_dir>/<source>-<12 hex of the input's absolute path>.json``: one position per followed file."""
    digest = hashlib.sha256(str(input_path.resolve()).encode("utf-8")).hexdigest()[:12]
    return Path(state_dir) / f"{source}-{digest}.json"


class PositionStore:
    """Loads and saves one position file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> tuple[FilePosition, dict[str, Any]] | None:
        """The saved (position, converter state), or None when nothing was saved yet."""
        try:
            data = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError) as exc:
            raise PositionError(f"position file {self.path} cannot be read: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise PositionError(f"position file {self.path} is not a version {VERSION} position (delete it to start over)")
        try:
            position = FilePosition(int(data["device"]), int(data["inode"]), int(data["offset"]))
        except (KeyError, TypeError, ValueError):
            raise PositionError(f"position file {self.path} lacks device, inode or offset") from None
        return position, data.get("state") or {}

    def save(self, position: FilePosition, state: dict[str, Any]) -> None:
        """Replace the file atomically (and durably: fsync of the file and of its folder)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = orjson.dumps({"version": VERSION, "device": position.device, "inode": position.inode,
                             "offset": position.offset, "state": state})
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
