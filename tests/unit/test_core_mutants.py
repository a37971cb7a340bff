"""Hand-computed cases for the mutants ``bench/mutants.py`` found alive after every other unit test.

Why this file: ``make mutants`` changes one operator or constant of ``cxpulse/core`` or ``cxpulse/models`` at a
time and runs the unit tests; each test here fails on the surviving mutant named in its docstring (by its
stable id, see ``docs/mutation.md``) and passes on the real code. Every expected number is written out with
its arithmetic, from kpis.md / events.md or the documented contract of the function under test; none comes
from the oracle. Mutants that no test can tell apart from the real code are argued in
``docs/mutation-equivalent.txt`` instead. The list that ``tests/unit/test_kpi_pinned.py`` covers (final end,
forget(), breach clock, surveys and the lifecycle clock, rejection bytes, restore, NPS/CSAT bounds, abandon at
T, AHT, bucket edge) is not repeated here.

Defaults: voice T = 20 s, S = 5 s, buckets of 60 s.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from cxpulse.core import engine as engine_module
from cxpulse.core import live as live_module
from cxpulse.core import measures as m
from cxpulse.core import processors as processors_module
from cxpulse.core.aggregates import HOUR_US, Aggregates
from cxpulse.core.contact import ContactState
from cxpulse.core.engine import KpiEngine
from cxpulse.core.live import LiveKpis
from cxpulse.core.partials import merge
from cxpulse.core.windows import history_us, window_bounds
from cxpulse.models.events import InvalidEvent, format_ts, parse_any_event, parse_contact_event, to_us
from cxpulse.spill import SpillMap, SpillStore
from cxpulse.settings import KpiSettings
from test_kpi_edges import DAY, MICRO, S, all_of, ev, row, run

US = 1_000_000
BUCKET_US = 60 * US
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def fact(measure: int, at_us: int, value: int = 1, queue: str = "billing", channel: str = "voice") -> tuple[int, int, str, str, int]:
    """A fact as the core makes them, so aggregate tests can feed exact times without a whole contact."""
    return (measure, at_us, queue, channel, value)


def offered_in(agg: Aggregates, start_us: int, end_us: int) -> int:
    """``offered`` of billing/voice in [start, end): the one figure most aggregate tests read."""
    return agg.window(start_us, end_us, [("billing", "voice")])[("billing", "voice")][m.OFFERED]


# -- aggregates -----------------------------------------------------------------------------------------------------
def test_an_event_at_the_epoch_is_counted_and_readable_at_stream_time() -> None:
    """events.md allows ``ts`` from 1970-01-01T00:00:00Z. One ``queued`` there; the document at stream time (0)
    must be readable and count it in ``all`` (end = stream time + 1 µs), not yet in ``15m`` ([start, 0)).

    Kills ``core/aggregates.py::Aggregates.__init__`` ``now_us=0 -> 1``: the aggregates would start 1 µs ahead
    of the stream, and ``snapshot()`` at stream time 0 raises "before the newest event time"."""
    engine, doc = run([ev("queued", "q1", EPOCH)], finish=False)
    assert engine.stream_time == 0
    assert all_of(doc)["offered"] == 1  # [0, 0 + 1 µs) holds the queued at 0
    assert row(doc)["windows"]["15m"]["offered"] == 0  # [.., 0) does not
    assert row(doc)["live"] == {"waiting": 1, "longest_wait_seconds": 0.0, "awaiting_follow_up": 0, "oldest_awaiting_seconds": 0.0}


def test_a_visit_waiting_exactly_t_is_not_yet_a_breach() -> None:
    """kpis.md: a breach is a wait that *exceeds* T. c1 queued 10:00:00 and still waiting; c2 queued 10:00:01;
    c3 queued 10:00:20 makes the stream time 10:00:20, when c1 has waited exactly T = 20 s: 0 breaches, 3
    offered in ``all`` [10:00:00, 10:00:20.000001). 1 µs later (c4 queued 10:00:20.000001) c1's breach counts.

    Kills ``Aggregates.advance`` ``heap[0][0] < now -> <=`` (c1's breach, due at exactly 10:00:20, would join
    its bucket with c2's offered, which is due before, and count at 10:00:20)."""
    events = [ev("queued", "q1", DAY, "c1"), ev("queued", "q2", DAY + S, "c2"), ev("queued", "q3", DAY + 20 * S, "c3")]
    _, doc = run(events, finish=False)
    assert (all_of(doc)["offered"], all_of(doc)["sla_breaches"]) == (3, 0)
    _, doc = run(events + [ev("queued", "q4", DAY + 20 * S + MICRO, "c4")], finish=False)
    assert (all_of(doc)["offered"], all_of(doc)["sla_breaches"]) == (4, 1)


def test_a_waiting_visit_breaches_in_the_window_that_starts_at_its_deadline() -> None:
    """kpis.md: a breach counts at queued + T. c1 queued 09:59:40 still waits at 10:15:00: its deadline
    09:59:40 + 20 s = 10:00:00 is exactly the start of the 15m window [10:00:00, 10:15:00): 1 breach there.

    Kills ``Aggregates.window`` ``start_us <= at`` -> ``<`` for the deadlines of waiting visits."""
    _, doc = run([ev("queued", "q1", DAY - 20 * S)], now=DAY + timedelta(minutes=15), finish=False)
    window = row(doc)["windows"]["15m"]
    assert (window["start"], window["sla_breaches"], window["offered"]) == ("2026-05-04T10:00:00.000Z", 1, 0)


def test_open_breaches_count_only_before_the_window_end() -> None:
    """A window ending before now counts a waiting visit's breach only when its deadline is before the window's
    end: deadline 10:05:00, now 10:10:00; [10:00:00, 10:05:00) -> 0, [10:00:00, 10:06:00) -> 1.

    Kills ``Aggregates.window`` ``min(end_us, now) -> max``."""
    key = ("billing", "voice")
    agg = Aggregates(BUCKET_US, now_us=T0 + 600 * US, open_breaches={key: {"c1": T0 + 300 * US}})
    agg.ensure_key(key)
    assert agg.window(T0, T0 + 300 * US, [key])[key][m.SLA_BREACHES] == 0
    assert agg.window(T0, T0 + 360 * US, [key])[key][m.SLA_BREACHES] == 1


def test_a_contact_at_the_epoch_is_forgotten_after_the_retention() -> None:
    """c1 queued and abandoned at 1970-01-01T00:00:00Z (its last event time is 0). With ``contact_retention``
    31 days (2 678 400 s), ``forget(now)`` drops contacts whose last event is before now - 2 678 400 000 000 µs:
    at now = that + 1 µs, 0 < 1 -> c1 goes; at now = that, 0 < 0 is false -> c1 stays.

    Kills ``ContactState.__init__`` ``last_ts = 0 -> 1`` (a contact never later than the epoch would look 1 µs
    younger than it is)."""
    retention_us = 31 * 86_400 * US
    engine, _ = run([ev("queued", "q1", EPOCH), ev("abandoned", "x1", EPOCH)], KpiSettings(), finish=False)
    assert engine.contacts.forget(retention_us) == []
    assert engine.contacts.forget(retention_us + 1) == ["c1"]


def test_an_impossible_event_keeps_its_bytes_until_refused_after_exactly_the_allowance() -> None:
    """events.md: an impossible event goes to the DLQ with its original bytes once the allowed disorder (60 s)
    has passed. c1: queued q1 at 10:00:00, then ``ended`` e1 at 10:00:50 with no answer (impossible unless an
    answer arrives). c9 queued at 10:01:50 makes the lifecycle clock e1 + 60 s exactly: the allowance has not
    *passed* (a missing answer may still come), so nothing is refused, q1's bytes (older than 10:00:50) may go,
    e1's must stay. c9 abandoned at 10:03:20: e1 is refused now, with its very bytes.

    Kills ``ContactState.settle`` ``rec_ts < horizon -> <=`` (e1 refused at exactly 60 s),
    ``ContactState.forget_bytes`` ``rec_ts < horizon -> <=`` (e1's bytes dropped at exactly 60 s) and its
    ``not`` removed (all pending bytes dropped as soon as one is)."""
    engine = KpiEngine(KpiSettings())
    e1 = orjson.dumps(ev("ended", "e1", DAY + 50 * S))
    for raw in (orjson.dumps(ev("queued", "q1", DAY)), e1, orjson.dumps(ev("queued", "q9", DAY + 110 * S, "c9"))):
        assert engine.process(raw, "contact-events")
    assert engine.rejections == []
    engine.process(orjson.dumps(ev("abandoned", "x9", DAY + 200 * S, "c9")), "contact-events")
    assert [(r.kind, r.event_id, r.raw) for r in engine.rejections] == [("lifecycle", "e1", e1)]


def test_two_identical_surveys_move_together_from_unknown_to_their_queue() -> None:
    """c1's two surveys (s1, s2: both nps 9 at 10:00:05) arrive before its queued (10:00:00, within the allowed
    disorder): first both count on unknown/unknown, then, once the queued arrives, both on billing/voice and
    none on unknown (kpis.md: the queue of the latest queued not after the survey). The two surveys give two
    identical facts, so the change is applied through the counted (multiset) difference.

    Kills ``_diff`` retracting the counted difference with sign ``-0`` instead of ``-1`` (the unknown row would
    keep 2 promoters)."""
    events = [ev("survey", "s1", DAY + 5 * S, nps=9), ev("survey", "s2", DAY + 5 * S, nps=9),
              ev("queued", "q1", DAY), ev("abandoned", "x1", DAY + 10 * S)]
    _, doc = run(events)
    assert [(r["queue"], r["channel"]) for r in doc["queues"]] == [("billing", "voice")]
    assert (all_of(doc)["promoters"], all_of(doc)["nps"]) == (2, 100.0)


def test_apply_without_a_sign_adds() -> None:
    """``Aggregates.apply(facts)`` adds (sign +1 by default), like ``apply(facts, 1)``.

    Kills ``Aggregates.apply`` default ``sign=1 -> 0`` (every default call would add nothing)."""
    agg = Aggregates(BUCKET_US, now_us=10 * BUCKET_US)
    agg.apply([fact(m.OFFERED, 3 * BUCKET_US), fact(m.OFFERED, 3 * BUCKET_US + 1)])
    assert offered_in(agg, 0, 10 * BUCKET_US) == 2  # 1 + 1, both before now


def test_the_observer_sees_a_future_fact_once() -> None:
    """A fact due after ``now`` (a breach at queued + T, a closing at t0 + F) is observed when it is applied,
    and not again when ``advance`` moves it into its bucket: the Prometheus histograms count it once.

    Kills ``Aggregates._to_bucket`` / ``Aggregates.advance`` re-applying due facts with ``observe=True``."""
    seen: list[tuple[list[Any], int]] = []
    agg = Aggregates(BUCKET_US, now_us=0, observer=lambda facts, sign: seen.append((list(facts), sign)))
    breach = fact(m.SLA_BREACHES, 5 * BUCKET_US)
    agg.apply([breach], 1)
    agg.advance(6 * BUCKET_US)  # 5 min < 6 min: the breach joins its bucket now
    assert seen == [([breach], 1)]
    counts = agg.window(0, 6 * BUCKET_US)[("billing", "voice")]
    assert counts[m.SLA_BREACHES] == 1
    # a fact at exactly now waits beside the heap (at_now) and joins its bucket at the next advance: observed once
    offered = fact(m.OFFERED, 6 * BUCKET_US)
    agg.apply([offered], 1)
    agg.advance(7 * BUCKET_US)
    assert seen == [([breach], 1), ([offered], 1)]
    assert offered_in(agg, 0, 7 * BUCKET_US) == 1


def test_time_never_goes_back() -> None:
    """``advance`` to an earlier moment is ignored: a later ``window`` up to the latest now still works and a
    fact between the two moments still goes straight to its bucket.

    Kills ``Aggregates.advance`` with its early ``return`` removed (now would move back to 2 min, the window
    up to 5 min would raise, and the fact at 3 min would wait in the future)."""
    agg = Aggregates(BUCKET_US)
    agg.advance(5 * BUCKET_US)
    agg.advance(2 * BUCKET_US)
    assert agg.now == 5 * BUCKET_US
    agg.apply([fact(m.OFFERED, 3 * BUCKET_US)], 1)
    assert offered_in(agg, 0, 5 * BUCKET_US) == 1  # 3 min lies in [0, 5 min)


def test_prune_forgets_exactly_the_buckets_that_end_before_the_limit() -> None:
    """``prune(before)`` drops a bucket when it ends at or before ``before`` (start + 60 s <= before) and keeps
    the one that ends after it; an hour of counts goes once all its buckets are gone.

    Facts at minutes 0, 1, 2 and 61 of hour 0 (buckets [0,1), [1,2), [2,3), [61,62) min); prune(2 min):
    bucket 0 ends at 1 min <= 2 -> gone, bucket 1 ends at 2 min <= 2 -> gone, bucket 2 ends at 3 min -> kept.
    The hour [0, 60 min) still has bucket 2, so it stays. Then prune(60 min): bucket 2 gone (3 <= 60), hour 0's
    last bucket [59, 60) ends at 60 <= 60 -> the hour goes; bucket 61 (ends 62) and hour 1 stay.

    Kills ``Aggregates.prune`` ``before - bucket -> before + bucket`` (bucket 2 dropped too), ``start <= limit
    -> start < limit`` (bucket 1 kept) ``hour + 1 h - bucket <= limit -> <`` (hour 0 kept at 60 min) and its ``+``/``-`` swaps."""
    agg = Aggregates(BUCKET_US, now_us=2 * HOUR_US)
    key = ("billing", "voice")
    agg.apply([fact(m.OFFERED, minute * BUCKET_US) for minute in (0, 1, 2, 61)], 1)
    agg.prune(2 * BUCKET_US)
    assert sorted(agg.buckets[key]) == [2 * BUCKET_US, 61 * BUCKET_US]
    assert sorted(agg.hours[key]) == [0, HOUR_US]
    agg.prune(60 * BUCKET_US)
    assert sorted(agg.buckets[key]) == [61 * BUCKET_US]
    assert sorted(agg.hours[key]) == [HOUR_US]
    assert offered_in(agg, 61 * BUCKET_US, 2 * HOUR_US) == 1


def test_a_window_ending_before_now_counts_only_facts_before_its_end() -> None:
    """``window(start, end)`` is [start, end) also when ``end`` is before ``now`` and not on an hour: facts in
    [end, now) are not in it. Facts at 00:30, 01:10 and 01:50; now 02:00; window [00:00, 01:20) -> whole hour
    [00:00, 01:00) holds 00:30 (1), edge [01:00, 01:20) holds 01:10 (1): 2, not 3.

    Kills ``Aggregates.window`` ``end_hour = end - end % 1 h -> end + end % 1 h`` (hour [01:00, 02:00) would be
    added whole, with 01:50 in it)."""
    agg = Aggregates(BUCKET_US, now_us=2 * HOUR_US)
    agg.apply([fact(m.OFFERED, minute * BUCKET_US) for minute in (30, 70, 110)], 1)
    assert offered_in(agg, 0, 80 * BUCKET_US) == 2


def test_a_short_window_adds_no_whole_hour() -> None:
    """A window with no whole hour inside sums only its buckets. Facts at 00:10 (epoch day) and 04:50; now
    05:00; the 15 min window [04:45, 05:00) holds 04:50 only: 1.

    Kills ``Aggregates.window`` ``whole = range(0) -> range(1)`` (hour 0, with 00:10 in it, would be added)."""
    agg = Aggregates(BUCKET_US, now_us=5 * HOUR_US)
    agg.apply([fact(m.OFFERED, 10 * BUCKET_US), fact(m.OFFERED, 290 * BUCKET_US)], 1)
    assert offered_in(agg, 285 * BUCKET_US, 300 * BUCKET_US) == 1


# -- windows --------------------------------------------------------------------------------------------------------
def test_rolling_window_start_rounds_down_and_covers_the_whole_length() -> None:
    """kpis.md: a rolling window's start may be rounded to the bucket size, and the window is [start, now). Rounded
    *down*, so it always covers the full length: with now = E + 15 min - 1 µs (E a bucket edge), now - 15 min =
    E - 1 µs, which rounds down to E - 60 s; an event at exactly now - 15 min is inside.

    Kills ``core/windows.py::window_bounds`` ``* 1_000_000 -> * 999_999`` (the window would be 900 µs short:
    start E + 899 µs rounds to E, and the event at E - 1 µs falls out)."""
    edge = to_us(DAY)  # 10:00:00, a bucket edge
    now = edge + 15 * 60 * US - 1
    assert window_bounds("15m", now, "UTC", BUCKET_US) == (edge - BUCKET_US, now)
    # the same through the document: queued at E - 1 µs = now - 15 min
    at = DAY - MICRO
    _, doc = run([ev("queued", "q1", at), ev("abandoned", "x1", at + 2 * S)], now=DAY + timedelta(minutes=15) - MICRO)
    assert row(doc)["windows"]["15m"]["offered"] == 1
    assert row(doc)["windows"]["15m"]["start"] == "2026-05-04T09:59:00.000Z"


# -- engine ---------------------------------------------------------------------------------------------------------
def test_process_says_whether_the_event_was_accepted() -> None:
    """``KpiEngine.process`` returns True for an accepted event, False for an invalid one (recorded as a
    rejection with its bytes) and for a duplicate (counted in health).

    Kills ``KpiEngine.process`` ``return False -> return True`` after an invalid event, ``KpiEngine._reject``
    counting ``invalid`` / ``reasons`` by ``-= 1`` or ``+= 0``, and ``_as_bytes`` losing a str's bytes (its
    early return removed)."""
    engine = KpiEngine(KpiSettings())
    assert engine.process(ev("queued", "q1", DAY)) is True
    assert engine.process(b"{not json") is False
    assert engine.process(ev("queued", "q1", DAY)) is False  # same contact, same event_id
    assert (engine.health.processed, engine.health.duplicates, dict(engine.health.invalid)) == (1, 1, {"not_json": 1})
    assert sum(engine.health.reasons.values()) == 1  # one reason recorded for the one invalid event
    assert engine.rejections[0].raw == b"{not json"
    assert engine.process("{also not json") is False  # a str keeps its bytes too (UTF-8)
    assert engine.rejections[1].raw == b"{also not json"


def test_a_replay_engine_publishes_no_breach_unless_asked() -> None:
    """``KpiEngine()`` (replay) counts a breach but hands none out for topic ``sla-breaches``; with
    ``publish_breaches=True`` the same waiting contact is handed out once. Queued 10:00:00, still waiting at
    10:00:21 (T = 20 s): breached at 10:00:20.

    Kills ``KpiEngine.__init__`` default ``publish_breaches=False -> True``."""
    now = to_us(DAY + 21 * S)
    replay = KpiEngine(KpiSettings())
    replay.process(ev("queued", "q1", DAY))
    assert replay.due_breaches(now) == []
    assert all_of(replay.snapshot(now, include_all=True))["sla_breaches"] == 1
    live = KpiEngine(KpiSettings(), publish_breaches=True)
    live.process(ev("queued", "q1", DAY))
    assert [(b.queued_event_id, b.breached_at_us) for b in live.due_breaches(now)] == [("q1", to_us(DAY + 20 * S))]


def test_finish_leaves_the_lifecycle_clock_where_it_was() -> None:
    """``finish()`` moves the lifecycle clock past the allowance only while it settles: afterwards it is the
    newest contact event's time again (10:00:30), so a replay can go on. An ``answered`` with no queued is
    rejected by ``finish()`` (its disorder allowance is waived at the end).

    Kills ``KpiEngine.finish`` restoring the clock with ``+=``, ``disorder - 1`` or ``disorder + 0``."""
    engine = KpiEngine(KpiSettings())
    engine.process(ev("answered", "a1", DAY + 30 * S))
    assert engine.contacts.stream_time == to_us(DAY + 30 * S)
    engine.finish()
    assert engine.contacts.stream_time == to_us(DAY + 30 * S)
    assert [r.event_id for r in engine.rejections] == ["a1"]


def _history() -> list[dict[str, Any]]:
    """Ten minutes of a small centre, in order, with what eviction must survive: a contact settled long before
    its survey arrives, a duplicate re-sent after its contact was packed away, a repeat contact of the same
    customer, a transfer."""
    m0 = DAY
    return [
        ev("queued", "q1", m0, "c1", reason="billing"), ev("answered", "a1", m0 + 10 * S, "c1"),
        ev("ended", "e1", m0 + 70 * S, "c1", resolved=True),
        ev("queued", "q2", m0 + 80 * S, "c2", customer="u2"), ev("abandoned", "x2", m0 + 83 * S, "c2", customer="u2"),
        ev("queued", "q3", m0 + 90 * S, "c3", customer="u3"), ev("answered", "a3", m0 + 95 * S, "c3", customer="u3"),
        ev("ended", "e3", m0 + 150 * S, "c3", customer="u3", resolved=False, transferred=True),
        ev("queued", "q3b", m0 + 150 * S, "c3", customer="u3", queue="tech"),
        ev("answered", "a3b", m0 + 180 * S, "c3", customer="u3", queue="tech"),
        ev("ended", "e3b", m0 + 240 * S, "c3", customer="u3", queue="tech", resolved=True),
        ev("queued", "q4", m0 + 300 * S, "c4", reason="billing"),  # u1 again: a repeat of c1
        ev("answered", "a4", m0 + 330 * S, "c4"),
        ev("queued", "q1", m0, "c1", reason="billing"),  # c1's queued re-sent, c1 long settled: a duplicate
        ev("survey", "s1", m0 + 400 * S, "c1", nps=9, csat=5),  # c1 settled and packed: still billing/voice
        ev("ended", "e4", m0 + 420 * S, "c4", resolved=True),
        ev("queued", "q5", m0 + 600 * S, "c5", customer="u5"),
    ]


@pytest.mark.parametrize("on_disk", [False, True], ids=["in-memory", "spilled"])
@pytest.mark.parametrize("every", [1, 3])
@pytest.mark.parametrize("recent", [0, 1], ids=["none-kept", "one-kept"])
def test_packing_settled_contacts_away_changes_no_figure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                         every: int, on_disk: bool, recent: int) -> None:
    """A replay packs settled contacts out of memory every ``EVICT_EVERY`` (4096) events, but the most recently
    settled ``RECENT_CONTACTS`` (2048); the unit histories are far shorter, so here it packs every ``every`` events
    and keeps ``recent`` (0 or 1) of them. The document must be the one without packing, and the
    figures the hand-computed ones: offered 5 billing + 1 tech, the duplicate q1 counted once (1 duplicate),
    c1's survey (after c1 was packed) on billing/voice (1 promoter, CSAT 100), c4 a repeat of c1 (reason billing,
    within F = 1 h), handled 4 (e1, e3, e3b, e4).

    Kills mutants of ``ContactProcessor.evict``/``_load`` and of the packing that lose or alter a packed contact
    (its dedup ids, its queued for attribution, its FCR summary), and of the customer side's packing beyond
    the replay's ``RECENT_CUSTOMERS`` (set to 1 here). ``spilled``: packed into the store on disk that ``cxpulse replay``
    uses (``cxpulse/spill.py``), read back from it."""
    kpi = KpiSettings(fcr_window="1h")
    monkeypatch.setattr(engine_module, "EVICT_EVERY", 10**9)
    plain = KpiEngine(kpi)
    for event in _history():
        plain.process(event)
    expected = plain.snapshot(include_all=True)
    monkeypatch.setattr(engine_module, "EVICT_EVERY", every)
    monkeypatch.setattr(engine_module, "RECENT_CONTACTS", recent)
    monkeypatch.setattr(engine_module, "RECENT_CUSTOMERS", 1)  # more than 2 customers: the rest packed
    store = SpillStore(tmp_path) if on_disk else None
    packed = KpiEngine(kpi, spill=store.map if store is not None else None)
    for event in _history():
        packed.process(event)
    assert packed.contacts.settled, "no contact was packed away: the test would prove nothing"
    assert len(packed.contacts.lingering) == recent, "the replay keeps its most recent settled contacts as objects"
    assert packed.customers.packed, "no customer was packed away: the test would prove nothing"
    if store is not None:
        assert isinstance(packed.contacts.settled, SpillMap) and isinstance(packed.customers.packed, SpillMap)
        assert list(store.root.iterdir()), "nothing went to disk"
    doc = packed.snapshot(include_all=True)
    if store is not None:
        store.close()
        assert not store.root.exists()
    assert doc == expected
    assert packed.health.duplicates == 1
    billing, tech = all_of(doc), all_of(doc, "tech")
    assert (billing["offered"], tech["offered"]) == (5, 1)
    assert (billing["promoters"], billing["csat"]) == (1, 100.0)
    assert billing["repeat_contacts"] == 1
    assert billing["handled"] + tech["handled"] == 4


