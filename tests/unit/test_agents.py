"""Agents and staffing in the core (kpis.md "Agents (v2)", "Staffing (v2)"): hand-worked edges.

Each case is worked out by hand in its docstring or comments; the KPI engine (the replay core) must give
exactly those figures, and so must the brute-force oracle of ``test_kpi_oracle`` (which shares no code with
the core).
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone
from typing import Any

import pytest

from cxpulse.core.agent_report import AgentFigures, figures, section
from cxpulse.core.agents import AgentProcessor, AgentTimeline, keep_us
from cxpulse.core.engine import KpiEngine
from cxpulse.core.staffing import agents_required, erlang_service_level
from cxpulse.models.events import to_us
from cxpulse.settings import KpiSettings
from test_kpi_oracle import _ag, _ev, agents_oracle, assert_same

NOW = "2026-05-04T09:20:00Z"
NOW_US = to_us(datetime(2026, 5, 4, 9, 20, tzinfo=timezone.utc))


def _us(stamp: str) -> int:
    return to_us(datetime.fromisoformat(stamp.replace("Z", "+00:00")))


def run(stream: list[dict[str, Any]], kpi: KpiSettings | None = None) -> KpiEngine:
    engine = KpiEngine(kpi or KpiSettings())
    for event in stream:
        engine.process(json.dumps(event))
    return engine


def agents_at(engine: KpiEngine, now_us: int = NOW_US) -> dict[str, Any]:
    section_doc: dict[str, Any] = engine.snapshot(now_us)["agents"]
    return section_doc


def test_interval_crossing_the_window_edge_counts_only_its_part_inside() -> None:
    """Available from 08:50 to now (09:20): the 15m window [09:05, 09:20) holds 900 s of it, the 1h window
    [08:20, 09:20) all 1800 s; the interval started before the window, and it is still open (up to now)."""
    doc = agents_at(run([_ag("a1", "2026-05-04T08:50:00Z", "A", "available")]))
    assert doc["windows"]["15m"]["start"] == "2026-05-04T09:05:00.000Z"
    assert doc["windows"]["15m"]["available_seconds"] == 900.0
    assert doc["windows"]["1h"]["available_seconds"] == 1800.0
    assert doc["windows"]["15m"]["occupancy"] == 0.0


def test_away_by_reason_and_occupancy_with_zero_denominator() -> None:
    """Three agents away (break, lunch, none given) and one logged out: nobody available, on contact or in
    wrap-up, so occupancy has a zero denominator and is null (not 0, not 1)."""
    doc = agents_at(run([
        _ag("x", "2026-05-04T09:00:00Z", "A", "away", reason="break"),
        _ag("x", "2026-05-04T09:01:00Z", "B", "away", reason="lunch"),  # same id, another agent: counts
        _ag("y", "2026-05-04T09:02:00Z", "C", "away"),
        _ag("z", "2026-05-04T09:03:00Z", "D", "logged_out"),
    ]))
    assert doc["live"] == {"logged_in": 3, "available": 0, "on_contact": 0, "wrap_up": 0, "away": 3,
                           "away_by_reason": {"break": 1, "lunch": 1, "unspecified": 1}}
    window = doc["windows"]["15m"]
    assert window["away_seconds"] == 900 + 900 + 900  # all three away since before 09:05
    assert window["occupancy"] is None


def test_an_agent_in_two_queues_counts_in_both_and_once_in_total() -> None:
    doc = agents_at(run([
        _ag("a1", "2026-05-04T09:00:00Z", "A", "on_contact", queues=["sales", "billing", "sales"]),
        _ag("b1", "2026-05-04T09:00:00Z", "B", "available", queues=["billing"], team=None),
    ]))
    assert doc["live"]["logged_in"] == 2 and doc["live"]["on_contact"] == 1
    by_queue = {q["queue"]: q for q in doc["queues"]}
    assert by_queue["billing"]["live"]["logged_in"] == 2
    assert by_queue["sales"]["live"]["logged_in"] == 1  # listed twice by the producer: counted once
    assert by_queue["billing"]["staffing"]["agents_staffed"] == 2
    assert [(t["team"], t["live"]["logged_in"]) for t in doc["teams"]] == [(None, 1), ("red", 1)]


def test_disorder_within_the_allowance_and_duplicates_change_nothing() -> None:
    """An agent's events in order, then shuffled (within the 60 s allowance: they are 30 s apart) and each sent
    twice: the same section; health counts the copies as duplicates."""
    events = [_ag(f"e{i}", f"2026-05-04T09:1{i // 2}:{30 * (i % 2):02d}Z", "A", state)
              for i, state in enumerate(["available", "on_contact", "wrap_up", "available", "away", "available"])]
    events[4]["reason"] = "meeting"
    in_order = agents_at(run(events))
    rnd = random.Random(4)
    spoiled = events + events
    for _ in range(40):  # swap neighbours less than the allowance apart in event time
        i = rnd.randrange(len(spoiled) - 1)
        if abs(_us(spoiled[i]["ts"]) - _us(spoiled[i + 1]["ts"])) <= 60_000_000:
            spoiled[i], spoiled[i + 1] = spoiled[i + 1], spoiled[i]
    engine = run(spoiled)
    assert_same(in_order, agents_at(engine))
    assert engine.health.duplicates == len(events)
    # 09:10:00 available 30 s, on contact 30 s, wrap 30 s, available 30 s, away 30 s, available since 09:12:30
    w = in_order["windows"]["15m"]
    assert (w["available_seconds"], w["on_contact_seconds"], w["wrap_up_seconds"], w["away_seconds"]) == (
        60.0 + 450.0, 30.0, 30.0, 30.0)
    assert w["occupancy"] == 60 / 570


def test_logout_stops_the_seconds_and_the_counts() -> None:
    doc = agents_at(run([
        _ag("a1", "2026-05-04T09:06:00Z", "A", "available"),
        _ag("a2", "2026-05-04T09:08:00Z", "A", "logged_out", queues=[]),
    ]))
    assert doc["live"]["logged_in"] == 0
    assert doc["windows"]["15m"]["available_seconds"] == 120.0
    assert doc["queues"] == [] and [t["team"] for t in doc["teams"]] == ["red"]


def test_same_timestamp_applies_in_event_id_order() -> None:
    """Two events of one agent at the same instant: the larger event id is the state from then on, whatever
    arrives first."""
    first = [_ag("b", "2026-05-04T09:10:00Z", "A", "away", reason="break"),
             _ag("a", "2026-05-04T09:10:00Z", "A", "available")]
    assert agents_at(run(first))["live"]["away"] == 1
    assert agents_at(run(first[::-1]))["live"]["away"] == 1


def test_an_event_ahead_of_now_is_not_yet_in_force() -> None:
    """Live, an event up to max_clock_skew ahead of the wall clock is valid; until its ts the previous state holds."""
    engine = run([_ag("a", "2026-05-04T09:00:00Z", "A", "available"),
                  _ag("b", "2026-05-04T09:22:00Z", "A", "away", reason="lunch")])
    doc = agents_at(engine, NOW_US)
    assert doc["live"]["available"] == 1 and doc["live"]["away"] == 0
    assert doc["windows"]["15m"]["available_seconds"] == 900.0


# -- staffing: Erlang C ---------------------------------------------------------------------------------------
def test_published_erlang_c_staffing_figure() -> None:
    """100 calls in 30 minutes with AHT 180 s is 10 Erlangs; target 80 % in 20 s: 13 agents give 0.7956, so 14
    are required, giving 0.8884 (the worked example every Erlang C calculator publishes)."""
    assert erlang_service_level(13, 10.0, 180, 20) == pytest.approx(0.7956, abs=5e-5)
    assert erlang_service_level(14, 10.0, 180, 20) == pytest.approx(0.8884, abs=5e-5)
    assert agents_required(100, 1800, 180, 20, 0.80) == 14
    assert agents_required(100, 1800, 180, 20, 0.79) == 13
    assert agents_required(0, 900, 180, 20, 0.8) is None
    assert agents_required(10, 900, None, 20, 0.8) is None
    assert agents_required(10, 900, 0.0, 20, 0.8) is None


def _contacts(n: int, start_minute: int, aht_seconds: int, queue: str = "billing") -> list[dict[str, Any]]:
    """``n`` voice contacts queued from 09:05 + ``start_minute`` on, 10 s apart, answered at once, ended after
    ``aht_seconds`` of talk (so AHT is exactly ``aht_seconds``)."""
    out = []
    base = to_us(datetime(2026, 5, 4, 9, 5 + start_minute, tzinfo=timezone.utc)) // 1_000_000
    for i in range(n):
        t = base + 10 * i
        stamp = lambda s: datetime.fromtimestamp(s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
        out.append(_ev("contact.queued", f"q{i}", stamp(t), contact=f"k{queue}{i}", queue=queue))
        out.append(_ev("contact.answered", f"a{i}", stamp(t), contact=f"k{queue}{i}", queue=queue))
        out.append(_ev("contact.ended", f"e{i}", stamp(t), contact=f"k{queue}{i}", queue=queue,
                       talk_seconds=aht_seconds, hold_seconds=0, wrap_seconds=0))
    return out


def test_agents_required_follows_the_live_rate_and_aht() -> None:
    """50 calls in the 15m window [09:05, 09:20) is the rate of 100 in 30 minutes; AHT 180 s over 1 h: 14 agents
    required. Twelve agents staffed (available, on contact or wrap-up; the away one does not count): gap 2."""
    agents = [_ag(f"s{i}", "2026-05-04T09:00:00Z", f"A{i}", "available" if i % 2 else "on_contact") for i in range(12)]
    agents.append(_ag("away", "2026-05-04T09:00:00Z", "Z", "away", reason="break"))
    stream = _contacts(50, 0, 180) + agents
    engine = run(stream)
    staffing = {q["queue"]: q["staffing"] for q in agents_at(engine)["queues"]}["billing"]
    assert staffing["offered_rate_per_hour"] == 200.0
    assert staffing["aht_seconds"] == 180.0 and staffing["traffic_erlangs"] == pytest.approx(10.0)
    assert (staffing["agents_required"], staffing["agents_staffed"], staffing["gap"]) == (14, 12, 2)
    assert_same(agents_oracle(stream, KpiSettings(), NOW_US), agents_at(engine))


def test_staffing_uses_the_queues_threshold_and_target() -> None:
    kpi = KpiSettings(queues={"billing": {"sl_target": 0.79}})
    engine = run(_contacts(50, 0, 180), kpi)
    engine.process(json.dumps(_ag("s", "2026-05-04T09:00:00Z", "A", "available")))
    staffing = agents_at(engine)["queues"][0]["staffing"]
    assert staffing["agents_required"] == 13 and staffing["sl_target"] == 0.79


def test_no_agent_event_means_no_agents_section() -> None:
    engine = run(_contacts(3, 0, 60))
    assert "agents" not in engine.snapshot(NOW_US)


# -- state: memory, store and restore, parts that add up ---------------------------------------------------------
def test_old_intervals_are_dropped_without_changing_any_window() -> None:
    """Two days of an agent changing state every 10 minutes: after pruning, memory holds about the longest
    window's worth, and every figure is what the unpruned processor says."""
    kpi = KpiSettings()
    full, pruned = AgentProcessor(kpi), AgentProcessor(kpi)
    states = ["available", "on_contact", "wrap_up", "away"]
    start = to_us(datetime(2026, 5, 2, 0, 0, tzinfo=timezone.utc))
    for i in range(2 * 144):
        rec = (start + i * 600_000_000, f"e{i}", states[i % 4], "break" if i % 4 == 3 else None, ("billing",), "red", None)
        full.add("A", rec)
        pruned.add("A", rec)
        if i % 20 == 0:
            pruned.prune()
    pruned.prune()
    now = start + 2 * 144 * 600_000_000
    kept = len(pruned.agents["A"].records)
    assert kept < 2 * 144 and (kept - 2) * 600_000_000 <= keep_us(kpi)
    assert_same(section(kpi, figures(kpi, [full], [], now)), section(kpi, figures(kpi, [pruned], [], now)))
    assert pruned.cumulative(now) == full.cumulative(now)  # the dropped seconds are folded, not lost
    # a copy of the event 24 h before the stream time is still recognised (ids are remembered >= 24 h)
    assert pruned.stream_time - (start + 143 * 600_000_000) == 86400 * 1_000_000
    assert not pruned.add("A", (start + 143 * 600_000_000, "e143", "available", None, ("billing",), "red", None))
    assert "e10" not in pruned.agents["A"].seen  # and two days back, forgotten: memory stays bounded


