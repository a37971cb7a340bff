"""Write a batch of changed keys to a Faust table in bulk: its store and its changelog, once per batch.

Why beside Faust's own write path: ``table[key] = value`` costs, per key, a store put routed through the
*current event*, a ``FutureMessage``, a place in Faust's producer buffer (which stalls the conductor when it
holds more than 100 records: "producer buffer full") and one ``aiokafka.send``. A batch of 2,000 events
changes up to 2,000 contacts, so that path cost more than everything else the worker does (see
docs/performance.md). Here a batch of changes becomes, per partition, plain store puts and one or a few
``send_batch`` calls on Faust's own aiokafka producer, to Faust's own changelog topic, in Faust's own record
format (raw key and value bytes). Faust's recovery therefore reads these records back like its own; after each
batch is acknowledged we record the changelog offset in the store (``set_persisted_offset``), as Faust does
for its own writes, so a restart on the same disk reads only what is newer.

The caller awaits :meth:`flush` before the batch's source events are acknowledged: offsets are never
committed past an event whose state is not durably in the changelog.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.types import TP


class BulkTableWriter:
    """Stages ``(partition, key, value)`` changes of one table and writes them with :meth:`flush`."""

    def __init__(self, app: Any, table: Any) -> None:
        self.app = app
        self.table = table
        self.staged: dict[int, list[tuple[bytes, bytes | None]]] = {}

    def stage(self, partition: int, key: bytes, value: bytes | None) -> None:
        """A new value for ``key`` in ``partition`` (None: delete it)."""
        self.staged.setdefault(partition, []).append((key, value))

    def _put(self, partition: int, key: bytes, value: bytes | None) -> None:
        store = self.table.data
        db_for = getattr(store, "_db_for_partition", None)
        if db_for is not None:  # rocksdb://
            db = db_for(partition)
            if value is None:
                db.delete(key)
            else:
                db.put(key, value)
        elif value is None:  # memory:// (tests)
            store.data.pop(key, None)
        else:
            store.data[key] = value

    async def flush(self) -> int:
        """Write every staged change to the store and the changelog; return how many records were sent.

        Sends all partitions' batches first and awaits their acknowledgements together, so the round trips
        to the broker overlap."""
        if not self.staged:
            return 0
        producer = self.app.producer._ensure_producer()  # Faust's own (started) aiokafka producer
        topic = self.table.changelog_topic.get_topic_name()
        pending: list[tuple[int, int, Any]] = []  # partition, records, future of the batch's metadata
        sent = 0
        staged, self.staged = self.staged, {}
        for partition, changes in staged.items():
            batch = producer.create_batch()
            count = 0
            for key, value in changes:
                self._put(partition, key, value)
                if batch.append(key=key, value=value, timestamp=None) is not None:
                    count += 1
                    continue
                if count:  # full: send it and start anew
                    pending.append((partition, count, await producer.send_batch(batch, topic, partition=partition)))
                    batch = producer.create_batch()
                    count = 0
                    if batch.append(key=key, value=value, timestamp=None) is not None:
                        count = 1
                        continue
                # larger than a whole batch (a state holding a large original event): a request of its own
                pending.append((partition, 1, await producer.send(topic, value=value, key=key, partition=partition)))
            if count:
                pending.append((partition, count, await producer.send_batch(batch, topic, partition=partition)))
            sent += len(changes)
        metadata = await asyncio.gather(*(future for _, _, future in pending))
        store = self.table.data
        if hasattr(store, "set_persisted_offset"):
            last: dict[int, int] = {}
            for (partition, count, _), meta in zip(pending, metadata):
                last[partition] = max(last.get(partition, -1), meta.offset + count - 1)
            for partition, offset in last.items():
                store.set_persisted_offset(TP(topic, partition), offset)
        return sent
