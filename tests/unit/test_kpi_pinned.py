"""Rules no other unit test pins, each as a hand-computed case (issue 16, "Every rule pinned").

Why this file: a mutation run over ``cxpulse/core`` found rules that every unit test let change unnoticed
(the last ``contact.ended`` deciding FCR, ``forget()`` of both processors, the breach catch-up clock, surveys
and the lifecycle clock, a rejection's original bytes, a restored contact's breach marks), and boundaries
that only the property tests' oracle checked (NPS 6/7/8/9, CSAT 3/4, an abandon at exactly T, hold and
wrap in AHT, the window edges). Each test below writes its expected numbers out, with the arithmetic in a
comment, and fails on the mutant named in its docstring. No oracle, no sleeping: time is passed in.

Defaults used throughout: voice T = 20 s, S = 5 s; ``fcr_window`` 1 h where the test sets it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson
import pytest

from cxpulse.core.aggregates import Aggregates
from cxpulse.core.contact import ContactState
from cxpulse.core.engine import KpiEngine
from cxpulse.core.live import IDLE_US, LiveKpis
from cxpulse.core.processors import ContactProcessor
from cxpulse.models.events import format_ts, parse_any_event, to_us
from cxpulse.settings import KpiSettings
from test_kpi_edges import DAY, MICRO, MS, S, all_of, ev, row, run

US = 1_000_000
DAY_S = 86_400
H = timedelta(hours=1)


def engine_with(events: list[dict[str, Any]], kpi: KpiSettings | None = None) -> KpiEngine:
    """A replay engine fed ``events`` in the order given (no ``finish``: the caller decides)."""
    engine = KpiEngine(kpi or KpiSettings(fcr_window="1h"))
    for event in events:
        engine.process(event)
    return engine


# -- the final contact.ended decides FCR; every contact.ended is handled ------------------------------------------------
@pytest.mark.parametrize(("first_resolved", "last_resolved", "fcr"), [(False, True, 1.0), (True, False, 0.0)])
def test_last_of_two_non_transferred_ends_decides_fcr_and_both_are_handled(
    first_resolved: bool, last_resolved: bool, fcr: float
) -> None:
    """A contact served twice without a transfer: billing q1 10:00:00, a1 10:00:05, e1 10:01:00 (not transferred);
    the customer is queued again in tech q2 10:01:01, a2 10:01:02, e2 10:01:10 (not transferred). kpis.md: the
    final ``contact.ended`` (the last non-transferred one, by ts) decides the first contact, at its ts and in its
    queue; "Handling": +1 per ``contact.ended``. The later end arrives first (10 s out of order, within the
    allowance), so arrival order cannot be what decides.

    Kills: ``summary_of`` taking the *first* non-transferred end (iterating ``lifecycle.ended`` forwards)."""
    events = [
        ev("queued", "q1", DAY), ev("answered", "a1", DAY + 5 * S),
        ev("queued", "q2", DAY + 61 * S, queue="tech"), ev("answered", "a2", DAY + 62 * S, queue="tech"),
        ev("ended", "e2", DAY + 70 * S, queue="tech", resolved=last_resolved,
           talk_seconds=100, hold_seconds=30, wrap_seconds=20),  # 150 s of handling
        ev("ended", "e1", DAY + 60 * S, resolved=first_resolved,
           talk_seconds=40, hold_seconds=0, wrap_seconds=10),  # 50 s of handling
    ]
    engine, doc = run(events, now=DAY + 3 * H)
    assert engine.rejections == []
    billing, tech = all_of(doc), all_of(doc, "tech")
    # handled: one per contact.ended, each in its own queue; AHT total = (50 + 150) / 2 = 100 s
    assert (billing["handled"], billing["aht_seconds"]) == (1, 50.0)
    assert (tech["handled"], tech["aht_seconds"]) == (1, 150.0)
    t = doc["totals"]["windows"]["all"]
    assert (t["handled"], t["aht_seconds"]) == (2, 100.0)
    # one contact, one first contact: decided by e2 (10:01:10, tech), never by e1
    assert (billing["first_contacts"], billing["first_contacts_resolved"]) == (0, 0)
    assert (tech["first_contacts"], tech["first_contacts_resolved"], tech["fcr"]) == (1, int(last_resolved), fcr)
    # closed at t0 + F = 11:00:00 (later than e2), confirmed only if e2 resolved it
    assert (tech["first_contacts_closed"], tech["first_contacts_confirmed"]) == (1, int(last_resolved))
    assert (t["first_contacts"], t["fcr"]) == (1, fcr)


# -- ContactProcessor.forget(): contacts remembered at least 30 days ------------------------------------------------
@pytest.mark.parametrize(
    ("retention", "after_last", "forgotten", "queue"),
    [
        ("30d", 30 * DAY_S * US - 1, [], "billing"),  # 30 days minus 1 us: remembered (kpis.md "at least 30 days")
        ("30d", 30 * DAY_S * US, [], "billing"),  # exactly the retention: still remembered (limit is strict)
        ("30d", 30 * DAY_S * US + 1, ["c1"], "unknown"),  # 1 us past the retention: forgotten
        (None, 30 * DAY_S * US - 1, [], "billing"),  # the default retention (31 days) ...
        (None, 31 * DAY_S * US, [], "billing"),
        (None, 31 * DAY_S * US + 1, ["c1"], "unknown"),  # ... and 1 us past it
    ],
)
def test_contact_retention_decides_where_a_late_survey_goes(
    retention: str | None, after_last: int, forgotten: list[str], queue: str
) -> None:
    """c1: queued 10:00:00, answered 10:00:05, ended 10:01:05 (its last event, L). Live, the maintenance timer calls
    ``forget(now)``; a survey then arrives at ``now``. ``forget`` drops a contact whose last event is older than
    ``now - contact_retention`` (strictly): at L + retention it is kept, 1 us later it is dropped and the survey
    goes to unknown/unknown (events.md: "When the contact is not known to the pipeline"). Its counts stay.

    Kills: ``forget`` disabled (the +1 us rows), ``<`` turned into ``<=`` (the exact-retention rows), a retention
    read in the wrong unit or a fixed shorter one (the 30 d - 1 us rows), and ``forget`` retracting facts."""
    kpi = KpiSettings(fcr_window="1h") if retention is None else KpiSettings(fcr_window="1h", contact_retention=retention)
    ended = DAY + 65 * S
    engine = engine_with([ev("queued", "q1", DAY), ev("answered", "a1", DAY + 5 * S), ev("ended", "e1", ended)], kpi)
    now_us = to_us(ended) + after_last
    assert engine.contacts.forget(now_us) == forgotten
    survey_at = ended + timedelta(microseconds=after_last)
    assert engine.process(ev("survey", "s1", survey_at, nps=10, csat=5))
    doc = engine.snapshot(include_all=True)
    channel = "voice" if queue == "billing" else "unknown"
    survey_row = all_of(doc, queue, channel)
    assert (survey_row["promoters"], survey_row["csat_satisfied"]) == (1, 1)
    # forgetting a contact keeps what it counted: offered 1, answered 1 in 5 s, handled 1 (60 + 10 s)
    billing = all_of(doc)
    assert (billing["offered"], billing["answered_within_threshold"], billing["handled"], billing["aht_seconds"]) == (1, 1, 1, 70.0)


def test_a_waiting_contact_is_never_forgotten() -> None:
    """c1 queued 10:00:00 and still waiting 31 days + 1 h later: ``forget`` keeps it (its visit is open), so its
    answer, arriving then, pairs with it: offered 1, answered 1, wait 31 d + 1 h > T so not within, 1 breach.

    Kills: dropping the ``cid not in self.waiting`` guard of ``ContactProcessor.forget`` (the answer would then
    find no open visit and be rejected)."""
    kpi = KpiSettings(fcr_window="1h")
    later = DAY + timedelta(days=31) + H
    engine = engine_with([ev("queued", "q1", DAY)], kpi)
    assert engine.contacts.forget(to_us(later)) == []
    engine.process(ev("answered", "a1", later))
    engine.finish()
    assert engine.rejections == []
    w = all_of(engine.snapshot(include_all=True))
    assert (w["offered"], w["answered"], w["answered_within_threshold"], w["sla_breaches"]) == (1, 1, 0, 1)


# -- duplicates remembered at least 24 h ---------------------------------------------------------------------------
@pytest.mark.parametrize("retention", ["30d", None])
@pytest.mark.parametrize("resent_after", [timedelta(hours=24), timedelta(days=30)])
def test_duplicate_resent_24h_later_is_still_dropped(retention: str | None, resent_after: timedelta) -> None:
    """c1 ends at 10:01:05 (resolved, 60 + 10 s). Another contact moves the clock to 24 h (and 30 d) later, the
    maintenance timer runs ``forget`` at that moment, and then c1's ``contact.ended`` is re-sent with another
    payload. kpis.md "Duplicates": remembered for at least 24 h, the first arrival wins: handled stays 1, AHT 70 s,
    first_contacts_resolved stays 1.

    Kills: ``forget`` dropping contacts early (a retention read in hours, or ``last_ts`` compared the wrong
    way), and ``ContactState.add`` forgetting its ``seen`` ids."""
    kpi = KpiSettings(fcr_window="1h") if retention is None else KpiSettings(fcr_window="1h", contact_retention=retention)
    ended = ev("ended", "e1", DAY + 65 * S, resolved=True)
    engine = engine_with([ev("queued", "q1", DAY), ev("answered", "a1", DAY + 5 * S), ended], kpi)
    later = DAY + 65 * S + resent_after
    assert engine.process(ev("queued", "q9", later, "c9"))
    assert engine.contacts.forget(to_us(later)) == []
    assert engine.process({**ended, "resolved": False, "talk_seconds": 999}) is False
    assert engine.health.duplicates == 1
    w = all_of(engine.snapshot(include_all=True))
    assert (w["handled"], w["aht_seconds"], w["first_contacts"], w["first_contacts_resolved"]) == (1, 70.0, 1, 1)


# -- CustomerProcessor.forget(): FCR stays right --------------------------------------------------------------------
def test_customer_forget_keeps_a_repeat_a_repeat() -> None:
    """F = 1 h, allowance 60 s. Customer u1: c1 t0 = 10:00:00 (resolved, ended 10:01:05); c2 t0 = 11:00:00 = c1's
    t0 + F, so c1 lies in [t0' - F, t0'): c2 is a repeat, and c1 is not confirmed (c2 starts in (t0, t0 + F]).
    ``CustomerProcessor.forget(now)`` drops contacts with t0 < now - 2F - allowance. At now = 12:01:00 the limit
    is 10:00:00 = c1's t0: c1 must stay, because c2 ends only now and its summary is recomputed.
    Customer u2 (one contact, t0 09:00:00 < limit) can change no count and is forgotten.

    Expected at 13:00: repeat_contacts 1 (c2), first_contacts 2 (c1, and u2's c0), of which resolved 2;
    closed 2 (c1 at 11:00, c0 at 10:00), confirmed 1 (c0 only).

    Kills: ``forget_before`` with ``<=`` (c1 dropped at its exact limit: c2 turns into a first contact), and
    a limit shorter than 2F + allowance; the returned ``["u2"]`` kills ``forget`` disabled."""
    kpi = KpiSettings(fcr_window="1h", allowed_disorder="60s")
    c1 = [ev("queued", "c1q", DAY, "c1", reason="billing"), ev("answered", "c1a", DAY + 5 * S, "c1"),
          ev("ended", "c1e", DAY + 65 * S, "c1", resolved=True)]
    c0 = [ev("queued", "c0q", DAY - H, "c0", customer="u2"), ev("answered", "c0a", DAY - H + 5 * S, "c0", customer="u2"),
          ev("ended", "c0e", DAY - H + 65 * S, "c0", customer="u2", resolved=True)]
    c2 = [ev("queued", "c2q", DAY + H, "c2", reason="billing"), ev("answered", "c2a", DAY + H + 5 * S, "c2")]
    engine = engine_with(c0 + c1 + c2, kpi)
    now = DAY + 2 * H + 60 * S  # limit = now - 2F - 60 s = 10:00:00
    assert engine.customers.forget(to_us(now)) == ["u2"]
    assert set(engine.customers.customers) == {"u1"}
    assert set(engine.customers.customers["u1"].contacts) == {"c1", "c2"}
    engine.process(ev("ended", "c2e", now, "c2", resolved=True))  # c2's summary changes: u1 is recomputed
    engine.finish()
    w = engine.snapshot(to_us(DAY + 3 * H), include_all=True)["totals"]["windows"]["all"]
    assert (w["repeat_contacts"], w["first_contacts"], w["first_contacts_resolved"]) == (1, 2, 2)
    assert (w["first_contacts_closed"], w["first_contacts_confirmed"], w["fcr_confirmed"]) == (2, 1, 0.5)


# -- the breach catch-up clock ----------------------------------------------------------------------------------------
class FakeClock:
    """Wall clock in microseconds that only moves when a test says so (``LiveKpis(clock=...)``)."""

    def __init__(self, now_us: int) -> None:
        self.now_us = now_us

    def __call__(self) -> int:
        return self.now_us


T0 = to_us(DAY)  # event time of the history being read
WALL = T0 + 10 * DAY_S * US  # the wall clock while it is read: ten days later


def live_with_queued(clock: FakeClock, ts_us: int = T0, partition: int = 0) -> LiveKpis:
    """A LiveKpis whose partition has read one ``contact.queued`` (c1, billing voice, T = 20 s) at ``clock``."""
    live = LiveKpis(KpiSettings(), clock=clock)
    event = {"event_id": "q1", "type": "contact.queued", "ts": format_ts(ts_us), "contact_id": "c1",
             "customer_id": "u1", "queue": "billing", "channel": "voice", "reason": None}
    raw = orjson.dumps(event)
    assert live.handle("contact-events", partition, parse_any_event(raw), raw, 0)
    return live


def never(partition: int) -> bool:
    """``caught_up`` of a partition that still has unread events (a backlog)."""
    return False


def always(partition: int) -> bool:
    """``caught_up`` of a partition with nothing left to read."""
    return True


@pytest.mark.parametrize(
    ("idle", "caught_up", "expected"),
    [
        # no Kafka to ask (caught_up None): ``now`` as given
        (2 * US, None, WALL + 2 * US),
        # not caught up: stream time + idle time (T0 + 2 s), however long idle
        (2 * US, never, T0 + 2 * US),
        (IDLE_US, never, T0 + IDLE_US),
        # caught up but idle less than IDLE_US: still stream time + idle
        (IDLE_US - 1, always, T0 + IDLE_US - 1),
        # caught up and idle exactly IDLE_US: the wall clock
        (IDLE_US, always, WALL + IDLE_US),
        (3600 * US, always, WALL + 3600 * US),
        # the wall clock behind the partition's last contact event (a clock step): idle counts as 0, not negative
        (-US, never, T0),
        (-US, always, T0),
    ],
)
def test_breach_clock_catches_up_by_stream_time_then_takes_the_wall_clock(
    idle: int, caught_up: Callable[[int], bool] | None, expected: int
) -> None:
    """Partition 0 read c1 queued at T0 (event time) when the wall clock showed WALL = T0 + 10 days.
    ``breach_clock(0, now = WALL + idle, caught_up)`` = now once caught up and idle >= IDLE_US (0.5 s),
    else min(now, stream time + max(idle, 0)).

    Kills: ``>=`` turned into ``>`` (the IDLE_US row), the caught-up test dropped or negated (the ``never``
    rows), ``max(idle, 0)`` dropped (the -1 s rows), stream time replaced by the wall clock, and the
    ``caught_up is None`` shortcut judged like a backlog (the first row)."""
    clock = FakeClock(WALL)
    live = live_with_queued(clock)
    assert live.breach_clock(0, WALL + idle, caught_up) == expected


def test_breach_clock_never_runs_ahead_of_now() -> None:
    """A producer clock 60 s ahead: c1 queued at WALL + 60 s, read at WALL. Not caught up, 1 s later:
    min(now, stream time + idle) = min(WALL + 1 s, WALL + 61 s) = WALL + 1 s. Without a Kafka to ask
    (``caught_up`` None) the clock is ``now`` as given.

    Kills: the ``min(now, ...)`` bound dropped; the ``caught_up is None`` shortcut changed."""
    clock = FakeClock(WALL)
    live = live_with_queued(clock, ts_us=WALL + 60 * US)
    assert live.breach_clock(0, WALL + US, never) == WALL + US
    assert live.breach_clock(0, WALL + US, None) == WALL + US
    assert live.breach_clock(0, WALL - 7 * US, None) == WALL - 7 * US


def test_a_survey_does_not_reset_the_idle_time() -> None:
    """Surveys come from another topic: only contact events say the partition is busy. c1 queued read at WALL,
    then a survey at WALL + 0.4 s; at WALL + IDLE_US the partition has been idle IDLE_US since its last contact
    event: the wall clock (caught up).

    Kills: ``LiveKpis.handle`` taking the survey's arrival as contact activity (the clock would be
    T0 + 0.1 s)."""
    clock = FakeClock(WALL)
    live = live_with_queued(clock)
    clock.now_us = WALL + 400_000
    survey = {"event_id": "s1", "type": "survey.response", "ts": format_ts(T0 + US), "contact_id": "c1",
              "customer_id": "u1", "nps": 9, "csat": None}
    raw = orjson.dumps(survey)
    assert live.handle("survey-responses", 0, parse_any_event(raw), raw, 0)
    assert live.breach_clock(0, WALL + IDLE_US, always) == WALL + IDLE_US


def test_live_due_breaches_catch_up_by_event_time_and_publish_each_once() -> None:
    """c1 queued at T0 (T = 20 s) read at WALL, backlog not read (``caught_up`` False): the clock is T0 + idle.
    At WALL + 20 s the wait is exactly T: nothing. At WALL + 20 s + 1 us: c1's breach, at T0 + 20 s, once.
    Later ticks (also once caught up) publish nothing again; ``breaches_published_total`` is 1.

    Kills: judging a backlog by the wall clock (a breach at the first tick), ``<`` turned into ``<=`` in
    ``ContactProcessor.due_breaches``, and a breach handed out twice."""
    clock = FakeClock(WALL)
    live = live_with_queued(clock)
    assert live.due_breaches(WALL + 20 * US, never) == []
    out = live.due_breaches(WALL + 20 * US + 1, never)
    assert [(b.contact_id, b.queued_event_id, b.breached_at_us) for b in out] == [("c1", "q1", T0 + 20 * US)]
    assert live.due_breaches(WALL + 60 * US, never) == []
    assert live.due_breaches(WALL + 3600 * US, always) == []
    assert live.breaches_published_total == 1


def test_live_due_breaches_once_caught_up_use_the_wall_clock() -> None:
    """The same c1 with nothing left to read: after IDLE_US of quiet the clock is the wall clock (ten days past
    T0 + 20 s), so the breach goes out at the first tick; before IDLE_US it waits.

    Kills: the caught-up branch of ``breach_clock`` dropped (the breach would wait for 20 s of idle time)."""
    clock = FakeClock(WALL)
    live = live_with_queued(clock)
    assert live.due_breaches(WALL + IDLE_US - 1, always) == []
    assert [b.contact_id for b in live.due_breaches(WALL + IDLE_US, always)] == ["c1"]
    assert live.due_breaches(WALL + 2 * IDLE_US, always) == []


def test_live_due_breaches_after_a_rebuild_skip_what_the_breach_log_holds() -> None:
    """A rebuild (rebalance or restart) offers every breach again (the table's marks are not trusted); the
    worker's ``published_visits`` (read back from the sla-breaches topic) keeps c1's breach from going out twice.

    Kills: ``LiveKpis.due_breaches`` not filtering by ``published_visits``."""
    clock = FakeClock(WALL)
    live = live_with_queued(clock)
    assert [b.contact_id for b in live.due_breaches(WALL + IDLE_US, always)] == ["c1"]
    stored = json.loads(json.dumps([(cid, state.to_dict()) for cid, state in live.contacts(0).contacts.items()]))
    assert live.rebuild_contacts([(cid, 0, ContactState.from_dict(d)) for cid, d in stored], {0}) == 1
    assert live.due_breaches(WALL + 2 * IDLE_US, always) == []
    assert live.breaches_published_total == 1
    fresh = LiveKpis(KpiSettings(), clock=clock)  # a worker that has not read the breach log: offered again
    fresh.rebuild_contacts([(cid, 0, ContactState.from_dict(d)) for cid, d in stored], {0})
    assert [b.queued_event_id for b in fresh.due_breaches(WALL + 2 * IDLE_US, always)] == ["q1"]


def test_processor_marks_a_timer_breach_so_a_late_answer_does_not_publish_it_again() -> None:
    """c1 queued 10:00:00 (T = 20 s): the timer at 10:00:20.000001 hands out its breach; the answer at
    10:00:30 (wait 30 s > T) must not hand it out a second time as a "late" breach.

    Kills: ``ContactProcessor.due_breaches`` not marking ``breaches_published`` (the late-answer path would
    publish the same visit again)."""
    proc = ContactProcessor(KpiSettings(), Aggregates(60 * US), publish_breaches=True)
    proc.handle(parse_any_event(ev("queued", "q1", DAY)))
    assert [b.queued_event_id for b in proc.due_breaches(T0 + 20 * US + 1)] == ["q1"]
    proc.handle(parse_any_event(ev("answered", "a1", DAY + 30 * S)))
    assert proc.due_breaches(T0 + 3600 * US) == []


# -- surveys and the lifecycle clock --------------------------------------------------------------------------------
def test_surveys_move_latest_ts_but_not_the_lifecycle_clock() -> None:
    """An answer at 10:00:00 whose queued has not arrived yet, then a survey at 10:10:00 (its topic is read
    independently and may run ahead). The lifecycle clock (``stream_time``) stays at 10:00:00, so the answer is
    not rejected (the allowance of 60 s has not passed in contact-event time); the replay's "now"
    (``latest_ts``) is 10:10:00. The queued at 09:59:30 then pairs with the answer: wait 30 s > T.

    Kills: ``_note_time`` letting surveys move ``stream_time`` (the answer would be rejected at the survey),
    and surveys not moving ``latest_ts`` (the document would be generated at 10:00:00)."""
    engine = KpiEngine(KpiSettings())
    engine.process(ev("answered", "a1", DAY))
    engine.process(ev("survey", "s1", DAY + 600 * S, "c2", nps=9))
    assert engine.contacts.stream_time == T0
    assert engine.contacts.latest_ts == T0 + 600 * US
    assert engine.stream_time == T0 + 600 * US
    assert engine.rejections == []
    engine.process(ev("queued", "q1", DAY - 30 * S))
    engine.finish()
    assert engine.rejections == []
    doc = engine.snapshot(include_all=True)
    assert doc["generated_at"] == "2026-05-04T10:10:00.000Z"
    w = all_of(doc)
    assert (w["offered"], w["answered"], w["answered_within_threshold"], w["asa_seconds"]) == (1, 1, 0, 30.0)


# -- a lifecycle rejection keeps the original bytes ---------------------------------------------------------------
ORPHAN = (b'{ "type" : "contact.answered", "event_id":"a1", "ts": "2026-05-04T13:00:00+03:00",\n'
          b'  "contact_id": "c1", "customer_id": "u1", "queue": "billing", "channel": "voice",'
          b' "agent_id": "a7", "extra": [1, 2.50] }')  # odd spacing, an offset and an unknown field: not re-encodable


def test_lifecycle_rejection_keeps_the_original_bytes_and_source() -> None:
    """An answer (10:00:00 UTC) with no queued; another contact moves the clock to 10:01:00.000001, past the
    allowance. The dead letter must carry the very bytes read (not a re-serialisation) and topic/partition/offset.

    Kills: ``Rejection`` built without ``rec.raw``/``rec.source``, and ``ContactState.settle`` forgetting bytes
    before it collects the rejected records."""
    engine = KpiEngine(KpiSettings())
    assert engine.process(ORPHAN, topic="contact-events", source=("contact-events", 3, 42))
    engine.process(ev("queued", "q2", DAY + 60 * S, "c2"), source=("contact-events", 5, 7))
    assert engine.rejections == []  # exactly the allowance: the queued may still come
    engine.process(ev("queued", "q3", DAY + 60 * S + MICRO, "c3"), source=("contact-events", 5, 8))
    assert len(engine.rejections) == 1
    rejection = engine.rejections[0]
    assert (rejection.kind, rejection.event_type, rejection.event_id) == ("lifecycle", "contact.answered", "a1")
    assert rejection.raw == ORPHAN
    assert rejection.source == ("contact-events", 3, 42)


def test_lifecycle_rejection_after_a_restore_still_has_its_bytes() -> None:
    """The same orphan answer, stored in the contact table (``to_dict``, JSON) before it settled and restored
    after a crash: the rejection found after the restore still has the original bytes and source.

    Kills: ``Record.to_list``/``from_list`` dropping the bytes, and ``restore`` not scheduling unsettled
    records for the lifecycle check."""
    kpi = KpiSettings()
    proc = ContactProcessor(kpi, Aggregates(60 * US))
    proc.handle(parse_any_event(ORPHAN), ORPHAN, ("contact-events", 3, 42))
    stored = json.loads(json.dumps(proc.contacts["c1"].to_dict()))
    fresh = ContactProcessor(kpi, Aggregates(60 * US))
    fresh.restore("c1", ContactState.from_dict(stored))
    assert fresh.settle() == []
    fresh.handle(parse_any_event(ev("queued", "q3", DAY + 60 * S + MICRO, "c3")))
    rejections = fresh.settle()
    assert [(r.event_id, r.raw, r.source) for r in rejections] == [("a1", ORPHAN, ("contact-events", 3, 42))]


# -- a restored contact does not keep its published-breach marks -----------------------------------------------------
def _stored(proc: ContactProcessor, contact_id: str) -> ContactState:
    return ContactState.from_dict(json.loads(json.dumps(proc.contacts[contact_id].to_dict())))


def test_restore_clears_breach_marks_of_a_waiting_contact() -> None:
    """c1 queued 10:00:00 and still waiting; its breach (at 10:00:20) was handed out and marked, and the mark went
    into the table. After a restore the mark is gone and the breach is offered again: whether it really reached
    the sla-breaches topic is for the breach log to say (LiveKpis.published_visits), not for the table.

    Kills: ``restore`` keeping ``breaches_published`` (the waiting contact's breach would never be offered)."""
    kpi = KpiSettings()
    proc = ContactProcessor(kpi, Aggregates(60 * US), publish_breaches=True)
    proc.handle(parse_any_event(ev("queued", "q1", DAY)))
    assert [b.queued_event_id for b in proc.due_breaches(T0 + 21 * US)] == ["q1"]
    stored = _stored(proc, "c1")
    assert stored.breaches_published == {"q1"}
    fresh = ContactProcessor(kpi, Aggregates(60 * US), publish_breaches=True)
    fresh.restore("c1", stored)
    assert fresh.contacts["c1"].breaches_published == set()
    again = fresh.due_breaches(T0 + 21 * US)
    assert [(b.queued_event_id, b.breached_at_us) for b in again] == [("q1", T0 + 20 * US)]


def test_restore_offers_a_late_breach_again() -> None:
    """c1 queued 10:00:00, answered 10:00:30 (wait 30 s > T): a late breach, handed out and marked. Restored, it is
    offered again (the breach log filters it).

    Kills: ``restore`` clearing the marks only after recomputing the contact (or not at all)."""
    kpi = KpiSettings()
    proc = ContactProcessor(kpi, Aggregates(60 * US), publish_breaches=True)
    for event in (ev("queued", "q1", DAY), ev("answered", "a1", DAY + 30 * S)):
        proc.handle(parse_any_event(event))
    assert [b.queued_event_id for b in proc.due_breaches(T0 + 30 * US)] == ["q1"]
    fresh = ContactProcessor(kpi, Aggregates(60 * US), publish_breaches=True)
    fresh.restore("c1", _stored(proc, "c1"))
    assert [b.queued_event_id for b in fresh.due_breaches(T0 + 30 * US)] == ["q1"]


# -- boundaries the oracle alone covered --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("score", "promoters", "passives", "detractors", "nps"),
    [(0, 0, 0, 1, -100.0), (6, 0, 0, 1, -100.0), (7, 0, 1, 0, 0.0), (8, 0, 1, 0, 0.0), (9, 1, 0, 0, 100.0),
     (10, 1, 0, 0, 100.0)],
)
def test_nps_categories_at_their_bounds(score: int, promoters: int, passives: int, detractors: int, nps: float) -> None:
    """kpis.md: promoters 9-10, passives 7-8, detractors 0-6; NPS = 100 * (promoters - detractors) / responses,
    with one response: +100, 0 or -100.

    Kills: the promoter bound ``>= 9`` moved to 8 or 10, the passive bound ``>= 7`` moved to 6 or 8."""
    _, doc = run([ev("queued", "q1", DAY), ev("survey", "s1", DAY + 60 * S, nps=score)])
    w = all_of(doc)
    assert (w["nps_responses"], w["promoters"], w["passives"], w["detractors"], w["nps"]) == (1, promoters, passives, detractors, nps)


@pytest.mark.parametrize(("score", "satisfied", "csat"), [(1, 0, 0.0), (3, 0, 0.0), (4, 1, 100.0), (5, 1, 100.0)])
def test_csat_satisfied_from_four(score: int, satisfied: int, csat: float) -> None:
    """kpis.md: CSAT = 100 * (responses with csat >= 4) / csat_responses; one response: 0 or 100.

    Kills: ``csat_satisfied`` counting from 3 or only 5."""
    _, doc = run([ev("queued", "q1", DAY), ev("survey", "s1", DAY + 60 * S, csat=score)])
    w = all_of(doc)
    assert (w["csat_responses"], w["csat_satisfied"], w["csat"]) == (1, satisfied, csat)


def test_csat_and_nps_over_several_responses() -> None:
    """nps 6, 7, 8, 9 -> 1 detractor, 2 passives, 1 promoter: NPS = 100 * (1 - 1) / 4 = 0.
    csat 3, 4, 4, 5 -> 3 satisfied of 4: CSAT = 75."""
    events = [ev("queued", "q1", DAY)]
    for index, (nps, csat) in enumerate(((6, 3), (7, 4), (8, 4), (9, 5))):
        events.append(ev("survey", f"s{index}", DAY + (60 + index) * S, nps=nps, csat=csat))
    _, doc = run(events)
    w = all_of(doc)
    assert (w["detractors"], w["passives"], w["promoters"], w["nps"]) == (1, 2, 1, 0.0)
    assert (w["csat_responses"], w["csat_satisfied"], w["csat"]) == (4, 3, 75.0)


@pytest.mark.parametrize(
    ("wait", "within", "formula", "service_level"),
    [
        (20 * S, 1, "abandons_within_count_for", 1.0),  # (0 + 1) / (0 + 1)
        (20 * S + MICRO, 0, "abandons_within_count_for", 0.0),  # (0 + 0) / 1
        (20 * S, 1, "abandons_count_against", 0.0),  # 0 / 1: the abandon counts against whatever its wait
        (20 * S, 1, "exclude_short_abandons", 0.0),  # 0 / (0 + 1 - 0): not short (20 s >= S = 5 s)
    ],
)
def test_abandon_at_exactly_t(wait: timedelta, within: int, formula: str, service_level: float) -> None:
    """Voice, T = 20 s: an abandon after exactly 20 s is "within T" (wait <= T), after 20 s + 1 us it is not and
    it breaches. Only ``abandons_within_count_for`` lets it count for the service level.

    Kills: ``wait <= threshold`` turned into ``<`` for abandons (abandoned_within_threshold)."""
    _, doc = run([ev("queued", "q1", DAY), ev("abandoned", "x1", DAY + wait)], KpiSettings(sl_formula=formula))
    w = all_of(doc)
    assert (w["abandoned"], w["abandoned_short"], w["sla_breaches"]) == (1, 0, 1 - within)
    assert w["service_level"] == service_level
    assert w["abandon_rate"] == 1.0  # (1 - 0) / (0 + 1 - 0)


@pytest.mark.parametrize(
    ("talk", "hold", "wrap", "aht"),
    [(0, 30, 0, 30.0), (0, 0, 45, 45.0), (100, 30, 20, 150.0), (10.5, 0.25, 0.25, 11.0)],
)
def test_aht_is_talk_plus_hold_plus_wrap(talk: float, hold: float, wrap: float, aht: float) -> None:
    """kpis.md "Handling": AHT = sum(talk + hold + wrap) / handled; one contact: talk + hold + wrap.

    Kills: hold or wrap left out of ``handle_us``."""
    events = [ev("queued", "q1", DAY), ev("answered", "a1", DAY + 5 * S),
              ev("ended", "e1", DAY + 200 * S, talk_seconds=talk, hold_seconds=hold, wrap_seconds=wrap)]
    _, doc = run(events)
    w = all_of(doc)
    assert (w["handled"], w["aht_seconds"]) == (1, aht)


def test_window_edges_start_in_end_out() -> None:
    """now = 10:15:00.5 (stream time), bucket 60 s. Windows [start, now), start rounded down to the bucket:
    15m = [10:00:00, now), 1h = [09:15:00, now), 24h = [yesterday 10:15:00, now). One contact queued at each
    edge and 1 us before it:
      yesterday 10:14:59.999999 (out of 24h), yesterday 10:15:00 (in 24h), 09:14:59.999999 (out of 1h),
      09:15:00 (in 1h), 09:59:59.999999 (out of 15m), 10:00:00 (in 15m), 10:15:00.499999 (in), and two at
      10:15:00.5 = now (out; the second arrives when the aggregates' now already is 10:15:00.5).
    offered: 15m = 2, 1h = 4, 24h = 6, all (to now + 1 us) = 9.

    Kills: a fact at a window's start left out (bucket stepping from the next bucket), a fact at now counted
    (``at < now`` turned into ``<=`` in ``Aggregates.apply``), and whole-hour sums off by one hour."""
    now = DAY + 15 * 60 * S + 500 * MS
    yesterday = DAY - timedelta(days=1) + 15 * 60 * S
    moments = [yesterday - MICRO, yesterday, DAY - 45 * 60 * S - MICRO, DAY - 45 * 60 * S, DAY - MICRO, DAY,
               now - MICRO, now, now]
    events = [ev("queued", f"q{i}", at, f"c{i}") for i, at in enumerate(moments)]
    _, doc = run(events, finish=False)
    windows = row(doc)["windows"]
    assert doc["generated_at"] == "2026-05-04T10:15:00.500Z"
    assert (windows["15m"]["start"], windows["1h"]["start"], windows["24h"]["start"]) == (
        "2026-05-04T10:00:00.000Z", "2026-05-04T09:15:00.000Z", "2026-05-03T10:15:00.000Z")
    offered = {name: windows[name]["offered"] for name in ("15m", "1h", "24h", "all")}
    assert offered == {"15m": 2, "1h": 4, "24h": 6, "all": 9}
    assert doc["totals"]["windows"]["15m"]["offered"] == 2
