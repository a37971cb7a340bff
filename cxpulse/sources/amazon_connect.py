"""Amazon Connect contact trace records (CTR) to contract events, one record at a time.

A CTR describes one contact once it is over: when it was initiated, when it entered and left its queue
(``Queue.EnqueueTimestamp`` / ``DequeueTimestamp``), when an agent took it (``Agent.ConnectedToAgentTimestamp``),
how long the agent talked, held it and wrapped up (``Agent.AgentInteractionDuration``,
``CustomerHoldDuration``, ``AfterContactWorkDuration``), whether it was transferred
(``TransferCompletedTimestamp``). The mapping (``docs/sources.md`` has it as a table):

* a record with a ``Queue`` -> ``contact.queued`` at the enqueue time;
* with an agent connected -> ``contact.answered`` then ``contact.ended`` (at ``AfterContactWorkEndTimestamp``,
  else ``DisconnectTimestamp``), ``transferred`` when the transfer completed;
* without an agent -> ``contact.abandoned`` at the dequeue time (else the disconnect time);
* without a queue (self-service, outbound) -> nothing: the contact was never offered to a queue (counted).

Why ``contact_id`` is ``InitialContactId`` (else ``ContactId``): Connect gives a transferred contact a new
ContactId; the contract continues the same contact with a new ``contact.queued`` after an ``ended`` with
``transferred: true``, which is exactly what the next record of the chain then produces.

Input: JSON Lines (what a Kinesis Firehose delivery writes when it adds newlines), records concatenated
without separators (its default), pretty-printed records, or one JSON array of records.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from cxpulse.models.events import parse_rfc3339
from cxpulse.sources.records import Produced, Rejection, validated

CHANNELS = {"VOICE": "voice", "CHAT": "chat", "EMAIL": "email"}
"""Connect's channels with a contract channel (TASK has none: such records are rejected)."""


def _ts(record: dict[str, Any], *path: str) -> str | None:
    """A timestamp at ``path`` (None when absent), checked to be RFC 3339 with an offset."""
    value: Any = record
    for name in path:
        value = value.get(name) if isinstance(value, dict) else None
    if value is None:
        return None
    try:
        parse_rfc3339(value)
    except Exception:  # noqa: BLE001 - pydantic's custom error; its text names the value
        raise Rejection("invalid_timestamp", f"{'.'.join(path)} is not an RFC 3339 time with offset: {str(value)[:40]!r}") from None
    return str(value)


def _seconds(agent: dict[str, Any], name: str) -> float:
    value = agent.get(name)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Rejection("wrong_type", f"Agent.{name} is not a number of seconds: {str(value)[:20]!r}")
    return float(value)


def _team(agent: dict[str, Any]) -> str | None:
    """The agent's deepest hierarchy group (Level5 .. Level1): the smallest unit, which a centre calls a team."""
    groups = agent.get("HierarchyGroups")
    if not isinstance(groups, dict):
        return None
    for level in ("Level5", "Level4", "Level3", "Level2", "Level1"):
        group = groups.get(level)
        if isinstance(group, dict) and isinstance(group.get("GroupName"), str) and group["GroupName"]:
            return str(group["GroupName"])
    return None


def _agent_id(agent: dict[str, Any]) -> str | None:
    username = agent.get("Username")
    if isinstance(username, str) and username:
        return username
    arn = agent.get("ARN")
    if isinstance(arn, str) and "/" in arn:
        return arn.rsplit("/", 1)[1]
    return None


