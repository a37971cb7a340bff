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

Offsets are never committed past an event whose state is not durably in the changelog: Faust flushes its
producer (``AIOKafkaProducer.flush``, which waits for every pending batch, ours included) before each offset
commit. So :meth:`flush` hands the batches to the producer and returns without waiting for the broker: the next
batch is processed while this one travels (awaiting each batch's acknowledgement inline left the worker idle
for a round trip per batch). A batch the broker refuses stops the worker before that commit can happen: the
failure callback runs before the commit's own wait returns (callbacks run in the order they were added).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Callable

from faust.types import TP
from rocksdict import Rdict, WriteBatch

from cxpulse.streams.storage import stored_value
from cxpulse.streams.touch_log import TouchLog


class BulkTableWriter:
    """Stages ``(partition, key, value)`` changes of one table and writes them with :meth:`flush`."""

    def __init__(self, app: Any, table: Any, on_failure: Callable[[str], None], *, wait: bool = False) -> None:
        """``on_failure(why)`` is called when the broker refuses a batch (the worker stops: ``stop_now``);
        ``wait`` True awaits every acknowledgement inside :meth:`flush` (tests)."""
        self.app = app
        self.table = table
        self.on_failure = on_failure
        self.wait = wait
        self.staged: dict[int, list[tuple[bytes, bytes | None]]] = {}
        self._persisted: dict[TP, int] = {}
        self._inflight: set[Any] = set()  # futures of batches sent and not answered yet
        # the contacts' writer logs its writes before they reach the store (streams/touch_log.py); None: no log
        self.touch_log: TouchLog | None = None

    def stage(self, partition: int, key: bytes, value: bytes | None) -> None:
        """A new value for ``key`` in ``partition`` (None: delete it)."""
        self.staged.setdefault(partition, []).append((key, value))

    def _store(self, partition: int, changes: list[tuple[bytes, bytes | None]]) -> None:
        """Write one partition's changes to the store: one RocksDB write batch (one call into RocksDB, as Faust's
        own changelog recovery writes, instead of a put per key)."""
        store = self.table.data
        db_for = getattr(store, "_db_for_partition", None)
        if db_for is not None:  # rocksdb://
            db = db_for(partition)
            if isinstance(db, Rdict):  # Faust's driver whenever rocksdict is installed (it is a dependency)
                batch = WriteBatch(raw_mode=True)
                for key, value in changes:
                    if value is None:
                        batch.delete(key)
                    else:
                        batch.put(key, value)
                db.write(batch)
                return
            for key, value in changes:  # python-rocksdb, should Faust ever be told to use it
                if value is None:
                    db.delete(key)
                else:
                    db.put(key, value)
            return
        data = store.data  # memory:// (tests)
        for key, value in changes:
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value

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
            if self.touch_log is not None:
                self.touch_log.note(partition, changes, functools.partial(stored_value, self.table, partition))
            self._store(partition, changes)
            batch = producer.create_batch()
            count = 0
            for key, value in changes:
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
        store = self.table.data
        for partition, count, future in pending:
            future.add_done_callback(self._acknowledged(store, TP(topic, partition), count))
            self._inflight.add(future)
            future.add_done_callback(self._inflight.discard)
        if self.wait:
            await asyncio.gather(*(future for _, _, future in pending))
        return sent

    async def drain(self) -> None:
        """Wait until every batch sent so far is answered and its offset recorded (a clean stop's checkpoint
        names the changelog offsets its state reflects: :mod:`cxpulse.streams.checkpoint`)."""
        while self._inflight:
            # the offset callback was added before the wake-up of this wait, so it has run when this returns
            await asyncio.wait(list(self._inflight))

    def persisted(self, partition: int) -> int | None:
        """The last changelog offset of ``partition`` that this writer saw acknowledged (None: none yet)."""
        return self._persisted.get(TP(self.table.changelog_topic.get_topic_name(), partition))

    def _acknowledged(self, store: Any, tp: TP, count: int) -> Any:
        """What happens when the broker answers a batch: record the changelog offset in the store (as Faust does
        for its own writes), or stop the worker if the batch was refused (its events must be read again)."""
        def done(future: Any) -> None:
            if future.cancelled() or future.exception() is not None:
                self.on_failure(f"changelog batch for {tp.topic}[{tp.partition}] failed: "
                                f"{'cancelled' if future.cancelled() else repr(future.exception())}")
                return
            if hasattr(store, "set_persisted_offset"):
                offset = future.result().offset + count - 1
                if offset > self._persisted.get(tp, -1):
                    self._persisted[tp] = offset
                    store.set_persisted_offset(tp, offset)
        return done
