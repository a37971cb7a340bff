"""``--invalid-rate`` mixes in every kind of bad event the contract names, each one findable and rejectable."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Any

import orjson
import pytest

from cxpulse.models.events import InvalidEvent, parse_contact_event, parse_survey_response
from cxpulse.simulator.centre import load_centre
from cxpulse.simulator.engine import Simulation
from cxpulse.simulator.events import SURVEY_TOPIC, SimEvent
from cxpulse.simulator.invalid import INVALID_KINDS, LIFECYCLE_KINDS, MARKER, NOT_JSON, SCHEMA_KINDS
from cxpulse.simulator.writers import encode

START_MS = int(datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc).timestamp() * 1000)
HOUR_MS = 3600 * 1000
_KNOWN_FIELDS = {
    "event_id", "type", "ts", "contact_id", "customer_id", "channel", "queue",
    "agent_id", "talk_seconds", "hold_seconds", "wrap_seconds", "resolved",
}


def _run(invalid_rate: float) -> list[SimEvent]:
    sim = Simulation(load_centre(), start_ms=START_MS, seed=21, invalid_rate=invalid_rate)
    return list(sim.events(START_MS + 2 * HOUR_MS))


def _kind(record: SimEvent) -> str | None:
    """The marker of a bad record (``not_json`` for bytes), ``None`` for a good one."""
    if isinstance(record.event, bytes):
        return NOT_JSON
    return record.event.get(MARKER)


@pytest.fixture(scope="module")
def mixed() -> list[SimEvent]:
    return _run(0.05)


def test_every_kind_appears(mixed: list[SimEvent]) -> None:
    kinds = Counter(_kind(r) for r in mixed)
    bad = sum(count for kind, count in kinds.items() if kind is not None)
    assert 0.03 < bad / len(mixed) < 0.07
    for kind in INVALID_KINDS:
        assert kinds[kind] >= 5, f"no {kind} events: {kinds}"


def test_schema_kinds_are_rejected_naming_the_field(mixed: list[SimEvent]) -> None:
    seen: Counter[str] = Counter()
    for record in mixed:
        kind = _kind(record)
        if kind not in SCHEMA_KINDS:
            continue
        parse = parse_survey_response if record.topic == SURVEY_TOPIC else parse_contact_event
        raw = encode(record)  # what goes to Kafka / the file
        with pytest.raises(InvalidEvent) as caught:
            parse(raw)
        assert caught.value.kind == kind, (raw, caught.value.reason)
        if kind != NOT_JSON:
            field = caught.value.reason.split(":", 1)[0]
            body: dict[str, Any] = orjson.loads(raw)
            if field == "event":  # the model-level rule "at least one of nps, csat"
                assert "nps" in caught.value.reason and "csat" in caught.value.reason
            elif kind == "missing_field":
                assert field not in body and field in _KNOWN_FIELDS, caught.value.reason
            else:
                assert field in body, caught.value.reason
        seen[kind] += 1
    assert set(seen) == set(SCHEMA_KINDS)


def test_lifecycle_kinds_are_schema_valid_but_impossible(mixed: list[SimEvent]) -> None:
    queued: set[str] = set()
    answered: set[str] = set()
    count = 0
    for record in mixed:
        kind = _kind(record)
        if kind is None and isinstance(record.event, dict):
            if record.event["type"] == "contact.queued":
                queued.add(record.event["contact_id"])
            elif record.event["type"] == "contact.answered":
                answered.add(record.event["contact_id"])
        if kind not in LIFECYCLE_KINDS:
            continue
        event = parse_contact_event(encode(record))  # valid on its own
        if event.type in ("contact.answered", "contact.abandoned"):
            assert kind == "no_open_visit" and event.contact_id not in queued
        else:
            assert kind == "never_answered" and event.type == "contact.ended"
            assert event.contact_id not in answered
        count += 1
    assert count >= 10


def test_good_events_are_the_same_with_or_without_bad_ones(mixed: list[SimEvent]) -> None:
    clean = _run(0.0)
    assert [encode(r) for r in mixed if _kind(r) is None] == [encode(r) for r in clean]


def test_bad_events_have_their_own_ids(mixed: list[SimEvent]) -> None:
    good_ids = {r.event["event_id"] for r in mixed if _kind(r) is None}  # type: ignore[index]
    bad_ids = [r.event.get("event_id") for r in mixed if isinstance(r.event, dict) and _kind(r)]
    assert not good_ids & {i for i in bad_ids if i}
