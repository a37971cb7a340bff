"""Dead-letter records: the original bytes as the value, the why and the where in headers.

Why headers: the value stays byte-for-byte what the producer wrote, so it can be fixed and re-sent as is;
the reason, kind and source coordinates travel beside it where any Kafka tool shows them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from aiokafka.errors import MessageSizeTooLargeError
from faust.types import TopicT

from cxpulse.core.processors import Rejection

TRUNCATED_BYTES = 256 * 1024  # a dead letter too large for its topic keeps this much of the original


@dataclass(frozen=True, slots=True)
class DeadLetter:
    value: bytes
    key: bytes | None
    reason: str
    kind: str
    source_topic: str
    source_partition: int
    source_offset: int
    original_size: int | None = None  # set when ``value`` was cut to fit the dead-letter topic

    def truncated(self, limit: int) -> "DeadLetter":
        """The same letter with its value and key cut to ``limit`` bytes, saying how large they were."""
        return replace(self, value=self.value[:limit], key=self.key[:limit] if self.key else self.key,
                       original_size=len(self.value))

    def headers(self) -> list[tuple[str, bytes]]:
        extra = [("cxpulse-original-size", str(self.original_size).encode("ascii"))] if self.original_size else []
        return extra + [
            ("cxpulse-reason", self.reason.encode("utf-8")),
            ("cxpulse-kind", self.kind.encode("ascii")),
            ("cxpulse-source-topic", self.source_topic.encode("utf-8")),
            ("cxpulse-source-partition", str(self.source_partition).encode("ascii")),
            ("cxpulse-source-offset", str(self.source_offset).encode("ascii")),
        ]


class DeadLetterOutbox:
    """Sends dead letters to the dead-letter topic of their source topic (contact-events' when unknown)."""

    def __init__(self, topics: dict[str, TopicT], default_source: str) -> None:
        """``topics``: source topic name -> its dead-letter topic; ``default_source`` names the one used for a
        letter whose source topic has none (a rejection without a source)."""
        self.topics = topics
        self.default_source = default_source

    async def send(self, letter: DeadLetter) -> None:
        """Send ``letter``; if its topic refuses the size, send it cut to :data:`TRUNCATED_BYTES`."""
        topic = self.topics.get(letter.source_topic) or self.topics[self.default_source]
        try:
            await topic.send(key=letter.key, value=letter.value, headers=letter.headers())
        except MessageSizeTooLargeError:
            # the dead-letter topic was made elsewhere with a smaller limit: the record still goes, cut, and
            # says so (its source topic, partition and offset point at the whole original)
            cut = letter.truncated(TRUNCATED_BYTES)
            await topic.send(key=cut.key, value=cut.value, headers=cut.headers())

    async def send_rejection(self, rejection: Rejection) -> None:
        """A lifecycle rejection of the core, as a dead letter of its source event."""
        topic, partition, offset = rejection.source or (self.default_source, -1, -1)
        await self.send(DeadLetter(rejection.raw or b"", rejection.key, rejection.reason, rejection.kind, topic,
                                   partition, offset))
