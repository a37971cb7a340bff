"""The simulator writes a believable centre, and only contract-valid events (unless asked for bad ones).

One six-hour run of the default centre (about 25k events, well under a second) is shared by the tests; each
checks one promise the rest of cxpulse relies on.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from cxpulse.models.events import (
    ContactAbandoned,
    ContactAnswered,
    ContactEnded,
    ContactQueued,
    SurveyResponse,
    format_ts,
    parse_contact_event,
    parse_survey_response,
    to_us,
)
from cxpulse.simulator.centre import load_centre
from cxpulse.simulator.clock import TimestampFormatter
from cxpulse.simulator.engine import Simulation
from cxpulse.simulator.events import CONTACT_TOPIC, SURVEY_TOPIC, SimEvent
from cxpulse.simulator.writers import Pacer, encode, wire_chunks, write_jsonl

START_MS = int(datetime(2026, 11, 23, 6, 0, tzinfo=timezone.utc).timestamp() * 1000)  # a Monday, 06:00 UTC
SIX_HOURS_MS = 6 * 3600 * 1000


def _run(seed: int = 11, invalid_rate: float = 0.0, hours: float = 6) -> list[SimEvent]:
    sim = Simulation(load_centre(), start_ms=START_MS, seed=seed, invalid_rate=invalid_rate)
    return list(sim.events(START_MS + int(hours * 3600 * 1000)))


@pytest.fixture(scope="module")
def records() -> list[SimEvent]:
    return _run()


@pytest.fixture(scope="module")
def parsed(records: list[SimEvent]) -> list[Any]:
    out = []
    for record in records:
        parse = parse_survey_response if record.topic == SURVEY_TOPIC else parse_contact_event
        out.append(parse(record.event))  # raises InvalidEvent on any contract breach
    return out


def test_every_event_is_valid_and_in_event_time_order(records: list[SimEvent], parsed: list[Any]) -> None:
    assert len(records) > 10_000
    previous = 0
    for record, event in zip(records, parsed):
        assert isinstance(record.event, dict)
        assert (record.topic == SURVEY_TOPIC) == isinstance(event, SurveyResponse)
        assert record.contact_id == event.contact_id
        assert event.ts_us == record.at_ms * 1000
        assert record.event["ts"] == format_ts(event.ts_us) and record.event["ts"].endswith("Z")
        assert record.at_ms >= previous
        previous = record.at_ms
        assert event.customer_id.startswith("cust-")
    assert len({e.event_id for e in parsed}) == len(parsed), "event ids must be unique"
    assert min(r.at_ms for r in records) >= START_MS
    assert max(r.at_ms for r in records) < START_MS + SIX_HOURS_MS


def test_covers_every_channel_and_outcome(parsed: list[Any]) -> None:
    channels = {e.channel for e in parsed if not isinstance(e, SurveyResponse)}
    assert channels == {"voice", "chat", "email", "sms", "social"}
    queues = {e.queue for e in parsed if isinstance(e, ContactQueued)}
    assert len(queues) >= 6
    kinds = Counter(type(e).__name__ for e in parsed)
    assert kinds["ContactAbandoned"] > 0 and kinds["SurveyResponse"] > 0
    ended = [e for e in parsed if isinstance(e, ContactEnded)]
    assert any(e.transferred for e in ended) and any(e.resolved for e in ended)
    assert any(not e.resolved and not e.transferred for e in ended)
    assert any(e.hold_seconds > 0 for e in ended) and any(e.hold_seconds == 0 for e in ended)
    queued = [e for e in parsed if isinstance(e, ContactQueued)]
    assert all(e.reason for e in queued) and any(e.priority is not None for e in queued)


def test_same_seed_same_bytes_other_seed_other_bytes(records: list[SimEvent], tmp_path: Path) -> None:
    again = _run()
    assert b"".join(map(encode, again)) == b"".join(map(encode, records))
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_jsonl(wire_chunks(records), first, Pacer(0, START_MS))
    write_jsonl(wire_chunks(again), second, Pacer(0, START_MS))
    assert first.read_bytes() == second.read_bytes()
    other = _run(seed=12, hours=1)
    assert [encode(r) for r in other[:50]] != [encode(r) for r in records[:50]]
    assert not {r.event["event_id"] for r in other} & {r.event["event_id"] for r in records}  # type: ignore[index]


def test_lifecycle_of_every_contact_is_well_formed(parsed: list[Any]) -> None:
    """queued -> answered -> ended, or queued -> abandoned; a transfer re-queues in another queue at once."""
    state: dict[str, dict[str, Any]] = {}
    transfers = 0
    for event in parsed:
        if isinstance(event, SurveyResponse):
            continue
        contact = state.get(event.contact_id)
        if isinstance(event, ContactQueued):
            if contact is None:
                state[event.contact_id] = {"phase": "waiting", "queue": event.queue, "customer": event.customer_id,
                                           "reason": event.reason, "since": event.ts_us}
                continue
            assert contact["phase"] == "transferred", (event, contact)
            assert event.queue != contact["queue"] and event.ts_us >= contact["since"]
            assert event.reason == contact["reason"] and event.customer_id == contact["customer"]
            contact.update(phase="waiting", queue=event.queue, since=event.ts_us)
            transfers += 1
            continue
        assert contact is not None, f"{type(event).__name__} before queued: {event}"
        assert event.queue == contact["queue"] and event.customer_id == contact["customer"]
        if isinstance(event, ContactAnswered):
            assert contact["phase"] == "waiting"
            contact.update(phase="talking", agent=event.agent_id, since=event.ts_us)
        elif isinstance(event, ContactAbandoned):
            assert contact["phase"] == "waiting" and event.ts_us > contact["since"]
            contact["phase"] = "abandoned"
        else:
            assert isinstance(event, ContactEnded) and contact["phase"] == "talking"
            assert event.agent_id == contact["agent"]
            handled_us = round((event.talk_seconds + event.hold_seconds + event.wrap_seconds) * 1_000_000)
            assert event.ts_us - contact["since"] == handled_us
            assert not (event.transferred and event.resolved)
            contact.update(phase="transferred" if event.transferred else "closed", since=event.ts_us)
    assert transfers > 10
    phases = Counter(c["phase"] for c in state.values())
    assert phases["closed"] > phases["waiting"] + phases["talking"], phases  # most contacts finish within 6 h


def test_agents_serve_one_contact_at_a_time(parsed: list[Any]) -> None:
    busy: dict[str, str] = {}
    for event in parsed:
        if isinstance(event, ContactAnswered):
            assert event.agent_id not in busy, f"{event.agent_id} answered while busy"
            busy[event.agent_id] = event.contact_id
        elif isinstance(event, ContactEnded):
            assert busy.pop(event.agent_id) == event.contact_id


def test_unresolved_customers_come_back_with_the_same_reason(parsed: list[Any]) -> None:
    first_queued: dict[str, ContactQueued] = {}
    by_customer: dict[str, list[ContactQueued]] = defaultdict(list)
    for event in parsed:
        if isinstance(event, ContactQueued) and event.contact_id not in first_queued:
            first_queued[event.contact_id] = event
            by_customer[event.customer_id].append(event)
    repeats = [contacts for contacts in by_customer.values() if len(contacts) > 1]
    assert len(repeats) > 50, "a six-hour day must show repeat contacts"
    for contacts in repeats:
        assert len({c.reason for c in contacts}) == 1
        assert len({c.contact_id for c in contacts}) == len(contacts)


def test_surveys_follow_a_finished_contact(parsed: list[Any]) -> None:
    finished: dict[str, int] = {}
    surveys = 0
    for event in parsed:
        if isinstance(event, ContactEnded) and not event.transferred:
            finished[event.contact_id] = event.ts_us
        elif isinstance(event, SurveyResponse):
            assert event.contact_id in finished, "a survey must be about a contact that ended"
            assert event.ts_us >= finished[event.contact_id]
            assert event.nps is not None or event.csat is not None
            surveys += 1
    assert surveys > 100


def test_resolution_and_short_waits_make_happier_customers(parsed: list[Any]) -> None:
    resolved: dict[str, bool] = {}
    scores: dict[bool, list[int]] = {True: [], False: []}
    for event in parsed:
        if isinstance(event, ContactEnded) and not event.transferred:
            resolved[event.contact_id] = event.resolved
        elif isinstance(event, SurveyResponse) and event.nps is not None:
            scores[resolved[event.contact_id]].append(event.nps)
    mean = {key: sum(values) / len(values) for key, values in scores.items()}
    assert mean[True] > mean[False] + 2


def test_arrivals_follow_the_hour_profile() -> None:
    """The default profile is 0.2 at 02:00 and 1.0 at 10:00 UTC: five times the arrivals."""
    sim = Simulation(load_centre(), start_ms=START_MS - 4 * 3600 * 1000, seed=3)
    per_hour: Counter[int] = Counter()
    for record in sim.events(START_MS + 5 * 3600 * 1000):
        event = record.event
        if isinstance(event, dict) and event["type"] == "contact.queued":
            per_hour[datetime.fromtimestamp(record.at_ms / 1000, timezone.utc).hour] += 1
    assert 3 < per_hour[10] / per_hour[2] < 8


def test_timestamp_formatter_matches_the_models() -> None:
    stamp = TimestampFormatter()
    for ms in (0, 999, 1_000, 1_795_000_000_123, 1_795_000_000_999, 4_102_444_799_999):
        assert stamp(ms) == format_ts(ms * 1000)
        assert to_us(datetime.fromisoformat(stamp(ms))) == ms * 1000


def test_continuing_a_run_gives_the_same_events() -> None:
    sim = Simulation(load_centre(), start_ms=START_MS, seed=5)
    half = START_MS + 1800 * 1000
    pieces = list(sim.events(half)) + list(sim.events(START_MS + 3600 * 1000))
    whole = list(Simulation(load_centre(), start_ms=START_MS, seed=5).events(START_MS + 3600 * 1000))
    assert [encode(r) for r in pieces] == [encode(r) for r in whole]


def test_records_are_json_lines_ready(records: list[SimEvent]) -> None:
    for record in records[:500]:
        line = encode(record)
        assert b"\n" not in line and orjson.loads(line) == record.event
        assert record.topic in (CONTACT_TOPIC, SURVEY_TOPIC)