def convert_record(record: Any) -> tuple[list[Produced], str | None]:
    """(events, what was ignored or None) of one CTR; raises :class:`Rejection` naming the field at fault."""
    if not isinstance(record, dict):
        raise Rejection("not_json", f"a contact trace record is a JSON object, not {type(record).__name__}")
    contact = record.get("ContactId")
    if not isinstance(contact, str) or not contact:
        raise Rejection("missing_field", "ContactId: missing or not a string")
    contact_id = record.get("InitialContactId") or contact
    if not isinstance(contact_id, str):
        raise Rejection("wrong_type", "InitialContactId: not a string")
    queue = record.get("Queue")
    if not isinstance(queue, dict) or not queue.get("Name"):
        return [], "no queue"
    raw_channel = record.get("Channel")
    channel = CHANNELS.get(str(raw_channel).upper())
    if channel is None:
        raise Rejection("unsupported_channel", f"Channel {str(raw_channel)[:20]!r} has no contract channel "
                                               f"(one of {', '.join(CHANNELS)})")
    endpoint = record.get("CustomerEndpoint")
    address = endpoint.get("Address") if isinstance(endpoint, dict) else None
    customer = address if isinstance(address, str) and address else f"connect-contact-{contact_id}"
    base = {"contact_id": contact_id, "customer_id": customer, "channel": channel, "queue": queue["Name"]}
    enqueued = _ts(record, "Queue", "EnqueueTimestamp")
    if enqueued is None:
        raise Rejection("missing_field", "Queue.EnqueueTimestamp: missing for a record with a queue")
    events: list[dict[str, Any]] = [
        {"event_id": f"connect-{contact}-queued", "type": "contact.queued", "ts": enqueued, **base, "reason": None}]
    agent = record.get("Agent")
    connected = _ts(record, "Agent", "ConnectedToAgentTimestamp") if isinstance(agent, dict) else None
    if isinstance(agent, dict) and connected is not None:
        agent_id = _agent_id(agent)
        if agent_id is None:
            raise Rejection("missing_field", "Agent.Username: missing (and no Agent.ARN) for a contact an agent took")
        ended = _ts(record, "Agent", "AfterContactWorkEndTimestamp") or _ts(record, "DisconnectTimestamp")
        if ended is None:
            raise Rejection("missing_field", "DisconnectTimestamp: missing for a contact an agent took")
        events.append({"event_id": f"connect-{contact}-answered", "type": "contact.answered", "ts": connected,
                       **base, "agent_id": agent_id, "team": _team(agent)})
        events.append({"event_id": f"connect-{contact}-ended", "type": "contact.ended", "ts": ended, **base,
                       "agent_id": agent_id, "talk_seconds": _seconds(agent, "AgentInteractionDuration"),
                       "hold_seconds": _seconds(agent, "CustomerHoldDuration"),
                       "wrap_seconds": _seconds(agent, "AfterContactWorkDuration"), "resolved": True,
                       "transferred": record.get("TransferCompletedTimestamp") is not None, "disposition": None})
    else:
        left = _ts(record, "Queue", "DequeueTimestamp") or _ts(record, "DisconnectTimestamp")
        if left is None:
            raise Rejection("missing_field", "Queue.DequeueTimestamp and DisconnectTimestamp: both missing")
        events.append({"event_id": f"connect-{contact}-abandoned", "type": "contact.abandoned", "ts": left, **base})
    return [validated(event) for event in events], None


def iter_json_values(chunks: Iterable[str]) -> Iterator[tuple[str, Any]]:
    """``(text, value)`` of each top-level JSON value in a stream of text chunks; a value that does not parse
    comes as ``(text, JsonError)``. Elements of a top-level array come one by one.

    Values are split by bracket depth (outside strings), so concatenated records (``}{``), one record a line
    and pretty-printed records are all read one record at a time, and a broken record costs only itself."""
    buffer: list[str] = []
    depth = 0
    in_string = escaped = False
    in_array = False  # inside a top-level array: its elements are the values
    for chunk in chunks:
        for char in chunk:
            if depth == 0 and not buffer:
                if char.isspace() or (in_array and char == ","):
                    continue
                if char == "[" and not in_array:
                    in_array = True
                    continue
                if char == "]" and in_array:
                    in_array = False
                    continue
            buffer.append(char)
            if in_string:
                if escaped:
                    escaped = False
                elif char == "\\":
                    escaped = True
                elif char == '"':
                    in_string = False
                continue
            if char == '"':
                in_string = True
            elif char in "{[":
                depth += 1
            elif char in "}]":
                depth -= 1
            if depth <= 0 and (char in "}]" or char == "\n"):
                text = "".join(buffer).strip()
                buffer.clear()
                depth = 0
                if text:
                    yield text, _decode(text)
    text = "".join(buffer).strip()
    if text:
        yield text, _decode(text)


class JsonError:
    """A value that did not parse: the reason, for the rejection."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _decode(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return JsonError(f"not valid JSON: {exc}")
