"""What the simulation core hands to its writers: one record per event, in event-time order.

Why a tuple and not a model: at 50k events/s the core must not validate its own output (tests do that);
the writers only need the time (for pacing), the topic, the key and the body.
"""

from __future__ import annotations

from typing import Any, NamedTuple

CONTACT_TOPIC = "contact-events"
SURVEY_TOPIC = "survey-responses"
AGENT_TOPIC = "agent-events"
"""Logical topics of the contract; writers map them to the configured topic names (agent events: only with
``--agents``)."""


class SimEvent(NamedTuple):
    """One simulated record."""

    at_ms: int
    """event time, epoch milliseconds (equals the body's ``ts``)"""
    topic: str
    """:data:`CONTACT_TOPIC`, :data:`SURVEY_TOPIC` or :data:`AGENT_TOPIC`"""
    contact_id: str | None
    """the Kafka key (the agent id for an agent event); ``None`` for a record that is not even JSON"""
    event: dict[str, Any] | bytes
    """the event as a dict, or raw bytes for a deliberately unparsable record"""
