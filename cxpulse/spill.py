"""What a replay moves out of memory, on disk: settled contacts and customers, packed, in a temporary RocksDB.

Why: a replay has no table. The worker reads a settled contact back from its RocksDB table when one of its events
arrives (``ContactProcessor.loader``); a replay used to keep every settled contact and customer packed in dicts,
about 1 KB per contact with the dict entry and the key, for the whole retention: a week of a large centre peaked
at 556 MiB, 14 days at 949 MiB, so 31 days would need 2 GB (issue 9: under 1 GB). Kept here instead, a replay's
memory is what can still change plus the windows, whatever the number of days.

Why RocksDB (``rocksdict``, already the worker's store through Faust): a put or a get is a few microseconds in
process, writes go to a memtable and are flushed in sorted files in the background, and nothing here needs to
survive the process (no write-ahead log). Why a ``MutableMapping`` of ``str`` to ``bytes``: the processors keep
their packed values in exactly such a mapping (a dict by default), so the core runs unchanged on either.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, MutableMapping
from pathlib import Path

import rocksdict

MIB = 1024 * 1024
# one memtable of 16 MiB (RocksDB's default is 64 MiB, and two of them may be held while one flushes) and a
# 16 MiB block cache: a replay reads back a small fraction of what it wrote (surveys, late events)
WRITE_BUFFER_BYTES = 16 * MIB
BLOCK_CACHE_BYTES = 16 * MIB


class SpillMap(MutableMapping[str, bytes]):
    """A ``str`` -> ``bytes`` mapping in a RocksDB database of its own (raw keys and values, no WAL)."""

    def __init__(self, path: Path) -> None:
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_write_buffer_size(WRITE_BUFFER_BYTES)
        options.set_max_write_buffer_number(2)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(10, False)  # a pop asks first whether the key is there; mostly (a new contact) not
        table.set_block_cache(rocksdict.Cache(BLOCK_CACHE_BYTES))
        options.set_block_based_table_factory(table)
        # most reads ask for a key that was never moved out (a new contact): a Bloom filter in the memtable too
        # answers those without a search (measured: a miss 10.6 µs -> 2.4 µs through key_may_exist)
        options.set_memtable_prefix_bloom_ratio(0.1)
        options.set_memtable_whole_key_filtering(True)
        self._db = rocksdict.Rdict(str(path), options)
        unlogged = rocksdict.WriteOptions()
        unlogged.disable_wal = True
        self._db.set_write_options(unlogged)

    def __getitem__(self, key: str) -> bytes:
        value = self._db.get(key.encode())
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: bytes | None = None) -> bytes | None:  # type: ignore[override]
        value = self._db.get(key.encode())
        return default if value is None else value

    def __setitem__(self, key: str, value: bytes) -> None:
        self._db.put(key.encode(), value)

    def __delitem__(self, key: str) -> None:
        raw = key.encode()
        if self._db.get(raw) is None:
            raise KeyError(key)
        self._db.delete(raw)

    def pop(self, key: str, default: bytes | None = None) -> bytes | None:  # type: ignore[override]
        """The processors' read of a settled value: it comes back to memory, so it leaves the store."""
        raw = key.encode()
        if not self._db.key_may_exist(raw):
            return default
        value = self._db.get(raw)
        if value is None:
            return default
        self._db.delete(raw)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._db.get(key.encode()) is not None

    def __iter__(self) -> Iterator[str]:
        for key in self._db.keys():
            yield key.decode()

    def __len__(self) -> int:
        """Counted by walking the keys: only tests and tools ask. Why not a running count: it needed a read before
        every put (is the key new?), ~3% of a replay (py-spy, a simulated week), for a figure no replay uses."""
        return sum(1 for _ in self._db.keys())

    def close(self) -> None:
        self._db.close()


class SpillStore:
    """The replay's databases, one per kind of value, in one temporary directory removed on :meth:`close`."""

    def __init__(self, parent: Path | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="cxpulse-replay-", dir=parent))
        self._maps: list[SpillMap] = []

    def map(self, name: str) -> SpillMap:
        spilled = SpillMap(self.root / name)
        self._maps.append(spilled)
        return spilled

    def close(self) -> None:
        for spilled in self._maps:
            spilled.close()
        self._maps.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SpillStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


__all__ = ["SpillMap", "SpillStore"]