def test_stored_timelines_restore_to_the_same_figures_and_partitions_add_up() -> None:
    kpi = KpiSettings()
    stream = [
        _ag("a1", "2026-05-04T09:00:00Z", "A", "available", agent_name="Ann"),
        _ag("b1", "2026-05-04T09:02:00Z", "B", "on_contact", queues=["billing", "sales"]),
        _ag("c1", "2026-05-04T09:04:00Z", "C", "away", reason="training", team="blue"),
        _ag("a2", "2026-05-04T09:09:00Z", "A", "wrap_up", agent_name="Ann"),
    ]
    whole = run(stream)
    parts = [AgentProcessor(kpi), AgentProcessor(kpi)]
    for event in stream:  # agents partitioned by agent id: each lives in exactly one part
        engine_event = whole.agents  # noqa: F841 - the same parser as the engine
        from cxpulse.models.agent_events import parse_agent_event

        parsed = parse_agent_event(event)
        parts[0 if parsed.agent_id == "B" else 1].handle(parsed)
    restored = [AgentProcessor(kpi), AgentProcessor(kpi)]
    for proc, into in zip(parts, restored):
        for agent_id, timeline in proc.agents.items():
            row = json.loads(json.dumps(timeline.to_row()))  # through a store and back
            into.restore(agent_id, AgentTimeline.from_row(row))
    figs = [figures(kpi, [p], [], NOW_US, listing=True) for p in restored]
    merged = AgentFigures.from_json(json.loads(json.dumps(figs[0].to_json()))).add(
        AgentFigures.from_json(json.loads(json.dumps(figs[1].to_json()))))
    whole.agent_listing = True
    assert_same(agents_at(whole), section(kpi, merged))


