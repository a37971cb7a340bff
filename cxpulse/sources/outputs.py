"""Where a source's events go: Kafka (batched, acknowledged on :meth:`commit`) or JSON Lines files.

Why one interface for both: ``--out FILE`` must write exactly the events (and rejections) that Kafka would
receive, so a queue_log can be replayed without Kafka and compared with what a live run sent.

Kafka: events go through :class:`cxpulse.kafka_io.BatchSender` (whole batches per partition, key =
``contact_id`` / ``agent_id``), rejections to the dead-letter topic of their logical topic in the record format
of :mod:`cxpulse.streams.dead_letters` (the original bytes as the value, ``cxpulse-reason``, ``-kind``,
``-source-topic``, ``-source-partition``, ``-source-offset`` headers; the source "topic" is ``file:PATH`` and
the offset is the byte offset of the line or the index of the record). Nothing is acknowledged to the caller
before :meth:`KafkaOutput.commit` returns: that is when a following source may store its position.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

import orjson

from cxpulse.sources.records import AGENT, CONTACT, SURVEY, LogicalTopic, Produced, Rejected, Tally

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

    from cxpulse.settings import KafkaSettings


def dead_letter_headers(rejected: Rejected) -> list[tuple[str, bytes]]:
    """The headers of a dead letter, named and ordered as :class:`cxpulse.streams.dead_letters.DeadLetter`
    writes them (a unit test compares the two), so one tool reads the dead letters of the worker and ours."""
    return [
        ("cxpulse-reason", rejected.reason.encode("utf-8")),
        ("cxpulse-kind", rejected.kind.encode("ascii", "replace")),
        ("cxpulse-source-topic", rejected.source.encode("utf-8")),
        ("cxpulse-source-partition", b"-1"),
        ("cxpulse-source-offset", str(rejected.position).encode("ascii")),
    ]


class Output(Protocol):
    """What a source writes to; :meth:`commit` returns once everything put so far is durable."""

    tally: Tally

    async def put(self, produced: Produced) -> None: ...

    async def reject(self, rejected: Rejected) -> None: ...

    async def commit(self) -> None: ...

    async def close(self) -> None: ...


def topic_names(kafka: "KafkaSettings") -> tuple[dict[LogicalTopic, str], dict[LogicalTopic, str]]:
    """(logical topic -> configured name, logical topic -> its dead-letter topic) from the settings."""
    t = kafka.topics
    return (
        {CONTACT: t.contact_events, SURVEY: t.survey_responses, AGENT: t.agent_events},
        {CONTACT: t.contact_events_dlq, SURVEY: t.survey_responses_dlq, AGENT: t.agent_events_dlq},
    )


class KafkaOutput:
    """Events and dead letters to Kafka through one idempotent producer; see the module docstring."""

    def __init__(self, producer: "AIOKafkaProducer", topics: dict[LogicalTopic, str],
                 dead_letters: dict[LogicalTopic, str]) -> None:
        from cxpulse.kafka_io import BatchSender

        self._producer = producer
        self._sender = BatchSender(producer)
        self._topics = topics
        self._dlq = dead_letters
        self._pending: list[asyncio.Future[Any]] = []
        self.tally = Tally()

    @classmethod
    async def start(cls, kafka: "KafkaSettings", *, bootstrap: str | None = None, create_topics: bool = True,
                    role: str = "source") -> "KafkaOutput":
        """A started output on the configured topics; :class:`cxpulse.kafka_io.KafkaUnavailable` when Kafka is away."""
        from cxpulse.kafka_io import producer_for

        topics, dlq = topic_names(kafka)
        names = [*topics.values(), *dlq.values()]
        producer = await producer_for(kafka, bootstrap or kafka.bootstrap_servers, names,
                                      create_topics=create_topics, role=role)
        output = cls(producer, topics, dlq)
        try:
            await output._sender.prepare(topics.values())
        except BaseException:
            await producer.stop()
            raise
        return output

    async def put(self, produced: Produced) -> None:
        await self._sender.send(self._topics[produced.topic], produced.key, produced.value)
        self.tally.events[self._topics[produced.topic]] += 1

    async def reject(self, rejected: Rejected) -> None:
        future = await self._producer.send(self._dlq[rejected.topic], value=rejected.raw, key=None,
                                           headers=dead_letter_headers(rejected))
        self._pending.append(future)
        self.tally.rejected[rejected.kind] += 1

    async def commit(self) -> None:
        """Wait until the broker acknowledged every event and dead letter put so far (raises on a failure)."""
        await self._sender.flush()
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)

    async def close(self) -> None:
        await self._producer.stop()


class FileOutput:
    """``--out FILE``: contact events to FILE, agent events to FILE.agents, rejections to FILE.rejected.

    Why agent events apart: ``cxpulse replay`` reads contact and survey events; until the engine consumes
    agent events, mixing them in would make every replay report them as invalid. Each file is JSON Lines;
    a rejection is ``{"source", "position", "kind", "reason", "line"}`` with the line as text."""

    def __init__(self, path: Path, append: bool = False) -> None:
        mode = "ab" if append else "wb"
        self.path = path
        self.agents_path = path.with_name(path.name + ".agents")
        self.rejected_path = path.with_name(path.name + ".rejected")
        self._files: dict[str, IO[bytes]] = {
            "events": path.open(mode), "agents": self.agents_path.open(mode), "rejected": self.rejected_path.open(mode),
        }
        self.tally = Tally()

    async def put(self, produced: Produced) -> None:
        self._files["agents" if produced.topic == AGENT else "events"].write(produced.value + b"\n")
        self.tally.events[produced.topic] += 1

    async def reject(self, rejected: Rejected) -> None:
        record = {"source": rejected.source, "position": rejected.position, "kind": rejected.kind,
                  "reason": rejected.reason, "line": rejected.raw.decode("utf-8", "replace")}
        self._files["rejected"].write(orjson.dumps(record) + b"\n")
        self.tally.rejected[rejected.kind] += 1

    async def commit(self) -> None:
        """Flush and fsync: after this, what was put survives a crash (a --follow position may move on)."""
        for handle in self._files.values():
            handle.flush()
            os.fsync(handle.fileno())

    async def close(self) -> None:
        for handle in self._files.values():
            handle.close()
