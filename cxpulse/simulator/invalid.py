"""Bad events, one of every kind the contract (events.md, "Invalid events") names, to exercise the DLQ.

Why they are marked: schema errors are found by parsing, but a lifecycle impossibility (an ``answered`` for
a contact that never queued) is a perfectly valid record on its own; only the pipeline's per-contact state
can tell. Each bad JSON event therefore carries ``"_sim_invalid": "<kind>"`` (unknown fields are ignored by
the contract), so a test knows exactly which lines must end up in the DLQ and why. Bad events use their own
ids and "ghost" contacts where a real contact's lifecycle would otherwise be disturbed, and they are drawn
from their own random stream: the valid events of a seed are the same with or without ``--invalid-rate``.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

from cxpulse.simulator.events import CONTACT_TOPIC, SURVEY_TOPIC, SimEvent

MARKER = "_sim_invalid"

NOT_JSON = "not_json"
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
OUT_OF_RANGE = "out_of_range"
UNKNOWN_TYPE = "unknown_type"
TIMESTAMP_WITHOUT_OFFSET = "timestamp_without_offset"
NEGATIVE_DURATION = "negative_duration"
NO_OPEN_VISIT = "no_open_visit"
NEVER_ANSWERED = "never_answered"

SCHEMA_KINDS: tuple[str, ...] = (
    NOT_JSON,
    MISSING_FIELD,
    WRONG_TYPE,
    OUT_OF_RANGE,
    UNKNOWN_TYPE,
    TIMESTAMP_WITHOUT_OFFSET,
    NEGATIVE_DURATION,
)
"""Kinds a single record's parser rejects; the marker equals :attr:`InvalidEvent.kind` of the rejection."""

LIFECYCLE_KINDS: tuple[str, ...] = (NO_OPEN_VISIT, NEVER_ANSWERED)
"""Schema-valid records that only a contact's history shows to be impossible."""

INVALID_KINDS: tuple[str, ...] = SCHEMA_KINDS + LIFECYCLE_KINDS

# "type" is left out on purpose: without it a record is also "missing_field", but of no known topic
_COMMON_REQUIRED = ("event_id", "ts", "contact_id", "customer_id", "channel", "queue")
_SURVEY_REQUIRED = ("event_id", "ts", "contact_id", "customer_id")
_REQUIRED_BY_TYPE = {
    "contact.answered": ("agent_id",),
    "contact.ended": ("agent_id", "talk_seconds", "hold_seconds", "wrap_seconds", "resolved"),
}
_UNKNOWN_TYPES = ("contact.transferred", "contact.parked", "agent.login", "contact.callback_requested")
_GARBAGE = (
    b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    b"contact.queued;2026-11-22 09:15:02;billing;voice",
    b"null-terminated\\x00 record from a legacy ACD",
)