def test_the_listing_shows_names_only_never_agent_ids() -> None:
    engine = run([
        _ag("a1", "2026-05-04T09:00:00Z", "agent-secret-7", "available", agent_name="Ann"),
        _ag("a2", "2026-05-04T09:05:00Z", "agent-secret-7", "available", queues=["billing", "x"], agent_name="Ann"),
        _ag("b1", "2026-05-04T09:02:00Z", "agent-secret-8", "away", reason="break"),
    ])
    assert "listed" not in agents_at(engine)
    engine.agent_listing = True
    listing = agents_at(engine)["listed"]
    assert "agent-secret" not in json.dumps(listing)
    assert [(i["agent_name"], i["state"], i["seconds_in_state"]) for i in listing] == [
        ("Ann", "available", 1200.0), (None, "away", 1080.0)]  # time in state: since 09:00 (a queue change is no new state)


def test_live_partitions_give_the_replay_section_and_merge_across_workers() -> None:
    """The live engine keeps agents per partition (by agent id); one worker's document, and the merge of two
    workers' partials, equal the replay's section."""
    from cxpulse.core.agent_report import merge_agents
    from cxpulse.core.live import LiveKpis
    from cxpulse.models.agent_events import parse_agent_event

    kpi = KpiSettings()
    stream = [
        _ag("a1", "2026-05-04T09:00:00Z", "A", "available"),
        _ag("b1", "2026-05-04T09:02:00Z", "B", "on_contact", queues=["billing", "sales"]),
        _ag("a1", "2026-05-04T09:00:00Z", "A", "available"),  # a copy
        _ag("c1", "2026-05-04T09:04:00Z", "C", "away", reason="training", team="blue"),
        _ag("b0", "2026-05-04T09:01:30Z", "B", "available", queues=["billing", "sales"]),  # 30 s late
    ]
    replay = agents_at(run(stream))
    one = LiveKpis(kpi, clock=lambda: NOW_US)
    two = [LiveKpis(kpi, clock=lambda: NOW_US), LiveKpis(kpi, clock=lambda: NOW_US)]
    for offset, event in enumerate(stream):
        parsed = parse_agent_event(event)
        partition = ord(parsed.agent_id) % 2
        one.handle_agent("agent-events", partition, parsed, offset)
        two[partition].handle_agent("agent-events", partition, parsed, offset)
    assert one.topic_health("agent-events").duplicates == 1
    assert_same(replay, one.document()["agents"])
    merged = merge_agents(kpi, [json.loads(json.dumps(w.partial(f"w{i}"))) for i, w in enumerate(two)])
    assert_same(replay, merged)


def test_the_document_with_agents_validates_against_its_models() -> None:
    from cxpulse.models.kpis import KpiDocument

    engine = run(_contacts(5, 0, 100) + [
        _ag("a", "2026-05-04T09:00:00Z", "A", "away", reason="break", agent_name="Ann"),
        _ag("b", "2026-05-04T09:00:00Z", "B", "available", team=None),
    ])
    engine.agent_listing = True
    document = engine.snapshot(NOW_US, include_all=True)
    parsed = KpiDocument.model_validate(document)  # strict, extra="forbid"
    assert parsed.agents is not None and parsed.agents.listed is not None
    assert parsed.agents.queues[0].staffing.agents_staffed == 1
