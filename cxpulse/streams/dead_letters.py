"""Dead-letter records: the original bytes as the value, the why and the where in headers.

Why headers: the value stays byte-for-byte what the producer wrote, so it can be fixed and re-sent as is;
the reason, kind and source coordinates travel beside it where any Kafka tool shows them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeadLetter:
    value: bytes
    key: bytes | None
    reason: str
    kind: str
    source_topic: str
    source_partition: int
    source_offset: int

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("cxpulse-reason", self.reason.encode("utf-8")),
            ("cxpulse-kind", self.kind.encode("ascii")),
            ("cxpulse-source-topic", self.source_topic.encode("utf-8")),
            ("cxpulse-source-partition", str(self.source_partition).encode("ascii")),
            ("cxpulse-source-offset", str(self.source_offset).encode("ascii")),
        ]
