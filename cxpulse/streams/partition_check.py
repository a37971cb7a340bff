"""Refuse to start on topics whose partition count is not ``kafka.partitions``.

Why: the worker keys its state by partition. A contact's events, its stored contact, its changelog record and
its dead letters must all live on partition ``murmur2(contact_id) % N`` with one ``N``; Faust's changelogs
must have exactly as many partitions as their source. A source topic created elsewhere with another count
(a producer's auto-creation with the broker default, a platform team's own count) would not fail loudly: the
worker would run, its tables would disagree with their changelogs, and the KPIs would be quietly wrong after
the first restart. So the worker checks before Faust starts and stops with one line that says what to do.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from cxpulse.kafka_io import KafkaUnavailable
from cxpulse.kafka_security import client_options
from cxpulse.settings import KafkaSettings


class PartitionMismatch(RuntimeError):
    """Some of the worker's topics have another partition count than ``kafka.partitions`` (one-line message)."""


async def partition_counts(kafka: KafkaSettings, topics: Iterable[str]) -> dict[str, int]:
    """Partition count of each of ``topics`` that exists (a missing topic is left out)."""
    wanted = list(dict.fromkeys(topics))
    admin = AIOKafkaAdminClient(
        bootstrap_servers=kafka.bootstrap_servers, client_id="cxpulse-partition-check", **client_options(kafka)
    )
    try:
        await admin.start()
    except KafkaError as exc:
        raise KafkaUnavailable(f"Kafka is not reachable at {kafka.bootstrap_servers}: {exc}") from None
    try:
        existing = set(await admin.list_topics())
        present = [name for name in wanted if name in existing]
        described = await admin.describe_topics(present) if present else []
        return {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}
    finally:
        await admin.close()


def mismatch_message(counts: dict[str, int], expected: int) -> str | None:
    """The one line that names every topic whose count differs (source topics first), or None."""
    wrong = [(name, actual) for name, actual in counts.items() if actual != expected]
    if not wrong:
        return None
    listed = "; ".join(f"topic {name!r} has {actual} partitions" for name, actual in wrong)
    return (
        f"{listed}; kafka.partitions is {expected}: every topic the worker reads or writes needs exactly that "
        f"many (recreate the topic with {expected} partitions, or set kafka.partitions to match before the "
        f"worker's first start)"
    )


async def check_partitions(kafka: KafkaSettings, topics: Iterable[str]) -> None:
    """Raise :class:`PartitionMismatch` when an existing topic of ``topics`` has another count."""
    message = mismatch_message(await partition_counts(kafka, topics), kafka.partitions)
    if message is not None:
        raise PartitionMismatch(message)
