"""Rules of the engine's own files (aggregates.py, engine.py, live.py, partials.py) that the mutation run of
issue 16 found unpinned, each computed by hand from kpis.md / events.md (docs/mutation.md), and the tests
that equivalence arguments of docs/mutation-equivalent.txt rely on (folding pending facts early changes no
figure). Each docstring names the mutants it kills.

Why a file of its own: its name matches the mutation tool's ``tests/unit/test_kpi_*.py`` glob, so every run
selects it. Live tests drive the wall clock through ``LiveKpis(clock=...)`` (a :class:`Clock` that moves only
when the test sets it): no sleep, no timed assertion. Voice defaults: T = 20 s; the feedback response target
is set to 1 h where used (kpis.md "Closed-loop feedback (v2)": a feedback breach is +1 for every detractor
feedback not followed up by survey ts + target, once, at that moment; live, published when it passes, never
twice).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson
import pytest

from cxpulse.core import engine as engine_module
from cxpulse.core import live as live_module
from cxpulse.core import measures as m
from cxpulse.core.aggregates import Aggregates
from cxpulse.core.contact import Summary
from cxpulse.core.distinct import DistinctCustomers
from cxpulse.core.engine import KpiEngine
from cxpulse.core.live import LiveKpis
from cxpulse.core.partials import merge
from cxpulse.core.processors import FeedbackBreach
from cxpulse.models.events import format_ts, parse_any_event, to_us
from cxpulse.settings import KpiSettings

US = 1_000_000
MINUTE_US = 60 * US
HOUR_US = 3600 * US
T0 = to_us(datetime(2026, 5, 4, 10, 0, tzinfo=timezone.utc))  # 10:00:00 UTC
KEY = ("billing", "voice")


class Clock:
    """A wall clock in microseconds that moves only when the test sets it."""

    def __init__(self, now_us: int) -> None:
        self.now_us = now_us

    def __call__(self) -> int:
        return self.now_us


def contact_event(kind: str, eid: str, at_us: int, contact: str = "c1", **extra: Any) -> dict[str, Any]:
    """A contact event of billing/voice for customer u1 at an exact microsecond."""
    event: dict[str, Any] = {"event_id": eid, "type": f"contact.{kind}", "ts": format_ts(at_us),
                             "contact_id": contact, "customer_id": "u1", "queue": "billing", "channel": "voice"}
    if kind == "queued":
        event["reason"] = None
    elif kind == "answered":
        event["agent_id"] = "a1"
    event.update(extra)
    return event


def survey_event(eid: str, at_us: int, contact: str = "c1", **scores: int) -> dict[str, Any]:
    return {"event_id": eid, "type": "survey.response", "ts": format_ts(at_us), "contact_id": contact,
            "customer_id": "u1", **scores}


def feed(live: LiveKpis, partition: int, event: dict[str, Any], offset: int = 0, topic: str = "contact-events") -> bool:
    """Hand one event to the live engine as the Faust agent does (validated model plus its original bytes)."""
    raw = orjson.dumps(event)
    return live.handle(topic, partition, parse_any_event(raw), raw, offset)


def one_hour_target() -> KpiSettings:
    return KpiSettings(channels={"voice": {"feedback_response_target": "1h"}})


def detractor_awaiting(live: LiveKpis) -> None:
    """c1 queued 10:00:00, answered 10:00:10 (wait 10 s <= T: no SLA breach), survey s1 at 10:01:00 with nps 1
    (a detractor: nps <= 6), never followed up: its target passes at 10:01:00 + 1 h = 11:01:00."""
    assert feed(live, 0, contact_event("queued", "q1", T0), 0)
    assert feed(live, 0, contact_event("answered", "a1", T0 + 10 * US), 1)
    assert feed(live, 0, survey_event("s1", T0 + MINUTE_US, nps=1), 0, "survey-responses")


def test_a_detractor_past_its_target_is_published_once_and_counted_in_the_live_totals() -> None:
    """Target 1 h; s1 (detractor, 10:01:00) breaches at D = 11:01:00. Like an SLA breach, the moment must have
    passed: at exactly D nothing is due (0 published); at D + 1 µs the breach goes out, once: (billing, voice,
    c1, s1, survey 10:01:00, 3600 s, at D), published total 1; asked again at 12:00 nothing more, total still 1.
    The Prometheus counters (``totals``) after the document at 12:00: detractor_feedback 1, feedback_breaches 1
    (s1's breach lies before now and it still awaits), sla_breaches 0.

    Kills ``LiveKpis.__init__`` ``feedback_breaches_published_total = 0 -> 1``, ``due_feedback_breaches``
    ``not in -> in`` (nothing would ever be published) and ``+= len(out) -> -=`` (total -1), and ``totals``
    adding open feedback breaches with ``-=`` (-1)."""
    live = LiveKpis(one_hour_target(), clock=Clock(T0 + 30 * MINUTE_US))
    assert live.feedback_breaches_published_total == 0
    detractor_awaiting(live)
    deadline = T0 + MINUTE_US + HOUR_US
    assert live.due_feedback_breaches(deadline) == []
    assert live.feedback_breaches_published_total == 0
    published = live.due_feedback_breaches(deadline + 1)
    assert published == [FeedbackBreach("billing", "voice", "c1", "s1", T0 + MINUTE_US, 3600, deadline)]
    assert live.feedback_breaches_published_total == 1
    assert live.due_feedback_breaches(T0 + 2 * HOUR_US) == []
    assert live.feedback_breaches_published_total == 1
    live.document(T0 + 2 * HOUR_US)
    counts = live.totals()[KEY]
    assert (counts[m.DETRACTOR_FEEDBACK], counts[m.FEEDBACK_BREACHES], counts[m.SLA_BREACHES]) == (1, 1, 0)


def test_a_feedback_breach_published_before_a_restart_is_not_published_again() -> None:
    """After a restart the worker fills ``published_feedback`` from what it had published: s1's breach (due at
    11:01:00) is in it, so at 12:00 nothing goes out and the published total stays 0 (this process published
    none). A second detractor s2 of c2 (survey 10:02:00, due 11:02:00), not in the set, goes out alone: total 1.

    Kills ``due_feedback_breaches`` ``not in -> in`` (s1 published again, s2 never)."""
    live = LiveKpis(one_hour_target(), clock=Clock(T0 + 30 * MINUTE_US))
    detractor_awaiting(live)
    live.published_feedback.add(("c1", "s1"))
    assert live.due_feedback_breaches(T0 + 2 * HOUR_US) == []
    assert live.feedback_breaches_published_total == 0
    assert feed(live, 0, contact_event("queued", "q2", T0 + 90 * US, "c2"), 2)
    assert feed(live, 0, survey_event("s2", T0 + 2 * MINUTE_US, "c2", csat=2), 1, "survey-responses")
    assert [(b.contact_id, b.survey_event_id, b.breached_at_us) for b in live.due_feedback_breaches(T0 + 2 * HOUR_US)] \
        == [("c2", "s2", T0 + 2 * MINUTE_US + HOUR_US)]
    assert live.feedback_breaches_published_total == 1


def answered_with_detractor(live: LiveKpis, contact: str, queued_us: int, survey_us: int, queue: str = "billing",
                            **scores: int) -> None:
    """``contact`` queued at ``queued_us`` in ``queue``, answered 10 s later, then a detractor survey."""
    assert feed(live, 0, contact_event("queued", f"{contact}-q", queued_us, contact, queue=queue))
    assert feed(live, 0, contact_event("answered", f"{contact}-a", queued_us + 10 * US, contact, queue=queue))
    assert feed(live, 0, survey_event(f"{contact}-s", survey_us, contact, **scores), 0, "survey-responses")


def test_merge_adds_awaiting_follow_ups_and_takes_the_oldest_over_workers() -> None:
    """Three workers at 10:30:00, target 1 h (no feedback breach yet). A: billing, c1's detractor survey at
    10:01:00 awaits (29 min = 1740 s old), c3 waits since 10:20:00 (600 s). B: billing, c2's survey at 10:05:00
    (1500 s), c4 waits since 10:25:00 (300 s); sales, c6's survey at 10:10:00 (1200 s), c7 waits since 10:28:00
    (120 s). C, a worker of before contract v2, sends billing's live block as two numbers, [2 waiting, 50 s].

    Merged billing: waiting 1 + 1 + 2 = 4, longest max(600, 300, 50) = 600 s, awaiting 1 + 1 + 0 (C sent none)
    = 2, oldest max(1740, 1500) = 1740 s; sales: 1, 120 s, 1, 1200 s. Totals: waiting 5, longest 600 s,
    awaiting 3, oldest max(1740, 1200) = 1740 s (kpis.md: now - the earliest awaiting survey ts).

    Kills ``merge``'s live bookkeeping: the two-number fallback (``== 2`` -> ``!=`` / ``== 1``, its default
    count ``0 -> 1``), the initial ``[0, 0.0, 0, 0.0]`` (``0 -> 1``), ``+= -> -=`` and the index mutants of
    ``held[0..3]``, ``max -> min`` per key and over keys (and for ``now``: ``generated_at`` would be None), and the totals'
    ``v[0..3]`` index mutants."""
    kpi = one_hour_target()
    now = T0 + 30 * MINUTE_US
    a = LiveKpis(kpi, clock=Clock(now))
    answered_with_detractor(a, "c1", T0, T0 + MINUTE_US, nps=1)
    assert feed(a, 0, contact_event("queued", "c3-q", T0 + 20 * MINUTE_US, "c3"))
    b = LiveKpis(kpi, clock=Clock(now))
    answered_with_detractor(b, "c2", T0 + 2 * MINUTE_US, T0 + 5 * MINUTE_US, csat=2)
    assert feed(b, 0, contact_event("queued", "c4-q", T0 + 25 * MINUTE_US, "c4"))
    answered_with_detractor(b, "c6", T0 + 3 * MINUTE_US, T0 + 10 * MINUTE_US, "sales", nps=0)
    assert feed(b, 0, contact_event("queued", "c7-q", T0 + 28 * MINUTE_US, "c7", queue="sales"))
    legacy = {"worker": "C", "now": now, "totals": {},
              "queues": [{"queue": "billing", "channel": "voice", "windows": {}, "live": [2, 50.0]}]}
    doc = merge(kpi, [a.partial("A", now), b.partial("B", now), legacy])
    lives = {(q["queue"], q["channel"]): q["live"] for q in doc["queues"]}
    assert lives == {
        KEY: {"waiting": 4, "longest_wait_seconds": 600.0, "awaiting_follow_up": 2, "oldest_awaiting_seconds": 1740.0},
        ("sales", "voice"): {"waiting": 1, "longest_wait_seconds": 120.0, "awaiting_follow_up": 1,
                             "oldest_awaiting_seconds": 1200.0},
    }
    assert doc["totals"]["live"] == {"waiting": 5, "longest_wait_seconds": 600.0, "awaiting_follow_up": 3,
                                     "oldest_awaiting_seconds": 1740.0}
    assert doc["generated_at"] == "2026-05-04T10:30:00.000Z"


def test_future_facts_have_room_for_two_to_the_twentieth_combinations() -> None:
    """A future fact is one int: its time shifted left by 20 bits, plus the id of its (measure, queue, channel)
    (``Aggregates._code``), so 2**20 = 1 048 576 combinations fit (ids 0 .. 1 048 575) and the next is refused
    with "more than 1048576". The first 1 048 575 ids are taken here by filling the combination table directly
    (a million real facts would cost seconds); then offered +1 at 10:01:30 on billing/voice gets the last id,
    1 048 575, waits in the future, and joins the 10:01 bucket once now passes it, read back as billing/voice;
    a further combination (offered on sales/voice at 10:05:00, after now) is refused.

    Kills ``_COMBO_BITS = 20 -> 19`` (the last id would already be refused: 1 048 575 >= 2**19) and ``_code``'s
    ``combo_id >= _COMBOS -> >`` (id 1 048 576 would be accepted, its code spilling into the time bits)."""
    agg = Aggregates(60 * US, T0)
    agg._combos.extend([(m.OFFERED, "filler", "voice")] * ((1 << 20) - 1))
    at = T0 + 90 * US
    agg.apply([(m.OFFERED, at, "billing", "voice", 1)])
    assert agg.future == {(at << 20) | ((1 << 20) - 1): 1}
    agg.advance(T0 + 2 * MINUTE_US)
    assert agg.window(T0 + MINUTE_US, T0 + 2 * MINUTE_US, [KEY])[KEY][m.OFFERED] == 1
    with pytest.raises(ValueError, match="more than 1048576 .measure, queue, channel. combinations in the future"):
        agg.apply([(m.OFFERED, T0 + 5 * MINUTE_US, "sales", "voice", 1)])


def fold_history() -> list[dict[str, Any]]:
    """c1 (u1) queued 10:00:00, answered 10:00:10, ended resolved 10:05:00; its survey s1 at 10:10:00 with nps 3
    (a detractor), followed up by f1 at 10:40:00; c2 (u1 again) queued 10:30:00, abandoned 10:30:30."""
    ended = {"agent_id": "a1", "talk_seconds": 240, "hold_seconds": 0, "wrap_seconds": 50, "resolved": True,
             "transferred": False}
    return [
        contact_event("queued", "q1", T0), contact_event("answered", "a1", T0 + 10 * US),
        contact_event("ended", "e1", T0 + 5 * MINUTE_US, **ended),
        survey_event("s1", T0 + 10 * MINUTE_US, nps=3),
        contact_event("queued", "q2", T0 + 30 * MINUTE_US, "c2"),
        contact_event("abandoned", "x2", T0 + 30 * MINUTE_US + 30 * US, "c2"),
        {"event_id": "f1", "type": "survey.followed_up", "ts": format_ts(T0 + 40 * MINUTE_US), "contact_id": "c1",
         "customer_id": "u1", "survey_event_id": "s1", "agent_id": "sup-1"},
    ]


def replay_document(kpi: KpiSettings) -> dict[str, Any]:
    engine = KpiEngine(kpi)
    for event in fold_history():
        assert engine.process(event)
    engine.finish()
    return engine.snapshot(T0 + 2 * HOUR_US, include_all=True)


def test_a_replay_moves_its_aggregates_to_each_newer_event_before_applying_its_facts() -> None:
    """A replay's "now" is the newest event time, and an event that moves it moves the aggregates first
    (``ContactProcessor.moves_now``): its own facts then lie at now, not after it, and never take the road of
    future facts (a code per (measure, queue, channel), a heap entry, a pop at the next event). Over
    :func:`fold_history` only the FCR closes (first contacts closed and confirmed, at t0 + F) are ever coded as
    future facts, and the document equals that of the same replay with the aggregates moved after the facts
    (the road before Engine v2's session 15: same sums, other path).

    Kills ``KpiEngine.__init__``'s ``contacts.moves_now = True -> False`` (offered, answered, handled ... coded)."""
    kpi = KpiSettings(fcr_window="1h")
    engine = KpiEngine(kpi)
    for event in fold_history():
        assert engine.process(event)
    assert {measure for measure, _, _ in engine.aggregates._combos} == {m.FIRST_CLOSED, m.FIRST_CONFIRMED}
    engine.finish()
    after = KpiEngine(kpi)
    after.contacts.moves_now = False
    for event in fold_history():
        assert after.process(event)
    assert m.OFFERED in {measure for measure, _, _ in after.aggregates._combos}
    after.finish()
    now = T0 + 2 * HOUR_US
    assert engine.snapshot(now, include_all=True) == after.snapshot(now, include_all=True)


@pytest.mark.parametrize("every", [1, 2])
def test_folding_pending_facts_early_changes_no_figure(monkeypatch: pytest.MonkeyPatch, every: int) -> None:
    """Facts before now wait in ``Aggregates._pending`` until a read or ``FOLD_EVERY`` (65 536) of them; folding
    after every 1 or 2 facts must give the very document of folding only at the read (sums commute). By hand
    (F = 1 h, T = 20 s, S = 5 s), billing/voice over all: offered 2; answered 1; abandoned 1 (x2 after 30 s: not
    short) and one SLA breach (30 s > T, at 10:30:20); handled 1 (AHT 240 + 50 = 290 s); c2 (u1 within 1 h of
    c1, reasons null) a repeat; c1 a first contact, resolved, closed at t0 + F = 11:00, not confirmed (c2 came
    within F); detractors 1, followed up 1 after 30 min (1800 s).

    This is what argues ``FOLD_EVERY = 65536 -> 65535`` and the ``>= FOLD_EVERY -> >`` mutants of ``apply`` and
    ``advance`` equivalent (docs/mutation-equivalent.txt): they only move when pending facts are folded."""
    kpi = KpiSettings(fcr_window="1h")
    monkeypatch.setattr(Aggregates, "FOLD_EVERY", 10**9)
    lazy = replay_document(kpi)
    monkeypatch.setattr(Aggregates, "FOLD_EVERY", every)
    eager = replay_document(kpi)
    assert eager == lazy
    w = next(q for q in eager["queues"] if (q["queue"], q["channel"]) == KEY)["windows"]["all"]
    assert (w["offered"], w["answered"], w["abandoned"], w["abandoned_short"], w["sla_breaches"]) == (1 + 1, 1, 1, 0, 1)
    assert (w["handled"], w["aht_seconds"], w["repeat_contacts"]) == (1, 290.0, 1)
    assert (w["first_contacts"], w["first_contacts_resolved"], w["first_contacts_closed"],
            w["first_contacts_confirmed"]) == (1, 1, 1, 0)
    assert (w["detractors"], w["followed_up"], w["average_feedback_response_seconds"]) == (1, 1, 1800.0)


def test_a_future_fact_one_microsecond_after_now_waits_until_now_passes_it() -> None:
    """kpis.md windows are [start, now): a fact at exactly now is not in them yet. Bucket 1 min, now = 0. Offered
    +1 at F = 01:30:30 (the first future combination, id 0) and answered +1 at 01:30:20 (id 1), both in the future.
    At now = F - 1 µs the answer is due and joins the 01:30 bucket, the offered (1 µs after now) is not; at now = F
    the window [01:30:00, F) holds answered 1, offered 0; at now = F + 1 µs, [01:30:00, F + 1 µs) holds both.

    Kills ``Aggregates.advance``'s loop ``heap[0] < limit -> <=`` (offered, whose code is exactly the limit at
    F - 1 µs, would be taken out of the future too early and folded into its bucket at the next advance, where
    the window up to F would count it)."""
    agg = Aggregates(MINUTE_US)
    f = 90 * MINUTE_US + 30 * US
    start = 90 * MINUTE_US
    agg.apply([(m.OFFERED, f, "billing", "voice", 1)])
    agg.apply([(m.ANSWERED, f - 10 * US, "billing", "voice", 1)])
    agg.advance(f - 1)
    counts = agg.window(start, f - 1, [KEY])[KEY]
    assert (counts[m.ANSWERED], counts[m.OFFERED]) == (1, 0)
    agg.advance(f)
    counts = agg.window(start, f, [KEY])[KEY]
    assert (counts[m.ANSWERED], counts[m.OFFERED]) == (1, 0)
    agg.advance(f + 1)
    counts = agg.window(start, f + 1, [KEY])[KEY]
    assert (counts[m.ANSWERED], counts[m.OFFERED]) == (1, 1)


def test_pruning_forgets_index_contacts_before_the_bound_and_a_key_only_they_held() -> None:
    """``Aggregates.prune(B)`` forgets the buckets that end before B and, in the distinct-customer index, the
    contacts whose t0 is before B (before every window still reported). Bucket 1 min, now 12:05, B = 12:00.
    Index (kept as ids once pruned, like a replay's): c1 of u1 on sales/voice at 11:59:30 (30 s before B), c2 of u2
    on billing/voice at exactly B. After prune(B): sales holds no contact any more and has no count of its own
    here, so it is no longer an active key; billing is. The window [B, B + 1 min) counts 1 customer (u2); the
    ``all`` window (from the first t0) still counts 2 (u1 kept as an id).

    Kills ``prune``'s ``distinct.prune(limit + bucket) -> limit - bucket`` (the index pruned two buckets short of
    B: c1 kept and sales still listed)."""
    bound = T0 + 2 * HOUR_US
    agg = Aggregates(MINUTE_US, bound + 5 * MINUTE_US)
    agg.distinct = DistinctCustomers(keep_all=True)
    agg.distinct.note("u1", bound - 30 * US, "sales", "voice")
    agg.distinct.note("u2", bound, "billing", "voice")
    assert agg.active_keys() == {("sales", "voice"), KEY}
    agg.prune(bound)
    assert agg.active_keys() == {KEY}
    assert agg.customers_total(bound, bound + MINUTE_US) == 1
    assert agg.customers_until(bound + MINUTE_US, None) == 2


def test_a_feedback_breach_counts_from_its_moment_in_windows_that_contain_it() -> None:
    """kpis.md: a feedback breach is +1 for detractor feedback not followed up by survey ts + target, at that
    moment D; windows are [start, now). Target 1 h; c1's survey s1 (nps 1) at 10:01:00, so D = 11:01:00. A replay
    evaluated at exactly D: not yet (it could still be followed up at D itself): 0 in 15m [10:46, 11:01) and in
    ``all``. At D + 1 µs: 1 in 15m [10:46, 11:01:00.000001) and in ``all``. At 11:16:00: the 15m window
    [11:01, 11:16) starts exactly at D: 1. At 11:17:00: 15m [11:02, 11:17) 0, 1h [10:17, 11:17) 1.

    Kills ``Aggregates.window``'s feedback ``start_us <= at -> <`` and ``at < high -> <=``, and
    ``awaiting_breaches_before`` ``at < high -> <=`` (the ``all`` window at D)."""
    engine = KpiEngine(one_hour_target())
    for event in [contact_event("queued", "q1", T0), contact_event("answered", "a1", T0 + 10 * US),
                  survey_event("s1", T0 + MINUTE_US, nps=1)]:
        assert engine.process(event)
    deadline = T0 + MINUTE_US + HOUR_US

    def breaches(now: int) -> dict[str, int]:
        totals = engine.snapshot(now, include_all=True)["totals"]["windows"]
        return {name: totals[name]["feedback_breaches"] for name in ("15m", "1h", "all")}

    assert breaches(deadline) == {"15m": 0, "1h": 0, "all": 0}
    assert breaches(deadline + 1) == {"15m": 1, "1h": 1, "all": 1}
    assert breaches(deadline + 15 * MINUTE_US) == {"15m": 1, "1h": 1, "all": 1}
    assert breaches(deadline + 16 * MINUTE_US) == {"15m": 0, "1h": 1, "all": 1}


def test_a_feedback_breach_counts_only_before_the_window_end() -> None:
    """``Aggregates.window`` of a window ending before now counts awaiting feedback's breach only when its moment
    is before the window's end: moment 10:05:00, now 10:10:00; [10:00, 10:05) -> 0, [10:00, 10:06) -> 1.

    Kills ``Aggregates.window``'s feedback ``min(end_us, now) -> max``."""
    agg = Aggregates(MINUTE_US, T0 + 10 * MINUTE_US)
    agg.ensure_key(KEY)
    agg.awaiting[KEY] = {("c1", "s1"): (T0 - 55 * MINUTE_US, T0 + 5 * MINUTE_US)}
    assert agg.window(T0, T0 + 5 * MINUTE_US, [KEY])[KEY][m.FEEDBACK_BREACHES] == 0
    assert agg.window(T0, T0 + 6 * MINUTE_US, [KEY])[KEY][m.FEEDBACK_BREACHES] == 1


def test_future_until_sums_the_facts_from_now_up_to_before_its_end() -> None:
    """``Aggregates.future_until(end)``: the facts not yet in a bucket (at now or later) whose time is before
    ``end`` (a replay's ``all`` window ends 1 µs after now). Bucket 1 min, now 01:29:00: offered +1 at 01:30:00
    (future), answered +1 at exactly now. Up to 01:29:00: nothing ([now, now) is empty); up to 01:30:00:
    answered 1 only (01:30:00 is not before it); up to 01:30:00.000001: answered 1 and offered 1, every other
    count 0.

    Kills ``future_until``'s ``at < end_us -> <=`` for future facts and for facts at now, and its at-now sums
    starting at 1 or subtracting."""
    agg = Aggregates(MINUTE_US)
    agg.apply([(m.OFFERED, 90 * MINUTE_US, "billing", "voice", 1)])
    agg.advance(89 * MINUTE_US)
    agg.apply([(m.ANSWERED, 89 * MINUTE_US, "billing", "voice", 1)])
    answered = [0] * m.N_MEASURES
    answered[m.ANSWERED] = 1
    both = list(answered)
    both[m.OFFERED] = 1
    assert agg.future_until(89 * MINUTE_US) == {}
    assert agg.future_until(90 * MINUTE_US) == {KEY: answered}
    assert agg.future_until(90 * MINUTE_US + 1) == {KEY: both}


def test_distinct_customers_of_a_window_ending_before_now_stop_at_its_end() -> None:
    """kpis.md *customers*: distinct customers with a contact whose t0 lies in the window [start, end). Now
    10:10:00; u2's c2 at 10:01:00, u1's c1 at 10:05:00, both billing/voice. [10:00, 10:05) holds only c2: 1
    customer, per key and in total; [10:00, 10:06) both: 2.

    Kills ``Aggregates.window``'s and ``customers_total``'s ``min(end_us, now) -> max`` (c1 counted up to now)."""
    agg = Aggregates(MINUTE_US, T0 + 10 * MINUTE_US)
    agg.distinct = DistinctCustomers(keep_all=True)
    agg.distinct.note("u2", T0 + MINUTE_US, "billing", "voice")
    agg.distinct.note("u1", T0 + 5 * MINUTE_US, "billing", "voice")
    agg.ensure_key(KEY)
    end = T0 + 5 * MINUTE_US
    assert (agg.window(T0, end, [KEY])[KEY][m.CUSTOMERS], agg.customers_total(T0, end)) == (1, 1)
    end = T0 + 6 * MINUTE_US
    assert (agg.window(T0, end, [KEY])[KEY][m.CUSTOMERS], agg.customers_total(T0, end)) == (2, 2)


def test_live_all_window_counts_each_customer_once_over_contact_and_customer_partitions() -> None:
    """A live worker's ``all`` window: distinct customers come from its customer partitions only (the contact
    partitions hold no index). u1's c1 queued 10:00:00 on contact partition 0, its summary on customer partition
    1; at 10:30: customers 1 for billing/voice and in total, contacts 1.

    Kills ``customers_until`` returning 1 instead of 0 for an aggregates without an index (each contact
    partition would add a customer)."""
    live = LiveKpis(KpiSettings(), clock=Clock(T0 + 30 * MINUTE_US))
    assert feed(live, 0, contact_event("queued", "q1", T0))
    for summary in live.contacts(0).drain_summaries():
        live.customers(1).update(summary)
    doc = live.document(T0 + 30 * MINUTE_US, include_all=True)
    everything = doc["totals"]["windows"]["all"]
    billing = next(q for q in doc["queues"] if (q["queue"], q["channel"]) == KEY)["windows"]["all"]
    assert (everything["customers"], everything["contacts"], billing["customers"]) == (1, 1, 1)


def agent_event(eid: str, at_us: int, state: str) -> dict[str, Any]:
    return {"event_id": eid, "type": "agent.state", "ts": format_ts(at_us), "agent_id": "A", "state": state,
            "queues": ["billing"], "team": "red"}


def test_the_replay_reads_agent_events_by_topic_and_refuses_an_unknown_type_once() -> None:
    """``KpiEngine.process``: an ``agent.state`` given with topic ``agent-events`` is an agent event (accepted,
    processed 1); one JSONL of every topic (no topic) tells an
    agent event by its type (a second one, on_contact at 10:01, accepted: processed 2; at 10:05 the agent is
    logged in and on a contact). g1 again is a duplicate (kpis.md: same id for the same agent counts once): not
    accepted, duplicates 1, processed still 2. An event of a type no topic has
    (``contact.teleported``) is refused once, kind ``unknown_type``, with the contact side's reason (events.md:
    refused events go to the DLQ with their reason), not re-read as an agent event.

    Kills ``process_agent_event``'s ``not`` removed, its duplicate branch's ``return False`` -> ``True`` or
    removed, ``processed += 1 -> -=``; ``process``'s early ``return`` of the agent topic removed (the contact road would then run on an
    unbound event) and ``exc.kind != "unknown_type" or ...`` -> ``and`` (the unknown type would be re-read by
    the agent parser and refused with its reason, "... on the agent topic")."""
    engine = KpiEngine()
    assert engine.process(orjson.dumps(agent_event("g1", T0, "available")), topic="agent-events")
    assert engine.health.processed == 1
    assert engine.process(orjson.dumps(agent_event("g2", T0 + MINUTE_US, "on_contact")))
    assert engine.health.processed == 2
    assert not engine.process(orjson.dumps(agent_event("g1", T0, "available")), topic="agent-events")
    assert (engine.health.processed, engine.health.duplicates) == (2, 1)
    unknown = {"event_id": "x1", "type": "contact.teleported", "ts": format_ts(T0), "contact_id": "c1",
               "customer_id": "u1"}
    assert not engine.process(orjson.dumps(unknown))
    assert [(r.kind, r.reason) for r in engine.rejections] == [
        ("unknown_type", "type: unknown event type 'contact.teleported'")]
    assert engine.health.invalid == {"unknown_type": 1}
    live = engine.snapshot(T0 + 5 * MINUTE_US)["agents"]["live"]
    assert (live["logged_in"], live["available"], live["on_contact"]) == (1, 0, 1)


def test_a_replay_prunes_agent_timelines_every_evict_every_agent_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replay memory stays bounded (issue 9): every ``EVICT_EVERY`` accepted agent events (3 here) the agent side
    drops the records whose interval ended before stream time - keep (agents.py: the longest window, a day, plus
    a bucket, the disorder and the skew: far less than 3 days). Agent A: e0 available at day 0 10:00, e1
    on_contact at 10:01, e2 available at day 3 10:00 (third event: pruned, e0's interval [10:00, 10:01) is 3 days
    old and goes; e1's runs up to e2: kept): 2 records. e3 at day 3 10:01, e4 at day 6 10:00 (two events since the
    prune: nothing dropped): 4 records. e5 at day 6 10:01 (third since: pruned; e1 and e2 ended at day 3 10:00 and
    10:01, 3 days old): e3, e4, e5 remain.

    Kills ``process_agent_event``'s ``_agent_events += 1`` -> ``-=`` / ``+= 0`` (never pruned), ``>= EVICT_EVERY
    -> >`` (pruned one event late) and the reset ``= 0 -> 1`` (the next prune one event early)."""
    monkeypatch.setattr(engine_module, "EVICT_EVERY", 3)
    engine = KpiEngine()
    day = 24 * HOUR_US
    counts = []
    for i, (at, state) in enumerate([(T0, "available"), (T0 + MINUTE_US, "on_contact"), (T0 + 3 * day, "available"),
                                     (T0 + 3 * day + MINUTE_US, "on_contact"), (T0 + 6 * day, "available"),
                                     (T0 + 6 * day + MINUTE_US, "on_contact")]):
        assert engine.process(orjson.dumps(agent_event(f"e{i}", at, state)))
        counts.append(len(engine.agents.agents["A"].records))
    assert counts == [1, 2, 2, 3, 4, 3]


def test_summaries_from_other_processes_prune_on_the_same_cadence_as_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """A split replay hands each process the FCR summaries of its customers computed elsewhere
    (``KpiEngine.apply_summaries``); they count toward the same ``EVICT_EVERY`` cadence as events (4 here), and
    each prune drops the buckets no window reaches (before now - history: 26 h by default). c0 queued day 0 10:00,
    c9 day 3 10:00, c7 day 3 10:00:30 (3 events); summary s1 (u9's x1) is the fourth: pruned at day 3 10:00:30
    - 26 h, so day 0's bucket goes and day 3's stays. c8 queued day 6 10:00, c6 day 6 10:00:30 and summary s2 (3
    since): no prune, day 3's bucket stays; s3 (4 since): pruned at day 6 10:00:30 - 26 h: day 3's bucket goes,
    day 6's stays.

    Kills ``apply_summaries``'s ``_since_evict += 1 -> -=`` / ``+= 0`` (never pruned), ``>= EVICT_EVERY -> >``
    (no prune at s1), the reset ``= 0 -> 1`` (pruned at s2) and the bound ``now - history -> +`` (day 3's bucket
    gone at s1)."""
    monkeypatch.setattr(engine_module, "EVICT_EVERY", 4)
    day = 24 * HOUR_US
    engine = KpiEngine()

    def starts() -> set[int]:
        return set(engine.aggregates.buckets.get(KEY, {}))

    def summary(contact: str, t0: int) -> Summary:
        return Summary(contact, "u9", t0, None, "billing", "voice", None)

    for eid, at, contact in (("q0", T0, "c0"), ("q9", T0 + 3 * day, "c9"), ("q7", T0 + 3 * day + 30 * US, "c7")):
        assert engine.process(contact_event("queued", eid, at, contact))
    assert {T0, T0 + 3 * day} <= starts()
    engine.apply_summaries([summary("x1", T0 + 3 * day)])
    assert T0 not in starts() and T0 + 3 * day in starts()
    for eid, at, contact in (("q8", T0 + 6 * day, "c8"), ("q6", T0 + 6 * day + 30 * US, "c6")):
        assert engine.process(contact_event("queued", eid, at, contact))
    engine.apply_summaries([summary("x2", T0 + 6 * day)])
    assert T0 + 3 * day in starts()
    engine.apply_summaries([summary("x3", T0 + 6 * day)])
    assert T0 + 3 * day not in starts() and T0 + 6 * day in starts()


def _six_settled_and_one_waiting(clock: Clock) -> tuple[LiveKpis, int]:
    """Partition 0 of a live state: c0..c5 queued 10:00..10:05 and abandoned 2 s later (settled), c9 queued
    10:10 (waiting); and the offset of its last event."""
    first = LiveKpis(KpiSettings(), clock=clock)
    offset = 0
    for k in range(6):
        for event in (contact_event("queued", f"q{k}", T0 + k * MINUTE_US, f"c{k}"),
                      contact_event("abandoned", f"x{k}", T0 + k * MINUTE_US + 2 * US, f"c{k}")):
            assert feed(first, 0, event, offset)
            offset += 1
    assert feed(first, 0, contact_event("queued", "q9", T0 + 10 * MINUTE_US, "c9"), offset)
    first.settle(0)
    return first, offset


def test_a_rebuild_with_a_table_loader_keeps_no_settled_contact_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Recovery of a worker whose table holds every contact (``loader_for`` set): settled contacts leave memory
    altogether, not even packed (issue 9: a week is ~470k contacts; the table holds them), and one touched again
    is read back from the table. Six contacts c0..c5 queued at 10:00..10:05 and abandoned 2 s later, c9 queued
    10:10 (the six are settled: older than the 60 s allowance); restored with ``RESTORE_EVICT_EVERY`` 2 (so the
    periodic move runs too): only the waiting c9 stays, nothing is packed. c0's abandon re-delivered is read back
    from the table and is a duplicate (kpis.md: remembered at least 24 h): offered 7, abandoned 6.

    Kills ``rebuild_contacts``' ``keep_packed=False -> True`` (periodic and final: the six would stay packed in
    memory, and be forgotten from the table past the retention, which a loader-less keep would not) and
    ``contacts``' ``loader_for is not None -> is`` (no loader: c0's abandon would count as a new event)."""
    clock = Clock(T0 + HOUR_US)
    first, offset = _six_settled_and_one_waiting(clock)
    states = dict(first.contacts(0).contacts)
    assert len(states) == 7
    monkeypatch.setattr(live_module, "RESTORE_EVICT_EVERY", 2)
    second = LiveKpis(KpiSettings(), clock=clock, loader_for=lambda partition: states.get)
    assert second.rebuild_contacts(sorted((cid, 0, state) for cid, state in states.items()), {0}) == 7
    proc = second.contacts(0)
    assert (set(proc.contacts), dict(proc.settled)) == ({"c9"}, {})
    assert not feed(second, 0, contact_event("abandoned", "x0", T0 + 2 * US, "c0"), offset + 1)
    totals = second.document(T0 + 11 * MINUTE_US, include_all=True)["totals"]["windows"]["all"]
    assert (totals["offered"], totals["abandoned"]) == (7, 6)


def test_a_rebuild_without_a_table_loader_moves_nothing_out_at_the_restore_cadence(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a table loader (``loader_for`` None) nothing could be read back, so recovery keeps every restored
    contact, also at the periodic moves (``RESTORE_EVICT_EVERY`` 2 here): the six settled contacts c0..c5 (queued
    10:00..10:05, abandoned 2 s later) and the waiting c9 (10:10) are all still known; c0's abandon re-delivered
    is a duplicate (kpis.md: remembered at least 24 h): offered 7, abandoned 6.

    Kills ``rebuild_contacts``' ``loader_for is not None and ...`` -> ``or`` (settled contacts dropped every
    second restored contact with no copy anywhere: c0's abandon would count again)."""
    clock = Clock(T0 + HOUR_US)
    first, offset = _six_settled_and_one_waiting(clock)
    stored = sorted((cid, 0, state) for cid, state in first.contacts(0).contacts.items())
    monkeypatch.setattr(live_module, "RESTORE_EVICT_EVERY", 2)
    second = LiveKpis(KpiSettings(), clock=clock)
    assert second.rebuild_contacts(stored, {0}) == 7
    assert len(second.contacts(0).contacts) + len(second.contacts(0).settled) == 7
    assert not feed(second, 0, contact_event("abandoned", "x0", T0 + 2 * US, "c0"), offset + 1)
    totals = second.document(T0 + 11 * MINUTE_US, include_all=True)["totals"]["windows"]["all"]
    assert (totals["offered"], totals["abandoned"]) == (7, 6)


def test_a_live_all_window_counts_customers_whose_contacts_were_pruned() -> None:
    """The ``all`` window of a live worker counts every customer since its first event once, like a replay,
    although the distinct-customer index forgets contacts older than 26 hours (the document prunes them): u1's
    c1 queued at day 0 10:00, u2's c2 at day 3 10:00; the document at day 3 10:30 (c1 pruned): customers 2,
    contacts 2 in ``all``; the 24h window [day 2 10:30, day 3 10:30): 1 (u2).

    Kills ``LiveKpis.customers``' ``keep_all_customers=True -> False`` (u1 would be forgotten: 1)."""
    day = 24 * HOUR_US
    now = T0 + 3 * day + 30 * MINUTE_US
    live = LiveKpis(KpiSettings(), clock=Clock(now))
    assert feed(live, 0, contact_event("queued", "q1", T0), 0)
    assert feed(live, 0, contact_event("queued", "q2", T0 + 3 * day, "c2", customer_id="u2"), 1)
    for summary in live.contacts(0).drain_summaries():
        live.customers(1).update(summary)
    windows = live.document(now, include_all=True)["totals"]["windows"]
    assert (windows["all"]["customers"], windows["all"]["contacts"], windows["24h"]["customers"]) == (2, 2, 1)


def test_a_key_whose_facts_at_now_were_all_retracted_is_not_active() -> None:
    """``Aggregates.active_keys``: a survey first attributed to unknown/unknown (its queued not read yet), then to
    its queue, at exactly now: +1 promoter on unknown, -1 promoter on unknown, +1 promoter on billing/voice. Only
    billing/voice has a count: unknown/unknown is not an active key.

    Kills ``active_keys``' at-now sums starting at 1 (unknown would hold 1 + 1 - 1 = 1)."""
    agg = Aggregates(MINUTE_US, T0)
    unknown = (m.PROMOTERS, T0, "unknown", "unknown", 1)
    agg.apply([unknown])
    agg.apply([unknown], -1)
    agg.apply([(m.PROMOTERS, T0, "billing", "voice", 1)])
    assert agg.active_keys() == {KEY}


def test_finish_refuses_a_follow_up_of_no_survey_read_after_the_last_contact_event() -> None:
    """End of a replay: every event is in, so what still waits for a missing event is refused, also when it came
    after the last contact event (surveys and follow-ups do not move the contacts' lifecycle clock). c1 queued
    10:00:00; its survey s1 (nps 9) at 10:30:00; f9 at 10:40:00 follows up a survey c1 never had. Before
    ``finish`` nothing is refused (the clock is still 10:00:00); after it, f9 once, kind lifecycle, "no such
    survey" (events.md / kpis.md v2: a follow-up of no such survey goes to the DLQ once the disorder has passed).

    Kills ``finish``'s ``max(stream_time, latest_ts)`` -> ``min`` (the clock would only pass 10:00:00 + 60 s)."""
    engine = KpiEngine()
    assert engine.process(contact_event("queued", "q1", T0))
    assert engine.process(survey_event("s1", T0 + 30 * MINUTE_US, nps=9))
    assert engine.process({"event_id": "f9", "type": "survey.followed_up", "ts": format_ts(T0 + 40 * MINUTE_US),
                           "contact_id": "c1", "customer_id": "u1", "survey_event_id": "s-none", "agent_id": "sup-1"})
    assert engine.rejections == []
    engine.finish()
    assert [(r.kind, r.event_id) for r in engine.rejections] == [("lifecycle", "f9")]
    assert engine.rejections[0].reason.startswith("no such survey")


def test_live_awaiting_follow_ups_add_over_partitions_and_the_oldest_is_the_largest_age() -> None:
    """kpis.md v2 live: awaiting_follow_up = detractor feedback not yet followed up; oldest_awaiting_seconds = now
    - the earliest such survey ts. One worker, two contact partitions, both billing/voice, target 1 h: c1 on
    partition 0 with a detractor survey at 10:01:00, c2 on partition 1 with one at 10:05:00. At 10:30:00:
    awaiting 1 + 1 = 2, oldest 10:30 - 10:01 = 1740 s (not 1500 s).

    Kills ``merge_live``'s ``held[0] + count`` -> ``held[1] + count`` (2 would become 1741) and
    ``max(held[1], oldest)`` -> ``max(held[0], oldest)`` (1500)."""
    now = T0 + 30 * MINUTE_US
    live = LiveKpis(one_hour_target(), clock=Clock(now))
    for partition, (contact, survey_at) in enumerate([("c1", T0 + MINUTE_US), ("c2", T0 + 5 * MINUTE_US)]):
        assert feed(live, partition, contact_event("queued", f"{contact}-q", T0, contact))
        assert feed(live, partition, survey_event(f"{contact}-s", survey_at, contact, nps=2), 0, "survey-responses")
    doc = live.document(now)
    row_live = next(q for q in doc["queues"] if (q["queue"], q["channel"]) == KEY)["live"]
    assert (row_live["awaiting_follow_up"], row_live["oldest_awaiting_seconds"]) == (2, 1740.0)


def test_the_all_window_of_a_queue_counts_only_its_own_feedback_breaches() -> None:
    """A replay's ``all`` window per (queue, channel): c1 on billing/voice with a detractor survey at 10:01:00
    (target 1 h: breach at 11:01:00, still awaiting), c2 on sales/voice answered with no survey. At 11:30:00:
    billing all feedback_breaches 1, sales 0, total 1.

    Kills ``_sum_all``'s feedback ``k == key`` -> ``!=`` (billing would get sales' 0 and sales billing's 1)."""
    engine = KpiEngine(one_hour_target())
    for event in [contact_event("queued", "q1", T0), survey_event("s1", T0 + MINUTE_US, nps=1),
                  contact_event("queued", "q2", T0 + 2 * MINUTE_US, "c2", queue="sales"),
                  contact_event("answered", "a2", T0 + 2 * MINUTE_US + 5 * US, "c2", queue="sales")]:
        assert engine.process(event)
    doc = engine.snapshot(T0 + 90 * MINUTE_US, include_all=True)
    alls = {(q["queue"], q["channel"]): q["windows"]["all"]["feedback_breaches"] for q in doc["queues"]}
    assert alls == {KEY: 1, ("sales", "voice"): 0}
    assert doc["totals"]["windows"]["all"]["feedback_breaches"] == 1
