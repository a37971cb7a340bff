"""Read back a breach topic (``sla-breaches``, ``feedback-breaches``): the record of what was already published.

Why the topic itself: a breach is published with the producer's acknowledgement; after a crash, whatever was
acknowledged is on the topic, whatever was not is published again. Reading it before the breach timer starts
is what keeps "exactly once per visit" (and per detractor feedback) across a restart without Kafka transactions.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition


async def read_published_visits(
    bootstrap_servers: str, topic: str, timeout_s: float = 30.0, client_options: dict[str, Any] | None = None
) -> set[tuple[str, str]]:
    """Every ``(contact_id, visit_id)`` on ``topic`` (``sla-breaches``) from the beginning to its current end
    (empty when it does not exist). Keyed by contact too: a visit id is a queued event id, unique per contact
    only (kpis.md "Duplicates": the same id under another contact is another event, and its breach is another
    breach)."""
    return await read_published(bootstrap_servers, topic, "visit_id", timeout_s, client_options)


async def read_published_feedback(
    bootstrap_servers: str, topic: str, timeout_s: float = 30.0, client_options: dict[str, Any] | None = None
) -> set[tuple[str, str]]:
    """Every ``(contact_id, survey_event_id)`` on ``topic`` (``feedback-breaches``, contract v2): the detractor
    feedback whose breach was published; the survey id is an event id, so per contact like a visit id."""
    return await read_published(bootstrap_servers, topic, "survey_event_id", timeout_s, client_options)


async def read_published(
    bootstrap_servers: str, topic: str, id_field: str, timeout_s: float = 30.0,
    client_options: dict[str, Any] | None = None,
) -> set[tuple[str, str]]:
    """Every ``(contact_id, record[id_field])`` on ``topic`` from the beginning to its current end (empty when
    it does not exist); records without both are skipped (not ours to judge)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None, **(client_options or {})
    )
    await consumer.start()
    visits: set[tuple[str, str]] = set()
    try:
        # fresh metadata of all topics; not consumer.topics() + partitions_for_topic(): topics() does not keep
        # what it fetched, and against Kafka 4 the client bootstraps knowing no topic, so that gave None (= empty)
        cluster = await consumer._client.fetch_all_metadata()
        if topic not in cluster.topics():
            return visits
        partitions = cluster.partitions_for_topic(topic) or set()
        if not partitions:
            return visits
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=int(timeout_s * 1000))
            if not batch:
                break
            for tp, records in batch.items():
                for record in records:
                    try:
                        value = orjson.loads(record.value)
                        visit = (value.get("contact_id"), value.get(id_field))
                    except (orjson.JSONDecodeError, AttributeError):
                        continue
                    if visit[0] and visit[1]:
                        visits.add(visit)
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await _stop(consumer)
    return visits


async def _stop(consumer: AIOKafkaConsumer) -> None:
    """Stop the consumer. aiokafka may raise CancelledError from its coordinator's own background task when
    stopped soon after start; that is its task being cancelled, not ours, so it must not end the caller."""
    import asyncio

    stopping = asyncio.ensure_future(consumer.stop())
    try:
        await asyncio.shield(stopping)
    except asyncio.CancelledError:
        if not stopping.done() or (asyncio.current_task() and asyncio.current_task().cancelling()):
            raise
