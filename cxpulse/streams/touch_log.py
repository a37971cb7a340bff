"""The keys a table stored since the last checkpoint, with the value each held at it: what lets a worker killed with
-9 (or by the OOM killer) start from its last checkpoints instead of rebuilding every stored contact and customer.
One log per logged side (``contacts.log``, ``customers.log``).

Why: the counts are sums over the stored contacts (and customers). A checkpoint (:mod:`cxpulse.streams.checkpoint`)
holds the counts as of its moment C, and a key stored after C must have its contribution at C taken out and its new
one put in. The checkpoint holds the keys that were in memory at C; one that was only on disk (a settled contact, a
customer not changed lately: Engine v2 keeps them in RocksDB) held at C what RocksDB holds just before this worker
first writes it after C, because nothing else writes that database (Faust's recovery writes changelog records into
it, and a start checks those against this log). So, *before* each RocksDB write, the table writer appends here the
partition, the key and the old value of every key it writes for the first time in this process since C, and every
deletion. A kill -9 cannot leave a write in RocksDB that this log lacks (what a process wrote stays in the page
cache); a machine crash may lose both, and then the start finds changelog records the log lacks and rebuilds.

A simulated week: 464k stored contacts, a rebuild 16 s of a 24 s start, and 398k customers, 6 s
(docs/performance.md); each log holds the keys stored in the last minute.

Format: records of a 4-byte little-endian length and msgpack ``[era, [[partition, key, old value or None,
deleted], ...]]``. The era names the checkpoint the log follows; a log is read only with the checkpoint of its era.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

_PACK = msgspec.msgpack.Encoder().encode
_UNPACK = msgspec.msgpack.Decoder().decode
_LENGTH = 4


@dataclass
class Touched:
    """What the log says of one key since its checkpoint."""

    old: bytes | None  # the stored value at the checkpoint (None: none), read before its first write after it
    deleted_first: bool  # its first write after the checkpoint deleted it (the sweeper, or the core's forget)
    deleted_later: bool = False  # a later write deleted it


def _frame(era: str, entries: list[tuple[int, bytes, bytes | None, bool]]) -> bytes:
    body = _PACK([era, entries])
    return len(body).to_bytes(_LENGTH, "little") + body


class TouchLog:
    """The log of one table's writes since its checkpoint (see the module docstring). Inactive (writes nothing)
    until :meth:`begin` or :meth:`resume` names the checkpoint it follows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.era: str | None = None
        self._fd: int | None = None
        # keys logged by this process in this era, a set per partition: a (partition, key) tuple per key cost 64
        # bytes more, and a worker catching up a backlog logs ~200k keys a minute (docs/performance.md, session 19)
        self._seen: dict[int, set[bytes]] = {}

    @property
    def active(self) -> bool:
        return self._fd is not None

    def begin(self, era: str) -> None:
        """A checkpoint of ``era`` was just saved: an empty log in its name replaces the old one (atomically: a
        crash in between leaves the old log, whose era no longer matches, and the start rebuilds)."""
        self.stop()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, _frame(era, []))
            os.replace(partial, self.path)
        except BaseException:
            os.close(fd)
            raise
        self._fd, self.era = fd, era

    def resume(self, era: str) -> None:
        """Go on appending to the log of ``era``: a start that read its checkpoint and this log carries on from
        where the killed process stopped (its first writes log the value of each key at the checkpoint again, and
        :func:`read` keeps each key's earliest entry)."""
        self.stop()
        self._fd, self.era = os.open(self.path, os.O_WRONLY | os.O_APPEND), era

    def stop(self) -> None:
        """Log nothing more (a rebuild or a rebalance: the state no longer follows the checkpoint)."""
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self.era = None, None
        self._seen = {}

    def discard(self) -> None:
        """Stop and delete the log."""
        self.stop()
        self.path.unlink(missing_ok=True)

    def note(self, partition: int, changes: list[tuple[bytes, bytes | None]],
             stored: Callable[[bytes], bytes | None]) -> None:
        """Log a batch of writes to ``partition`` before they reach the store: for each key first written in this
        era by this process its value now (``stored(key)``), and every deletion."""
        fd = self._fd
        if fd is None:
            return
        seen = self._seen.get(partition)
        if seen is None:
            seen = self._seen[partition] = set()
        entries: list[tuple[int, bytes, bytes | None, bool]] = []
        for key, value in changes:
            if key not in seen:
                seen.add(key)
                entries.append((partition, key, stored(key), value is None))
            elif value is None:
                entries.append((partition, key, None, True))
        if entries:
            assert self.era is not None
            _write_all(fd, _frame(self.era, entries))


def read(path: Path, era: str) -> dict[int, dict[bytes, Touched]] | None:
    """Each partition's keys written since the checkpoint of ``era`` (each key's earliest entry gives its old
    value); None when there is no log of that era. A record cut short at the end (a process killed while writing
    it, before the store write it precedes) is ignored."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    out: dict[int, dict[bytes, Touched]] = {}
    at, size, empty = 0, len(data), True
    while at + _LENGTH <= size:
        length = int.from_bytes(data[at:at + _LENGTH], "little")
        if at + _LENGTH + length > size:
            break
        record_era, entries = _UNPACK(data[at + _LENGTH:at + _LENGTH + length])
        at += _LENGTH + length
        if record_era != era:
            return None
        empty = False
        for partition, key, old, deleted in entries:
            keys = out.setdefault(partition, {})
            known = keys.get(key)
            if known is None:
                keys[key] = Touched(old, deleted)
            elif deleted:
                known.deleted_later = True
    return None if empty else out


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
