"""Contract v2's agent side pinned rule by rule (issue 16): agent states, seconds in state, memory, the agents
section and staffing by Erlang C.

Why this file: the mutation run (``bench/mutants.py``, docs/mutation.md) changes one operator or constant of
``cxpulse/core/agents.py``, ``agent_report.py``, ``staffing.py`` and ``erlang.py`` at a time; each test here
holds a rule that no other selected test held, and its docstring names the mutants it kills. Every figure is
worked out by hand from kpis.md ("Agents (v2)", "Staffing (v2)", "Duplicates", "Windows") and events.md
("agent-events") in the comments; Erlang C values come from the textbook formula written out here
(:func:`_erlang_c_textbook`, exact rationals, and :func:`_erlang_c_by_sum`, its rearrangement for large
centres), never from the code under test. The file takes about 2-4 s, most of it the two tests that search up to
10^5 and 10^6 agents (the bounds of the staffing searches).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import datetime, timezone
from fractions import Fraction
from typing import Any

import pytest

from cxpulse.core.agent_report import AgentFigures, figures, merge_agents, section
from cxpulse.core.agents import AgentProcessor, AgentTimeline, Record, keep_us
from cxpulse.core.engine import KpiEngine
from cxpulse.core.erlang import agents_for_service_level, average_speed_of_answer, erlang_b, erlang_c, service_level
from cxpulse.core.staffing import StaffingInputs, agents_required, erlang_service_level, staffing
from cxpulse.models.events import to_us
from cxpulse.settings import KpiSettings

S = 1_000_000  # microseconds per second
NOW = to_us(datetime(2026, 5, 4, 9, 20, tzinfo=timezone.utc))


def _at(hour: int, minute: int, second: int = 0) -> int:
    return to_us(datetime(2026, 5, 4, hour, minute, second, tzinfo=timezone.utc))


def _rec(ts: int, eid: str, state: str, reason: str | None = None, queues: tuple[str, ...] = ("billing",),
         team: str | None = "red", name: str | None = None) -> Record:
    """An ``agent.state`` record as :func:`cxpulse.core.agents.record_of` makes it."""
    return (ts, eid, state, reason, queues, team, name)


def _erlang_c_textbook(servers: int, load: Fraction) -> Fraction:
    """Erlang C as printed in the textbooks: (A^N/N! * N/(N-A)) / (sum_{k<N} A^k/k! + A^N/N! * N/(N-A))."""
    top = load**servers / math.factorial(servers) * Fraction(servers) / (servers - load)
    return top / (sum(load**k / math.factorial(k) for k in range(servers)) + top)


def _erlang_c_by_sum(servers: int, load: float) -> float:
    """The same formula divided by its top term: 1/C = 1 + (N - A)/N * sum_{k<N} (A^k/k!)/(A^N/N!), where the
    ratio is prod_{i=k+1..N} i/A; summed from k = N - 1 down until the terms no longer count. No power or
    factorial is formed, so it works for a million agents."""
    total, term = 0.0, 1.0
    for i in range(servers, 0, -1):
        term *= i / load
        total += term
        if term < 1e-18 * total:
            break
    return 1.0 / (1.0 + (servers - load) / servers * total)


def test_the_rearranged_formula_is_the_textbook_one() -> None:
    """The large-centre reference below is only as good as this: it agrees with the exact textbook value."""
    for servers, load in [(1, Fraction(1, 2)), (3, Fraction(2)), (10, Fraction(8)), (14, Fraction(10))]:
        assert _erlang_c_by_sum(servers, float(load)) == pytest.approx(float(_erlang_c_textbook(servers, load)),
                                                                        rel=1e-12)


# -- one agent's timeline ---------------------------------------------------------------------------------------
def test_the_state_in_force_is_the_latest_event_at_or_before_now() -> None:
    """events.md: an agent is in the state of its latest event (by ts) from that ts on; never seen is logged
    out (None). Records at 10 s, 20 s and 30 s, added out of order: at 10 s - 1 µs none is in force, from 10 s the
    first, from 20 s the second, from 30 s the third. The second's event id starts with U+10FFFF (a valid id):
    the lookup for a time with a later record ahead of it (a live event up to max_clock_skew ahead) used to
    compare against a sentinel id U+10FFFF, which sorts before this id, and returned the first record at 20 s.

    Kills ``AgentTimeline.current``'s ``not`` removed, its empty-timeline ``return`` removed, the fast path
    testing ``records[0]`` or returning ``records[0]``, ``bisect - 1`` -> ``+ 1`` / ``- 0`` and
    ``index >= 0`` -> ``> 0`` / ``>= 1``."""
    timeline = AgentTimeline()
    assert timeline.current(NOW) is None
    first = _rec(10 * S, "a", "available")
    second = _rec(20 * S, "\U0010ffffb", "away", reason="lunch")
    third = _rec(30 * S, "c", "on_contact")
    for rec in (third, first, second):
        assert timeline.add(rec)
    at = [10 * S - 1, 10 * S, 20 * S - 1, 20 * S, 30 * S - 1, 30 * S, 99 * S]
    assert [timeline.current(t) for t in at] == [None, first, first, second, second, third, third]


def test_the_state_began_with_the_first_of_its_latest_run() -> None:
    """``since``: available at 10 s, away at 20 s, available at 30 s and again at 40 s (a change of queues, not
    of state), wrap-up at 50 s. At 45 s the state began at 30 s (not 10 s: the away between ends that run);
    at 25 s at 20 s; at 15 s at 10 s; at 5 s nothing is in force (None). Two available records at the start:
    the run reaches back to the first record (index 0).

    Kills ``AgentTimeline.since``'s ``records[index - 1]`` -> ``records[index - 0]`` (every run would reach the
    first record), its ``return None`` removed (``records.index(None)`` raises) and ``index > 0`` -> ``> 1``."""
    timeline = AgentTimeline()
    for rec in (_rec(10 * S, "e1", "available"), _rec(20 * S, "e2", "away", reason="break"),
                _rec(30 * S, "e3", "available"), _rec(40 * S, "e4", "available", queues=("billing", "sales")),
                _rec(50 * S, "e5", "wrap_up")):
        timeline.add(rec)
    assert [timeline.since(t) for t in (45 * S, 35 * S, 25 * S, 15 * S, 5 * S)] == [30 * S, 30 * S, 20 * S, 10 * S,
                                                                                     None]
    twice = AgentTimeline()
    twice.add(_rec(10 * S, "x1", "available"))
    twice.add(_rec(20 * S, "x2", "available", team="blue"))
    assert twice.since(25 * S) == 10 * S


def test_seconds_count_each_interval_inside_the_window_and_the_current_state_up_to_now() -> None:
    """kpis.md: seconds in each state count only the part of each interval inside the window, the current state
    up to now. Now 09:20; asked for [09:00, 10:00) (a window may be asked past now):

    - A (red): available 09:00, on_contact 09:10, away (lunch) 09:22, an event ahead of now: available
      600 s; on_contact from 09:10 up to now only, 600 s (not to 09:22, and not to the window's end); away none.
    - B (blue): wrap-up at 09:05:00 and logged out 1 µs later: exactly 1 µs of wrap-up; logged out not counted.
    - C: two events at 09:15, ids "a" (team green) then "b" (team amber): the green interval is empty
      ([09:15, 09:15)), so green gets no row at all; amber available 09:15 to now, 300 s.

    Over [09:05:00.000001, 09:10), B's interval ends exactly at the start: no blue row.

    Kills ``AgentTimeline.intervals`` ``min(end, now)`` -> ``max`` and ``AgentProcessor.seconds`` ``part > 0``
    -> ``>= 0`` (a green row of zeros) and ``> 1`` (B's microsecond lost)."""
    proc = AgentProcessor(KpiSettings())
    proc.add("A", _rec(_at(9, 0), "a1", "available"))
    proc.add("A", _rec(_at(9, 10), "a2", "on_contact"))
    proc.add("A", _rec(_at(9, 22), "a3", "away", reason="lunch"))
    proc.add("B", _rec(_at(9, 5), "b1", "wrap_up", team="blue"))
    proc.add("B", _rec(_at(9, 5) + 1, "b2", "logged_out", queues=(), team="blue"))
    proc.add("C", _rec(_at(9, 15), "b", "available", team="amber"))
    proc.add("C", _rec(_at(9, 15), "a", "available", team="green"))
    assert proc.seconds(_at(9, 0), _at(10, 0), NOW) == {
        "red": [600 * S, 600 * S, 0, 0],
        "blue": [0, 0, 1, 0],
        "amber": [300 * S, 0, 0, 0],
    }
    assert proc.seconds(_at(9, 5) + 1, _at(9, 10), NOW) == {"red": [300 * S - 1, 0, 0, 0]}


def test_seconds_since_start_count_from_the_epoch() -> None:
    """An agent available from 1970-01-01T00:00:00Z (the first valid instant): at 10 s, 10 s exactly were spent
    available, and the processor's stream time is 0, the largest event time seen.

    Kills ``AgentProcessor.cumulative`` counting from 1 µs after the epoch and ``AgentProcessor.__init__``
    starting ``stream_time`` at 1 (an event at the epoch would not set it)."""
    proc = AgentProcessor(KpiSettings())
    assert proc.add("A", _rec(0, "e", "available"))
    assert (proc.stream_time, proc.first_ts) == (0, 0)
    assert proc.cumulative(10 * S) == {"red": [10 * S, 0, 0, 0]}


def test_dropping_keeps_an_interval_that_ends_exactly_at_the_limit() -> None:
    """``drop_before(t)`` drops the records whose interval ended *before* t; the last record always stays.
    Records at 10 s, 20 s, 30 s: at t = 20 s the first interval [10 s, 20 s) ends at t, not before: nothing
    goes; at 20 s + 1 µs it goes, reported as (10 s, 20 s); far later only the last record stays.

    Kills ``AgentTimeline.drop_before``'s ``records[cut + 1][TS] < before`` -> ``<=`` / ``records[cut - 1]`` /
    ``records[cut + 0]``, ``cut + 1 < len`` -> ``cut + 0 < len`` (reads past the end) and the dropped
    interval's end read from ``records[i - 1]`` / ``records[i + 0]``."""
    r10, r20, r30 = _rec(10 * S, "a", "available"), _rec(20 * S, "b", "away"), _rec(30 * S, "c", "wrap_up")
    timeline = AgentTimeline()
    for rec in (r10, r20, r30):
        timeline.add(rec)
    assert timeline.drop_before(20 * S) == []
    assert timeline.records == [r10, r20, r30]
    assert timeline.drop_before(20 * S + 1) == [(10 * S, 20 * S, r10)]
    assert timeline.records == [r20, r30]
    assert timeline.drop_before(10**12) == [(20 * S, 30 * S, r20)]
    assert timeline.records == [r30]


def test_event_ids_are_forgotten_only_when_older_and_not_of_a_kept_record() -> None:
    """Records p (5 s), q (10 s), r (20 s); p and q dropped. Forgetting before 10 s: p goes (5 s < 10 s), q stays
    (10 s is not before 10 s), r stays; a second call forgets nothing (False). Forgetting before any time: q
    goes, r stays because its record is kept (a copy of the current state must stay a duplicate).

    Kills ``AgentTimeline.forget_ids_before``'s ``and`` -> ``or``, ``ts < before`` -> ``<=`` and ``not in`` ->
    ``in``."""
    timeline = AgentTimeline()
    for rec in (_rec(5 * S, "p", "available"), _rec(10 * S, "q", "away"), _rec(20 * S, "r", "available")):
        timeline.add(rec)
    assert len(timeline.drop_before(21 * S)) == 2
    assert timeline.forget_ids_before(10 * S) is True
    assert timeline.seen == {"q": 10 * S, "r": 20 * S}
    assert timeline.forget_ids_before(10 * S) is False
    assert timeline.forget_ids_before(10**12) is True
    assert timeline.seen == {"r": 20 * S}


# -- memory: what prune keeps ----------------------------------------------------------------------------------
def test_keep_is_the_longest_window_plus_bucket_disorder_and_skew() -> None:
    """How far back an interval can still matter: the longest rolling window, and never less than 25 h ("today"
    on a DST day), plus a bucket (rounded window starts), the allowed disorder and the clock skew.
    Defaults: 25 h + 60 s + 60 s + 300 s = 90 420 s. Windows 15m and 48h, bucket 60 s, disorder 120 s, skew
    300 s: 172 800 + 60 + 120 + 300 = 173 280 s. Only 15m: still 25 h + 420 s = 90 420 s.

    Kills ``keep_us``' ``name != "today"`` -> ``==``, ``max`` -> ``min``, 25 h -> 24 h, 3600 -> 3599 and each
    ``+`` -> ``-``."""
    assert keep_us(KpiSettings()) == 90_420 * S
    assert keep_us(KpiSettings(windows=("15m", "48h"), allowed_disorder=120)) == 173_280 * S
    assert keep_us(KpiSettings(windows=("15m",), bucket_seconds=60, allowed_disorder=30, max_clock_skew=200)) == (
        90_000 + 60 + 30 + 200) * S


def test_prune_drops_folds_and_forgets_exactly_at_its_horizons() -> None:
    """Default settings: keep K = 90 420 s (see above), disorder 60 s. At stream time T, intervals that ended
    before T - K go (their seconds folded), and ids older than H = T - K - 60 s = T - 90 480 s are forgotten
    (ids stay at least 24 h: K > 24 h). Agents, all team red unless said:

    - A: available at H - 1 µs, wrap-up at H, available at H + 30 s (before T - K = H + 60 s), on_contact at
      T - 100 s. The first two intervals end before T - K: dropped and folded (available 1 µs, wrap-up 30 s);
      the id at H - 1 µs is forgotten, the one at exactly H is not.
    - B (blue): available at H - 100 s, logged out at exactly H: the available interval is folded (100 s); B is
      kept (logged out, but not before H).
    - C (green): on_contact at H - 200 s, logged out at H - 1 µs: folded (200 s - 1 µs), then C is forgotten
      altogether (logged out before H: the same as never seen).
    - D: available at T - 30 h, away (lunch) at T - 29 h: the available hour is folded; D keeps its away record,
      however old (the current state), and its id.
    - E: logged out at T - 26 h, available at T - 10 s: nothing ends before T - K; E stays (only its *last*
      record decides whether it is forgotten).
    - F: available at T (sets the stream time). G: available at H, wrap-up at H + 1 s, on_contact at T - 5 s:
      only G's first interval goes (1 s folded), and no id (the one at H stays).

    Changed: A, B, C, D, G (5); E and F unchanged. Seconds since start, at T, are the same before and after:
    blue is then only folded, 100 s; green only folded, 200 s - 1 µs.

    Kills ``AgentProcessor.prune``'s horizons (``T + K``, ``T + max(...)``, ``+ disorder``, ``max`` -> ``min``:
    24 h instead of K), ``changed = 1`` and its ``+= 1`` mutants, ``dropped or forgot`` -> ``and``, the fold
    of logged-out time instead of worked time, ``records[-1]`` -> ``records[0]`` as the last record, the
    forgetting test's ``or`` -> ``and``, ``and`` -> ``or``, ``==`` -> ``!=`` and ``last[TS] < H`` -> ``<=``;
    and ``AgentProcessor.cumulative`` starting a folded-only team at ``[1] * 4``."""
    kpi = KpiSettings()
    T = NOW + 2 * 86400 * S
    K = 90_420 * S
    H = T - K - 60 * S
    hour = 3600 * S
    events: list[tuple[str, Record]] = [
        ("A", _rec(H - 1, "a0", "available")), ("A", _rec(H, "a1", "wrap_up")),
        ("A", _rec(H + 30 * S, "a2", "available")), ("A", _rec(T - 100 * S, "a3", "on_contact")),
        ("B", _rec(H - 100 * S, "b0", "available", team="blue")),
        ("B", _rec(H, "b1", "logged_out", queues=(), team="blue")),
        ("C", _rec(H - 200 * S, "c0", "on_contact", team="green")),
        ("C", _rec(H - 1, "c1", "logged_out", queues=(), team="green")),
        ("D", _rec(T - 30 * hour, "d0", "available")), ("D", _rec(T - 29 * hour, "d1", "away", reason="lunch")),
        ("E", _rec(T - 26 * hour, "e0", "logged_out", queues=())), ("E", _rec(T - 10 * S, "e1", "available")),
        ("F", _rec(T, "f0", "available")),
        ("G", _rec(H, "g0", "available")), ("G", _rec(H + S, "g1", "wrap_up")),
        ("G", _rec(T - 5 * S, "g2", "on_contact")),
    ]
    proc, full = AgentProcessor(kpi), AgentProcessor(kpi)
    for agent, rec in events:
        assert proc.add(agent, rec) and full.add(agent, rec)
    assert proc.stream_time == T
    proc.dirty.clear()
    assert proc.prune() == 5
    assert proc.dirty == {"A", "B", "C", "D", "G"}
    kept = {agent: [rec[1] for rec in timeline.records] for agent, timeline in proc.agents.items()}
    assert kept == {"A": ["a2", "a3"], "B": ["b1"], "D": ["d1"], "E": ["e0", "e1"], "F": ["f0"],
                    "G": ["g1", "g2"]}
    assert proc.folded == Counter({("red", "available"): 1 + hour + S, ("red", "wrap_up"): 30 * S,
                                   ("blue", "available"): 100 * S, ("green", "on_contact"): 200 * S - 1})
    assert proc.cumulative(T) == full.cumulative(T)
    assert proc.cumulative(T)["blue"] == [100 * S, 0, 0, 0]
    assert proc.cumulative(T)["green"] == [0, 200 * S - 1, 0, 0]
    # duplicates: the id at exactly H, B's logout at H and D's old current state are remembered ...
    assert not proc.add("A", _rec(H, "a1", "wrap_up"))
    assert not proc.add("B", _rec(H, "b1", "logged_out", queues=(), team="blue"))
    assert not proc.add("D", _rec(T - 29 * hour, "d1", "away", reason="lunch"))
    # ... while an id 1 µs older than H, and the forgotten agent C, are not
    assert proc.add("A", _rec(H - 1, "a0", "available"))
    assert proc.add("C", _rec(H - 1, "c1", "logged_out", queues=(), team="green"))


def test_replace_puts_back_the_stored_agent_or_forgets_it() -> None:
    """The worker could not store an agent's new state: ``replace`` puts the stored timeline back (not dirty
    any more), or forgets an agent that was never stored.

    Kills ``AgentProcessor.replace``'s ``timeline is not None`` -> ``is``."""
    proc = AgentProcessor(KpiSettings())
    proc.add("A", _rec(_at(9, 0), "a1", "available"))
    stored = AgentTimeline.from_row(proc.agents["A"].to_row())
    proc.add("A", _rec(_at(9, 5), "a2", "away", reason="break"))
    proc.add("B", _rec(_at(9, 6), "b1", "available"))
    proc.replace("A", stored)
    proc.replace("B", None)
    assert list(proc.agents) == ["A"] and proc.dirty == set()
    assert proc.agents["A"].records == [_rec(_at(9, 0), "a1", "available")]
    assert proc.live(NOW)[("total", None)] == Counter({"logged_in": 1, "available": 1})


# -- the agents section -----------------------------------------------------------------------------------------
def test_the_listing_orders_by_state_then_since_then_name_and_gives_reasons_of_away_only() -> None:
    """At 09:20, the wallboard listing: A (Zed) available since 09:00, B (Amy) available since 09:10, C (no name)
    away without a reason since 09:05, D (Bob) away on a break since 09:05; E logged out at 09:02 and F, whose
    only event (09:22) is ahead of now, are not listed. Order: state, then since (Zed before Amy), then name
    ("" before "Bob"). Reasons only for away, "unspecified" when none was given; seconds in state = now - since.
    Without ``listing=True`` the figures carry no listing and the section no ``listed``. Live: 4 logged in,
    2 available, 2 away, by reason break 1 and unspecified 1.

    Kills ``AgentProcessor.listing``'s ``or`` -> ``and`` and ``continue`` removed (E listed, or F raising),
    ``state == "away"`` -> ``!=`` and ``reason or NO_REASON`` -> ``and``, ``section``'s name key ``or ""`` ->
    ``and`` (None compared with a name), ``figures``' default ``listing=False`` -> ``True`` and ``_live_doc``'s
    reason ``key[5:]`` -> ``key[4:]``."""
    kpi = KpiSettings()
    proc = AgentProcessor(kpi)
    proc.add("A", _rec(_at(9, 0), "a", "available", name="Zed"))
    proc.add("B", _rec(_at(9, 10), "b", "available", name="Amy"))
    proc.add("C", _rec(_at(9, 5), "c", "away"))
    proc.add("D", _rec(_at(9, 5), "d", "away", reason="break", team="blue", name="Bob"))
    proc.add("E", _rec(_at(9, 2), "e", "logged_out", queues=(), name="Eve"))
    proc.add("F", _rec(_at(9, 22), "f", "available", name="Fay"))
    doc = section(kpi, figures(kpi, [proc], [], NOW, listing=True))
    assert doc["live"] == {"logged_in": 4, "available": 2, "on_contact": 0, "wrap_up": 0, "away": 2,
                           "away_by_reason": {"break": 1, "unspecified": 1}}
    listed = doc["listed"]
    rows = [(i["agent_name"], i["state"], i["reason"], i["team"], i["since"], i["seconds_in_state"]) for i in listed]
    assert rows == [
        ("Zed", "available", None, "red", "2026-05-04T09:00:00.000Z", 1200.0),
        ("Amy", "available", None, "red", "2026-05-04T09:10:00.000Z", 600.0),
        (None, "away", "unspecified", "red", "2026-05-04T09:05:00.000Z", 900.0),
        ("Bob", "away", "break", "blue", "2026-05-04T09:05:00.000Z", 900.0),
    ]
    plain = figures(kpi, [proc], [], NOW)
    assert plain.listing is None and "listed" not in section(kpi, plain)


def test_teams_are_sorted_with_no_team_first_and_empty_windows_are_zero() -> None:
    """Teams in name order, the agents without a team first. Team plum's only agent was available 08:30-08:50:
    nothing of it lies in the 15m window [09:05, 09:20), so plum's 15m figures are zeros with a null occupancy
    (zero denominator), while its 1h window [08:20, 09:20) holds 1200 s available (occupancy 0/1200 = 0).

    Kills ``section``'s team sort key ``t or ""`` -> ``and`` (every named team ties; caught unless the set
    happens to iterate in name order, 1 in 720), ``_empty_windows`` starting at ``[1] * 4`` and ``figures``'
    total starting at ``[1] * 4`` or subtracting the teams."""
    kpi = KpiSettings()
    proc = AgentProcessor(kpi)
    for n, team in enumerate(["teal", "red", None, "plum", "green", "blue", "amber"]):
        proc.add(f"A{n}", _rec(_at(8, 30), f"e{n}", "available", team=team))
    proc.add("A3", _rec(_at(8, 50), "out", "logged_out", queues=(), team="plum"))
    doc = section(kpi, figures(kpi, [proc], [], NOW))
    assert [t["team"] for t in doc["teams"]] == [None, "amber", "blue", "green", "plum", "red", "teal"]
    # in total: six agents available 08:30-09:20 and plum 08:30-08:50: 15m 6 * 900 s; 1h 6 * 3000 s + 1200 s
    assert (doc["windows"]["15m"]["available_seconds"], doc["windows"]["1h"]["available_seconds"]) == (5400.0, 19200.0)
    plum = doc["teams"][4]
    assert plum["live"]["logged_in"] == 0
    assert plum["windows"]["15m"] == {"start": "2026-05-04T09:05:00.000Z", "end": "2026-05-04T09:20:00.000Z",
                                      "available_seconds": 0.0, "on_contact_seconds": 0.0, "wrap_up_seconds": 0.0,
                                      "away_seconds": 0.0, "occupancy": None}
    assert (plum["windows"]["1h"]["available_seconds"], plum["windows"]["1h"]["occupancy"]) == (1200.0, 0.0)


def _window_figures(start: int, end: int, values: list[int], contacts: list[int], known: bool,
                    now: int) -> AgentFigures:
    return AgentFigures(now=now, seconds={("total", None): {"15m": [start, end, values]}},
                        contacts={("billing", "voice"): contacts}, agents_known=known)


def test_figures_of_parts_add_up_whichever_comes_first() -> None:
    """Two workers' figures: seconds [150, 250) (1, 2, 3, 4 µs) and [100, 200) (10, 20, 30, 40 µs) add to the
    bounds [100, 250) and 11, 22, 33, 44 µs; the staffing inputs [3 offered, 15m from 150 to 250, 2 handled,
    5 µs] and [4, 100 to 200, 1, 7] add to [7, 100 to 250, 3, 12]; now is the later one (100), and agents are
    known when either part knew them. The same in either order.

    Kills ``AgentFigures.add``'s ``max`` -> ``min`` for now, ``or`` -> ``and`` for known, every index, ``min``/
    ``max`` and ``+`` mutant of the window bounds and of the contact figures."""
    def one() -> AgentFigures:
        return _window_figures(150, 250, [1, 2, 3, 4], [3, 150, 250, 2, 5], False, 100)

    def two() -> AgentFigures:
        return _window_figures(100, 200, [10, 20, 30, 40], [4, 100, 200, 1, 7], True, 50)

    for merged in (one().add(two()), two().add(one())):
        assert merged.now == 100 and merged.agents_known is True
        assert merged.seconds == {("total", None): {"15m": [100, 250, [11, 22, 33, 44]]}}
        assert merged.contacts == {("billing", "voice"): [7, 100, 250, 3, 12]}
        assert merged.listing is None


def test_a_worker_without_agents_knows_none() -> None:
    """The partial says whether the worker's partitions hold any agent: not with an empty processor, yes with
    one agent.

    Kills ``AgentFigures.agents_known`` defaulting to True."""
    kpi = KpiSettings()
    empty = figures(kpi, [AgentProcessor(kpi)], [], NOW)
    assert empty.agents_known is False and empty.to_json()["known"] is False
    proc = AgentProcessor(kpi)
    proc.add("A", _rec(_at(9, 0), "a", "available"))
    assert figures(kpi, [proc], [], NOW).to_json()["known"] is True


def test_merge_of_workers_without_agents_is_no_section() -> None:
    """No worker's partial has an agents entry (none has seen an agent event): no agents section (None).

    Kills ``merge_agents``' early ``return None`` removed and its ``not`` removed."""
    assert merge_agents(KpiSettings(), [{}, {"agents": None}]) is None
    proc = AgentProcessor(KpiSettings())
    proc.add("A", _rec(_at(9, 0), "a", "available"))
    merged = merge_agents(KpiSettings(), [{"agents": figures(KpiSettings(), [proc], [], NOW).to_json()}])
    assert merged is not None and merged["live"]["available"] == 1


def _staffing_figures(contacts: dict[tuple[str, str], list[int]], live: dict[tuple[str, str | None], Counter[str]]
                      ) -> AgentFigures:
    return AgentFigures(now=NOW, live=live, contacts=contacts, agents_known=True)


def test_staffing_takes_t_of_the_busiest_channel_and_ties_go_by_channel_name() -> None:
    """kpis.md: staffing uses "the queue's T" (settings per queue, default per channel: voice 20 s, chat 30 s).
    A queue with several channels takes its busiest channel's settings; on a tie, the first channel by name.
    In the 15m window [09:05, 09:20) (900 s): billing voice 3 offered and chat 1 -> voice, T = 20; sales chat 1 and
    voice 1 (voice listed first) -> chat, T = 30. The queue's figures add over its channels: billing offered 4
    in 900 s = 16 per hour; 2 + 2 handled with 400 s + 200 s of handling -> AHT 150 s.

    Kills ``section``'s busiest-channel sort on the window start instead of the offered count (``[0]`` ->
    ``[1]``) and its tie-break on the queue instead of the channel (``k[1]`` -> ``k[0]``)."""
    start, end = _at(9, 5), _at(9, 20)
    fig = _staffing_figures({
        ("billing", "chat"): [1, start, end, 2, 200 * S],
        ("billing", "voice"): [3, start, end, 2, 400 * S],
        ("sales", "voice"): [1, start, end, 1, 100 * S],
        ("sales", "chat"): [1, start, end, 1, 100 * S],
    }, {})
    queues = {q["queue"]: q["staffing"] for q in section(KpiSettings(), fig)["queues"]}
    assert queues["billing"]["sl_threshold_seconds"] == 20
    assert queues["billing"]["offered_rate_per_hour"] == 16.0 and queues["billing"]["aht_seconds"] == 150.0
    assert queues["sales"]["sl_threshold_seconds"] == 30


def test_a_queue_without_agents_has_none_staffed_and_one_without_contacts_no_requirement() -> None:
    """Queue sales has contacts but no agent serves it: agents_staffed 0 and gap = required - 0. 9 offered in
    900 s with AHT 100 s: A = 9/900 * 100 = 1 Erlang; voice T = 20 s, target 0.8. N = 2: C(2, 1) = (1/2 * 2) /
    (1 + 1 + 1) = 1/3, SL = 1 - 1/3 * exp(-(2 - 1) * 20/100) = 1 - 0.2729 = 0.7271 < 0.8; N = 3: C(3, 1) =
    (1/6 * 3/2) / (1 + 1 + 1/2 + 1/4) = 1/11, SL = 1 - 1/11 * exp(-2 * 0.2) = 1 - 0.0609 = 0.9391 -> 3 required.
    Queue billing has an available agent and no contact: no rate, no AHT, nothing required, 1 staffed.

    Kills ``_staffed`` counting 1 for a queue no agent serves."""
    start, end = _at(9, 5), _at(9, 20)
    fig = _staffing_figures({("sales", "voice"): [9, start, end, 9, 900 * S]},
                            {("queue", "billing"): Counter({"logged_in": 1, "available": 1})})
    queues = {q["queue"]: q["staffing"] for q in section(KpiSettings(), fig)["queues"]}
    assert (queues["sales"]["agents_required"], queues["sales"]["agents_staffed"], queues["sales"]["gap"]) == (3, 0, 3)
    assert queues["sales"]["traffic_erlangs"] == pytest.approx(1.0)
    assert queues["billing"] == {"offered_rate_per_hour": 0.0, "aht_seconds": None, "traffic_erlangs": None,
                                 "sl_threshold_seconds": 20, "sl_target": 0.8, "agents_required": None,
                                 "agents_staffed": 1, "gap": None}


# -- staffing ----------------------------------------------------------------------------------------------------
def test_the_staffing_object_of_a_short_window() -> None:
    """2 offered in a window of 1 s: 7200 per hour; nothing handled: no AHT, so no traffic, no requirement, no
    gap; 3 staffed. Kills ``staffing``'s ``window_seconds > 0`` -> ``> 1``."""
    assert staffing(StaffingInputs(2, 1.0, 0, 0, 3), 20, 0.8) == {
        "offered_rate_per_hour": 7200.0, "aht_seconds": None, "traffic_erlangs": None, "sl_threshold_seconds": 20,
        "sl_target": 0.8, "agents_required": None, "agents_staffed": 3, "gap": None}


def test_an_unstable_queue_answers_nothing_in_time() -> None:
    """SL(N, A) with N <= A is 0 (the queue grows without end): 5 agents for 10 Erlangs.

    Kills ``erlang_service_level``'s early ``return 0.0`` removed (1 - 1 * exp(+5 * 20/180) = -0.117)."""
    assert erlang_service_level(5, 10.0, 180, 20) == 0.0


def test_the_target_is_met_at_exactly_the_service_level() -> None:
    """"SL ... is at least sl_target". 1 offered in 1 s with AHT 0.5 s: A = 0.5 Erlang. With one agent (M/M/1)
    C(1, A) = A = 0.5, and with T = 0 SL = 1 - 0.5 = 0.5: a target of 0.5 is met by 1 agent. (One offered,
    a window of 1 s and an AHT below 1 s are each a valid input, not a reason for null.)

    Kills ``agents_required``'s ``SL < target`` -> ``<=`` and ``offered <= 0``, ``window_seconds <= 0``,
    ``aht_seconds <= 0`` -> ``<= 1``."""
    assert agents_required(1, 1.0, 0.5, 0.0, 0.5) == 1
    assert agents_required(1, 0.0, 0.5, 20.0, 0.5) is None  # a window of no length: no rate


BIG_OFFERED = 199_997  # in 2 s with AHT 1 s: A = 99 998.5 Erlangs, so the search starts at N = 99 999


def test_the_largest_centre_staffing_searches_is_one_hundred_thousand_agents() -> None:
    """A = 99 998.5, T/AHT = 2. From the textbook formula (``_erlang_c_by_sum``): N = 99 999 gives
    SL = 1 - C * exp(-0.5 * 2) with C about 0.998, i.e. about 0.63 < 0.8; N = 100 000 gives SL = 1 - C *
    exp(-1.5 * 2), about 0.95 >= 0.8. So 100 000 agents are required: the bound itself is searched.
    With target 1.0 no N up to the bound gives SL = 1 (C > 0 and exp(-(N - A) * 2) > 1e-16): null. With T = 3600 s
    and AHT 1 s, exp(-0.5 * 3600) is 0 in floating point, so N = 99 999 already gives SL = 1.0 >= 1.0.

    Kills ``MAX_AGENTS`` 100 000 -> 99 999, ``agents > MAX_AGENTS`` -> ``>=``, the ``return None`` past the
    bound removed (the search would go on to about 100 017) and ``SL < target`` -> ``<=`` (99 999 and 100 000
    both give 1.0: the search would pass the bound)."""
    load = BIG_OFFERED / 2.0
    assert load == 99_998.5
    sl_below = 1 - _erlang_c_by_sum(99_999, load) * math.exp(-0.5 * 2)
    sl_at = 1 - _erlang_c_by_sum(100_000, load) * math.exp(-1.5 * 2)
    assert sl_below < 0.8 <= sl_at
    assert agents_required(BIG_OFFERED, 2.0, 1.0, 2.0, 0.8) == 100_000
    assert agents_required(BIG_OFFERED, 2.0, 1.0, 2.0, 1.0) is None
    assert agents_required(BIG_OFFERED, 2.0, 1.0, 3600.0, 1.0) == 99_999


# -- Erlang C ----------------------------------------------------------------------------------------------------
def test_erlang_b_and_c_at_their_edges() -> None:
    """Erlang B with no server blocks every contact (B(0) = 1, the recursion's start) and with no load none
    (B = 0); an overloaded or critically loaded queue makes every contact wait (C = 1: A = N = 3, A = 3 > N = 2).

    Kills ``erlang_b``'s ``servers < 0`` -> ``<= 0`` / ``< 1`` and ``erlang_c``'s ``load >= servers`` -> ``>``
    (the formula at A = N = 3 gives 0.9999999999999998) and its ``return 1.0`` removed."""
    assert erlang_b(0, 2.0) == 1.0
    assert erlang_b(2, 0.0) == 0.0
    assert erlang_b(3, 2.0) == pytest.approx(float(Fraction(4, 19)))  # (8/6) / (1 + 2 + 2 + 8/6)
    assert erlang_c(3, 3.0) == 1.0
    assert erlang_c(2, 3.0) == 1.0


def test_erlang_refuses_impossible_inputs() -> None:
    """Negative servers or load, a load that is not finite, a negative arrival rate, a service rate of 0.

    Kills ``erlang_b``'s ``or`` -> ``and`` and ``not`` removed, ``_load``'s ``or`` -> ``and`` and
    ``service_rate <= 0`` -> ``< 0`` (a division by zero instead)."""
    with pytest.raises(ValueError, match=r"^servers must be >= 0, got -1$"):
        erlang_b(-1, 1.0)
    with pytest.raises(ValueError, match=r"^load must be a finite number >= 0, got -0\.5$"):
        erlang_b(1, -0.5)
    with pytest.raises(ValueError, match=r"^load must be a finite number >= 0, got inf$"):
        erlang_b(1, math.inf)
    with pytest.raises(ValueError, match=r"^need arrival_rate >= 0 and service_rate > 0, got -1\.0, 1\.0$"):
        service_level(-1.0, 1.0, 1, 20)
    with pytest.raises(ValueError, match=r"^need arrival_rate >= 0 and service_rate > 0, got 1\.0, 0\.0$"):
        average_speed_of_answer(1.0, 0.0, 1)


def test_an_overloaded_queue_has_no_service_level_and_endless_waits() -> None:
    """lambda = 2/s on one agent serving 1/s: load 2 > 1, SL 0 and ASA infinite. lambda = 13.573461989816241,
    mu = 0.798438940577426, 17 agents: lambda / mu is exactly 17.0 in floating point (critically loaded, SL 0),
    although 17 * mu - lambda is 1.8e-15, not 0.

    Kills ``service_level``'s early ``return 0.0`` removed (1 - exp(20) instead) and ``load >= servers`` ->
    ``>`` (3.6e-14 instead of 0), and ``average_speed_of_answer``'s ``return math.inf`` removed."""
    assert service_level(2.0, 1.0, 1, 20) == 0.0
    assert 13.573461989816241 / 0.798438940577426 == 17.0
    assert service_level(13.573461989816241, 0.798438940577426, 17, 20) == 0.0
    assert average_speed_of_answer(2.0, 1.0, 1) == math.inf


def test_the_planner_target_must_lie_strictly_between_0_and_1() -> None:
    """Kills ``agents_for_service_level``'s ``0 < target`` -> ``<=`` and ``target < 1`` -> ``<=`` (with at most
    5 agents, a target of 1 would end in "no staffing up to 5 agents" instead)."""
    for target in (0.0, 1.0):
        with pytest.raises(ValueError, match=rf"^target must be in \(0, 1\), got {target}$"):
            agents_for_service_level(1.0, 1.0, 20, target, max_agents=5)


def test_the_planner_meets_the_target_at_exactly_the_service_level_and_searches_up_to_its_bound() -> None:
    """M/M/1 with lambda = 0.5, mu = 1 and T = 0: SL = 1 - C(1, 0.5) = 1 - 0.5 = 0.5, so 1 agent meets 0.5.
    lambda = 1.5, mu = 1 (A = 1.5), T = 0: C(2, 1.5) = (1.125 * 4) / (1 + 1.5 + 4.5) = 9/14, SL = 5/14 < 0.5;
    C(3, 1.5) = (0.5625 * 2) / (1 + 1.5 + 1.125 + 1.125) = 9/38, SL = 29/38 >= 0.5: 3 agents, found within a
    bound of 3; with a bound of 2, none.

    Kills ``agents_for_service_level``'s ``SL < target`` -> ``<=`` and ``servers > max_agents`` -> ``>=``."""
    assert float(1 - _erlang_c_textbook(2, Fraction(3, 2))) == pytest.approx(5 / 14)
    assert float(1 - _erlang_c_textbook(3, Fraction(3, 2))) == pytest.approx(29 / 38)
    assert agents_for_service_level(0.5, 1.0, 0.0, 0.5) == 1
    assert agents_for_service_level(1.5, 1.0, 0.0, 0.5, max_agents=3) == 3
    with pytest.raises(ValueError, match=r"^no staffing up to 2 agents reaches service level 0\.5$"):
        agents_for_service_level(1.5, 1.0, 0.0, 0.5, max_agents=2)


def test_the_planner_searches_up_to_a_million_agents_by_default() -> None:
    """lambda = 999 998.5/s, mu = 1/s, T = 2 s: from the textbook formula N = 999 999 gives SL = 1 - C *
    exp(-0.5 * 2), about 0.63 < 0.8, and N = 1 000 000 gives 1 - C * exp(-1.5 * 2), about 0.95: the default
    bound, a million agents, is itself reached.

    Kills ``agents_for_service_level``'s default ``max_agents`` 1 000 000 -> 999 999."""
    load = 999_998.5
    sl_below = 1 - _erlang_c_by_sum(999_999, load) * math.exp(-0.5 * 2)
    sl_at = 1 - _erlang_c_by_sum(1_000_000, load) * math.exp(-1.5 * 2)
    assert sl_below < 0.8 <= sl_at
    assert agents_for_service_level(load, 1.0, 2.0, 0.8) == 1_000_000


def test_a_merge_at_the_epoch_is_evaluated_at_the_epoch() -> None:
    """A worker's partial at now = 1970-01-01T00:00:00Z with an agent available since then: the merged section
    is evaluated at that instant, so the agent has been in its state for 0 s (not 1 µs).

    Kills ``AgentFigures.now`` defaulting to 1 (the merge starts from ``AgentFigures()`` and takes the largest
    now)."""
    kpi = KpiSettings()
    proc = AgentProcessor(kpi)
    proc.add("A", _rec(0, "e", "available", name="Ann"))
    merged = merge_agents(kpi, [{"agents": figures(kpi, [proc], [], 0, listing=True).to_json()}])
    assert merged is not None
    assert [(i["since"], i["seconds_in_state"]) for i in merged["listed"]] == [("1970-01-01T00:00:00.000Z", 0.0)]


def _contact_events(queue: str, n: int) -> list[dict[str, object]]:
    """``n`` voice contacts of ``queue`` queued at 09:10 + i minutes, answered at once, ended 2 min later with
    100 s talk, 10 s hold and 5 s wrap: 115 s of handling each."""
    out: list[dict[str, object]] = []
    for i in range(n):
        base = {"contact_id": f"{queue}-{i}", "customer_id": f"u{i}", "queue": queue, "channel": "voice"}
        out.append({**base, "event_id": f"q{i}", "type": "contact.queued", "ts": f"2026-05-04T09:1{i}:00Z",
                    "reason": None})
        out.append({**base, "event_id": f"a{i}", "type": "contact.answered", "ts": f"2026-05-04T09:1{i}:00Z",
                    "agent_id": "A"})
        out.append({**base, "event_id": f"e{i}", "type": "contact.ended", "ts": f"2026-05-04T09:1{i + 2}:00Z",
                    "agent_id": "A", "talk_seconds": 100, "hold_seconds": 10, "wrap_seconds": 5, "resolved": True})
    return out


def _agents_section(events: list[dict[str, object]]) -> dict[str, Any]:
    engine = KpiEngine(KpiSettings())
    agent = {"event_id": "s1", "type": "agent.state", "ts": "2026-05-04T09:00:00Z", "agent_id": "A",
             "state": "available", "queues": ["billing"], "team": "red", "reason": None, "agent_name": None}
    for event in [agent, *events]:
        assert engine.process(json.dumps(event))
    doc: dict[str, Any] = engine.snapshot(NOW)["agents"]
    return doc


def test_staffing_leaves_out_unattributed_surveys_but_not_a_queue_named_unknown() -> None:
    """events.md: a survey of a contact the pipeline does not know goes to queue ``unknown``, channel
    ``unknown``; that is no queue anybody staffs, so it brings no staffing entry. A real queue may still be
    called ``unknown`` (any 1..64 characters), on a real channel: it is staffed like any other. Queue
    ``unknown``, voice: 2 offered in the 15m window [09:05, 09:20) = 2/900 * 3600 = 8 per hour; AHT 115 s;
    A = 2/900 * 115 = 0.2556 Erlang; T = 20 s, target 0.8. N = 1: C = A, SL = 1 - 0.2556 * exp(-0.7444 * 20/115)
    = 1 - 0.2556 * 0.8786 = 0.7755 < 0.8; N = 2: C = (A^2/2 * 2/(2 - A)) / (1 + A + A^2/2 * 2/(2 - A)) = 0.03744 /
    1.2930 = 0.02896, SL = 1 - 0.02896 * exp(-1.7444 * 20/115) = 1 - 0.02896 * 0.7383 = 0.9786 -> 2 required; no
    agent serves it: 0 staffed, gap 2.

    Kills ``figures``' choice of keys ``key[1] != UNKNOWN`` -> ``==`` (only the survey key) and ``key[1]`` ->
    ``key[0]`` (the queue ``unknown`` left out); before the keys were restricted to the active ones, the same
    rule was its ``continue`` for the ``unknown`` channel and the window loops' ``!= UNKNOWN`` tests."""
    survey = {"event_id": "v1", "type": "survey.response", "ts": "2026-05-04T09:15:00Z", "contact_id": "ghost",
              "customer_id": "u9", "nps": 9, "csat": None, "comment": None}
    assert [q["queue"] for q in _agents_section([survey])["queues"]] == ["billing"]
    queues = {q["queue"]: q["staffing"] for q in _agents_section([*_contact_events("unknown", 2), survey])["queues"]}
    assert sorted(queues) == ["billing", "unknown"]
    unknown = queues["unknown"]
    assert unknown["offered_rate_per_hour"] == 8.0
    assert (unknown["aht_seconds"], unknown["sl_threshold_seconds"]) == (115.0, 20)
    assert unknown["traffic_erlangs"] == pytest.approx(2 / 900 * 115)
    assert (unknown["agents_required"], unknown["agents_staffed"], unknown["gap"]) == (2, 0, 2)


def test_a_queue_whose_only_event_was_refused_gets_no_staffing_entry() -> None:
    """events.md: a contact has at most one open queue visit; refused events count for nothing. Contact c queued
    in sales at 09:11 arrives first, then c queued in billing at 09:10:30 (30 s late): the sales visit is a
    second open visit and is refused once the allowed disorder has passed (d queued in billing at 09:19). The
    document's queues are billing only, and so are the staffed queues: sales' facts were all retracted. billing:
    2 offered in [09:05, 09:20) = 8 per hour.

    Fails on ``figures`` before commit "staffing lists the active queues only": it listed every key ever
    bucketed, so sales appeared with 0 offered (and ``0 -> 1`` in the window loops' defaults, which only such a
    key reached, showed it with 1)."""
    def queued(eid: str, ts: str, contact: str, queue: str) -> dict[str, object]:
        return {"event_id": eid, "type": "contact.queued", "ts": ts, "contact_id": contact, "customer_id": "u",
                "queue": queue, "channel": "voice", "reason": None}

    engine = KpiEngine(KpiSettings())
    events = [{"event_id": "s1", "type": "agent.state", "ts": "2026-05-04T09:00:00Z", "agent_id": "A",
               "state": "available", "queues": ["billing"], "team": "red", "reason": None, "agent_name": None},
              queued("q2", "2026-05-04T09:11:00Z", "c", "sales"), queued("q1", "2026-05-04T09:10:30Z", "c", "billing"),
              queued("q3", "2026-05-04T09:19:00Z", "d", "billing")]
    for event in events:
        assert engine.process(json.dumps(event))
    engine.finish()
    assert [r.event_id for r in engine.rejections] == ["q2"]
    document = engine.snapshot(NOW)
    assert [q["queue"] for q in document["queues"]] == ["billing"]
    assert [(q["queue"], q["staffing"]["offered_rate_per_hour"]) for q in document["agents"]["queues"]] == [
        ("billing", 8.0)]


def test_textbook_values_of_small_queues() -> None:
    """No arrivals: nobody waits (SL 1 with 3 agents). M/M/1 at lambda = 0.5, mu = 1: C = rho = 0.5 and
    ASA = C / (mu - lambda) = 0.5 / 0.5 = 1 s. Five agents at load exactly 5 (lambda 1, mu 0.2): the wait is
    endless. No agent at all is refused. Staffing: 9 offered in 900 s with AHT 100 s (A = 1 Erlang, T = 20 s,
    target 0.8): 3 required (worked out in the section test above); 1 staffed: gap 3 - 1 = 2. Nothing
    offered, or an AHT of 0: null.

    Kills ``erlang_c``'s ``servers < 1`` -> ``< 0``, ``_load``'s ``arrival_rate < 0`` -> ``<= 0``,
    ``average_speed_of_answer``'s ``load >= servers`` -> ``>`` and ``mu c - lambda`` -> ``+``, ``staffing``'s
    gap ``-`` -> ``+`` and ``agents_required``'s ``offered <= 0`` / ``aht_seconds <= 0`` -> ``< 0``."""
    assert service_level(0.0, 1.0, 3, 20) == 1.0
    assert erlang_c(1, 0.5) == pytest.approx(0.5)
    assert average_speed_of_answer(0.5, 1.0, 1) == pytest.approx(1.0)
    assert average_speed_of_answer(1.0, 0.2, 5) == math.inf
    with pytest.raises(ValueError, match=r"^servers must be >= 1, got 0$"):
        erlang_c(0, 1.0)
    figure = staffing(StaffingInputs(9, 900.0, 9, 900 * S, 1), 20, 0.8)
    assert (figure["agents_required"], figure["agents_staffed"], figure["gap"]) == (3, 1, 2)
    assert agents_required(0, 900.0, 180.0, 20, 0.8) is None
    assert agents_required(10, 900.0, 0.0, 20, 0.8) is None


def test_occupancy_is_handling_time_over_staffed_time() -> None:
    """kpis.md: occupancy = (on_contact + wrap_up seconds) / (available + on_contact + wrap_up seconds); away is
    in neither. One agent in the 15m window [09:05, 09:20): available 09:05-09:10 (300 s), on_contact
    09:10-09:15 (300 s), wrap-up 09:15-09:17 (120 s), away 09:17 to now (180 s): (300 + 120) / (300 + 300 + 120)
    = 420 / 720 = 7/12.

    Kills ``_windows_doc``'s ``+`` -> ``-`` in the staffed time (twice) and in the handling time."""
    kpi = KpiSettings()
    proc = AgentProcessor(kpi)
    for ts, eid, state, reason in [(_at(9, 5), "e1", "available", None), (_at(9, 10), "e2", "on_contact", None),
                                   (_at(9, 15), "e3", "wrap_up", None), (_at(9, 17), "e4", "away", "meeting")]:
        proc.add("A", _rec(ts, eid, state, reason=reason))
    window = section(kpi, figures(kpi, [proc], [], NOW))["windows"]["15m"]
    assert [window[f"{s}_seconds"] for s in ("available", "on_contact", "wrap_up", "away")] == [300.0, 300.0,
                                                                                                 120.0, 180.0]
    assert window["occupancy"] == pytest.approx(7 / 12, rel=1e-15)
