"""The event contract (events.md): every valid example passes, every kind of invalid event is refused with a
reason naming the field and a ``kind`` from a small fixed set (it is a metric label)."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from cxpulse.models.events import (
    ContactAbandoned,
    ContactAnswered,
    ContactEnded,
    ContactQueued,
    InvalidEvent,
    SurveyResponse,
    parse_any_event,
    parse_contact_event,
    parse_survey_response,
    to_us,
    topic_of,
)

KINDS = {
    "not_json", "missing_field", "unknown_type", "invalid_value", "timestamp_without_offset", "invalid_timestamp",
    "out_of_range", "negative_duration", "wrong_type",
}
COMMON = {"event_id": "ev-1", "ts": "2026-11-22T09:15:02.250Z", "contact_id": "c-1", "customer_id": "cust-1"}
ROUTED = {**COMMON, "channel": "voice", "queue": "billing"}
VALID: dict[str, dict[str, Any]] = {
    "contact.queued": {**ROUTED, "type": "contact.queued", "reason": "billing", "priority": 2},
    "contact.answered": {**ROUTED, "type": "contact.answered", "agent_id": "ag-7", "team": None},
    "contact.abandoned": {**ROUTED, "type": "contact.abandoned"},
    "contact.ended": {
        **ROUTED, "type": "contact.ended", "agent_id": "ag-7", "talk_seconds": 120.5, "hold_seconds": 0,
        "wrap_seconds": 30, "resolved": True, "transferred": False, "disposition": None,
    },
    "survey.response": {**COMMON, "type": "survey.response", "nps": 9, "csat": 4, "comment": "quick and kind"},
}
MODELS = {
    "contact.queued": ContactQueued, "contact.answered": ContactAnswered, "contact.abandoned": ContactAbandoned,
    "contact.ended": ContactEnded, "survey.response": SurveyResponse,
}


def refused(raw: Any, parser: Any = parse_any_event) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        parser(raw)
    exc = info.value
    assert exc.kind in KINDS, exc.kind
    assert exc.reason and str(exc) == exc.reason
    return exc


# -- valid ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_examples_pass_as_dict_bytes_and_text(kind: str) -> None:
    for raw in (VALID[kind], orjson.dumps(VALID[kind]), orjson.dumps(VALID[kind]).decode()):
        event = parse_any_event(raw)
        assert isinstance(event, MODELS[kind])
        assert event.type == kind and event.event_id == "ev-1"
        assert to_us(event.ts) == 1795338902250000
        assert topic_of(event) == ("survey-responses" if kind == "survey.response" else "contact-events")
    parser = parse_survey_response if kind == "survey.response" else parse_contact_event
    direct = parser(VALID[kind])
    assert isinstance(direct, MODELS[kind])
    assert direct == parse_any_event(VALID[kind])  # the topic's own parser reads the same fields


def test_optional_fields_and_defaults() -> None:
    queued = {k: v for k, v in VALID["contact.queued"].items() if k not in ("reason", "priority")}
    event = parse_contact_event(queued)
    assert event.reason is None and event.priority is None
    ended = {k: v for k, v in VALID["contact.ended"].items() if k not in ("transferred", "disposition")}
    event = parse_contact_event(ended)
    assert event.transferred is False and event.disposition is None
    for scores in ({"nps": 0}, {"csat": 1}, {"nps": 10, "csat": None}, {"nps": None, "csat": 5}):
        survey = {**COMMON, "type": "survey.response", **scores}
        parsed = parse_survey_response(survey)
        assert (parsed.nps, parsed.csat) == (scores.get("nps"), scores.get("csat"))
    for channel in ("voice", "chat", "email", "sms", "social"):
        assert parse_contact_event({**VALID["contact.abandoned"], "channel": channel}).channel == channel


def test_unknown_extra_fields_are_ignored() -> None:
    for kind, event in VALID.items():
        parsed = parse_any_event({**event, "x_vendor": {"nested": [1, 2]}, "schema_version": 2})
        assert not hasattr(parsed, "x_vendor") and "x_vendor" not in parsed.model_dump()


@pytest.mark.parametrize(
    ("ts", "us"),
    [
        ("2026-11-22T09:15:02.250Z", 1795338902250000),
        ("2026-11-22T12:15:02.250+03:00", 1795338902250000),
        ("2026-11-22T04:15:02.250-05:00", 1795338902250000),
        ("2026-11-22t09:15:02.250z", 1795338902250000),
        ("2026-11-22T09:15:02Z", 1795338902000000),
        ("2026-11-22T09:15:02.250123456Z", 1795338902250123),  # nanoseconds: truncated to microseconds
        ("2026-11-22T09:15:02.25+00:00", 1795338902250000),
    ],
)
def test_timestamps_with_any_explicit_offset(ts: str, us: int) -> None:
    assert to_us(parse_contact_event({**VALID["contact.abandoned"], "ts": ts}).ts) == us


# -- invalid ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw", [b"{oops", b"", b"[1, 2]", b'"a string"', b"42", "\ud800".encode("utf-8", "surrogatepass")])
def test_not_json_or_not_an_object(raw: bytes) -> None:
    assert refused(raw).kind == "not_json"


def _required(kind: str) -> list[str]:
    optional = {"reason", "priority", "team", "transferred", "disposition", "nps", "csat", "comment"}
    return [field for field in VALID[kind] if field not in optional]


@pytest.mark.parametrize(("kind", "field"), [(k, f) for k in sorted(VALID) for f in _required(k)])
def test_missing_required_field(kind: str, field: str) -> None:
    event = {k: v for k, v in VALID[kind].items() if k != field}
    exc = refused(event)
    assert exc.kind == "missing_field"
    assert field in exc.reason
    if field != "type":
        assert "field required" in exc.reason


def test_survey_needs_nps_or_csat() -> None:
    for scores in ({}, {"nps": None, "csat": None}):
        event = {**COMMON, "type": "survey.response", "comment": "no score", **scores}
        exc = refused(event)
        assert exc.kind == "missing_field"
        assert "nps" in exc.reason and "csat" in exc.reason


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("contact.ended", "talk_seconds", "20"),  # a number that only looks like one
        ("contact.ended", "resolved", 1),
        ("contact.ended", "resolved", "true"),
        ("contact.ended", "transferred", "false"),
        ("contact.queued", "priority", "1"),
        ("contact.queued", "priority", 1.5),
        ("contact.queued", "reason", 42),
        ("contact.queued", "event_id", 17),
        ("contact.answered", "agent_id", None),
        ("contact.answered", "contact_id", ["c-1"]),
        ("survey.response", "nps", "9"),
        ("survey.response", "nps", 9.5),
        ("survey.response", "nps", True),
        ("survey.response", "csat", 4.0),
        ("survey.response", "comment", 3),
    ],
)
def test_wrong_type(kind: str, field: str, value: Any) -> None:
    exc = refused({**VALID[kind], field: value})
    assert exc.kind == "wrong_type"
    assert exc.reason.startswith(field) or f"{field}:" in exc.reason


@pytest.mark.parametrize(
    ("kind", "field", "value", "expected_kind"),
    [
        ("contact.queued", "channel", "fax", "invalid_value"),
        ("contact.queued", "event_id", "", "out_of_range"),
        ("contact.queued", "event_id", "x" * 129, "out_of_range"),
        ("contact.queued", "contact_id", "", "out_of_range"),
        ("contact.queued", "customer_id", "x" * 129, "out_of_range"),
        ("contact.queued", "queue", "q" * 65, "out_of_range"),
        ("contact.queued", "queue", "", "out_of_range"),
        ("survey.response", "nps", 11, "out_of_range"),
        ("survey.response", "nps", -1, "out_of_range"),
        ("survey.response", "csat", 0, "out_of_range"),
        ("survey.response", "csat", 6, "out_of_range"),
        ("contact.ended", "talk_seconds", -1, "negative_duration"),
        ("contact.ended", "hold_seconds", -0.5, "negative_duration"),
        ("contact.ended", "wrap_seconds", -3, "negative_duration"),
        ("contact.ended", "talk_seconds", math.inf, "out_of_range"),
        ("contact.ended", "talk_seconds", math.nan, "out_of_range"),
    ],
)
def test_value_out_of_range(kind: str, field: str, value: Any, expected_kind: str) -> None:
    exc = refused({**VALID[kind], field: value})
    assert exc.kind == expected_kind
    assert f"{field}:" in exc.reason


def test_limits_themselves_are_valid() -> None:
    """The bounds are inclusive: 128-character ids, 64-character queues and zero durations are accepted as given."""
    queued = parse_contact_event({**VALID["contact.queued"], "event_id": "x" * 128, "queue": "q" * 64})
    assert (queued.type, queued.event_id, queued.queue) == ("contact.queued", "x" * 128, "q" * 64)
    ended = parse_contact_event({**VALID["contact.ended"], "talk_seconds": 0, "hold_seconds": 0.0, "wrap_seconds": 0})
    assert (ended.type, ended.talk_seconds, ended.hold_seconds, ended.wrap_seconds) == ("contact.ended", 0.0, 0.0, 0.0)


@pytest.mark.parametrize("type_", ["contact.transferred", "Contact.Queued", "", "survey", 7])
def test_unknown_type(type_: Any) -> None:
    exc = refused({**VALID["contact.queued"], "type": type_})
    assert exc.kind in ("unknown_type", "wrong_type") if not isinstance(type_, str) else exc.kind == "unknown_type"
    assert "type" in exc.reason


def test_contact_type_on_the_survey_topic_and_back() -> None:
    exc = refused(VALID["contact.queued"], parse_survey_response)
    assert exc.kind == "unknown_type" and "contact.queued" in exc.reason
    exc = refused(VALID["survey.response"], parse_contact_event)
    assert exc.kind == "unknown_type" and "type" in exc.reason


@pytest.mark.parametrize(
    ("ts", "expected_kind"),
    [
        ("2026-11-22T09:15:02.250", "timestamp_without_offset"),
        ("2026-11-22T09:15:02", "timestamp_without_offset"),
        ("2026-11-22", "invalid_timestamp"),
        ("yesterday", "invalid_timestamp"),
        ("2026-13-01T00:00:00Z", "invalid_timestamp"),
        ("2026-02-30T00:00:00Z", "invalid_timestamp"),
        ("2026-11-22T09:15:02+0300", "invalid_timestamp"),
        (1795338902, "invalid_timestamp"),
        (None, "invalid_timestamp"),
    ],
)
def test_bad_timestamps(ts: Any, expected_kind: str) -> None:
    for kind in ("contact.answered", "survey.response"):
        exc = refused({**VALID[kind], "ts": ts})
        assert exc.kind == expected_kind
        assert exc.reason.startswith("ts:")


def test_reason_lists_every_bad_field_and_kind_is_the_first() -> None:
    exc = refused({**VALID["contact.ended"], "talk_seconds": -1, "resolved": "yes", "channel": "fax"})
    for field in ("talk_seconds", "resolved", "channel"):
        assert f"{field}:" in exc.reason
    assert exc.kind in KINDS