class InvalidEventMaker:
    """Builds the next bad event next to a valid one; kinds rotate so every kind shows up early."""

    def __init__(self, rng: random.Random, run_tag: str, fallback_queue: tuple[str, str]) -> None:
        self._rng = rng
        self._tag = run_tag
        self._count = 0
        self._fallback = {"channel": fallback_queue[1], "queue": fallback_queue[0]}

    def _new_id(self) -> str:
        return f"bad-{self._tag}-{self._count:x}"

    def make(self, template: SimEvent) -> SimEvent:
        """A bad event at the template's time; the template (a valid event just emitted) is not changed."""
        kind = INVALID_KINDS[self._count % len(INVALID_KINDS)]
        event_id = self._new_id()
        self._count += 1
        base = template.event
        assert isinstance(base, dict)
        body: dict[str, Any] = dict(base)
        body["event_id"] = event_id
        topic = template.topic
        contact_id: str | None = template.contact_id
        pick = self._rng.choice

        if kind == NOT_JSON:
            raw = pick((orjson.dumps(body)[: max(10, len(orjson.dumps(body)) // 2)], *_GARBAGE))
            return SimEvent(template.at_ms, CONTACT_TOPIC, None, raw)
        if kind == MISSING_FIELD:
            if topic == SURVEY_TOPIC and self._rng.random() < 0.5:
                body["nps"] = None  # neither score: "a survey needs at least one of nps, csat"
                body["csat"] = None
            else:
                if topic == SURVEY_TOPIC:
                    required: tuple[str, ...] = _SURVEY_REQUIRED
                else:
                    required = _COMMON_REQUIRED + _REQUIRED_BY_TYPE.get(body["type"], ())
                del body[pick(required)]
        elif kind == WRONG_TYPE:
            body.update(pick(self._wrong_types(body)))
        elif kind == OUT_OF_RANGE:
            if topic == SURVEY_TOPIC or self._rng.random() < 0.5:
                body = self._survey_like(body)
                topic = SURVEY_TOPIC
                body.update(pick(({"nps": 11}, {"csat": 0}, {"nps": -1}, {"csat": 6})))
            else:
                body["queue"] = "q" * 65
        elif kind == UNKNOWN_TYPE:
            body["type"] = pick(_UNKNOWN_TYPES)
            topic = CONTACT_TOPIC
        elif kind == TIMESTAMP_WITHOUT_OFFSET:
            body["ts"] = base["ts"].removesuffix("Z")
        elif kind == NEGATIVE_DURATION:
            body = self._ended_like(body)
            topic = CONTACT_TOPIC
            body[pick(("talk_seconds", "hold_seconds", "wrap_seconds"))] = -round(self._rng.uniform(1, 300), 3)
        else:  # lifecycle: a contact the pipeline has never seen queue (or be answered)
            ghost = f"ghost-{self._tag}-{self._count:x}"
            body = self._contact_fields(body) | {"contact_id": ghost, "customer_id": f"cust-ghost-{self._count:x}"}
            topic = CONTACT_TOPIC
            contact_id = ghost
            if kind == NO_OPEN_VISIT:
                body["type"] = pick(("contact.answered", "contact.abandoned"))
                if body["type"] == "contact.answered":
                    body |= {"agent_id": "ag-ghost", "team": None}
            else:
                body = self._ended_like(body)
        body[MARKER] = kind
        return SimEvent(template.at_ms, topic, contact_id, body)

    def _contact_fields(self, body: dict[str, Any]) -> dict[str, Any]:
        """The envelope of a contact event (a survey has no channel/queue: borrow the fallback queue)."""
        keys = ("event_id", "type", "ts", "contact_id", "customer_id")
        fields = {key: body[key] for key in keys if key in body}
        fields["channel"] = body.get("channel", self._fallback["channel"])
        fields["queue"] = body.get("queue", self._fallback["queue"])
        return fields

    def _ended_like(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("type") == "contact.ended" and "talk_seconds" in body:
            return body
        fields = self._contact_fields(body)
        fields.update(
            type="contact.ended", agent_id="ag-ghost", talk_seconds=123.4, hold_seconds=0.0, wrap_seconds=30.0,
            resolved=True, transferred=False, disposition="resolved",
        )
        return fields

    @staticmethod
    def _survey_like(body: dict[str, Any]) -> dict[str, Any]:
        if body.get("type") == "survey.response":
            return body
        keys = ("event_id", "ts", "contact_id", "customer_id")
        return {"event_id": body["event_id"], "type": "survey.response"} | {k: body[k] for k in keys[1:]} | {
            "nps": 8, "csat": 4, "comment": None,
        }

    @staticmethod
    def _wrong_types(body: dict[str, Any]) -> list[dict[str, Any]]:
        kind = body.get("type")
        if kind == "survey.response":
            return [{"nps": "9"}, {"csat": 4.5}, {"comment": 42}, {"contact_id": 1234}]
        options: list[dict[str, Any]] = [{"queue": 42}, {"customer_id": ["cust"]}]
        if kind == "contact.queued":
            options.append({"priority": "high"})
        if kind in ("contact.answered", "contact.ended"):
            options.append({"agent_id": 1017})
        if kind == "contact.ended":
            options += [{"talk_seconds": "180.5"}, {"resolved": "yes"}, {"transferred": 0}]
        return options
