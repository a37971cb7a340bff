"""What a long replay no longer keeps (issue 9, Engine v2: a week in at most 500 MB), pinned by hand.

- Future facts (an FCR close at t0 + F waits a week) are one int each in a heap and a dict (``Aggregates._code``),
  not two tuples: they must still join their buckets at exactly their time, cancel when retracted, and show in
  ``future_until`` and ``active_keys``.
- The distinct-customer index: a replay prunes contacts past ``history_us`` (26 h by default) every ``EVICT_EVERY`` events and keeps
  only their customer ids, so the ``all`` window still counts each customer once, and the rolling windows are
  unchanged.
- The garbage collector's walks: a replay runs with automatic collection paused (``gc_policy.paused``).
"""

from __future__ import annotations

import gc
import sys
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from cxpulse import gc_policy
from cxpulse.commands.replay import replay_file
from cxpulse.core import engine as engine_module
from cxpulse.core import measures as m
from cxpulse.core.aggregates import Aggregates
from cxpulse.core.distinct import DistinctCustomers
from cxpulse.settings import KpiSettings
from test_kpi_edges import DAY, S, all_of, ev, row, run

MIN_US = 60_000_000
HOUR_US = 60 * MIN_US
D = timedelta(days=1)
M = timedelta(minutes=1)


def test_future_facts_join_their_bucket_at_their_time_and_cancel_when_retracted() -> None:
    """now = 0. +1 FIRST_CLOSED at 90 min (billing) and at 90 min (sales), +1 FIRST_CONFIRMED at 90 min (billing),
    then the confirmation retracted: at 89 min nothing is in a bucket and both keys are active (future); at
    91 min billing's 90-minute bucket holds FIRST_CLOSED 1, FIRST_CONFIRMED 0; sales FIRST_CLOSED 1."""
    agg = Aggregates(MIN_US)
    at = 90 * MIN_US
    agg.apply([(m.FIRST_CLOSED, at, "billing", "voice", 1), (m.FIRST_CLOSED, at, "sales", "chat", 1),
               (m.FIRST_CONFIRMED, at, "billing", "voice", 1)])
    agg.apply([(m.FIRST_CONFIRMED, at, "billing", "voice", 1)], -1)
    assert len(agg.closing) == 2 and not agg.future  # FCR closes wait in ``closing``; the retracted one is gone
    agg.advance(89 * MIN_US)
    assert agg.active_keys() == {("billing", "voice"), ("sales", "chat")}
    due = agg.future_until(at + 1)
    assert due[("billing", "voice")][m.FIRST_CLOSED] == 1 and due[("billing", "voice")][m.FIRST_CONFIRMED] == 0
    assert agg.window(0, 89 * MIN_US).get(("billing", "voice"), [0] * m.N_MEASURES)[m.FIRST_CLOSED] == 0
    agg.advance(at)  # exactly at its time: due at now, not before it (a window [.., now) leaves it out)
    assert ("billing", "voice") not in agg.window(0, at)
    assert sorted(agg.at_now) == [(m.FIRST_CLOSED, at, "billing", "voice", 1), (m.FIRST_CLOSED, at, "sales", "chat", 1)]
    agg.advance(91 * MIN_US)
    billing = agg.buckets[("billing", "voice")][at]
    assert (billing[m.FIRST_CLOSED], billing[m.FIRST_CONFIRMED]) == (1, 0)
    assert agg.buckets[("sales", "chat")][at][m.FIRST_CLOSED] == 1
    assert len(agg.closing) == 0 and agg.future == {} and agg.future_until(10 * HOUR_US) == {}


def test_a_pruned_replay_index_still_counts_every_customer_once_over_everything() -> None:
    """u1 at day 0 (billing) and day 3 (billing), u2 at day 0 (sales), u3 at day 3 (billing). Pruned before day 2:
    over everything 3 customers in total (u1 once), billing 2 (u1, u3), sales 1; the day-3 window 2 (u1, u3)."""
    day = 86_400_000_000
    index = DistinctCustomers(keep_all=True)
    index.note("u1", 0, "billing", "voice")
    index.note("u2", 10, "sales", "chat")
    index.note("u1", 3 * day, "billing", "voice")
    index.note("u3", 3 * day + 5, "billing", "voice")
    index.prune(2 * day)
    assert index.all == [(3 * day, "u1"), (3 * day + 5, "u3")]  # the index itself is pruned
    everything = -(2**63)
    assert index.count(None, everything, 4 * day) == 3
    assert index.count(("billing", "voice"), everything, 4 * day) == 2
    assert index.count(("sales", "chat"), everything, 4 * day) == 1
    assert index.count(None, 3 * day, 4 * day) == 2
    with pytest.raises(ValueError, match="starts among pruned contacts"):
        index.count(None, day, 4 * day)  # a window starting after the earliest pruned contact cannot be exact
    live = DistinctCustomers()
    live.note("u1", 0, "billing", "voice")
    live.note("u1", 3 * day, "billing", "voice")
    live.note("u5", 3 * day, "billing", "voice")
    live.prune(2 * day)
    # a live worker keeps no customer ids of pruned contacts: its 'all' window counts what it still holds
    # (the all window of a live document is approximate for distinct customers), and never fails the document
    assert live.count(None, everything, 4 * day) == 2


