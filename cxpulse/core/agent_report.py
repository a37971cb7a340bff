"""The ``agents`` section of the KPI document: live agent counts, seconds in state, occupancy and staffing.

Why figures first, then the section: a worker owns some partitions of ``agent-events`` and of
``contact-events``; it publishes its :class:`AgentFigures` (raw counts that add: live counts, microseconds per
window, the staffing inputs of each queue), and any reader adds the figures of all workers and derives the
section with :func:`section`, the same function the replay and the live API use. Ratios and Erlang C are
computed only after adding, never added.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from cxpulse.units import US_PER_SECOND
from cxpulse.core.agents import LIVE_FIELDS, STAFFED_STATES, TIMED_STATES, AgentProcessor, Scope
from cxpulse.core.aggregates import Aggregates
from cxpulse.core.measures import HANDLE, HANDLED, OFFERED, UNKNOWN
from cxpulse.core.staffing import StaffingInputs, staffing
from cxpulse.core.windows import window_bounds
from cxpulse.models.events import format_ts
from cxpulse.settings import KpiSettings

STAFFING_RATE_WINDOW = "15m"  # kpis.md: the offered rate is the 15m window's
STAFFING_AHT_WINDOW = "1h"  # and the AHT the 1h window's

Window = list[Any]  # [start_us, end_us, [microseconds per timed state]]


@dataclass
class AgentFigures:
    """Raw agent figures of one or more parts; :meth:`add` another part's, then :func:`section`."""

    now: int = 0
    live: dict[Scope, Counter[str]] = field(default_factory=dict)
    seconds: dict[Scope, dict[str, Window]] = field(default_factory=dict)  # ("team", t) / ("total", None)
    # (queue, channel) -> [offered in 15m, 15m start, 15m end, handled in 1h, handle_us in 1h]
    contacts: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    listing: list[dict[str, Any]] | None = None
    agents_known: bool = False

    def add(self, other: "AgentFigures") -> "AgentFigures":
        self.now = max(self.now, other.now)
        self.agents_known = self.agents_known or other.agents_known
        for scope, counts in other.live.items():
            self.live.setdefault(scope, Counter()).update(counts)
        for scope, windows in other.seconds.items():
            mine = self.seconds.setdefault(scope, {})
            for name, (start, end, values) in windows.items():
                held = mine.get(name)
                if held is None:
                    mine[name] = [start, end, list(values)]
                else:
                    held[0], held[1] = min(held[0], start), max(held[1], end)
                    held[2] = [a + b for a, b in zip(held[2], values)]
        for key, values in other.contacts.items():
            held_c = self.contacts.get(key)
            if held_c is None:
                self.contacts[key] = list(values)
            else:
                self.contacts[key] = [held_c[0] + values[0], min(held_c[1], values[1]), max(held_c[2], values[2]),
                                      held_c[3] + values[3], held_c[4] + values[4]]
        if other.listing is not None:
            self.listing = (self.listing or []) + other.listing
        return self

    # -- partials (JSON): scopes and keys as separate strings, never joined with a separator ------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "now": self.now,
            "known": self.agents_known,
            "live": [[kind, name, dict(counts)] for (kind, name), counts in self.live.items()],
            "seconds": [[kind, name, windows] for (kind, name), windows in self.seconds.items()],
            "contacts": [[queue, channel, values] for (queue, channel), values in self.contacts.items()],
            "listing": self.listing,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "AgentFigures":
        return cls(
            now=data["now"],
            agents_known=data["known"],
            live={(kind, name): Counter(counts) for kind, name, counts in data["live"]},
            seconds={(kind, name): {w: list(v) for w, v in windows.items()} for kind, name, windows in data["seconds"]},
            contacts={(queue, channel): list(values) for queue, channel, values in data["contacts"]},
            listing=data["listing"],
        )


def figures(kpi: KpiSettings, agents: Iterable[AgentProcessor], contact_parts: Iterable[Aggregates], now_us: int,
            *, listing: bool = False) -> AgentFigures:
    """The raw agent figures of some partitions at ``now_us`` (the contact parts give the staffing inputs)."""
    bucket_us = kpi.bucket_seconds * US_PER_SECOND
    out = AgentFigures(now=now_us, listing=[] if listing else None)
    bounds = {name: window_bounds(name, now_us, kpi.timezone, bucket_us) for name in kpi.windows}
    for proc in agents:
        part = AgentFigures(now=now_us, agents_known=bool(proc.agents))
        part.live = proc.live(now_us)
        for name, (start, end) in bounds.items():
            total = [0] * len(TIMED_STATES)
            for team, values in proc.seconds(start, end, now_us).items():
                part.seconds.setdefault(("team", team), {})[name] = [start, end, values]
                total = [a + b for a, b in zip(total, values)]
            part.seconds.setdefault(("total", None), {})[name] = [start, end, total]
        if listing:
            part.listing = proc.listing(now_us)
        out.add(part)
    parts = list(contact_parts)
    r_start, r_end = window_bounds(STAFFING_RATE_WINDOW, now_us, kpi.timezone, bucket_us)
    a_start, a_end = window_bounds(STAFFING_AHT_WINDOW, now_us, kpi.timezone, bucket_us)
    for part_agg in parts:
        part_agg.advance(now_us)
        # the queues the contact side reports (its active keys, like the document's queue list), less the
        # unattributed surveys' channel ``unknown``; a key whose every fact was retracted (its only event refused
        # as impossible) is not one of them
        keys = [key for key in part_agg.active_keys() if key[1] != UNKNOWN]
        rate = part_agg.window(r_start, r_end, keys)
        aht = part_agg.window(a_start, a_end, keys)
        for key in keys:
            held = out.contacts.setdefault(key, [0, r_start, r_end, 0, 0])
            held[0] += rate[key][OFFERED]
            held[3] += aht[key][HANDLED]
            held[4] += aht[key][HANDLE]
    return out


