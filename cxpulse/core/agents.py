"""Agent state (topic ``agent-events``, key ``agent_id``): live counts and seconds in each state (kpis.md, "Agents").

An agent is in the state of its latest ``agent.state`` event (by ``ts``) from that ``ts`` on; an agent never seen
is logged out. Why a timeline per agent rather than running counters: events of one agent may arrive out of
order (by up to the allowed disorder) and twice; keeping each agent's events sorted by ``(ts, event_id)`` makes
every figure a pure function of the set of its distinct events, so late and duplicated events give exactly
the in-order figures, and a restore from the stored timelines gives them too. Figures are derived when read:
live counts from each agent's current record, seconds in state by clipping each state interval
``[ts_i, ts_{i+1})`` (the current one up to now) to the window.

Memory is bounded: a record whose interval ended before ``stream time - keep`` (the longest window, a day for
``today``, a bucket, the allowed disorder and the clock skew) can change no window any more and is dropped
(its seconds move to :attr:`AgentProcessor.folded`, which only the ever-growing Prometheus counters read); its
event id is remembered for duplicates for at least 24 h. An agent logged out for longer than that is forgotten
altogether (it then is what it was before its first event: logged out).

Per partition, like the contact side: agents are partitioned by ``agent_id``, so each agent lives in exactly one
:class:`AgentProcessor` and the figures of several partitions (and workers) add up, totals counting each agent
once. No Faust, Kafka or Redis import.

Readings of the spec taken here (docs/kpis.md says them too):

* seconds are kept for the logged-in states (available, on_contact, wrap_up, away), per team of the interval's
  event; time logged out is not time worked and is not counted;
* events of one agent at the same ``ts`` apply in ``event_id`` order (the later id wins), so the order of
  arrival never matters;
* an ``away`` without a reason counts under reason ``unspecified``.
"""

from __future__ import annotations

import bisect
from collections import Counter
from operator import itemgetter
from dataclasses import dataclass, field
from typing import Any, Iterator

from cxpulse.units import US_PER_SECOND
from cxpulse.settings import KpiSettings, parse_duration

US = US_PER_SECOND
LOGGED_OUT = "logged_out"
TIMED_STATES: tuple[str, ...] = ("available", "on_contact", "wrap_up", "away")
"""The states whose seconds are kept, in this order in every seconds list."""
LIVE_FIELDS: tuple[str, ...] = ("logged_in", "available", "on_contact", "wrap_up", "away")
STAFFED_STATES = frozenset({"available", "on_contact", "wrap_up"})
NO_REASON = "unspecified"
DAY_US = 86400 * US
DUPLICATE_MEMORY_US = DAY_US  # kpis.md, Duplicates: remembered for at least 24 h
_STATE_INDEX = {name: index for index, name in enumerate(TIMED_STATES)}

Record = tuple[int, str, str, "str | None", tuple[str, ...], "str | None", "str | None"]
"""One ``agent.state`` event: ``(ts_us, event_id, state, reason, queues, team, agent_name)``. Sorting records
sorts by ``(ts, event_id)``: the order the agent's states apply in."""
TS, ID, STATE, REASON, QUEUES, TEAM, NAME = range(7)

Scope = tuple[str, "str | None"]
"""Where a live count goes: ``("queue", name)``, ``("team", name or None)`` or ``("total", None)``."""


def record_of(event: Any) -> Record:
    """The record of a validated :class:`~cxpulse.models.agent_events.AgentState` (queues sorted and unique:
    the set of skills, not the order a platform listed them in)."""
    return (event.ts_us, event.event_id, event.state, event.reason, tuple(sorted(set(event.queues))),
            event.team, event.agent_name)


