"""The ``agent.state`` event of contract version 2 (topic ``agent-events``, key ``agent_id``) as a strict model.

Why a module of its own beside :mod:`cxpulse.models.events`: the sources (``cxpulse source``, ``cxpulse
ingest``) must produce and validate agent events today, while the engine learns to consume them later (issue
"Agents and staffing"); keeping the model apart lets both use it without touching the contact-event models.

Same style and plausibility rules as :mod:`cxpulse.models.events`: strict types, RFC 3339 timestamps with an
offset between 1970 and 9999 UTC, ids of 1..128 characters and names without control characters; a
rejection is an :class:`~cxpulse.models.events.InvalidEvent` with a metric-safe ``kind`` and a readable
``reason`` worded exactly like a contact event's.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from cxpulse.models.events import NO_CONTROL, Id, InvalidEvent, QueueName, Timestamp, to_us
from cxpulse.models.events import _describe as _describe_errors  # one wording for every topic
from cxpulse.models.events import _load_object

AGENT_EVENT_TYPE = "agent.state"
AGENT_TOPIC = "agent-events"
AgentStateName = Literal["logged_out", "available", "on_contact", "wrap_up", "away"]
AGENT_STATES: tuple[str, ...] = ("logged_out", "available", "on_contact", "wrap_up", "away")

AwayReason = Annotated[str, Field(min_length=1, max_length=64, pattern=NO_CONTROL)]
TeamName = Annotated[str, Field(min_length=1, max_length=64, pattern=NO_CONTROL)]
AgentName = Annotated[str, Field(min_length=1, max_length=128, pattern=NO_CONTROL)]


def _reason_only_when_away(model: "AgentState") -> "AgentState":
    """events.md: ``reason`` says why an agent is ``away``, "null otherwise"; a reason on another state would
    split the away-by-reason counts of issue 11 by states they do not describe."""
    if model.reason is not None and model.state != "away":
        raise PydanticCustomError(
            "reason_not_away", f"reason is only allowed when state is 'away' (got state {model.state!r})")
    return model


class AgentState(BaseModel):
    """One agent's state from ``ts`` on, as the routing platform sees it (events.md, "agent-events")."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    event_id: Id
    ts: Timestamp
    type: Literal["agent.state"]
    agent_id: Id
    state: AgentStateName
    reason: AwayReason | None = None
    queues: list[QueueName] = Field(default_factory=list)
    team: TeamName | None = None
    agent_name: AgentName | None = None

    _check = model_validator(mode="after")(_reason_only_when_away)

    @property
    def ts_us(self) -> int:
        return to_us(self.ts)


_agent_adapter: TypeAdapter[AgentState] = TypeAdapter(AgentState)


def parse_agent_event(raw: bytes | str | dict[str, Any]) -> AgentState:
    """Validate one record of topic ``agent-events``; raises :class:`~cxpulse.models.events.InvalidEvent`."""
    obj = raw if isinstance(raw, dict) else _load_object(raw)
    if obj.get("type") != AGENT_EVENT_TYPE:
        if "type" not in obj:
            raise InvalidEvent("missing_field", "type: field required")
        raise InvalidEvent("unknown_type", f"type: unknown event type {obj.get('type')!r} on the agent topic")
    try:
        return _agent_adapter.validate_python(obj)
    except ValidationError as exc:
        first = exc.errors()[0]  # only its type and message are read (no need to leave out the url)
        if first["type"] == "reason_not_away":
            raise InvalidEvent("invalid_value", f"reason: {first['msg']}") from None
        raise _describe_errors(exc) from None


def agent_json_schema() -> dict[str, Any]:
    """JSON Schema of topic ``agent-events``, generated from the model."""
    return _agent_adapter.json_schema()