def _live_doc(counts: Counter[str] | None) -> dict[str, Any]:
    counts = counts or Counter()
    doc: dict[str, Any] = {name: counts.get(name, 0) for name in LIVE_FIELDS}
    doc["away_by_reason"] = {key[5:]: value for key, value in sorted(counts.items())
                             if key.startswith("away:") and value}
    return doc


def _windows_doc(windows: dict[str, Window], names: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:  # every name is in ``windows``: the caller lays the figures over _empty_windows
        start, end, values = windows[name]
        doc: dict[str, Any] = {"start": format_ts(start), "end": format_ts(end)}
        for state, value in zip(TIMED_STATES, values):
            doc[f"{state}_seconds"] = value / US_PER_SECOND
        available, on_contact, wrap_up, _away = values
        working = available + on_contact + wrap_up
        doc["occupancy"] = (on_contact + wrap_up) / working if working else None
        out[name] = doc
    return out


def _staffed(counts: Counter[str] | None) -> int:
    return sum(counts.get(state, 0) for state in STAFFED_STATES) if counts else 0


def section(kpi: KpiSettings, fig: AgentFigures) -> dict[str, Any]:
    """The document's ``agents`` section from (summed) figures."""
    names = list(kpi.windows)
    empty_windows = _empty_windows(kpi, fig.now)
    queue_names = sorted({name for kind, name in fig.live if kind == "queue" and name is not None}
                         | {queue for queue, _ in fig.contacts})
    queues = []
    for queue in queue_names:
        counts = fig.live.get(("queue", queue))
        channels = sorted((key for key in fig.contacts if key[0] == queue), key=lambda k: (-fig.contacts[k][0], k[1]))
        offered = handled = handle_us = 0
        window_seconds = 0.0
        for key in channels:
            values = fig.contacts[key]
            offered += values[0]
            window_seconds = max(window_seconds, (values[2] - values[1]) / US_PER_SECOND)
            handled += values[3]
            handle_us += values[4]
        # T and the target of the queue's busiest channel (a queue usually has one channel)
        qs = kpi.for_queue(queue, channels[0][1] if channels else "voice")
        inputs = StaffingInputs(offered, window_seconds, handled, handle_us, _staffed(counts))
        queues.append({"queue": queue, "live": _live_doc(counts),
                       "staffing": staffing(inputs, qs.sl_threshold_seconds, qs.sl_target)})
    teams = []
    team_names = {name for kind, name in fig.live if kind == "team"} | {name for kind, name in fig.seconds if kind == "team"}
    for team in sorted(team_names, key=lambda t: (t is not None, t or "")):
        teams.append({"team": team, "live": _live_doc(fig.live.get(("team", team))),
                      "windows": _windows_doc({**empty_windows, **fig.seconds.get(("team", team), {})}, names)})
    out: dict[str, Any] = {
        "live": _live_doc(fig.live.get(("total", None))),
        "windows": _windows_doc({**empty_windows, **fig.seconds.get(("total", None), {})}, names),
        "queues": queues,
        "teams": teams,
    }
    if fig.listing is not None:
        out["listed"] = [_listed(item, fig.now) for item in sorted(
            fig.listing, key=lambda i: (i["state"], i["since_us"], i["agent_name"] or ""))]
    return out


def _empty_windows(kpi: KpiSettings, now_us: int) -> dict[str, Window]:
    bucket_us = kpi.bucket_seconds * US_PER_SECOND
    out: dict[str, Window] = {}
    for name in kpi.windows:
        start, end = window_bounds(name, now_us, kpi.timezone, bucket_us)
        out[name] = [start, end, [0] * len(TIMED_STATES)]
    return out


def _listed(item: dict[str, Any], now_us: int) -> dict[str, Any]:
    # a listed agent has a current state, so ``since_us`` is an int, at or before every part's now (<= now_us)
    since = item["since_us"]
    return {
        "agent_name": item["agent_name"],
        "state": item["state"],
        "reason": item["reason"],
        "team": item["team"],
        "queues": item["queues"],
        "since": format_ts(since),
        "seconds_in_state": (now_us - since) / US_PER_SECOND,
    }


def merge_agents(kpi: KpiSettings, partials: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The document's ``agents`` section over several workers' partials (their ``agents`` entry: this module's
    :meth:`AgentFigures.to_json`); None when no worker has seen an agent event."""
    found = [AgentFigures.from_json(item["agents"]) for item in partials if item.get("agents")]
    if not found:
        return None
    merged = AgentFigures()
    for part in found:
        merged.add(part)
    return section(kpi, merged)
