"""Small Kafka helpers shared by the commands that write events: topic creation and a fast batched sender.

Why a batch sender on top of :class:`aiokafka.AIOKafkaProducer`: ``send()`` costs a future, a partitioner
call (aiokafka's murmur2 is pure Python) and several awaits per record, which caps one process far below the
50k events/s a load test needs. Here records are appended to one open ``BatchBuilder`` per partition, the
partition is computed once per key with the same murmur2 as Kafka's default partitioner (so keys land
where any Kafka client would put them, and one contact's events stay in order on one partition), and whole
batches are handed to the producer. The producer is idempotent, so a retry never duplicates a record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cxpulse.settings import KafkaSettings

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.codec import has_lz4
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import murmur2

log = logging.getLogger(__name__)

DEFAULT_BATCH_BYTES = 512 * 1024
"""Per-partition batch size: big enough that a request carries thousands of events, below the broker's 1 MB."""
DEFAULT_LINGER_MS = 20
_LEADER_SETTLE_S = 1.0


class KafkaUnavailable(RuntimeError):
    """The broker could not be reached; the message says where we looked."""


def compression_type() -> str | None:
    """``lz4`` when aiokafka can compress with it (cramjam installed), otherwise no compression."""
    return "lz4" if has_lz4() else None


async def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[str],
    *,
    partitions: int,
    replication_factor: int = 1,
    client_id: str = "cxpulse",
    configs: dict[str, str] | None = None,
    client_options: dict[str, Any] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet (with the configured partition count); return those created.

    Why not rely on auto-creation: an auto-created topic gets the broker's default partition count, and
    Faust's changelogs must have exactly as many partitions as their source topic.
    """
    wanted = list(dict.fromkeys(topics))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id=f"{client_id}-admin", **(client_options or {}))
    try:
        await admin.start()
    except KafkaError as exc:
        raise KafkaUnavailable(f"Kafka is not reachable at {bootstrap_servers}: {exc}") from None
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            new = [
                NewTopic(name, num_partitions=partitions, replication_factor=replication_factor, topic_configs=configs or {})
                for name in missing
            ]
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass  # another process created it meanwhile: fine
            log.info("created topics %s with %d partitions", ", ".join(missing), partitions)
            await _wait_for_leaders(admin, missing, partitions)
        return missing
    finally:
        await admin.close()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, topics: list[str], partitions: int, timeout: float = 15.0) -> None:
    """A new topic's partitions need a leader before the first write, or the producer logs retries."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        described = await admin.describe_topics(topics)
        ready = [
            t for t in described
            if t["error_code"] == 0
            and len(t["partitions"]) == partitions
            and all(p["leader"] >= 0 and p["error_code"] == 0 for p in t["partitions"])
        ]
        if len(ready) == len(topics):
            # KRaft: the controller names a leader slightly before that broker acts as one; without this
            # pause the first writes are answered NotLeaderForPartition (retried, but logged as warnings)
            await asyncio.sleep(_LEADER_SETTLE_S)
            return
        await asyncio.sleep(0.1)
    log.warning("topics %s have no leader for every partition after %.0f s", ", ".join(topics), timeout)


