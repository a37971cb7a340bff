"""What the simulation core hands to its writers: one record per event, in event-time order.

Why a tuple and not a model: at 50k events/s the core must not validate its own output (tests do that);
the writers only need the time (for pacing), the topic, the key and the body.
"""

from __future__ import annotations

from typing import Any, NamedTuple

CONTACT_TOPIC = "contact-events"
SURVEY_TOPIC = "survey-responses"
"""Logical topics of the contract; writers map them to the configured topic names."""


class SimEvent(NamedTuple):
    """One simulated record."""

    at_ms: int
    """event time, epoch milliseconds (equals the body's ``ts``)"""
    topic: str
    """:data:`CONTACT_TOPIC` or :data:`SURVEY_TOPIC`"""
    contact_id: str | None
    """the Kafka key; ``None`` for a record that is not even JSON"""
    event: dict[str, Any] | bytes
    """the event as a dict, or raw bytes for a deliberately unparsable record"""
