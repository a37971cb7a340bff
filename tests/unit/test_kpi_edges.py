"""Edge cases of kpis.md / events.md, each a tiny scenario computed by hand (not by the oracle).

Each test feeds a few events to :class:`~cxpulse.core.engine.KpiEngine` and reads the document. Times are
UTC unless said otherwise; voice defaults: T = 20 s, S = 5 s.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from cxpulse.core.engine import KpiEngine
from cxpulse.models.events import to_us
from cxpulse.settings import KpiSettings

US = 1_000_000
UTC = timezone.utc
DAY = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def ev(kind: str, eid: str, at: datetime, contact: str = "c1", *, customer: str = "u1", queue: str = "billing",
       channel: str = "voice", **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"event_id": eid, "type": f"contact.{kind}" if kind != "survey" else "survey.response",
                             "ts": iso(at), "contact_id": contact, "customer_id": customer}
    if kind != "survey":
        event.update(queue=queue, channel=channel)
    if kind == "queued":
        event["reason"] = extra.pop("reason", None)
    elif kind == "answered":
        event["agent_id"] = "a1"
    elif kind == "ended":
        event.update(agent_id="a1", talk_seconds=60, hold_seconds=0, wrap_seconds=10,
                     resolved=extra.pop("resolved", True), transferred=extra.pop("transferred", False))
    event.update(extra)
    return event


def run(events: list[dict[str, Any]], kpi: KpiSettings | None = None, now: datetime | None = None,
        finish: bool = True) -> tuple[KpiEngine, dict[str, Any]]:
    engine = KpiEngine(kpi or KpiSettings(fcr_window="1h"))
    for event in events:
        engine.process(event)
    if finish:
        engine.finish()
    return engine, engine.snapshot(None if now is None else to_us(now), include_all=True)


def row(doc: dict[str, Any], queue: str = "billing", channel: str = "voice") -> dict[str, Any]:
    for item in doc["queues"]:
        if (item["queue"], item["channel"]) == (queue, channel):
            return item
    raise AssertionError(f"no row for {queue}/{channel}: {[(q['queue'], q['channel']) for q in doc['queues']]}")


def all_of(doc: dict[str, Any], queue: str = "billing", channel: str = "voice") -> dict[str, Any]:
    return row(doc, queue, channel)["windows"]["all"]


S = timedelta(seconds=1)
MS = timedelta(milliseconds=1)
MICRO = timedelta(microseconds=1)


# -- service level threshold and breaches ------------------------------------------------------------------------------
def test_wait_exactly_threshold_is_in_time_and_no_breach() -> None:
    _, doc = run([ev("queued", "q", DAY), ev("answered", "a", DAY + 20 * S)])
    w = all_of(doc)
    assert (w["answered"], w["answered_within_threshold"], w["sla_breaches"], w["service_level"]) == (1, 1, 0, 1.0)
    assert w["asa_seconds"] == 20.0


def test_wait_one_ms_over_threshold_breaches_at_queued_plus_t() -> None:
    """The breach is attributed at queued + T, not at the answer: here queued + T is before local midnight
    and the answer after it, so ``today`` has the answer but not the breach, ``all`` has both."""
    queued = datetime(2026, 5, 4, 23, 59, 39, 999500, tzinfo=UTC)  # queued + T = 23:59:59.9995
    answered = queued + 20 * S + MS  # 00:00:00.0005 the next day
    _, doc = run([ev("queued", "q", queued), ev("answered", "a", answered), ev("ended", "e", answered + 60 * S)])
    w = row(doc)["windows"]
    assert (w["all"]["answered_within_threshold"], w["all"]["sla_breaches"]) == (0, 1)
    assert w["today"]["start"] == "2026-05-05T00:00:00.000Z"
    assert (w["today"]["offered"], w["today"]["answered"], w["today"]["sla_breaches"]) == (0, 1, 0)
    assert w["all"]["service_level"] == 0.0


def test_breach_of_a_visit_answered_late_is_in_the_window_of_queued_plus_t() -> None:
    queued = datetime(2026, 5, 4, 23, 59, 30, tzinfo=UTC)  # breach at queued + T = 23:59:50: yesterday
    after = queued + 5 * 60 * S
    _, doc = run([ev("queued", "q", queued), ev("answered", "a", queued + 40 * S)], now=after)  # answered at 00:00:10
    today = row(doc)["windows"]["today"]
    assert (today["answered"], today["sla_breaches"]) == (1, 0)
    queued2 = datetime(2026, 5, 4, 23, 59, 45, tzinfo=UTC)  # breach at 00:00:05: today
    _, doc = run([ev("queued", "q", queued2), ev("answered", "a", queued2 + 40 * S)], now=after)
    assert row(doc)["windows"]["today"]["sla_breaches"] == 1


@pytest.mark.parametrize(
    ("waited", "breaches"),
    [(19 * S, 0), (20 * S, 0), (20 * S + MICRO, 1), (21 * S, 1)],
)
def test_still_waiting_breaches_only_once_past_threshold(waited: timedelta, breaches: int) -> None:
    """A visit still waiting at now: breach counted when now - queued > T (at queued + T), else not.
    At exactly T the wait does not exceed T: not a breach yet, not even in ``all`` (which ends at now + 1 us)."""
    events = [ev("queued", "q", DAY)]
    _, doc = run(events, now=DAY + waited)
    r = row(doc)
    assert r["live"] == {"waiting": 1, "longest_wait_seconds": waited.total_seconds(), "awaiting_follow_up": 0, "oldest_awaiting_seconds": 0.0}
    assert r["windows"]["all"]["sla_breaches"] == breaches
    assert r["windows"]["15m"]["sla_breaches"] == breaches
    assert doc["totals"]["windows"]["all"]["sla_breaches"] == breaches
    # in a replay, now is stream time: another contact's event at queued + T exactly
    _, doc = run(events + [ev("queued", "q2", DAY + waited, "c2")])
    assert row(doc)["windows"]["all"]["sla_breaches"] == breaches


def test_breach_counted_once_when_waiting_then_answered_late() -> None:
    engine = KpiEngine(KpiSettings())
    engine.process(ev("queued", "q", DAY))
    doc = engine.snapshot(to_us(DAY + 30 * S), include_all=True)
    assert row(doc)["windows"]["all"]["sla_breaches"] == 1
    engine.process(ev("answered", "a", DAY + 40 * S))
    doc = engine.snapshot(to_us(DAY + 41 * S), include_all=True)
    w = row(doc)["windows"]["all"]
    assert (w["sla_breaches"], w["answered"], w["offered"]) == (1, 1, 1)
    assert row(doc)["live"] == {"waiting": 0, "longest_wait_seconds": 0.0, "awaiting_follow_up": 0, "oldest_awaiting_seconds": 0.0}


# -- abandons ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("wait", "short"), [(5 * S - MICRO, 1), (5 * S - MS, 1), (5 * S, 0), (0 * S, 1)])
def test_short_abandon_boundary(wait: timedelta, short: int) -> None:
    _, doc = run([ev("queued", "q", DAY), ev("abandoned", "x", DAY + wait)])
    w = all_of(doc)
    assert (w["abandoned"], w["abandoned_short"]) == (1, short)
    assert w["abandon_rate"] == (None if short else 1.0)


def test_zero_denominators_are_null() -> None:
    """Only a short abandon: every ratio whose denominator is zero is null, not 0 and not 100."""
    _, doc = run([ev("queued", "q", DAY), ev("abandoned", "x", DAY + 2 * S)])
    w = all_of(doc)
    for name in ("service_level", "abandon_rate", "asa_seconds", "aht_seconds", "fcr", "fcr_confirmed", "nps", "csat"):
        assert w[name] is None, name
    # a window with nothing in it at all
    _, doc = run([ev("queued", "q", DAY), ev("abandoned", "x", DAY + 2 * S)], now=DAY + 2 * F)
    empty = row(doc)["windows"]["15m"]
    assert empty["offered"] == 0 and all(empty[name] is None for name in ("service_level", "abandon_rate", "nps"))
    _, doc = run([ev("queued", "q", DAY), ev("abandoned", "x", DAY + 2 * S)],
                 KpiSettings(sl_formula="abandons_count_against"))
    assert all_of(doc)["service_level"] == 0.0  # denominator answered + abandoned = 1


def test_sl_formulas_on_one_hand_example() -> None:
    """Voice, T = 20 s, S = 5 s. Answered: 3 s, 20 s, 25 s (2 in time). Abandoned: 2 s (short), 15 s (within T),
    40 s (after T). exclude_short_abandons = 2 / (3 + 3 - 1) = 0.4; abandons_count_against = 2 / 6;
    abandons_within_count_for = (2 + 2) / 6 (the 2 s abandon is within T too). Abandon rate = 2 / 5."""
    events = []
    for i, wait in enumerate((3, 20, 25)):
        events += [ev("queued", f"q{i}", DAY + i * 100 * S, f"a{i}"), ev("answered", f"a{i}", DAY + (i * 100 + wait) * S, f"a{i}")]
    for i, wait in enumerate((2, 15, 40)):
        start = DAY + (1000 + i * 100) * S
        events += [ev("queued", f"qx{i}", start, f"x{i}"), ev("abandoned", f"x{i}", start + wait * S, f"x{i}")]
    events.sort(key=lambda e: e["ts"])
    expected = {"exclude_short_abandons": 0.4, "abandons_count_against": 2 / 6, "abandons_within_count_for": 4 / 6}
    for formula, value in expected.items():
        _, doc = run(events, KpiSettings(sl_formula=formula))
        w = all_of(doc)
        assert (w["answered"], w["answered_within_threshold"], w["abandoned"], w["abandoned_short"], w["sla_breaches"]) == (3, 2, 3, 1, 2)
        assert w["service_level"] == pytest.approx(value, abs=1e-12), formula
        assert doc["totals"]["windows"]["all"]["service_level"] == pytest.approx(value, abs=1e-12)
        assert w["abandon_rate"] == pytest.approx(2 / 5)
        assert w["asa_seconds"] == pytest.approx(16.0)


def test_queue_formula_overrides_centre_formula_and_totals_use_centre() -> None:
    kpi = KpiSettings(sl_formula="abandons_count_against", queues={"billing": {"sl_formula": "exclude_short_abandons"}})
    events = [ev("queued", "q1", DAY), ev("answered", "a1", DAY + 1 * S),
              ev("queued", "q2", DAY + 2 * S, "c2"), ev("abandoned", "x2", DAY + 3 * S, "c2")]
    _, doc = run(events, kpi)
    assert all_of(doc)["service_level"] == 1.0
    assert doc["totals"]["windows"]["all"]["service_level"] == 0.5


# -- today and time zones -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("now", "midnight_utc", "inside", "outside"),
    [
        # spring forward: the local day is 23 h long, midnight is still at UTC+1
        (datetime(2026, 3, 29, 12, 0, tzinfo=UTC), "2026-03-28T23:00:00.000Z",
         datetime(2026, 3, 28, 23, 30, tzinfo=UTC), datetime(2026, 3, 28, 22, 30, tzinfo=UTC)),
        # fall back: the local day is 25 h long, midnight is at UTC+2
        (datetime(2026, 10, 25, 22, 59, tzinfo=UTC), "2026-10-24T22:00:00.000Z",
         datetime(2026, 10, 24, 22, 30, tzinfo=UTC), datetime(2026, 10, 24, 21, 30, tzinfo=UTC)),
    ],
)
def test_today_on_dst_days(now: datetime, midnight_utc: str, inside: datetime, outside: datetime) -> None:
    """Europe/Paris: a contact at 00:30 local on the DST day is in ``today``, one at 23:30 the day before is not."""
    kpi = KpiSettings(timezone="Europe/Paris")
    events = [ev("queued", "q1", outside, "c1"), ev("abandoned", "x1", outside + S, "c1"),
              ev("queued", "q2", inside, "c2"), ev("abandoned", "x2", inside + S, "c2"),
              ev("queued", "q3", now, "c3")]
    events.sort(key=lambda e: e["ts"])
    _, doc = run(events, kpi)
    for today in (row(doc)["windows"]["today"], doc["totals"]["windows"]["today"]):
        assert today["start"] == midnight_utc
        assert (today["offered"], today["abandoned"]) == (1, 1)  # the contact at now is not in [midnight, now)


def test_today_where_local_midnight_does_not_exist() -> None:
    """America/Santiago skips 00:00 -> 01:00 on 2026-09-06: the day starts at 01:00 -03 = 04:00Z."""
    kpi = KpiSettings(timezone="America/Santiago")
    now = datetime(2026, 9, 6, 12, 0, tzinfo=UTC)
    events = [ev("queued", "q1", datetime(2026, 9, 6, 3, 59, 59, tzinfo=UTC)),
              ev("queued", "q2", datetime(2026, 9, 6, 4, 0, tzinfo=UTC), "c2")]
    _, doc = run(events, kpi, now=now)
    today = doc["totals"]["windows"]["today"]
    assert today["start"] == "2026-09-06T04:00:00.000Z"
    assert today["offered"] == 1


def test_queue_timezone_overrides_centre_for_its_today() -> None:
    kpi = KpiSettings(timezone="UTC", queues={"billing": {"timezone": "Asia/Kolkata"}})
    now = datetime(2026, 1, 10, 20, 0, tzinfo=UTC)  # 01:30 in Kolkata
    _, doc = run([ev("queued", "q1", datetime(2026, 1, 10, 18, 0, tzinfo=UTC)), ev("queued", "q2", now, "c2")], kpi)
    assert row(doc)["windows"]["today"]["start"] == "2026-01-10T18:30:00.000Z"
    assert row(doc)["windows"]["today"]["offered"] == 0
    assert doc["totals"]["windows"]["today"]["start"] == "2026-01-10T00:00:00.000Z"
    assert doc["totals"]["windows"]["today"]["offered"] == 1


def test_rolling_window_bounds_are_bucket_rounded_at_start_and_exact_at_end() -> None:
    now = DAY + 7 * S + 250 * MS
    _, doc = run([ev("queued", "q0", DAY - 15 * 60 * S), ev("queued", "q1", DAY - 14 * 60 * S, "c1b"),
                  ev("queued", "q2", now, "c2")], KpiSettings(allowed_disorder="60s"))
    w = doc["totals"]["windows"]
    assert (w["15m"]["start"], w["15m"]["end"]) == ("2026-05-04T09:45:00.000Z", "2026-05-04T10:00:07.250Z")
    assert (w["1h"]["start"], w["24h"]["start"]) == ("2026-05-04T09:00:00.000Z", "2026-05-03T10:00:00.000Z")
    assert w["15m"]["offered"] == 2  # 09:45:00 is inside (rounded start), the event at now is not
    assert (w["all"]["start"], w["all"]["end"], w["all"]["offered"]) == ("2026-05-04T09:45:00.000Z", "2026-05-04T10:00:07.250001Z", 3)
    assert doc["generated_at"] == "2026-05-04T10:00:07.250Z"


# -- first contact resolution ----------------------------------------------------------------------------------------
F = timedelta(hours=1)


def _contact(cid: str, t0: datetime, *, reason: str | None = "billing", customer: str = "u1", resolved: bool | None = True,
             queue: str = "billing") -> list[dict[str, Any]]:
    events = [ev("queued", f"{cid}q", t0, cid, customer=customer, reason=reason, queue=queue),
              ev("answered", f"{cid}a", t0 + 5 * S, cid, customer=customer, queue=queue)]
    if resolved is not None:
        events.append(ev("ended", f"{cid}e", t0 + 65 * S, cid, customer=customer, resolved=resolved, queue=queue))
    return events


@pytest.mark.parametrize(("gap", "repeat"), [(F, 1), (F + MICRO, 0), (F - MICRO, 1), (MICRO, 1), (timedelta(0), 0)])
def test_repeat_just_inside_and_outside_the_fcr_window(gap: timedelta, repeat: int) -> None:
    """The second contact is a repeat when the first's t0 is in [t0' - F, t0'): t0 = t0' - F is inside, t0' - F - 1 us
    is not, and the same instant is not (the interval is open at t0')."""
    t0 = DAY
    events = sorted(_contact("c1", t0) + _contact("c2", t0 + gap), key=lambda e: e["ts"])
    _, doc = run(events, now=t0 + gap + 3 * F)
    w = all_of(doc)
    assert w["repeat_contacts"] == repeat
    assert w["first_contacts"] == 2 - repeat


@pytest.mark.parametrize(
    ("reason_a", "reason_b", "repeat"),
    [("billing", "billing", 1), ("billing", "outage", 0), (None, "outage", 1), ("billing", None, 1)],
)
def test_repeat_reasons_match_or_null_matches_any(reason_a: str | None, reason_b: str | None, repeat: int) -> None:
    events = sorted(_contact("c1", DAY, reason=reason_a) + _contact("c2", DAY + 10 * 60 * S, reason=reason_b),
                    key=lambda e: e["ts"])
    _, doc = run(events)
    assert all_of(doc)["repeat_contacts"] == repeat


def test_other_customers_do_not_make_repeats() -> None:
    events = sorted(_contact("c1", DAY) + _contact("c2", DAY + 60 * S, customer="u2"), key=lambda e: e["ts"])
    _, doc = run(events)
    assert all_of(doc)["repeat_contacts"] == 0 and all_of(doc)["first_contacts"] == 2


def test_closed_and_confirmed_at_t0_plus_f() -> None:
    """A resolved first contact (t0 = 10:00, ended 10:01:05) is closed and confirmed at t0 + F = 11:00 exactly."""
    engine = KpiEngine(KpiSettings(fcr_window="1h"))
    for event in _contact("c1", DAY):
        engine.process(event)
    doc = engine.snapshot(to_us(DAY + F - MICRO), include_all=True)
    w = all_of(doc)
    assert (w["first_contacts"], w["first_contacts_resolved"], w["fcr"]) == (1, 1, 1.0)
    assert (w["first_contacts_closed"], w["first_contacts_confirmed"], w["fcr_confirmed"]) == (0, 0, None)  # not yet
    doc = engine.snapshot(to_us(DAY + F), include_all=True)
    assert (all_of(doc)["first_contacts_closed"], all_of(doc)["first_contacts_confirmed"]) == (1, 1)
    assert row(doc)["windows"]["1h"]["first_contacts_closed"] == 0  # [.., now) leaves out now
    doc = engine.snapshot(to_us(DAY + F + S), include_all=True)
    w = row(doc)["windows"]["15m"]
    assert (w["first_contacts_closed"], w["first_contacts_confirmed"], w["fcr_confirmed"]) == (1, 1, 1.0)
    assert (w["first_contacts"], w["fcr"]) == (0, None)  # counted at 10:01:05, outside [10:46, 11:00:01)


@pytest.mark.parametrize(
    ("recontact", "reason", "confirmed"),
    [(None, None, 1), (F, "billing", 0), (F + MICRO, "billing", 1), (30 * 60 * S, "outage", 1), (30 * 60 * S, None, 0),
     (MICRO, "billing", 0)],
)
def test_confirmed_fcr(recontact: timedelta | None, reason: str | None, confirmed: int) -> None:
    """Confirmed when no other matching contact of the customer starts in (t0, t0 + F]; a null reason matches any."""
    events = _contact("c1", DAY)
    if recontact is not None:
        events += _contact("c2", DAY + recontact, reason=reason, resolved=None)
    events.sort(key=lambda e: e["ts"])
    _, doc = run(events, now=DAY + 3 * F)
    w = all_of(doc)
    assert (w["first_contacts"], w["first_contacts_resolved"]) == (1, 1)
    assert (w["first_contacts_closed"], w["first_contacts_confirmed"]) == (1, confirmed)
    assert w["fcr_confirmed"] == float(confirmed)


def test_unresolved_first_contact_closes_unconfirmed_and_late_end_closes_at_its_ts() -> None:
    events = _contact("c1", DAY, resolved=False)
    # an email thread answered at once and ended after t0 + F: closed at its ended ts
    events += [ev("queued", "c2q", DAY, "c2", customer="u2", queue="mail", channel="email"),
               ev("answered", "c2a", DAY + S, "c2", customer="u2", queue="mail", channel="email"),
               ev("ended", "c2e", DAY + 2 * F, "c2", customer="u2", queue="mail", channel="email")]
    events.sort(key=lambda e: e["ts"])
    engine, doc = run(events, now=DAY + 2 * F)
    assert (all_of(doc)["first_contacts_closed"], all_of(doc)["first_contacts_confirmed"], all_of(doc)["fcr"]) == (1, 0, 0.0)
    mail = all_of(doc, "mail", "email")
    assert (mail["first_contacts"], mail["first_contacts_closed"], mail["first_contacts_confirmed"]) == (1, 1, 1)
    mail_1h = row(doc, "mail", "email")["windows"]["1h"]
    assert mail_1h["first_contacts_closed"] == 0  # closed at 12:00 = now: only in "all"


def test_fcr_follows_the_final_ended_of_a_transferred_contact() -> None:
    """Transferred billing -> tech: the first_contact counts go to the final (non-transferred) ended's queue."""
    events = [
        ev("queued", "q1", DAY, reason="outage"), ev("answered", "a1", DAY + 5 * S),
        ev("ended", "e1", DAY + 60 * S, transferred=True, resolved=False),
        ev("queued", "q2", DAY + 60 * S, queue="tech"), ev("answered", "a2", DAY + 70 * S, queue="tech"),
        ev("ended", "e2", DAY + 200 * S, queue="tech", resolved=True),
    ]
    _, doc = run(events, now=DAY + 2 * F)
    billing, tech = all_of(doc), all_of(doc, "tech")
    assert (billing["offered"], billing["handled"], billing["first_contacts"]) == (1, 1, 0)
    assert (tech["offered"], tech["handled"], tech["first_contacts"], tech["first_contacts_confirmed"]) == (1, 1, 1, 1)
    assert doc["totals"]["windows"]["all"]["handled"] == 2
    assert doc["totals"]["windows"]["all"]["aht_seconds"] == 70.0


# -- surveys ---------------------------------------------------------------------------------------------------------------
def test_survey_attributed_to_latest_queued_not_after_it() -> None:
    events = [
        ev("queued", "q1", DAY), ev("answered", "a1", DAY + 5 * S), ev("ended", "e1", DAY + 60 * S, transferred=True),
        ev("queued", "q2", DAY + 60 * S, queue="tech", channel="chat"),
        ev("answered", "a2", DAY + 70 * S, queue="tech", channel="chat"),
        ev("ended", "e2", DAY + 200 * S, queue="tech", channel="chat"),
        ev("survey", "s-before", DAY - S, nps=10),  # before any queued: unknown
        ev("survey", "s-mid", DAY + 59 * S, nps=8),  # billing
        ev("survey", "s-at", DAY + 60 * S, nps=3, csat=5),  # equal ts: tech
        ev("survey", "s-after", DAY + 300 * S, csat=4),  # tech
        ev("survey", "s-stranger", DAY + 300 * S, "nobody", nps=9, csat=1),
    ]
    events.sort(key=lambda e: e["ts"])
    _, doc = run(events)
    billing, tech, unknown = all_of(doc), all_of(doc, "tech", "chat"), all_of(doc, "unknown", "unknown")
    assert (billing["nps_responses"], billing["passives"], billing["nps"]) == (1, 1, 0.0)
    assert (tech["nps_responses"], tech["detractors"], tech["nps"]) == (1, 1, -100.0)
    assert (tech["csat_responses"], tech["csat_satisfied"], tech["csat"]) == (2, 2, 100.0)
    assert (unknown["nps_responses"], unknown["promoters"], unknown["nps"]) == (2, 2, 100.0)
    assert (unknown["csat_responses"], unknown["csat"]) == (1, 0.0)
    t = doc["totals"]["windows"]["all"]
    assert (t["nps_responses"], t["nps"], t["csat_responses"], t["csat"]) == (4, 25.0, 3, pytest.approx(200 / 3))


def test_survey_arriving_before_its_queued_moves_from_unknown_and_leaves_no_empty_row() -> None:
    """Live, with a snapshot taken while the survey is still attributed to unknown/unknown."""
    queued = ev("queued", "q1", DAY)
    survey = ev("survey", "s1", DAY + 10 * S, nps=10)
    later = ev("queued", "q9", DAY + 30 * S, "c9")
    engine = KpiEngine(KpiSettings())
    engine.process(survey)
    engine.process(later)
    early = engine.snapshot(include_all=True)
    assert all_of(early, "unknown", "unknown")["promoters"] == 1
    engine.process(queued)  # 30 s late: within the allowance
    out_of_order = engine.snapshot(include_all=True)
    _, in_order = run([queued, survey, later])
    assert out_of_order == in_order
    assert [(q["queue"], q["channel"]) for q in in_order["queues"]] == [("billing", "voice")]
    assert all_of(in_order)["promoters"] == 1


def test_a_count_at_exactly_now_has_its_row() -> None:
    """A survey of an unknown contact at stream time: its row exists, so rows add up to the totals in ``all``."""
    _, doc = run([ev("queued", "q1", DAY), ev("survey", "s1", DAY + 10 * S, "nobody", nps=10)])
    assert all_of(doc, "unknown", "unknown")["promoters"] == 1
    assert doc["totals"]["windows"]["all"]["promoters"] == 1
    assert row(doc, "unknown", "unknown")["windows"]["15m"]["promoters"] == 0  # at now: not in [start, now)


# -- order, duplicates, impossible events ----------------------------------------------------------------------------------
def _day_of_contacts() -> list[dict[str, Any]]:
    events = []
    for i in range(6):
        t = DAY + i * 40 * S
        cid = f"c{i}"
        events += [ev("queued", f"{cid}q", t, cid, customer=f"u{i % 2}"),
                   ev("answered" if i % 3 else "abandoned", f"{cid}o", t + (i * 7) * S, cid),
                   ]
        if i % 3:
            events.append(ev("ended", f"{cid}e", t + (i * 7 + 30) * S, cid, customer=f"u{i % 2}", resolved=i % 2 == 0))
        events.append(ev("survey", f"{cid}s", t + 100 * S, cid, nps=i, csat=1 + i % 5))
    return sorted(events, key=lambda e: e["ts"])


def test_out_of_order_within_allowance_gives_the_in_order_document() -> None:
    events = _day_of_contacts()
    _, in_order = run(events)
    rnd = random.Random(7)
    for _ in range(20):
        shuffled = sorted(events, key=lambda e: to_us(datetime.fromisoformat(e["ts"])) + rnd.randrange(60 * US))
        engine, doc = run(shuffled)
        assert doc == in_order
        assert engine.rejections == []


def test_answered_before_its_queued_within_allowance_still_pairs() -> None:
    engine = KpiEngine(KpiSettings())
    engine.process(ev("answered", "a", DAY + 12 * S))
    engine.process(ev("queued", "other", DAY + 50 * S, "c2"))  # stream time moves 38 s past the answer
    engine.process(ev("queued", "q", DAY))  # 50 s late, within the 60 s allowance
    engine.finish()
    assert engine.rejections == []
    doc = engine.snapshot(include_all=True)
    w = all_of(doc)
    assert (w["offered"], w["answered"], w["answered_within_threshold"], w["asa_seconds"]) == (2, 1, 1, 12.0)


def test_answered_whose_queued_never_comes_is_rejected_after_the_allowance() -> None:
    engine = KpiEngine(KpiSettings())
    engine.process(ev("answered", "a", DAY))
    engine.process(ev("queued", "q2", DAY + 60 * S, "c2"))
    assert engine.rejections == []  # exactly the allowance: may still come
    engine.process(ev("queued", "q3", DAY + 60 * S + MICRO, "c3"))
    assert [(r.kind, r.event_id, r.event_type) for r in engine.rejections] == [("lifecycle", "a", "contact.answered")]
    assert "no open queue visit" in engine.rejections[0].reason
    doc = engine.snapshot(include_all=True)
    assert all_of(doc)["answered"] == 0


@pytest.mark.parametrize(
    ("events", "bad"),
    [
        ([ev("abandoned", "x", DAY)], "x"),
        ([ev("queued", "q", DAY), ev("ended", "e", DAY + 30 * S)], "e"),  # ended, never answered
        ([ev("queued", "q", DAY), ev("abandoned", "x", DAY + S), ev("ended", "e", DAY + 30 * S)], "e"),
        ([ev("queued", "q", DAY), ev("answered", "a", DAY + S), ev("ended", "e", DAY + 30 * S),
          ev("ended", "e2", DAY + 31 * S)], "e2"),  # a second end for one answer
        ([ev("queued", "q", DAY), ev("queued", "q2", DAY + S), ev("answered", "a", DAY + 2 * S)], "q2"),  # 2 open visits
        ([ev("queued", "q", DAY), ev("answered", "a", DAY + S), ev("answered", "a2", DAY + 2 * S)], "a2"),
    ],
)
def test_impossible_lifecycle_is_rejected_and_counts_nothing(events: list[dict[str, Any]], bad: str) -> None:
    engine, doc = run(events)
    assert [(r.kind, r.event_id) for r in engine.rejections] == [("lifecycle", bad)]
    assert engine.rejections[0].raw is None  # given as a dict: no bytes to keep
    t = doc["totals"]["windows"]["all"]
    kinds = [e["type"] for e in events if e["event_id"] != bad]
    assert t["offered"] == kinds.count("contact.queued")
    assert t["answered"] == kinds.count("contact.answered")
    assert t["abandoned"] == kinds.count("contact.abandoned")
    assert t["handled"] == kinds.count("contact.ended")


def test_transfer_requeued_and_abandoned_at_the_instant_of_its_end() -> None:
    """ended (transferred) and the new queued and its abandon all at 10:01:00: at an equal ts the queued and the
    abandon sort before the ended, which must still close the first, answered visit (not be refused)."""
    events = [ev("queued", "q1", DAY), ev("answered", "a1", DAY + 5 * S),
              ev("ended", "e1", DAY + 60 * S, transferred=True),
              ev("queued", "q2", DAY + 60 * S, queue="tech"), ev("abandoned", "x2", DAY + 60 * S, queue="tech")]
    engine, doc = run(events)
    assert engine.rejections == []
    assert all_of(doc)["handled"] == 1
    assert (all_of(doc, "tech")["abandoned"], all_of(doc, "tech")["abandoned_short"]) == (1, 1)


def test_transfer_chain_all_at_one_instant() -> None:
    """Transferred at 10:01:00, answered in the new queue at once, and that call ended at once: at an equal ts the
    new queued and answered sort before both ``ended``; each ``ended`` ends one answer, none is refused."""
    t = DAY + 60 * S
    events = [ev("queued", "q1", DAY), ev("answered", "a1", DAY + 5 * S), ev("ended", "e1", t, transferred=True),
              ev("queued", "q2", t, queue="tech"), ev("answered", "a2", t, queue="tech"),
              ev("ended", "e2", t, queue="tech", resolved=True)]
    engine, doc = run(events, now=DAY + 2 * F)
    assert engine.rejections == []
    assert (all_of(doc)["handled"], all_of(doc, "tech")["handled"], all_of(doc, "tech")["first_contacts"]) == (1, 1, 1)


def test_duplicates_first_arrival_wins_even_with_another_payload() -> None:
    ended = ev("ended", "e", DAY + 60 * S, resolved=True)
    events = [ev("queued", "q", DAY), ev("answered", "a", DAY + 5 * S), ended,
              {**ended, "resolved": False, "talk_seconds": 999}, ev("survey", "s", DAY + 70 * S, nps=10),
              ev("survey", "s", DAY + 70 * S, nps=0), ev("queued", "q", DAY)]
    engine, doc = run(events, now=DAY + 2 * F)
    assert engine.health.duplicates == 3
    w = all_of(doc)
    assert (w["offered"], w["handled"], w["aht_seconds"], w["first_contacts_resolved"], w["promoters"]) == (1, 1, 70.0, 1, 1)


def test_equal_ts_queued_answered_ended_in_any_arrival_order() -> None:
    events = [ev("queued", "q", DAY), ev("answered", "a", DAY), ev("ended", "e", DAY)]
    _, reference = run(events)
    for order in ([2, 1, 0], [1, 2, 0], [2, 0, 1]):
        engine, doc = run([events[i] for i in order])
        assert engine.rejections == [] and doc == reference
    w = all_of(reference)
    assert (w["offered"], w["answered"], w["answered_within_threshold"], w["asa_seconds"], w["handled"]) == (1, 1, 1, 0.0, 1)
    assert row(reference)["windows"]["15m"]["offered"] == 0  # at now: only "all" (which ends at now + 1 us) has it


def test_event_id_dedup_scope_is_the_contact() -> None:
    """A decision, documented in docs/live-engine.md ("Duplicates"): an event is a duplicate when its contact has
    already seen its event_id. Contacts are the partition key, so the live engine can check that in the contact's
    own state, in step with its changelog, across restarts and workers. The same id under *another* contact_id
    (a producer reusing ids, not a re-delivery) is two events here: catching it would need an id store shared by
    all partitions and workers (another repartition by event_id), and replay must count what live counts."""
    engine, doc = run([ev("queued", "same-id", DAY, "c1"), ev("queued", "same-id", DAY + S, "c2")])
    assert engine.health.duplicates == 0
    assert all_of(doc)["offered"] == 2
    again, doc2 = run([ev("queued", "same-id", DAY, "c1"), ev("queued", "same-id", DAY + S, "c1")])
    assert again.health.duplicates == 1
    assert all_of(doc2)["offered"] == 1


def test_breach_published_early_under_disorder() -> None:
    """Documented behaviour, not a KPI error: q1 10:00:00, its 3 s abandon arrives 32 s late, after a second visit
    q2 10:00:30 / a2 10:00:35. Until the abandon arrives, q1 looks answered after 35 s (a breach), so the live path
    publishes it (kpis.md: publish at once, "without waiting for the answer or abandon"). The KPIs, recomputed
    from the final events, count no breach."""
    engine = KpiEngine(KpiSettings(), publish_breaches=True)
    for event in [ev("queued", "q1", DAY), ev("queued", "q2", DAY + 30 * S), ev("answered", "a2", DAY + 35 * S),
                  ev("abandoned", "x1", DAY + 3 * S)]:
        engine.process(event)
    engine.finish()
    assert [b.queued_event_id for b in engine.due_breaches(engine.stream_time)] == ["q1"]
    assert engine.rejections == []
    assert all_of(engine.snapshot(include_all=True))["sla_breaches"] == 0
