"""What the processors hand out: events refused by the lifecycle rules (for the dead-letter topic) and the
moments a service level or a feedback target was breached (for their topics).

Why a module of its own: these are plain frozen records that leave the core, are pickled in checkpoints and
compared in tests, while :mod:`cxpulse.core.processors`, which makes them, is compiled with mypyc (``setup.py``).
A frozen dataclass compiled by mypyc cannot be read back from a pickle (its ``__setattr__`` refuses the fields),
and nothing is gained by compiling a record built a few times a second; here they stay ordinary Python classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event refused by the lifecycle rules, ready for the dead-letter topic."""

    kind: str  # metric-safe: "lifecycle"
    reason: str
    event_type: str
    event_id: str
    raw: bytes | None
    source: tuple[str, int, int] | None
    key: bytes | None = None  # the original Kafka key


@dataclass(frozen=True, slots=True)
class Breach:
    """A queue visit whose wait exceeded its threshold: what goes to topic ``sla-breaches``."""

    queue: str
    channel: str
    contact_id: str
    queued_event_id: str
    queued_ts_us: int
    threshold_seconds: float
    breached_at_us: int  # queued + T: the moment of the crossing

    def to_dict(self) -> dict[str, Any]:
        from cxpulse.models.events import format_ts

        return {
            "queue": self.queue,
            "channel": self.channel,
            "contact_id": self.contact_id,
            "visit_id": self.queued_event_id,
            "queued_ts": format_ts(self.queued_ts_us),
            "threshold_seconds": self.threshold_seconds,
            "breached_at": format_ts(self.breached_at_us),
        }


@dataclass(frozen=True, slots=True)
class FeedbackBreach:
    """A detractor feedback not followed up by survey ts + target (kpis.md "Closed-loop feedback (v2)")."""

    queue: str
    channel: str
    contact_id: str
    survey_event_id: str
    survey_ts_us: int
    target_seconds: int
    breached_at_us: int  # survey ts + target: the moment of the crossing

    def to_dict(self) -> dict[str, Any]:
        from cxpulse.models.events import format_ts

        return {
            "kind": "feedback",
            "queue": self.queue,
            "channel": self.channel,
            "contact_id": self.contact_id,
            "survey_event_id": self.survey_event_id,
            "survey_ts": format_ts(self.survey_ts_us),
            "target_seconds": self.target_seconds,
            "breached_at": format_ts(self.breached_at_us),
        }


__all__ = ["Breach", "FeedbackBreach", "Rejection"]
