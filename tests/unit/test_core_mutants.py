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

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from cxpulse.core import measures as m
from cxpulse.core.aggregates import HOUR_US, Aggregates
from cxpulse.core.engine import KpiEngine
from cxpulse.core.windows import window_bounds
from cxpulse.models.events import to_us
from cxpulse.settings import KpiSettings
from test_kpi_edges import DAY, MICRO, S, all_of, ev, row, run

US = 1_000_000
BUCKET_US = 60 * US
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def fact(measure: int, at_us: int, value: int = 1, queue: str = "billing", channel: str = "voice") -> tuple[int, int, str, str, int]:
    return (measure, at_us, queue, channel, value)


def offered_in(agg: Aggregates, start_us: int, end_us: int) -> int:
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
    assert row(doc)["live"] == {"waiting": 1, "longest_wait_seconds": 0.0}


def test_apply_without_a_sign_adds() -> None:
    """``Aggregates.apply(facts)`` adds (sign +1 by default), like ``apply(facts, 1)``.

    Kills ``Aggregates.apply`` default ``sign=1 -> 0`` (every default call would add nothing)."""
    agg = Aggregates(BUCKET_US, now_us=10 * BUCKET_US)
    agg.apply([fact(m.OFFERED, 3 * BUCKET_US), fact(m.OFFERED, 3 * BUCKET_US + 1)])
    assert offered_in(agg, 0, 10 * BUCKET_US) == 2  # 1 + 1, both before now


def test_the_observer_sees_a_future_fact_once() -> None:
    """A fact due after ``now`` (a breach at queued + T, a closing at t0 + F) is observed when it is applied,
    and not again when ``advance`` moves it into its bucket: the Prometheus histograms count it once.

    Kills ``Aggregates._to_bucket`` ``observe=False -> True``."""
    seen: list[tuple[list[Any], int]] = []
    agg = Aggregates(BUCKET_US, now_us=0, observer=lambda facts, sign: seen.append((list(facts), sign)))
    breach = fact(m.SLA_BREACHES, 5 * BUCKET_US)
    agg.apply([breach], 1)
    agg.advance(6 * BUCKET_US)  # 5 min < 6 min: the breach joins its bucket now
    assert seen == [([breach], 1)]
    counts = agg.window(0, 6 * BUCKET_US)[("billing", "voice")]
    assert counts[m.SLA_BREACHES] == 1


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
