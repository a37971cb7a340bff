"""Contract v2 edges of kpis.md "Resolution and cost (v2)" and "Closed-loop feedback (v2)", computed by hand.

Each test feeds a few events to :class:`~cxpulse.core.engine.KpiEngine` and reads the document (not the
oracle: these pin the oracle too). Voice defaults: T = 20 s, S = 5 s; talk 60 s + wrap 10 s per end unless said.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec
import pytest

from cxpulse.core.contact import ContactState
from cxpulse.core.engine import KpiEngine
from cxpulse.core.processors import unpack_contact
from cxpulse.models.events import to_us
from cxpulse.settings import KpiSettings
from cxpulse.streams import codec
from test_kpi_edges import DAY, ev, iso, row, run

S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)
US = 1_000_000


def survey(eid: str, at: datetime, contact: str = "c1", **scores: Any) -> dict[str, Any]:
    return ev("survey", eid, at, contact, **scores)


def follow_up(eid: str, at: datetime, survey_id: str, contact: str = "c1") -> dict[str, Any]:
    return {"event_id": eid, "type": "survey.followed_up", "ts": iso(at), "contact_id": contact,
            "customer_id": "u1", "survey_event_id": survey_id, "agent_id": "sup-1"}


def answered_contact(contact: str, at: datetime, customer: str = "u1", queue: str = "billing",
                     channel: str = "voice", **ended: Any) -> list[dict[str, Any]]:
    return [ev("queued", f"{contact}-q", at, contact, customer=customer, queue=queue, channel=channel),
            ev("answered", f"{contact}-a", at + 10 * S, contact, customer=customer, queue=queue, channel=channel),
            ev("ended", f"{contact}-e", at + 5 * M, contact, customer=customer, queue=queue, channel=channel, **ended)]


# -- resolution ---------------------------------------------------------------------------------------------------
def test_resolution_across_a_transfer_counts_once_from_t0_in_the_final_queue() -> None:
    """Queued in billing at 10:00, transferred at 10:05, queued in tech at 10:05, answered, ended resolved at
    10:20: one contact (billing, at t0), resolved once in tech at 10:20 after 20 min (from t0, not from the
    second queued); the transferred end resolves nothing even with resolved true."""
    events = [
        ev("queued", "q1", DAY), ev("answered", "a1", DAY + 10 * S),
        ev("ended", "e1", DAY + 5 * M, transferred=True, resolved=True),
        ev("queued", "q2", DAY + 5 * M, queue="tech"), ev("answered", "a2", DAY + 6 * M, queue="tech"),
        ev("ended", "e2", DAY + 20 * M, queue="tech", resolved=True),
    ]
    _, doc = run(events)
    billing, tech = row(doc)["windows"]["all"], row(doc, "tech")["windows"]["all"]
    assert (billing["contacts"], billing["customers"], billing["resolved"]) == (1, 1, 0)
    assert (tech["contacts"], tech["customers"], tech["resolved"], tech["average_resolution_seconds"]) == (0, 0, 1, 1200.0)
    total = doc["totals"]["windows"]["all"]
    assert (total["contacts"], total["resolved"], total["average_resolution_seconds"]) == (1, 1, 1200.0)


def test_a_later_final_end_replaces_the_earlier_one_in_order_and_out_of_order() -> None:
    """Two non-transferred ends (the contact came back): only the last decides (kpis.md "final"). Resolved at
    10:05, then queued again and ended unresolved at 10:30: resolved 0. Same events shuffled: same document."""
    events = answered_contact("c1", DAY) + [
        ev("queued", "q2", DAY + 10 * M), ev("answered", "a2", DAY + 11 * M), ev("ended", "e2", DAY + 30 * M, resolved=False)]
    kpi = KpiSettings(fcr_window="1h", allowed_disorder="1h")  # the shuffle below stays within it
    _, doc = run(events, kpi)
    assert row(doc)["windows"]["all"]["resolved"] == 0
    _, shuffled = run([events[4], events[0], events[5], events[2], events[1], events[3]], kpi)
    assert shuffled == doc


def test_a_customer_with_three_contacts_in_a_window_and_one_outside_it() -> None:
    """u1: contacts at 09:00 (outside 1h = [09:10, 10:10)), 09:30, 09:40, 10:00 in billing; u2: one at 09:50
    in tech. At 10:10: 1h has 4 contacts of 2 customers; billing 3 contacts, 1 customer."""
    events = []
    for k, minutes in enumerate((-60, -30, -20, 0)):
        events.append(ev("queued", f"q{k}", DAY + minutes * M, f"c{k}"))
    events.append(ev("queued", "qt", DAY - 10 * M, "ct", customer="u2", queue="tech"))
    _, doc = run(events, now=DAY + 10 * M)
    hour = doc["totals"]["windows"]["1h"]
    assert (hour["contacts"], hour["customers"], hour["contacts_per_customer"]) == (4, 2, 2.0)
    billing = row(doc)["windows"]["1h"]
    assert (billing["contacts"], billing["customers"], billing["contacts_per_customer"]) == (3, 1, 3.0)
    assert doc["totals"]["windows"]["all"]["customers"] == 2 and doc["totals"]["windows"]["all"]["contacts"] == 5


def test_a_customer_in_two_queues_counts_once_in_the_total() -> None:
    """u1 has a contact in billing/voice and one in sales/chat: 1 customer in each row, 1 in total (not 2)."""
    events = [ev("queued", "q1", DAY, "c1"), ev("queued", "q2", DAY + M, "c2", queue="sales", channel="chat")]
    _, doc = run(events)
    assert row(doc)["windows"]["all"]["customers"] == 1
    assert row(doc, "sales", "chat")["windows"]["all"]["customers"] == 1
    assert doc["totals"]["windows"]["all"]["customers"] == 1


def test_an_earlier_queued_arriving_late_moves_the_contact_to_its_queue() -> None:
    """The contact's t0 is its first queued event: a queued of 09:59:30 in sales arriving after the one of 10:00
    in billing (within the disorder) moves the contact, and its customer, from billing to sales."""
    events = [ev("queued", "q2", DAY), ev("abandoned", "x2", DAY + 2 * S)]
    events.insert(0, ev("queued", "q1", DAY - 30 * S, queue="sales"))
    arrival = [events[1], events[2], events[0]]
    engine, doc = run(arrival, finish=False)
    assert engine.rejections == []
    assert row(doc, "sales")["windows"]["all"]["customers"] == 1
    assert {q["queue"]: q["windows"]["all"]["customers"] for q in doc["queues"]} == {"billing": 0, "sales": 1}


# -- cost ---------------------------------------------------------------------------------------------------------
def test_cost_with_and_without_settings_and_a_total_over_configured_queues() -> None:
    """billing/voice: 36 per hour + 0.5 per contact: 70 s of handling = 0.7 + 0.5 = 1.2 per contact, two
    contacts = 2.4. sales/voice overrides both to 0: not configured, cost null. Total: 2.4 over the 2 costed
    contacts (1.2 per contact), not over the 3 handled."""
    kpi = KpiSettings(fcr_window="1h", channels={"voice": {"cost_per_hour": 36, "cost_per_contact": 0.5}},
                      queues={"sales": {"cost_per_hour": 0, "cost_per_contact": 0}})
    events = answered_contact("c1", DAY) + answered_contact("c2", DAY + M, "u2") + answered_contact(
        "c3", DAY + 2 * M, "u3", queue="sales")
    _, doc = run(events, kpi)
    billing, sales = row(doc)["windows"]["all"], row(doc, "sales")["windows"]["all"]
    assert (billing["cost"], billing["costed_contacts"], billing["cost_per_contact"]) == (2.4, 2, 1.2)
    assert (sales["handled"], sales["cost"], sales["costed_contacts"], sales["cost_per_contact"]) == (1, None, 0, None)
    total = doc["totals"]["windows"]["all"]
    assert (total["handled"], total["cost"], total["cost_per_contact"]) == (3, 2.4, 1.2)
    _, unconfigured = run(events)
    assert unconfigured["totals"]["windows"]["all"]["cost"] is None  # shipped defaults: cost not configured


def test_cost_per_contact_only_and_of_a_transferred_leg() -> None:
    """Only cost_per_contact (email 1.25): every end costs it, transferred legs too (each is handled)."""
    kpi = KpiSettings(channels={"voice": {"cost_per_contact": 1.25}})
    events = [ev("queued", "q1", DAY), ev("answered", "a1", DAY + S), ev("ended", "e1", DAY + M, transferred=True),
              ev("queued", "q2", DAY + M), ev("answered", "a2", DAY + 2 * M), ev("ended", "e2", DAY + 3 * M)]
    _, doc = run(events, kpi)
    assert row(doc)["windows"]["all"]["cost"] == 2.5 and row(doc)["windows"]["all"]["cost_per_contact"] == 1.25


# -- closed-loop feedback ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("nps", "csat", "detractor"), [
    (6, None, True), (7, None, False), (None, 2, True), (None, 3, False), (7, 2, True), (0, 5, True), (10, 3, False)])
def test_detractor_bounds(nps: int | None, csat: int | None, detractor: bool) -> None:
    """kpis.md: detractor feedback is nps <= 6 or csat <= 2 (6 and 2 are, 7 and 3 are not)."""
    events = [ev("queued", "q1", DAY), survey("s1", DAY + M, nps=nps, csat=csat)]
    _, doc = run(events)
    assert row(doc)["windows"]["all"]["detractor_feedback"] == int(detractor)
    assert row(doc)["live"]["awaiting_follow_up"] == int(detractor)


@pytest.mark.parametrize(("after", "breaches"), [(timedelta(0), 0), (timedelta(microseconds=1), 1)])
def test_a_follow_up_exactly_at_the_target_is_in_time_and_one_microsecond_after_is_not(
        after: timedelta, breaches: int) -> None:
    """Target 48 h: survey at 10:01, follow-up at 10:01 two days later (+ 0 or 1 µs). Followed up either way,
    response 172,800 s (+ 1 µs); the late one breaches at exactly survey + 48 h."""
    target = 48 * H
    events = [ev("queued", "q1", DAY), survey("s1", DAY + M, nps=2), follow_up("f1", DAY + M + target + after, "s1")]
    _, doc = run(events)
    w = row(doc)["windows"]["all"]
    assert (w["followed_up"], w["feedback_breaches"]) == (1, breaches)
    assert w["average_feedback_response_seconds"] == (target + after).total_seconds()
    assert row(doc)["live"]["awaiting_follow_up"] == 0
    if breaches:  # attributed at survey ts + target: inside [10:01 + 48 h, ...)
        assert row(doc)["windows"]["15m"]["feedback_breaches"] == 1


def test_a_second_follow_up_changes_nothing_and_a_promoters_counts_nowhere() -> None:
    """f1 (10:30) closes s1; f2 (11:00) changes nothing; f3 of the promoter s2 is valid and counts nowhere."""
    events = [ev("queued", "q1", DAY), survey("s1", DAY + M, csat=1), survey("s2", DAY + 2 * M, nps=10),
              follow_up("f1", DAY + 30 * M, "s1"), follow_up("f2", DAY + H, "s1"), follow_up("f3", DAY + H, "s2")]
    engine, doc = run(events)
    w = row(doc)["windows"]["all"]
    assert (w["detractor_feedback"], w["followed_up"], w["average_feedback_response_seconds"]) == (1, 1, 1740.0)
    assert engine.rejections == [] and engine.health.processed == 6
    kpi = KpiSettings(fcr_window="1h", allowed_disorder="1h")  # another arrival order, within the disorder
    assert run(events, kpi)[1] == run([events[i] for i in (4, 0, 5, 1, 3, 2)], kpi)[1]


def test_a_follow_up_before_its_survey_within_the_disorder_counts_and_one_of_no_survey_is_refused() -> None:
    """f1 arrives before s1 (s1 still within the allowed disorder): it waits, then counts when s1 arrives. f9
    names a survey this contact never had: once the disorder has passed it goes to the DLQ, "no such survey"."""
    events = [ev("queued", "q1", DAY), follow_up("f1", DAY + 2 * M, "s1"), survey("s1", DAY + M, nps=0),
              follow_up("f9", DAY + 2 * M, "s-unknown"), ev("queued", "q2", DAY + 10 * M, "c2", customer="u2")]
    engine, doc = run(events)
    w = row(doc)["windows"]["all"]
    assert (w["followed_up"], w["average_feedback_response_seconds"]) == (1, 60.0)
    assert [(r.kind, r.event_id, r.event_type) for r in engine.rejections] == [("lifecycle", "f9", "survey.followed_up")]
    assert engine.rejections[0].reason.startswith("no such survey")


def test_awaiting_follow_up_and_the_oldest_live_and_the_breach_when_the_target_passes() -> None:
    """Two detractors awaiting (surveys at 10:01 and 10:05, target 1 h): at 10:30, 2 awaiting, oldest 29 min,
    no breach; at 11:02 the first is past its target (breach at 11:01), the second not yet."""
    kpi = KpiSettings(channels={"voice": {"feedback_response_target": "1h"}})
    events = [ev("queued", "q1", DAY), survey("s1", DAY + M, nps=1), ev("queued", "q2", DAY + 2 * M, "c2"),
              survey("s2", DAY + 5 * M, "c2", csat=2)]
    engine = KpiEngine(kpi, publish_breaches=True)
    for event in events:
        engine.process(event)
    early = engine.snapshot(to_us(DAY + 30 * M))
    assert row(early)["live"]["awaiting_follow_up"] == 2
    assert row(early)["live"]["oldest_awaiting_seconds"] == 29 * 60.0
    assert early["totals"]["windows"]["1h"]["feedback_breaches"] == 0
    assert engine.due_feedback_breaches(to_us(DAY + 30 * M)) == []
    late = engine.snapshot(to_us(DAY + 62 * M))
    assert late["totals"]["windows"]["15m"]["feedback_breaches"] == 1
    published = engine.due_feedback_breaches(to_us(DAY + 62 * M))
    assert [(b.contact_id, b.survey_event_id, b.breached_at_us) for b in published] == [
        ("c1", "s1", to_us(DAY + 61 * M))]
    assert engine.due_feedback_breaches(to_us(DAY + 63 * M)) == []  # never twice
    engine.process(follow_up("f1", DAY + 64 * M, "s1"))  # a late follow-up: counted, the breach stays one
    assert engine.due_feedback_breaches(to_us(DAY + 64 * M)) == []
    doc = engine.snapshot(to_us(DAY + 70 * M))  # s2 (target 11:05) still awaits: its breach counts too
    assert (doc["totals"]["windows"]["1h"]["feedback_breaches"], doc["totals"]["windows"]["1h"]["followed_up"]) == (2, 1)
    assert [b.survey_event_id for b in engine.due_feedback_breaches(to_us(DAY + 70 * M))] == ["s2"]
    assert (row(doc)["live"]["awaiting_follow_up"], row(doc)["live"]["oldest_awaiting_seconds"]) == (1, 65 * 60.0)


def test_a_late_follow_up_whose_breach_no_timer_saw_is_published_once() -> None:
    """Target 1 h, no timer tick in between: the follow-up at 11:30 reports the breach of 11:01 itself."""
    kpi = KpiSettings(channels={"voice": {"feedback_response_target": "1h"}})
    engine = KpiEngine(kpi, publish_breaches=True)
    for event in [ev("queued", "q1", DAY), survey("s1", DAY + M, nps=1), follow_up("f1", DAY + 90 * M, "s1")]:
        engine.process(event)
    assert [b.breached_at_us for b in engine.due_feedback_breaches(to_us(DAY + 90 * M))] == [to_us(DAY + 61 * M)]
    assert engine.due_feedback_breaches(to_us(DAY + 3 * H)) == []


# -- stored rows ---------------------------------------------------------------------------------------------------
def test_rows_written_before_contract_v2_still_read_and_count() -> None:
    """A contact row as Engine v2 stored it before this change (msgpack of [records, rejected, marks, last ts,
    pending], record tuples as lists): it loads, and its v2 counts are derived from its records."""
    queued = [to_us(DAY), 0, "q1", "q", "billing", "voice", None, "u1", None]
    answered = [to_us(DAY) + 10 * US, 1, "a1", "a", "billing", "voice", None, None, None]
    ended = [to_us(DAY) + 300 * US, 2, "e1", "e", "billing", "voice", 70 * US, True, False]
    old_row = [[queued, answered, ended], None, None, to_us(DAY) + 300 * US, None]
    state = ContactState.from_row(msgspec.msgpack.decode(msgspec.msgpack.encode(old_row)))
    assert state.final == (to_us(DAY) + 300 * US, True, "billing", "voice")
    packed = (to_us(DAY) + 300 * US).to_bytes(8, "big", signed=True) + msgspec.msgpack.encode(old_row)
    assert unpack_contact(packed).records == state.records
    stored = codec.encode_contact(state, 3)
    contact_id_state = codec.decode_contact(stored)
    assert contact_id_state[0] == 3 and contact_id_state[1].records == state.records
    from cxpulse.core.live import LiveKpis

    live = LiveKpis(KpiSettings(), clock=lambda: 0)
    live.rebuild_contacts([("c1", 3, contact_id_state[1])], {3})
    doc = live.document(to_us(DAY) + 3600 * US)
    w = doc["totals"]["windows"]["1h"]
    assert (w["contacts"], w["resolved"], w["average_resolution_seconds"]) == (1, 1, 300.0)