def new_producer(
    bootstrap_servers: str,
    *,
    client_id: str = "cxpulse",
    linger_ms: int = DEFAULT_LINGER_MS,
    max_batch_size: int = DEFAULT_BATCH_BYTES,
    client_options: dict[str, Any] | None = None,
) -> AIOKafkaProducer:
    """An idempotent, batching producer (``acks=all``): fast, and no duplicates when it retries."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        linger_ms=linger_ms,
        max_batch_size=max_batch_size,
        max_request_size=max(1_048_576, max_batch_size * 2),
        compression_type=compression_type(),
        enable_idempotence=True,
        request_timeout_ms=30_000,
        **(client_options or {}),
    )


class BatchSender:
    """Append records (key, value) per topic; full batches go out at once, the rest on :meth:`submit`.

    Call :meth:`submit` whenever the writer is about to sleep (so paced output is not held back), and
    :meth:`flush` at the end to wait until the broker has acknowledged everything.
    """

    _KEY_CACHE_LIMIT = 500_000

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._partitions: dict[str, list[int]] = {}
        self._open: dict[tuple[str, int], Any] = {}
        self._key_partition: dict[tuple[str, bytes], int] = {}
        self._in_flight: list[asyncio.Future[Any]] = []
        self._last: dict[tuple[str, int], asyncio.Future[Any]] = {}
        self._keyless = 0
        self.sent = 0
        """records handed to the producer"""
        self.bytes = 0
        self.acked = 0
        """records the broker confirmed (all in-sync replicas: acks=all)"""

    async def prepare(self, topics: Iterable[str]) -> None:
        """Learn each topic's partitions (waits for metadata; fails clearly when the broker is away)."""
        for topic in topics:
            try:
                found = await asyncio.wait_for(self._producer.partitions_for(topic), timeout=30)
            except (asyncio.TimeoutError, KafkaError) as exc:
                raise KafkaUnavailable(f"no metadata for topic {topic!r}: {exc!r}") from None
            self._partitions[topic] = sorted(found)

    def _partition(self, topic: str, key: bytes | None) -> int:
        partitions = self._partitions[topic]
        if key is None:  # spread unkeyed records round-robin
            self._keyless += 1
            return partitions[self._keyless % len(partitions)]
        cache_key = (topic, key)
        found = self._key_partition.get(cache_key)
        if found is None:
            if len(self._key_partition) >= self._KEY_CACHE_LIMIT:
                self._key_partition.clear()
            found = partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]
            self._key_partition[cache_key] = found
        return found

    async def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Queue one record; awaits only when a full batch must wait for the previous one of its partition."""
        if topic not in self._partitions:
            await self.prepare([topic])
        slot = (topic, self._partition(topic, key))
        batch = self._open.get(slot)
        if batch is None:
            batch = self._open[slot] = self._producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:
            await self._submit(slot, batch)
            batch = self._open[slot] = self._producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"a record of {len(value)} bytes does not fit in an empty batch")
        self.sent += 1
        self.bytes += len(value)

    async def _submit(self, slot: tuple[str, int], batch: Any) -> None:
        batch.close()
        records = batch.record_count()
        future = await self._producer.send_batch(batch, slot[0], partition=slot[1])
        future.add_done_callback(lambda done: self._count_acked(done, records))
        self._in_flight.append(future)
        self._last[slot] = future
        if len(self._in_flight) > 256:
            await self._reap(wait=False)

    def _count_acked(self, future: asyncio.Future[Any], records: int) -> None:
        if not future.cancelled() and future.exception() is None:
            self.acked += records

    async def _reap(self, wait: bool) -> None:
        """Raise the first delivery error; keep only futures still pending."""
        if wait and self._in_flight:
            await asyncio.gather(*self._in_flight)
        pending = []
        for future in self._in_flight:
            if future.done():
                future.result()
            else:
                pending.append(future)
        self._in_flight = pending

    async def submit(self, force: bool = False) -> None:
        """Hand open, non-empty batches to the producer, without waiting for acknowledgements.

        A partition whose previous batch is still unacknowledged keeps filling its open batch instead
        (unless ``force``): handing over a small batch then would only wait behind the previous one, and
        letting it grow is what keeps throughput up when the writer is paced.
        """
        for slot, batch in list(self._open.items()):
            if not batch.record_count():
                continue
            previous = self._last.get(slot)
            if force or previous is None or previous.done():
                del self._open[slot]
                await self._submit(slot, batch)

    async def flush(self) -> None:
        """Submit what is open and wait until the broker acknowledged every record."""
        await self.submit(force=True)
        await self._reap(wait=True)


__all__ = [
    "BatchSender",
    "KafkaUnavailable",
    "compression_type",
    "ensure_topics",
    "new_producer",
]


async def started_producer(
    bootstrap_servers: str, client_id: str, client_options: dict[str, Any] | None = None
) -> "AIOKafkaProducer":
    """A batched producer, started; :class:`KafkaUnavailable` when the broker cannot be reached."""
    producer = new_producer(bootstrap_servers, client_id=client_id, client_options=client_options)
    try:
        await producer.start()
    except Exception as exc:  # aiokafka raises several kinds here; all mean "cannot reach Kafka"
        await producer.stop()
        raise KafkaUnavailable(f"Kafka is not reachable at {bootstrap_servers}: {exc}") from None
    return producer


async def producer_for(
    kafka: "KafkaSettings", bootstrap_servers: str, topics: Iterable[str], *, create_topics: bool, role: str
) -> AIOKafkaProducer:
    """A started producer for ``topics`` with the configured security, creating missing topics first.

    What ``cxpulse produce`` and ``cxpulse simulate`` both need; ``role`` names the client (``produce``...)."""
    from cxpulse.kafka_security import client_options

    options = client_options(kafka)
    if create_topics:
        await ensure_topics(bootstrap_servers, topics, partitions=kafka.partitions,
                            replication_factor=kafka.replication_factor, client_id=kafka.client_id,
                            client_options=options)
    return await started_producer(bootstrap_servers, f"{kafka.client_id}-{role}", options)
