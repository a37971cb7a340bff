"""``/metrics`` for agents and staffing (contract v2): live agents per queue and team, away by reason,
agents_required / agents_staffed per queue, seconds in state per team; never an agent id or name.

The live state is a real :class:`LiveKpis` fed with parsed events; the figures are worked out by hand in the
comments (the staffing figure with the core's Erlang C, whose published example test_agents checks).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cxpulse.core.definitions import AGENT_METRICS, PROM_PREFIX
from cxpulse.core.live import LiveKpis
from cxpulse.core.staffing import agents_required
from cxpulse.models.agent_events import parse_agent_event
from cxpulse.models.events import format_ts, parse_any_event, to_us
from cxpulse.settings import Settings
from cxpulse.sinks.agent_metrics import AgentMetrics
from cxpulse.sinks.prometheus import Histograms, KpiCollector, QueueLabels, exposition, registry_for, wait_buckets

NOW_US = to_us(datetime(2026, 5, 4, 9, 20, tzinfo=timezone.utc))
SECRET_ID = "agent-secret-4711"


def _at(minutes_before: float) -> str:
    return format_ts(NOW_US - int(minutes_before * 60_000_000))


def _ag(eid: str, minutes_before: float, agent: str, state: str, **extra: Any) -> dict[str, Any]:
    event = {"event_id": eid, "type": "agent.state", "ts": _at(minutes_before), "agent_id": agent, "state": state,
             "queues": ["billing"], "team": "red", "reason": None, "agent_name": None}
    event.update(extra)
    return event


def _contacts(now_minutes: float = 0.0) -> list[dict[str, Any]]:
    """12 billing voice contacts queued within the last 15 minutes, each handled 100 + 10 + 5 = 115 s."""
    out: list[dict[str, Any]] = []
    for n in range(12):
        start = 14 - n + now_minutes  # 14, 13, ... 3 minutes before now
        base = {"contact_id": f"c{n}", "customer_id": f"u{n}", "queue": "billing", "channel": "voice"}
        out.append({**base, "event_id": f"q{n}", "type": "contact.queued", "ts": _at(start), "reason": None})
        out.append({**base, "event_id": f"a{n}", "type": "contact.answered", "ts": _at(start - 0.1), "agent_id": SECRET_ID})
        out.append({**base, "event_id": f"e{n}", "type": "contact.ended", "ts": _at(start - 2.5), "agent_id": SECRET_ID,
                    "talk_seconds": 100, "hold_seconds": 10, "wrap_seconds": 5, "resolved": True})
    return out


AGENTS = [
    _ag("a1", 30, "A", "available"),
    _ag("b1", 20, "B", "available", queues=["billing", "sales"], team="blue"),
    _ag("b2", 10, "B", "on_contact", queues=["billing", "sales"], team="blue"),
    _ag("c1", 12, "C", "away", reason="training", team="blue"),
    _ag("d1", 5, SECRET_ID, "available", agent_name="Dana Secret"),
    _ag("e1", 8, "E", "away", queues=["sales"], team=None),  # no reason, no team
]


def _live(settings: Settings, histograms: Histograms | None = None) -> LiveKpis:
    live = LiveKpis(settings.kpi, observer=histograms, clock=lambda: NOW_US)
    for offset, event in enumerate(_contacts()):
        live.handle("contact-events", 0, parse_any_event(event), orjson.dumps(event), offset)
    live.settle(0)
    for offset, event in enumerate(AGENTS):
        live.handle_agent("agent-events", ord(event["agent_id"][0]) % 2, parse_agent_event(event), offset)  # by agent
    return live


def _samples(metrics: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in metrics for s in family.samples}


def test_live_agents_staffing_and_seconds_per_queue_and_team() -> None:
    settings = Settings()
    live = _live(settings)
    got = _samples(AgentMetrics(100).collect(live, settings.kpi, lambda q: q, NOW_US))

    def value(name: str, **labels: str) -> float | None:
        return got.get((f"{PROM_PREFIX}_{name}", tuple(sorted(labels.items()))))

    # billing: A, B, C and the secret agent serve it; B on a contact, C away (training), A and D available
    assert [value("queue_agents", queue="billing", state=s) for s in ("logged_in", "available", "on_contact", "wrap_up", "away")] == [4, 2, 1, 0, 1]
    assert value("queue_agents_away", queue="billing", reason="training") == 1
    # sales: B on a contact and E away without a reason
    assert value("queue_agents", queue="sales", state="away") == 1
    assert value("queue_agents_away", queue="sales", reason="unspecified") == 1
    # teams: each agent once; E has no team (empty label)
    assert value("team_agents", team="red", state="logged_in") == 2
    assert value("team_agents", team="blue", state="logged_in") == 2
    assert value("team_agents", team="", state="away") == 1
    assert value("team_agents_away", team="blue", reason="training") == 1
    # staffing: 12 offered in the 15m window (900 s), AHT 115 s over 1h; staffed = A + B + D = 3
    qs = settings.kpi.for_queue("billing", "voice")
    expected = agents_required(12, 900.0, 115.0, qs.sl_threshold_seconds, qs.sl_target)
    assert expected is not None and value("agents_required", queue="billing") == expected
    assert value("agents_staffed", queue="billing") == 3
    assert value("agents_required", queue="sales") is None  # no contact offered there: no series
    assert value("agents_staffed", queue="sales") == 1
    # seconds in state since start, per team, up to now: red = A available 30 min + D available 5 min;
    # blue = B available 10 min then on a contact 10 min, C away 12 min; E away 8 min
    assert value("agent_state_seconds_total", team="red", state="available") == 35 * 60
    assert value("agent_state_seconds_total", team="blue", state="available") == 10 * 60
    assert value("agent_state_seconds_total", team="blue", state="on_contact") == 10 * 60
    assert value("agent_state_seconds_total", team="blue", state="away") == 12 * 60
    assert value("agent_state_seconds_total", team="", state="away") == 8 * 60


def test_seconds_counter_never_goes_down_when_a_late_event_moves_time() -> None:
    """A available from 09:00; at 09:20 the counter shows 1200 s available. A late on_contact at 09:10 moves
    600 s to on_contact: available stays at its mark 1200 (a drop would read as a counter reset) until the
    exact figure passes it again; on_contact grows at once."""
    settings = Settings()
    live = LiveKpis(settings.kpi, clock=lambda: NOW_US)
    live.handle_agent("agent-events", 0, parse_agent_event(_ag("x1", 20, "A", "available")), 0)
    metrics = AgentMetrics(100)
    first = _samples(metrics.collect(live, settings.kpi, lambda q: q, NOW_US))
    key = (f"{PROM_PREFIX}_agent_state_seconds_total", (("state", "available"), ("team", "red")))
    assert first[key] == 1200
    live.handle_agent("agent-events", 0, parse_agent_event(_ag("x2", 10, "A", "on_contact")), 1)
    live.handle_agent("agent-events", 0, parse_agent_event(_ag("x3", -5, "A", "available")), 2)
    second = _samples(metrics.collect(live, settings.kpi, lambda q: q, NOW_US))
    assert second[key] == 1200
    assert second[(key[0], (("state", "on_contact"), ("team", "red")))] == 600
    # back to available at 09:25; at 09:40 available is exactly 600 + 900 = 1500 s, past the mark
    later = _samples(metrics.collect(live, settings.kpi, lambda q: q, NOW_US + 20 * 60_000_000))
    assert later[key] == 1500


def test_exposition_has_the_agent_families_and_no_agent_id_or_name(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings()
    histograms = Histograms(wait_buckets(settings))
    live = _live(settings, histograms)
    collector = KpiCollector(settings, live, histograms, {})
    caplog.set_level(logging.DEBUG)
    text = exposition(registry_for(collector)).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for metric in AGENT_METRICS:
        assert f"{PROM_PREFIX}_{metric.name}" in families, metric.name
        for sample in families[f"{PROM_PREFIX}_{metric.name}"].samples:
            assert set(sample.labels) == set(metric.labels)
    assert SECRET_ID not in text and "Dana" not in text
    assert all(SECRET_ID not in r.getMessage() and "Dana" not in r.getMessage() for r in caplog.records)


def test_teams_and_reasons_beyond_the_limit_fold_into_other() -> None:
    settings = Settings()
    live = LiveKpis(settings.kpi, clock=lambda: NOW_US)
    for n in range(4):
        event = _ag(f"t{n}", 5, f"agent{n}", "away", team=f"team{n}", reason=f"reason{n}")
        live.handle_agent("agent-events", 0, parse_agent_event(event), n)
    got = _samples(AgentMetrics(2).collect(live, settings.kpi, QueueLabels(2), NOW_US))
    teams = {dict(labels)["team"] for name, labels in got if name == f"{PROM_PREFIX}_team_agents"}
    reasons = {dict(labels)["reason"] for name, labels in got if name == f"{PROM_PREFIX}_queue_agents_away"}
    assert teams == {"team0", "team1", "other"}
    assert reasons == {"reason0", "reason1", "other"}
    assert got[(f"{PROM_PREFIX}_team_agents", (("state", "away"), ("team", "other")))] == 2
