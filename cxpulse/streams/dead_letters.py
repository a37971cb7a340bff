"""Dead-letter records: the original bytes as the value, the why and the where in headers.

Why headers: the value stays byte-for-byte what the producer wrote, so it can be fixed and re-sent as is;
the reason, kind and source coordinates travel beside it where any Kafka tool shows them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


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