@dataclass(slots=True)
class AgentTimeline:
    """One agent's recent events sorted by ``(ts, event_id)``, and the ids it has seen (duplicates)."""

    records: list[Record] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)  # event_id -> ts_us, kept >= 24 h (also of dropped records)

    def add(self, rec: Record) -> bool:
        """Insert ``rec`` in its place; False (and nothing changes) when its event id was seen before."""
        if rec[ID] in self.seen:
            return False
        self.seen[rec[ID]] = rec[TS]
        records = self.records
        if not records or rec > records[-1]:
            records.append(rec)
        else:
            bisect.insort(records, rec)
        return True

    def current(self, now_us: int) -> Record | None:
        """The record in force at ``now_us`` (the last with ``ts <= now``), or None: logged out (never seen)."""
        records = self.records
        if not records:
            return None
        if records[-1][TS] <= now_us:
            return records[-1]
        # by ts alone: a sentinel event id would misplace ids that sort after it (one starting with U+10FFFF)
        index = bisect.bisect_right(records, now_us, key=itemgetter(TS)) - 1
        return records[index] if index >= 0 else None

    def intervals(self, now_us: int) -> Iterator[tuple[int, int, Record]]:
        """``(start, end, record)`` of each state interval up to ``now_us`` (the current one ends at now)."""
        records = self.records
        for index, rec in enumerate(records):
            start = rec[TS]
            if start >= now_us:
                return
            end = records[index + 1][TS] if index + 1 < len(records) else now_us
            yield start, min(end, now_us), rec

    def since(self, now_us: int) -> int | None:
        """When the agent's current state began: the first of the latest run of records in that state."""
        records = self.records
        current = self.current(now_us)
        if current is None:
            return None
        index = records.index(current)
        while index > 0 and records[index - 1][STATE] == current[STATE]:
            index -= 1
        return records[index][TS]

    def drop_before(self, before_us: int) -> list[tuple[int, int, Record]]:
        """Drop records whose interval ended before ``before_us`` (the last record always stays); return the
        dropped intervals."""
        records = self.records
        cut = 0
        while cut + 1 < len(records) and records[cut + 1][TS] < before_us:
            cut += 1
        dropped = [(records[i][TS], records[i + 1][TS], records[i]) for i in range(cut)]
        if cut:
            del records[:cut]
        return dropped

    def forget_ids_before(self, before_us: int) -> bool:
        """Forget event ids older than ``before_us`` (the ids of kept records stay); True when any went."""
        kept_ids = {rec[ID] for rec in self.records}
        old = [eid for eid, ts in self.seen.items() if ts < before_us and eid not in kept_ids]
        for eid in old:
            del self.seen[eid]
        return bool(old)

    def to_row(self) -> list[Any]:
        """A msgpack/JSON-friendly row (tuples become lists)."""
        return [[list(rec[:4]) + [list(rec[QUEUES]), rec[TEAM], rec[NAME]] for rec in self.records],
                [[eid, ts] for eid, ts in self.seen.items()]]

    @classmethod
    def from_row(cls, row: list[Any]) -> "AgentTimeline":
        records = [(r[0], r[1], r[2], r[3], tuple(r[4]), r[5], r[6]) for r in row[0]]
        records.sort()
        return cls(records, {eid: ts for eid, ts in row[1]})


def keep_us(kpi: KpiSettings) -> int:
    """How far back (from stream time) a state interval can still matter to a window."""
    rolling = [parse_duration(name) * US for name in kpi.windows if name != "today"]
    longest = max(rolling + [25 * 3600 * US])  # "today" is at most 25 h long (a DST day)
    return longest + kpi.bucket_seconds * US + kpi.allowed_disorder * US + kpi.max_clock_skew * US


