"""Contacts and customers past the retention leave their tables too, not only memory.

Why: the core forgets a contact untouched for ``kpi.contact_retention`` (kpis.md: remembered 30 days), but in the
worker a settled contact is no longer in memory (Engine v2: the RocksDB table holds it), so nothing ever saw it
again: the table, its changelog and a cold restart's rebuild grew without end, and an event for a contact
forgotten long ago found it again where a replay starts it anew. The sweeper walks each owned partition's
database a slice per maintenance tick (a cursor, ``SWEEP_KEYS`` keys), and marks every stored contact whose
newest event is older than the retention, and that is neither in memory nor waiting to be saved, for deletion:
the next batch deletes it from the store and the changelog (a tombstone), as it deletes what the core forgets.
A walk instead of an index by time: an index would hold a string per remembered contact in memory, a month of
them, which is what Engine v2 took out of memory; a slice of a walk costs a few milliseconds per minute.
Customers likewise: only the recently changed ones stay in memory (the table holds the others), and one whose
newest contact can no longer change a count is deleted from the table by the same walk.
"""

from __future__ import annotations

from typing import Any

from cxpulse.core.live import LiveKpis
from cxpulse.core.processors import customer_memory_us
from cxpulse.streams import codec
from cxpulse.units import US_PER_SECOND

SWEEP_KEYS = 5_000  # keys per partition per tick: a month of a large centre (2M contacts) in about an hour
OFFSET_KEY = b"__faust\0offset__"  # Faust's own key in every partition's database (the changelog offset)


class TableSweeper:
    """A cursor per partition through one table's RocksDB databases (see the module docstring); the subclasses
    say which processors own the keys, how old a stored value is, and what is past the retention."""

    def __init__(self, table: Any, live: LiveKpis, keys_per_tick: int = SWEEP_KEYS) -> None:
        self.table = table
        self.live = live
        self.keys_per_tick = keys_per_tick
        self.cursors: dict[int, bytes] = {}  # partition -> the key the next slice starts at
        self.swept_total = 0  # keys marked for deletion since start

    def parts(self) -> dict[int, Any]:
        raise NotImplementedError

    def limit(self, now_us: int) -> int:
        """Stored values whose newest time is before this are past the retention."""
        raise NotImplementedError

    def newest(self, value: bytes) -> int:
        raise NotImplementedError

    def held(self, proc: Any, key: str) -> bool:
        """In memory: the core's own forget decides about it."""
        raise NotImplementedError

    def sweep(self, now_us: int) -> int:
        """One slice of every owned partition; returns how many stored keys it marked for deletion."""
        db_for = getattr(self.table.data, "_db_for_partition", None)
        if db_for is None:  # memory:// (tests): every key stays in memory, the core forgets them
            return 0
        limit = self.limit(now_us)
        marked = 0
        for partition, proc in list(self.parts().items()):
            marked += self._slice(db_for(partition), partition, proc, limit)
        self.swept_total += marked
        return marked

    def _slice(self, db: Any, partition: int, proc: Any, limit: int) -> int:
        cursor = self.cursors.pop(partition, None)
        items = db.items(from_key=cursor) if cursor is not None else db.items()
        marked = seen = 0
        for key, value in items:
            if seen == self.keys_per_tick:
                self.cursors[partition] = key  # the next slice starts here; none: from the first key again
                break
            seen += 1
            if key == OFFSET_KEY:
                continue
            text = codec.key_text(key)
            if self.held(proc, text) or text in proc.dirty:
                continue  # in memory, or a change (or a deletion) not saved yet
            if self.newest(value) < limit:
                proc.dirty.add(text)  # not in memory: the next batch's save deletes the key
                marked += 1
        return marked


class ContactSweeper(TableSweeper):
    """Contacts untouched for ``kpi.contact_retention`` (what :meth:`ContactProcessor.forget` drops)."""

    def parts(self) -> dict[int, Any]:
        return self.live.contact_parts

    def limit(self, now_us: int) -> int:
        return now_us - self.live.kpi.contact_retention * US_PER_SECOND

    def newest(self, value: bytes) -> int:
        return codec.stored_last_ts(value)

    def held(self, proc: Any, key: str) -> bool:
        return key in proc.contacts


class CustomerSweeper(TableSweeper):
    """Customers whose newest contact is older than twice the FCR window plus the allowed disorder (what
    :meth:`CustomerProcessor.forget` drops: they can change no count); moved out of memory by the worker since
    Engine v2 keeps only the recently changed customers."""

    def parts(self) -> dict[int, Any]:
        return self.live.customer_parts

    def limit(self, now_us: int) -> int:
        return now_us - customer_memory_us(self.live.kpi)

    def newest(self, value: bytes) -> int:
        return codec.stored_newest_t0(value)

    def held(self, proc: Any, key: str) -> bool:
        return key in proc.customers or key in proc.packed