def test_eviction_reports_what_it_packed_and_keeps_the_most_recent_customers(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the history (nothing packed yet, nothing left to save): ``ContactProcessor.evict()`` packs the
    settled contacts and returns how many; ``CustomerProcessor.evict()`` with the replay's ``RECENT_CUSTOMERS`` = 1 packs all
    customers but the most recently changed one (u5, whose c5 came last) and returns how many (4 customers -> 3).

    Kills ``evict`` counting with ``moved = 1`` / ``-= 1`` / ``+= 0``, ``CustomerProcessor.evict``
    ``popitem(last=False) -> True`` (the newest packed instead of the oldest) and its loop bound mutants."""
    monkeypatch.setattr(engine_module, "EVICT_EVERY", 10**9)
    monkeypatch.setattr(engine_module, "RECENT_CUSTOMERS", 1)
    engine = KpiEngine(KpiSettings(fcr_window="1h"))
    for event in _history():
        engine.process(event)
    engine.contacts.dirty.clear()
    engine.customers.dirty.clear()
    moved = engine.contacts.evict()
    assert moved == len(engine.contacts.settled) > 0
    assert engine.customers.evict() == 3
    assert list(engine.customers.customers) == ["u5"]
    assert sorted(engine.customers.packed) == ["u1", "u2", "u3"]


# -- live ----------------------------------------------------------------------------------------------------------
class Clock:
    """A wall clock in microseconds that moves only when the test sets it."""

    def __init__(self, now_us: int) -> None:
        self.now_us = now_us

    def __call__(self) -> int:
        return self.now_us


T0 = to_us(DAY)


def contact_event(kind: str, eid: str, at_us: int, contact: str = "c1", **extra: Any) -> dict[str, Any]:
    """``ev`` at an exact microsecond (live tests count in µs from T0)."""
    return ev(kind, eid, datetime.fromtimestamp(at_us / US, tz=timezone.utc), contact, **extra) | {"ts": format_ts(at_us)}


def feed(live: LiveKpis, partition: int, event: dict[str, Any], offset: int = 0, topic: str = "contact-events") -> bool:
    """Hand one event to the live engine as the Faust agent does (validated model plus its original bytes)."""
    raw = orjson.dumps(event)
    return live.handle(topic, partition, parse_any_event(raw), raw, offset)


def test_the_default_wall_clock_is_in_microseconds() -> None:
    """``live.now_us()`` is the wall clock in µs: between two readings of ``time.time_ns() // 1000``.

    Kills ``now_us`` ``// 1000 -> // 999`` (a clock 0.1 % fast: about 1.8e12 µs ahead today)."""
    before = time.time_ns() // 1000
    reading = live_module.now_us()
    after = time.time_ns() // 1000
    assert before <= reading <= after


@pytest.mark.parametrize(("idle_us", "wall"), [(499_999, False), (500_000, True)])
def test_the_breach_clock_takes_the_wall_clock_after_half_a_second_idle(idle_us: int, wall: bool) -> None:
    """A caught-up partition idle for 0.5 s (500 000 µs, written out here, not read from ``IDLE_US``) judges
    breaches by the wall clock; 1 µs less and it is still stream time + idle. c1 queued at T0 read at
    W = T0 + 1 h: at W + 499 999 µs the clock is T0 + 499 999 µs; at W + 500 000 µs it is W + 500 000 µs.

    Kills ``IDLE_US = 500_000 -> 499_999`` (the pinned test reads the constant, so it moves with it)."""
    wall_us = T0 + HOUR_US
    live = LiveKpis(KpiSettings(), clock=Clock(wall_us))
    assert feed(live, 0, contact_event("queued", "q1", T0))
    expected = wall_us + idle_us if wall else T0 + idle_us
    assert live.breach_clock(0, wall_us + idle_us, lambda p: True) == expected


def test_live_health_counts_per_topic() -> None:
    """Per source topic: processed, duplicates, and invalid by kind. Two contact events and a duplicate of the
    first; a survey; an ``answered`` of c2 with no queued, rejected once the lifecycle clock is 60 s past it
    (``allowed_disorder``), which q3 at 10:02:00 makes it: contact-events processed 4 (q1, x1, a2, q3),
    duplicates 1, invalid lifecycle 1; survey-responses processed 1. A fresh topic starts at 0. The newest event
    time is 10:02:00 and the last processing time is the clock's.

    Kills ``TopicHealth`` defaults ``0 -> 1``, ``LiveKpis.handle`` ``processed += 1`` / ``duplicates += 1``
    mutants, ``note_invalid`` ``+= 1`` mutants, ``LiveKpis.settle`` taking ``source[1]`` (the partition) as
    the topic, and ``LiveKpis.__init__`` starting ``last_event_ts_us`` / ``last_processed_wall_us`` at 1."""
    clock = Clock(T0 + HOUR_US)
    live = LiveKpis(KpiSettings(), clock=clock)
    assert (live.last_event_ts_us, live.last_processed_wall_us) == (0, 0)
    assert (live.topic_health("x").processed, live.topic_health("x").duplicates) == (0, 0)
    assert feed(live, 0, contact_event("queued", "q1", T0), 0)
    assert feed(live, 0, contact_event("abandoned", "x1", T0 + 2 * US), 1)
    assert not feed(live, 0, contact_event("queued", "q1", T0), 2)
    assert feed(live, 0, contact_event("answered", "a2", T0 + 10 * US, "c2"), 3)
    survey = {"event_id": "s1", "type": "survey.response", "ts": format_ts(T0 + 5 * US), "contact_id": "c1",
              "customer_id": "u1", "nps": 9}
    assert feed(live, 0, survey, 0, "survey-responses")
    assert live.settle(0) == []  # stream time 10:00:10: a2 may still get its queued
    clock.now_us += 1
    assert feed(live, 0, contact_event("queued", "q3", T0 + 120 * US, "c3"), 4)
    assert [r.event_id for r in live.settle(0)] == ["a2"]  # 10:00:10 < 10:02:00 - 60 s
    health = live.topic_health("contact-events")
    assert (health.processed, health.duplicates, dict(health.invalid)) == (4, 1, {"lifecycle": 1})
    assert live.topic_health("survey-responses").processed == 1
    assert (live.last_event_ts_us, live.last_processed_wall_us) == (T0 + 120 * US, T0 + HOUR_US + 1)


def test_a_rebuild_without_a_table_loader_keeps_settled_contacts() -> None:
    """A worker rebuilt from its table with no loader to read evicted contacts back (``loader_for`` None) must
    keep every restored contact in memory: c1 (queued 10:00:00, abandoned 10:00:02) is settled once c9 at
    10:03:20 moved the clock past the 60 s allowance; after the rebuild, c1's abandon re-delivered is still a
    duplicate (kpis.md: duplicates remembered at least 24 h), and offered stays 2.

    Kills ``LiveKpis.rebuild_contacts`` ``loader_for is not None -> is`` (settled contacts dropped with no
    packed copy: the re-delivered abandon would count as a new event)."""
    clock = Clock(T0 + HOUR_US)
    first = LiveKpis(KpiSettings(), clock=clock)
    abandon = contact_event("abandoned", "x1", T0 + 2 * US)
    for offset, event in enumerate([contact_event("queued", "q1", T0), abandon,
                                    contact_event("queued", "q9", T0 + 200 * US, "c9")]):
        assert feed(first, 0, event, offset)
    first.settle(0)
    stored = [(cid, 0, state) for cid, state in first.contacts(0).contacts.items()]
    assert {cid for cid, _, _ in stored} == {"c1", "c9"}
    second = LiveKpis(KpiSettings(), clock=clock)
    assert second.rebuild_contacts(stored, {0}) == 2
    assert not feed(second, 0, abandon, 3)
    assert second.document(T0 + 300 * US, include_all=True)["totals"]["windows"]["all"]["offered"] == 2


def test_live_totals_count_the_breach_of_a_visit_still_waiting() -> None:
    """Prometheus counters (``LiveKpis.totals``): c1 queued 10:00:00 still waits at 10:00:30 (T = 20 s): its
    breach (at 10:00:20) is counted once the document at 10:00:30 has moved now past it: offered 1,
    sla_breaches 1.

    Kills ``LiveKpis.totals`` adding open breaches with ``-=``."""
    live = LiveKpis(KpiSettings(), clock=Clock(T0 + 30 * US))
    feed(live, 0, contact_event("queued", "q1", T0))
    live.document(T0 + 30 * US)
    counts = live.totals()[("billing", "voice")]
    assert (counts[m.OFFERED], counts[m.SLA_BREACHES]) == (1, 1)


def test_a_duplicate_sends_the_contact_summary_again() -> None:
    """A duplicate may be a re-delivery after a crash: the contact's FCR summary goes to the customer side again
    (idempotent there). q1 read, its summary drained; q1 again: the same summary is pending once more.

    Kills ``LiveKpis.handle`` ``summary is not None -> is None`` on the duplicate path."""
    live = LiveKpis(KpiSettings(), clock=Clock(T0))
    assert feed(live, 0, contact_event("queued", "q1", T0))
    first = live.contacts(0).drain_summaries()
    assert [s.contact_id for s in first] == ["c1"]
    assert not feed(live, 0, contact_event("queued", "q1", T0))
    assert live.contacts(0).drain_summaries() == first


def test_a_duplicate_stores_its_contact_again() -> None:
    """The table writer puts a batch into the worker's local RocksDB before its changelog records are sent, so a
    worker restarted after a kill -9 may read from its own store a contact whose state never reached the
    changelog. Its event, delivered again (its offset was not committed), is a duplicate of that state; unless
    the contact is stored again, the commit moves past the event and any other worker that later takes the
    partition (it reads the changelog) never has it. So a duplicate marks its contact changed: the batch stores
    it (an unchanged state again: idempotent). q1 read and stored (``dirty`` cleared, as the worker's save
    does), then q1 again: a duplicate, and c1 is to be stored again.

    Kills the ``dirty.add`` on ``LiveKpis.handle``'s duplicate path."""
    live = LiveKpis(KpiSettings(), clock=Clock(T0))
    assert feed(live, 0, contact_event("queued", "q1", T0))
    live.contacts(0).dirty.clear()
    assert not feed(live, 0, contact_event("queued", "q1", T0))
    assert live.contacts(0).dirty == {"c1"}


@pytest.mark.parametrize(("ahead_us", "accepted"), [(300 * US, True), (300 * US + 1, False)])
def test_live_admits_events_up_to_max_clock_skew_ahead(ahead_us: int, accepted: bool) -> None:
    """events.md: live, an event more than ``max_clock_skew`` (default 5 min = 300 s) ahead of the wall clock is
    invalid, kind ``in_the_future``. Exactly 300 s ahead is not *more*: admitted; 300 s + 1 µs is refused.

    Kills ``LiveKpis.admit`` ``clock + skew -> clock - skew``, ``> -> >=``."""
    live = LiveKpis(KpiSettings(), clock=Clock(T0))
    event = parse_contact_event(orjson.dumps(contact_event("queued", "q1", T0 + ahead_us)))
    if accepted:
        live.admit(event)
    else:
        with pytest.raises(InvalidEvent) as caught:
            live.admit(event)
        assert caught.value.kind == "in_the_future"


def test_live_stream_time_is_the_newest_event_over_partitions() -> None:
    """``LiveKpis.stream_time()``: the largest event time of any partition; 0 before any event.
    Partition 0 read 10:00:05, partition 1 read 10:00:40 and then 10:00:20: 10:00:40.

    Kills ``stream_time`` ``max -> min`` and ``default=0 -> 1``."""
    live = LiveKpis(KpiSettings(), clock=Clock(T0))
    assert live.stream_time() == 0
    feed(live, 0, contact_event("queued", "q1", T0 + 5 * US, "c1"))
    feed(live, 1, contact_event("queued", "q2", T0 + 40 * US, "c2"))
    feed(live, 1, contact_event("queued", "q3", T0 + 20 * US, "c3"))
    assert live.stream_time() == T0 + 40 * US


def test_live_document_all_window_spans_from_the_first_event_of_any_partition() -> None:
    """``document(now, include_all=True)``: the ``all`` window is [earliest event of any partition, now + 1 µs).
    Partition 0 first read 10:00:30, partition 1 first read 10:00:10; now 10:05:00: [10:00:10, 10:05:00.000001).
    Without ``include_all`` there is no ``all`` window.

    Kills ``LiveKpis.document`` ``min -> max`` over the partitions' first times, ``first is not None -> is``
    (twice) and ``now + 1 -> now - 1`` / ``now + 0``."""
    live = LiveKpis(KpiSettings(), clock=Clock(T0))
    feed(live, 0, contact_event("queued", "q1", T0 + 30 * US, "c1"))
    feed(live, 1, contact_event("queued", "q2", T0 + 10 * US, "c2"))
    now = T0 + 300 * US
    doc = live.document(now, include_all=True)
    window = doc["totals"]["windows"]["all"]
    assert (window["start"], window["end"]) == ("2026-05-04T10:00:10.000Z", "2026-05-04T10:05:00.000001Z")
    assert window["offered"] == 2
    assert "all" not in live.document(now)["totals"]["windows"]


def test_live_buckets_are_a_minute_like_the_window_bounds() -> None:
    """The live aggregates use the same 60 s grid as the window bounds: the 15 min window at 10:15:00 starts at
    10:00:00 and holds the queued at 10:00:00 but not the one at 09:59:59.999999.

    Kills ``LiveKpis.__init__`` ``bucket_seconds * 1_000_000 -> * 999_999`` (a grid of 59.999999 s, whose
    edges lie about 30 s off the minute today: the bucket before 10:00:00 would be summed too)."""
    live = LiveKpis(KpiSettings(), clock=Clock(T0))
    feed(live, 0, contact_event("queued", "q1", T0 - 1, "c1"))
    feed(live, 0, contact_event("queued", "q2", T0, "c2"))
    window = live.document(T0 + 15 * 60 * US)["totals"]["windows"]["15m"]
    assert (window["start"], window["offered"]) == ("2026-05-04T10:00:00.000Z", 1)


# -- partials -------------------------------------------------------------------------------------------------------
def test_merge_of_no_partial_is_an_empty_document() -> None:
    """No worker has published yet: no queue, zero live figures, no ``generated_at``.

    Kills ``merge`` starting ``now`` at 1 (``generated_at`` would be 1970-01-01T00:00:00.000001Z)."""
    doc = merge(KpiSettings(), [])
    assert doc == {"generated_at": None, "queues": [],
                   "totals": {"live": {"waiting": 0, "longest_wait_seconds": 0.0, "awaiting_follow_up": 0, "oldest_awaiting_seconds": 0.0}, "windows": {}}}


@pytest.mark.parametrize("order", [1, -1])
def test_merge_spans_the_union_of_window_bounds_and_adds_live_state(order: int) -> None:
    """Two workers evaluated a minute apart: A at 10:16:00 (15m window [10:01:00, 10:16:00)), B at 10:15:00
    ([10:00:00, 10:15:00)). Merged, in either order: [earliest start, latest end) = [10:00:00, 10:16:00);
    offered 1 + 1 = 2; waiting 1 + 1 = 2; longest wait max(0.5 s, 0.25 s) = 0.5 s (A's c1 queued at 10:15:59.5,
    B's c2 at 10:14:59.75).

    Kills ``_merge_window`` ``min -> max`` / ``max -> min`` and its ``held[0]``/``held[1]`` index mutants (each
    fails in one of the two orders), and ``merge`` taking ``max(held[0], longest)`` (the count, 2) as the
    longest wait."""
    kpi = KpiSettings()
    parts = []
    for worker, (contact, queued, now) in {"A": ("c1", T0 + 959_500_000, T0 + 960 * US),
                                           "B": ("c2", T0 + 899_750_000, T0 + 900 * US)}.items():
        live = LiveKpis(kpi, clock=Clock(now))
        feed(live, 0, contact_event("queued", f"q-{contact}", queued, contact))
        parts.append(live.partial(worker, now))
    doc = merge(kpi, parts[::order])
    window = doc["totals"]["windows"]["15m"]
    assert (window["start"], window["end"], window["offered"]) == (
        "2026-05-04T10:00:00.000Z", "2026-05-04T10:16:00.000Z", 2)
    assert doc["totals"]["live"] == {"waiting": 2, "longest_wait_seconds": 0.5, "awaiting_follow_up": 0, "oldest_awaiting_seconds": 0.0}
    assert doc["queues"][0]["live"] == {"waiting": 2, "longest_wait_seconds": 0.5, "awaiting_follow_up": 0, "oldest_awaiting_seconds": 0.0}
    assert doc["generated_at"] == "2026-05-04T10:16:00.000Z"


# -- models ---------------------------------------------------------------------------------------------------------
def test_the_last_valid_instant_is_accepted() -> None:
    """events.md: ``ts`` may be any instant up to 9999-12-31 in UTC: 9999-12-31T23:59:59.999999Z is valid and
    is 253 402 300 799 999 999 µs after the epoch.

    Kills ``MAX_TS_US`` 253_402_300_799_999_999 -> ...998."""
    event = parse_contact_event(orjson.dumps(ev("queued", "q1", DAY) | {"ts": "9999-12-31T23:59:59.999999Z"}))
    assert event.ts_us == 253_402_300_799_999_999


def test_the_first_valid_instant_is_accepted() -> None:
    """events.md: ``ts`` from 1970-01-01 in UTC: 1970-01-01T00:00:00Z itself is valid (0 µs); 1969-12-31T23:59:59.999999Z
    is not.

    Kills ``parse_rfc3339`` ``MIN_TS_US <= us`` -> ``<``."""
    assert parse_contact_event(orjson.dumps(ev("queued", "q1", EPOCH))).ts_us == 0
    with pytest.raises(InvalidEvent):
        parse_contact_event(orjson.dumps(ev("queued", "q1", EPOCH) | {"ts": "1969-12-31T23:59:59.999999Z"}))


@pytest.mark.parametrize(("offset_us", "text"), [
    (999_000, "2026-05-04T10:00:00.999Z"),  # whole milliseconds: three digits, 999 000 // 1000 = 999
    (999_999, "2026-05-04T10:00:00.999999Z"),  # otherwise six digits
    (0, "2026-05-04T10:00:00.000Z"),
])
def test_format_ts_milliseconds(offset_us: int, text: str) -> None:
    """``format_ts`` writes milliseconds when whole, microseconds otherwise.

    Kills ``format_ts`` ``microsecond // 1000 -> // 999`` (999 000 // 999 = 1000: ".1000Z")."""
    assert format_ts(T0 + offset_us) == text


def test_a_validated_event_cannot_be_changed() -> None:
    """Events are frozen once validated: the record of what arrived (its bytes may go to the DLQ) and what was
    counted must be the same thing.

    Kills ``_Event.model_config`` ``frozen=True -> False``."""
    event = parse_contact_event(orjson.dumps(ev("queued", "q1", DAY)))
    with pytest.raises(ValidationError, match="frozen"):
        event.queue = "sales"  # type: ignore[misc]
    assert event.queue == "billing"


def abandoned_then_waiting(clock: Clock, count: int) -> LiveKpis:
    """``count`` contacts c0.. queued and abandoned 2 s later, a minute apart from 10:00, then c9 queued at 10:10
    and still waiting (so the others are settled: older than the 60 s allowance), all in partition 0."""
    live = LiveKpis(KpiSettings(), clock=clock)
    offset = 0
    for k in range(count):
        for event in (contact_event("queued", f"q{k}", T0 + k * 60 * US, f"c{k}"),
                      contact_event("abandoned", f"x{k}", T0 + k * 60 * US + 2 * US, f"c{k}")):
            assert feed(live, 0, event, offset)
            offset += 1
    assert feed(live, 0, contact_event("queued", "q9", T0 + 600 * US, "c9"), offset)
    return live


def test_a_rebuild_with_a_table_loader_moves_settled_contacts_out_as_it_goes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Recovery of a worker whose table holds every contact (``loader_for`` set) must not hold all of them as
    objects at once (issue 9: a week is ~470k contacts). Six contacts, each queued and abandoned a minute apart
    (10:00..10:05), c9 queued at 10:10 (so all six are settled: older than the 60 s allowance), restored with
    ``RESTORE_EVICT_EVERY`` 2: no more than 2 + 1 contacts are in memory while the stored ones are read, only the
    waiting c9 stays, and the counts are those of all seven (offered 7, abandoned 6)."""
    clock = Clock(T0 + HOUR_US)
    first = abandoned_then_waiting(clock, 6)
    first.settle(0)  # as after every batch: the settled events' original bytes are dropped
    stored = sorted((cid, 0, state) for cid, state in first.contacts(0).contacts.items())
    monkeypatch.setattr(live_module, "RESTORE_EVICT_EVERY", 2)
    states = {cid: state for cid, _, state in stored}
    second = LiveKpis(KpiSettings(), clock=clock, loader_for=lambda partition: states.get)
    held: list[int] = []

    def reading() -> Iterator[tuple[str, int, ContactState]]:
        for item in stored:
            proc = second.contact_parts.get(0)
            held.append(len(proc.contacts) if proc is not None else 0)
            yield item

    assert second.rebuild_contacts(reading(), {0}) == 7
    assert max(held) <= 3, held
    assert set(second.contacts(0).contacts) == {"c9"}
    totals = second.document(T0 + 700 * US, include_all=True)["totals"]["windows"]["all"]
    assert (totals["offered"], totals["abandoned"]) == (7, 6)


def test_a_rebuild_moves_out_contacts_whose_stored_value_still_holds_settled_bytes() -> None:
    """A contact is saved while its events may still be refused, with their original bytes (``pending``); settling
    drops the bytes in memory only, so the table keeps them. A rebuild must treat such a contact as settled once
    its events are older than the allowance, as settle() would: before, a week's restart held 414k of its 465k
    contacts in memory (2.4 GB) until the first batch after it. Kills ``evict_settled`` without the
    ``forget_bytes`` step (and the ``state.pending and not state.unfit`` guard's ``and`` -> ``or``)."""
    clock = Clock(T0 + HOUR_US)
    first = abandoned_then_waiting(clock, 3)
    # stored before any settle: every value still holds its events' original bytes
    stored = [(cid, 0, ContactState.from_row(state.to_row(), sync=False))  # the stored form, as the table holds it
              for cid, state in first.contacts(0).contacts.items()]
    assert all(state.pending for _, _, state in stored)
    states = {cid: state for cid, _, state in stored}
    second = LiveKpis(KpiSettings(), clock=clock, loader_for=lambda partition: states.get)
    assert second.rebuild_contacts(stored, {0}) == 4
    proc = second.contacts(0)
    assert set(proc.contacts) == {"c9"}  # waiting (and its bytes still within the allowance): it stays
    assert proc.contacts["c9"].pending  # the bytes of an event that may still be refused are kept
    totals = second.document(T0 + 700 * US, include_all=True)["totals"]["windows"]["all"]
    assert (totals["offered"], totals["abandoned"]) == (4, 3)


def test_a_configured_window_longer_than_two_days_counts_its_whole_length() -> None:
    """Buckets were once pruned at two days whatever the windows: a "7d" window (the settings accept any duration)
    counted only its last two days. Contacts queued at T0 and T0 + 3 days; at T0 + 3 days + 1 s the 7d window
    holds both, in replay (where pruning runs every ``EVICT_EVERY`` events and in the document) and live.
    Kills ``history_us`` returning a fixed span whatever the windows. What it returns: the longest rolling window
    plus a bucket, or 25 h ("today" on a day the clocks go back) if more, plus an hour: 7 d + 1 min + 1 h here,
    26 h for the default windows (24h + 1 min < 25 h)."""
    kpi = KpiSettings(windows=("7d", "15m"))
    day = 86_400 * US
    events = [contact_event("queued", f"q{k}", T0 + k * 3 * day, f"c{k}") for k in range(2)]
    now = T0 + 3 * day + US
    engine = KpiEngine(kpi)
    for event in events:
        engine.process(event)
    assert engine.snapshot(now)["totals"]["windows"]["7d"]["offered"] == 2
    live = LiveKpis(kpi, clock=Clock(now))
    for offset, event in enumerate(events):
        assert feed(live, 0, event, offset)
    assert live.document(now)["totals"]["windows"]["7d"]["offered"] == 2
    hour = 3600 * US
    assert engine_module.history_us(kpi) == 7 * day + 60 * US + hour
    assert engine_module.history_us(KpiSettings()) == 26 * hour  # 24h and today


DAY_US = 86_400 * US
# contacts queued at T0 and T0 + 3 days, of u0 and u1; the live state read at T0 + 3 days + 1 s
TWO_QUEUED = [contact_event("queued", f"q{k}", T0 + k * 3 * DAY_US, f"c{k}", customer_id=f"u{k}") for k in range(2)]
TWO_QUEUED_NOW = T0 + 3 * DAY_US + US


def filled_live(made_at: int) -> LiveKpis:
    """A live state whose wall clock reads ``made_at`` while its partitions are made (and pruned at once:
    ``LiveKpis._aggregates``) and :data:`TWO_QUEUED` are fed, then :data:`TWO_QUEUED_NOW`, every part advanced."""
    clock = Clock(made_at)
    live = LiveKpis(KpiSettings(), clock=clock)
    for offset, event in enumerate(TWO_QUEUED):
        assert feed(live, 0, event, offset)
    for summary in live.contacts(0).drain_summaries():
        live.customers(0).update(summary)
    clock.now_us = TWO_QUEUED_NOW
    for part in live.parts():  # facts at or after the clock at their making were ahead of their now
        part.advance(TWO_QUEUED_NOW)
    return live


def test_the_live_state_forgets_buckets_no_window_reaches_without_a_document_read() -> None:
    """The Redis read model's partials never pruned, and only a document read did: a worker whose document
    nobody asked for kept every bucket and distinct-customer entry since its start. ``LiveKpis.prune`` (the
    maintenance timer) forgets what lies past every window (26 hours for the default windows) and changes no
    figure: contacts queued at T0 and T0 + 3 days, pruned at T0 + 3 days + 1 s, the same document as unpruned."""
    day, now = DAY_US, TWO_QUEUED_NOW
    pruned, kept = filled_live(T0), filled_live(T0)  # made at T0: nothing pruned before the timer's prune
    pruned.prune(now)
    for live in (pruned, kept):
        assert sum(len(b) for b in live.contacts(0).aggregates.buckets.values()) > 0
    starts = [start for part in pruned.parts() for b in part.buckets.values() for start in b]
    assert starts and min(starts) >= now - 26 * 3600 * US - 60 * US, "buckets older than 26 hours are gone"
    assert min(s for part in kept.parts() for b in part.buckets.values() for s in b) < T0 + day  # kept: all
    assert pruned.customers(0).distinct.all == [(T0 + 3 * day, "u1")]  # c0's t0 (u0) is past every window
    assert pruned.document(now, include_all=True) == kept.document(now, include_all=True)


def test_a_partition_made_late_makes_no_bucket_past_every_window_and_reads_the_same() -> None:
    """A worker that starts behind a backlog: its partitions' aggregates are pruned the moment they are made, at
    the maintenance timer's limit (wall clock - 26 h), so the backlog's facts before it make no bucket, only their
    totals (and the hours that keep buckets after the limit). Contacts queued at T0 and T0 + 3 days, the live state
    made at T0 + 3 days + 1 s: no bucket before the limit, and the same document (``all`` included) and totals as
    a live state made at T0 and pruned by the timer at the same moment.

    Kills ``LiveKpis._aggregates`` without its prune (c0's bucket made) and a prune at the wrong limit."""
    now = TWO_QUEUED_NOW
    late, early = filled_live(now), filled_live(T0)
    limit = now - history_us(KpiSettings()) - 60 * US
    starts = [start for part in late.parts() for b in part.buckets.values() for start in b]
    assert starts and min(starts) > limit, "no bucket at or before the limit was made"
    assert late.contacts(0).aggregates.totals == early.contacts(0).aggregates.totals
    early.prune(now)
    assert late.document(now, include_all=True) == early.document(now, include_all=True)
    assert [p.buckets for p in late.parts()] == [p.buckets for p in early.parts()]


@pytest.mark.parametrize("live_side", [False, True], ids=["replay", "live"])
def test_pruning_keeps_what_today_on_a_25_hour_day_and_the_24h_window_reach(monkeypatch: pytest.MonkeyPatch,
                                                                            live_side: bool) -> None:
    """Buckets and distinct-customer entries are pruned ``history_us`` back (26 h for the default windows). The
    longest reach: "today" on the day the clocks go back (Europe/London, 2026-10-25: 25 hours) and the 24h window,
    whose start is rounded down to a bucket. u0's c0 queued 1 µs after local midnight (2026-10-24 23:00:00Z), u1's
    c1 at 2026-10-24 23:59:10Z (after the 24h window's rounded start, 23:59:00Z), u2's c2 at 22:59:59Z (before
    both), u8's c8 three days before now (pruned); now 2026-10-25 23:59:59Z. Pruned at now (live: ``LiveKpis.prune``; replay: every event, at its time),
    today counts c0 and c1 (offered 2, customers 2) and 24h c1 (offered 1, customers 1), as unpruned.

    Kills ``history_us`` reaching only as far as the longest rolling window and its bucket (24 h 1 min: c0, 24 h
    59 min back, pruned from today). Not killed, and harmless: 25 h -> 24 h alone (the hour of margin covers it)."""
    kpi = KpiSettings(timezone="Europe/London")
    midnight = to_us(datetime(2026, 10, 24, 23, 0, tzinfo=timezone.utc))
    now = to_us(datetime(2026, 10, 25, 23, 59, 59, tzinfo=timezone.utc))
    assert now - midnight > 24 * 3600 * US  # the 25-hour day
    times = {"c8": now - 3 * 86_400 * US, "c2": midnight - US, "c0": midnight + US, "c1": midnight + 59 * 60 * US + 10 * US}
    events = [contact_event("queued", f"q{c[1]}", at, c, customer=f"u{c[1]}") for c, at in sorted(times.items(),
                                                                                                  key=lambda i: i[1])]
    events.append(contact_event("queued", "q9", now - US, "c9", customer="u9", queue="other"))

    def windows(prune: bool) -> dict[str, Any]:
        if not live_side:
            monkeypatch.setattr(engine_module, "EVICT_EVERY", 1 if prune else 10**9)
            engine = KpiEngine(kpi)
            for event in events:
                engine.process(event)
            if prune:
                starts = [s for b in engine.aggregates.buckets.values() for s in b]
                assert min(starts) > now - 2 * 86_400 * US, "c8's bucket was not pruned: the test would prove nothing"
            return engine.snapshot(now)["queues"][0]["windows"]
        live = LiveKpis(kpi, clock=Clock(now))
        for offset, event in enumerate(events):
            assert feed(live, 0, event, offset)
        for summary in live.contacts(0).drain_summaries():
            live.customers(0).update(summary)
        if prune:
            live.prune(now)
            starts = [s for part in live.parts() for b in part.buckets.values() for s in b]
            assert min(starts) > now - 2 * 86_400 * US, "c8's bucket was not pruned: the test would prove nothing"
        return live.document(now)["queues"][0]["windows"]

    pruned = windows(True)
    assert pruned == windows(False)
    assert (pruned["today"]["offered"], pruned["today"]["customers"]) == (2, 2)
    assert (pruned["24h"]["offered"], pruned["24h"]["customers"]) == (1, 1)


def test_a_rebuild_drops_the_buckets_and_customers_no_window_reaches_while_it_reads(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebuild restores every stored contact and customer, back to the start of the tables. The buckets and
    distinct-customer entries no window can reach any more are dropped while it reads (every
    ``RESTORE_EVICT_EVERY``), as the maintenance timer's prune does once the worker is ready: kept until then,
    they pinned their memory in the process for good (14 simulated days restarted without a checkpoint: ready at
    1,383 MiB, measured). Twelve customers' contacts, one every 6 hours over three days, each queued, answered
    and ended; rebuilt three days later with ``RESTORE_EVICT_EVERY`` 2: no bucket and no index entry before
    now - ``history_us`` is left, and the document (every window and ``all``) equals the stored worker's.
    Kills the prune steps of ``rebuild_contacts`` and ``rebuild_customers``."""
    hours = 6 * HOUR_US
    clock = Clock(T0 + 72 * HOUR_US)
    first = LiveKpis(KpiSettings(), clock=clock)
    for k in range(12):
        at = T0 + k * hours
        for n, (kind, extra) in enumerate((("queued", 0), ("answered", 20), ("ended", 400))):
            assert feed(first, 0, contact_event(kind, f"e{k}-{n}", at + extra * US, f"c{k}", customer=f"u{k}"))
    first.settle(0)
    for summary in first.contacts(0).drain_summaries():
        first.customers(0).update(summary)
    contacts = {cid: state for cid, state in first.contacts(0).contacts.items()}
    customers = [(cid, {"p": 0, **state.to_dict()}) for cid, state in first.customers(0).items()]
    monkeypatch.setattr(live_module, "RESTORE_EVICT_EVERY", 2)
    second = LiveKpis(KpiSettings(), clock=clock, loader_for=lambda partition: contacts.get)
    assert second.rebuild_contacts(sorted((cid, 0, state) for cid, state in contacts.items()), {0}) == 12
    assert second.rebuild_customers(customers, {0}) == 12
    limit = clock() - history_us(KpiSettings())
    for proc in (second.contacts(0), second.customers(0)):
        proc.aggregates._fold()  # the facts read but not yet added to their buckets
        starts = [start for per_key in proc.aggregates._buckets.values() for start in per_key]
        assert starts and min(starts) >= limit - proc.aggregates.bucket_us
    entries = second.customers(0).distinct.all  # sorted by t0
    assert entries and entries[0][0] >= limit
    first.prune(clock())
    assert second.document(clock(), include_all=True) == first.document(clock(), include_all=True)