class AgentProcessor:
    """The agents of one partition (or of everything, in replay)."""

    def __init__(self, kpi: KpiSettings) -> None:
        self.kpi = kpi
        self.disorder_us = kpi.allowed_disorder * US
        self.keep_us = keep_us(kpi)
        self.agents: dict[str, AgentTimeline] = {}
        self.stream_time = 0  # largest event time seen
        self.first_ts: int | None = None
        self.dirty: set[str] = set()  # agents whose stored state changed since the caller last saved
        # seconds of intervals dropped from memory, per (team, state): only for counters since start
        self.folded: Counter[tuple[str | None, str]] = Counter()

    # -- events ---------------------------------------------------------------------------------------------
    def handle(self, event: Any) -> bool:
        """Add one validated ``agent.state`` event; False when it is a duplicate (same id for this agent)."""
        return self.add(event.agent_id, record_of(event))

    def add(self, agent_id: str, rec: Record) -> bool:
        timeline = self.agents.get(agent_id)
        if timeline is None:
            timeline = self.agents[agent_id] = AgentTimeline()
        if not timeline.add(rec):
            return False
        self._note_time(rec[TS])
        self.dirty.add(agent_id)
        return True

    def _note_time(self, ts: int) -> None:
        if ts > self.stream_time:
            self.stream_time = ts
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts

    # -- state ----------------------------------------------------------------------------------------------
    def restore(self, agent_id: str, timeline: AgentTimeline) -> None:
        """Load a stored agent (recovery): every figure is derived from the timeline, so nothing else to do."""
        self.agents[agent_id] = timeline
        for rec in timeline.records:
            self._note_time(rec[TS])
        self.dirty.discard(agent_id)

    def replace(self, agent_id: str, timeline: AgentTimeline | None) -> None:
        """Put an agent back to its last stored state (or forget it): the worker could not store the new one."""
        self.agents.pop(agent_id, None)
        self.dirty.discard(agent_id)
        if timeline is not None:
            self.restore(agent_id, timeline)

    def prune(self) -> int:
        """Drop what can no longer change a figure (see the module docstring); returns how many agents changed.

        Judged by stream time (event time), so a replay and a live worker drop the same records."""
        horizon = self.stream_time - self.keep_us
        id_horizon = self.stream_time - max(DUPLICATE_MEMORY_US, self.keep_us) - self.disorder_us
        changed = 0
        for agent_id in list(self.agents):
            timeline = self.agents[agent_id]
            dropped = timeline.drop_before(horizon)
            for start, end, rec in dropped:
                if rec[STATE] in _STATE_INDEX:
                    self.folded[(rec[TEAM], rec[STATE])] += end - start
            forgot = timeline.forget_ids_before(id_horizon)
            last = timeline.records[-1] if timeline.records else None
            if last is None or (last[STATE] == LOGGED_OUT and last[TS] < id_horizon):
                del self.agents[agent_id]  # logged out for long: the same as never seen
                self.dirty.add(agent_id)
                changed += 1
            elif dropped or forgot:
                self.dirty.add(agent_id)
                changed += 1
        return changed

    # -- figures --------------------------------------------------------------------------------------------
    def live(self, now_us: int) -> dict[Scope, Counter[str]]:
        """Live counts at ``now_us`` per queue (every queue an agent serves), per team and in total (each agent
        once): ``logged_in``, the four states, and ``away:<reason>``."""
        out: dict[Scope, Counter[str]] = {("total", None): Counter()}
        for timeline in self.agents.values():
            rec = timeline.current(now_us)
            if rec is None or rec[STATE] == LOGGED_OUT:
                continue
            state = rec[STATE]
            keys = ["logged_in", state]
            if state == "away":
                keys.append("away:" + (rec[REASON] or NO_REASON))
            scopes: list[Scope] = [("total", None), ("team", rec[TEAM])]
            scopes += [("queue", queue) for queue in rec[QUEUES]]
            for scope in scopes:
                counts = out.get(scope)
                if counts is None:
                    counts = out[scope] = Counter()
                for key in keys:
                    counts[key] += 1
        return out

    def seconds(self, start_us: int, end_us: int, now_us: int) -> dict[str | None, list[int]]:
        """Microseconds spent in each timed state within ``[start, end)`` per team, counting the part of each
        state interval inside the window and the current state up to ``now_us``."""
        out: dict[str | None, list[int]] = {}
        for timeline in self.agents.values():
            for start, end, rec in timeline.intervals(now_us):
                index = _STATE_INDEX.get(rec[STATE])
                if index is None:
                    continue
                part = min(end, end_us) - max(start, start_us)  # <= 0 for an interval outside the window
                if part > 0:
                    row = out.get(rec[TEAM])
                    if row is None:
                        row = out[rec[TEAM]] = [0] * len(TIMED_STATES)
                    row[index] += part
        return out

    def cumulative(self, now_us: int) -> dict[str | None, list[int]]:
        """Microseconds in each timed state per team since this processor started (folded + kept), up to
        ``now_us``: what the Prometheus counters export."""
        out = self.seconds(0, now_us, now_us)  # no event time is before the epoch (events.md)
        for (team, state), value in self.folded.items():
            row = out.setdefault(team, [0] * len(TIMED_STATES))
            row[_STATE_INDEX[state]] += value
        return out

    def listing(self, now_us: int) -> list[dict[str, Any]]:
        """The logged-in agents for a wallboard configured to show them: name (or nothing that identifies the
        agent), state, reason, team, queues and when the state began. Never the agent id."""
        out: list[dict[str, Any]] = []
        for timeline in self.agents.values():
            rec = timeline.current(now_us)
            if rec is None or rec[STATE] == LOGGED_OUT:
                continue
            since = timeline.since(now_us)
            out.append({
                "agent_name": rec[NAME],
                "state": rec[STATE],
                "reason": (rec[REASON] or NO_REASON) if rec[STATE] == "away" else None,
                "team": rec[TEAM],
                "queues": list(rec[QUEUES]),
                "since_us": since,
            })
        return out