def test_a_replay_that_prunes_as_it_goes_gives_the_same_document(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same five days of contacts replayed with pruning after every 2 events and with none: the same document
    (customers over everything 3: u1 at day 0 and day 4 counts once; the 24 h window 2)."""
    events = [
        ev("queued", "q1", DAY, "c1", customer="u1"), ev("queued", "q2", DAY + M, "c2", customer="u2", queue="sales"),
        ev("queued", "q3", DAY + 4 * D, "c3", customer="u1"), ev("queued", "q4", DAY + 4 * D + M, "c4", customer="u3"),
        ev("queued", "q5", DAY + 4 * D + 2 * M, "c5", customer="u3"),
    ]
    kpi = KpiSettings(fcr_window="1h")
    _, whole = run(events, kpi)
    monkeypatch.setattr(engine_module, "EVICT_EVERY", 2)
    engine, pruned = run(events, kpi)
    assert engine.customers.aggregates.distinct is not None and engine.customers.aggregates.distinct.gone_all == {"u1", "u2"}
    assert pruned == whole
    total = pruned["totals"]["windows"]
    assert (total["all"]["customers"], total["all"]["contacts"], total["24h"]["customers"]) == (3, 5, 2)
    assert row(pruned)["windows"]["all"]["customers"] == 2  # billing: u1 (twice), u3


def test_a_future_fact_reaching_now_can_be_retracted_there_and_leaves_no_key() -> None:
    """now = 0. +1 offered at 90 min (billing/voice; not an FCR close, so it waits in ``future``): billing/voice
    is an active key already. advance(90 min): the fact is due at exactly now, so it leaves ``future`` for
    ``at_now`` (not yet in a bucket: windows end at now). Then the same fact retracted at now (-1): the +1 and -1 cancel, so billing/voice is no active key (no
    row of zeros in the document), and the 90-minute bucket holds offered 0 once time passes it.

    Kills ``core/aggregates.py::Aggregates.advance::f8f6167b#3`` ``limit = (now + 1) << bits -> (now + 0)``: the
    +1 would stay in ``future`` at now, the -1 would go to ``at_now``, and each alone keeps the key active; and
    ``Aggregates.active_keys::57ad5aa0#0`` (a future fact's key read as ``combo[0:]``: (measure, queue, channel)
    instead of (queue, channel))."""
    agg = Aggregates(MIN_US)
    at = 90 * MIN_US
    agg.apply([(m.OFFERED, at, "billing", "voice", 1)])
    assert agg.future and len(agg.closing) == 0
    assert agg.active_keys() == {("billing", "voice")}  # a key with only a future fact is active
    agg.advance(at)
    assert agg.future == {} and agg.at_now == [(m.OFFERED, at, "billing", "voice", 1)]
    agg.apply([(m.OFFERED, at, "billing", "voice", 1)], -1)
    assert agg.active_keys() == set()
    agg.advance(at + MIN_US)
    assert agg.buckets[("billing", "voice")][at][m.OFFERED] == 0 and agg.active_keys() == set()


def test_a_replay_collects_no_garbage_while_it_feeds_and_gives_the_collector_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cxpulse replay`` pauses automatic collection (why: gc_policy.paused). With the thresholds set for a young
    collection every 10 allocations, the replay of 100 contacts (300 events) runs no collection while it feeds its
    file, finishes and builds its document (the few before and after are the command's own), counts them all
    (offered 100, handled 100), and the collector is on again afterwards, with what the replay built frozen (not
    walked again by the first collection)."""
    monkeypatch.setattr(gc_policy, "YOUNG", 10)  # what replay_file's tune_for_long_runs() then sets
    lines = []
    for i in range(100):
        at = DAY + i * M
        lines += [ev("queued", f"q{i}", at, f"c{i}", customer=f"u{i}"),
                  ev("answered", f"a{i}", at + 5 * S, f"c{i}", customer=f"u{i}"),
                  ev("ended", f"e{i}", at + 50 * S, f"c{i}", customer=f"u{i}")]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    started: list[str] = []  # per collection: the replay function running then, if any

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_name not in ("_feed", "finish", "snapshot"):
                frame = frame.f_back
            started.append("outside" if frame is None else frame.f_code.co_name)

    thresholds = gc.get_threshold()
    frozen = gc.get_freeze_count()
    gc.callbacks.append(count)
    try:
        document, health, _ = replay_file(path, progress=False)
        assert set(started) <= {"outside"}, "a collection ran while the replay fed its file or built its document"
        assert gc.isenabled() and gc.get_threshold()[0] == 10
        assert gc.get_freeze_count() > frozen, "what the replay built is left for the next young collection"
        del started[:]
        gc.collect()
        assert started == ["outside"]
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*thresholds)
        gc.unfreeze()
    assert health.processed == 300
    billing = all_of(document)
    assert (billing["offered"], billing["handled"]) == (100, 100)


def test_the_pause_leaves_a_disabled_collector_disabled() -> None:
    """``paused()`` restores the state it found: off stays off (a caller that had disabled it itself)."""
    gc.disable()
    try:
        with gc_policy.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
    with gc_policy.paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.unfreeze()
