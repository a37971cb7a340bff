"""What a converter hands to an output: validated events ready to send, rejections, and the counts of a run.

Why validated here and not by the pipeline only: a converter that writes an event the contract refuses has a
bug the pipeline would only see as a dead letter far from its cause; checking each event with the project's
own models (:mod:`cxpulse.models.events`, :mod:`cxpulse.models.agent_events`) turns it into a rejection of the
input line, with the line, where the user looks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from cxpulse.models.agent_events import parse_agent_event
from cxpulse.models.events import InvalidEvent, parse_contact_event, parse_survey_response

LogicalTopic = Literal["contact-events", "survey-responses", "agent-events"]
CONTACT: LogicalTopic = "contact-events"
SURVEY: LogicalTopic = "survey-responses"
AGENT: LogicalTopic = "agent-events"


@dataclass(frozen=True, slots=True)
class Produced:
    """One contract event: its logical topic, its Kafka key (``contact_id`` or ``agent_id``) and its JSON."""

    topic: LogicalTopic
    key: bytes
    value: bytes
    event_id: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """An input unit that maps to no valid event: the unit's bytes, why, and where it was in its source.

    ``topic`` is the logical topic whose dead-letter topic receives it; ``position`` is the byte offset of a
    line (queue_log) or the index of a record (CTR); ``source`` names the input (``file:/var/...``)."""

    topic: LogicalTopic
    raw: bytes
    reason: str
    kind: str
    source: str
    position: int


class Rejection(Exception):
    """Raised by a converter for an input unit it cannot map; ``kind`` is a short word, ``reason`` for people."""

    def __init__(self, kind: str, reason: str, topic: LogicalTopic = CONTACT) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.topic = topic


def validated(event: dict[str, Any]) -> Produced:
    """Check ``event`` with the contract's models and serialise it; raises :class:`Rejection` naming the type.

    The value is serialised from the dict the converter built (not from the model), so what is sent is
    exactly what was validated, field for field."""
    kind = event.get("type")
    try:
        if kind == "agent.state":
            parse_agent_event(event)
            topic, key = AGENT, event["agent_id"]
        elif kind in ("survey.response", "survey.followed_up"):
            parse_survey_response(event)
            topic, key = SURVEY, event["contact_id"]
        else:
            parse_contact_event(event)
            topic, key = CONTACT, event["contact_id"]
    except InvalidEvent as exc:
        raise Rejection(exc.kind, f"the {kind} event it maps to is invalid: {exc.reason}",
                        AGENT if kind == "agent.state" else CONTACT) from None
    return Produced(topic, key.encode("utf-8"), orjson.dumps(event), event["event_id"])


@dataclass
class Tally:
    """Counts of one run, for the summary a command prints: nothing read is left uncounted."""

    read: int = 0
    """input units read (lines, records), blank ones excluded"""
    events: Counter[str] = field(default_factory=Counter)
    """events written, by logical topic"""
    rejected: Counter[str] = field(default_factory=Counter)
    """input units rejected, by kind"""
    ignored: Counter[str] = field(default_factory=Counter)
    """input units that mean nothing for the contract, by what they were (an event name, 'no queue')"""

    def lines(self) -> list[str]:
        """The summary, one fact a line; no content of any input (ids, numbers), only counts and names."""
        out = [f"read {self.read:,}"]
        out += [f"{topic:<20} {count:>10,}" for topic, count in sorted(self.events.items())]
        if self.rejected:
            out.append(f"rejected {sum(self.rejected.values()):,}: "
                       + ", ".join(f"{kind} {count:,}" for kind, count in self.rejected.most_common()))
        if self.ignored:
            out.append(f"ignored {sum(self.ignored.values()):,}: "
                       + ", ".join(f"{what} {count:,}" for what, count in self.ignored.most_common()))
        return out
