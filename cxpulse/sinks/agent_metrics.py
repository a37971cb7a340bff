"""The agent families of ``/metrics`` (contract v2): live agents per queue and team, staffing, seconds in state.

Why a module of its own beside :mod:`cxpulse.sinks.prometheus`: the agent side is a second source of figures
(topic ``agent-events``) with its own labels (team, state, away reason); the KPI collector only hands over its
live state and queue labels and yields what this module builds. Names, labels and help come from
``AGENT_METRICS`` in :mod:`cxpulse.core.definitions`, the table the recording rules read too.

Privacy: an agent id or name never becomes a label; only queue, team, state and away reason do. Teams and
reasons come from the events, so like queues they are capped: beyond ``worker.max_queues`` distinct values a
further one is exported as ``other``.

Seconds in state are exported as counters that never go down. The exact figure can: an ``agent.state`` event
that arrives late (within the allowed disorder) moves time already counted as ``available`` to
``on_contact``. A counter that drops reads as a reset to Prometheus (``increase`` would then add the whole
value again), so each series exports the largest value it has shown; it stays flat until the exact figure
passes it again, and increases over longer ranges stay exact.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from cxpulse.units import US_PER_SECOND
from cxpulse.core.agent_report import figures, section
from cxpulse.core.agents import TIMED_STATES
from cxpulse.core.definitions import AGENT_LIVE_STATES, AGENT_METRICS, PROM_PREFIX
from cxpulse.core.live import LiveKpis
from cxpulse.settings import KpiSettings

OTHER = "other"
NO_TEAM = ""  # an agent without a team: the label is empty (absent), as Prometheus writes a missing label

log = logging.getLogger(__name__)


class CappedLabels:
    """At most ``limit`` distinct values of one label (team or reason); later ones fold into ``other``."""

    def __init__(self, what: str, limit: int) -> None:
        self.what = what
        self.limit = limit
        self.known: dict[str, str] = {}

    def __call__(self, value: str) -> str:
        label = self.known.get(value)
        if label is None:
            label = value if len(self.known) < self.limit else OTHER
            if label == OTHER:
                # a team or reason name is no personal data; naming it tells the operator what happens
                log.warning("%s %r is exported as %r: %d %s labels are in use", self.what, value, OTHER, self.limit,
                            self.what)
            self.known[value] = label
        return label


class AgentMetrics:
    """Builds the agent families at scrape time from a :class:`LiveKpis`; keeps only the counters' marks."""

    def __init__(self, limit: int) -> None:
        self.teams = CappedLabels("team", limit)
        self.reasons = CappedLabels("away reason", limit)
        self.marks: dict[tuple[str, str], float] = {}  # (team label, state) -> largest value exported

    def families(self) -> dict[str, Metric]:
        fam: dict[str, Metric] = {}
        for metric in AGENT_METRICS:
            kind = GaugeMetricFamily if metric.kind == "gauge" else CounterMetricFamily
            fam[metric.name] = kind(f"{PROM_PREFIX}_{metric.name}", metric.help, labels=list(metric.labels))
        return fam

    def collect(self, live: LiveKpis, kpi: KpiSettings, queue_label: Callable[[str], str], now_us: int) -> Iterable[Metric]:
        """The agent families at ``now_us`` (empty families while no agent event was seen)."""
        fam = self.families()
        if any(proc.first_ts is not None for proc in live.agent_parts.values()):
            contact_parts = [part.aggregates for part in live.contact_parts.values()]
            doc = section(kpi, figures(kpi, live.agent_parts.values(), contact_parts, now_us))
            self._live(fam, doc, queue_label)
            self._seconds(fam, live, now_us)
        return fam.values()

    def _live(self, fam: dict[str, Metric], doc: dict[str, Any], queue_label: Callable[[str], str]) -> None:
        queues: dict[str, dict[str, Any]] = {}
        for item in doc["queues"]:  # queues folded into "other" add up
            held = queues.setdefault(queue_label(item["queue"]), {"live": {}, "away": {}, "required": None, "staffed": 0})
            _add_live(held, item["live"], self.reasons)
            staffing = item["staffing"]
            held["staffed"] += staffing["agents_staffed"]
            if staffing["agents_required"] is not None:
                held["required"] = (held["required"] or 0) + staffing["agents_required"]
        for queue, held in sorted(queues.items()):
            for state in AGENT_LIVE_STATES:
                fam["queue_agents"].add_metric([queue, state], held["live"].get(state, 0))
            for reason, count in sorted(held["away"].items()):
                fam["queue_agents_away"].add_metric([queue, reason], count)
            fam["agents_staffed"].add_metric([queue], held["staffed"])
            if held["required"] is not None:
                fam["agents_required"].add_metric([queue], held["required"])
        teams: dict[str, dict[str, Any]] = {}
        for item in doc["teams"]:
            label = NO_TEAM if item["team"] is None else self.teams(item["team"])
            _add_live(teams.setdefault(label, {"live": {}, "away": {}}), item["live"], self.reasons)
        for team, held in sorted(teams.items()):
            for state in AGENT_LIVE_STATES:
                fam["team_agents"].add_metric([team, state], held["live"].get(state, 0))
            for reason, count in sorted(held["away"].items()):
                fam["team_agents_away"].add_metric([team, reason], count)

    def _seconds(self, fam: dict[str, Metric], live: LiveKpis, now_us: int) -> None:
        exact: dict[tuple[str, str], int] = {}
        for proc in live.agent_parts.values():
            for team, values in proc.cumulative(now_us).items():
                label = NO_TEAM if team is None else self.teams(team)
                for state, value in zip(TIMED_STATES, values):
                    exact[(label, state)] = exact.get((label, state), 0) + value
        for key, value in exact.items():
            seconds = value / US_PER_SECOND
            if seconds > self.marks.get(key, 0.0):
                self.marks[key] = seconds
        for (team, state), seconds in sorted(self.marks.items()):
            fam["agent_state_seconds"].add_metric([team, state], seconds)


def _add_live(held: dict[str, Any], live_doc: dict[str, Any], reasons: CappedLabels) -> None:
    for state in AGENT_LIVE_STATES:
        held["live"][state] = held["live"].get(state, 0) + live_doc[state]
    for reason, count in live_doc["away_by_reason"].items():
        label = reasons(reason)
        held["away"][label] = held["away"].get(label, 0) + count
