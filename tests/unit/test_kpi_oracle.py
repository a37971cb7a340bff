"""A brute-force oracle for the KPI document, written straight from ``kpis.md`` and ``events.md``.

It shares no code with ``cxpulse.core``: it only uses the event models (to parse) and the settings (to read
T, S, the formula and the time zone of a queue). It works on the *final* picture: every valid event, the
first arrival of each ``event_id`` winning, its contact's events sorted by event time, and then applies each
definition literally ("+1 at time t for the queue and channel written on the event that causes it").
A window's value is the sum of the contributions whose time lies in [start, end).

Readings of the spec taken here (also the core's, told to the lead):

* Lifecycle: a ``queued`` while a visit is open, an ``answered``/``abandoned`` with no open visit, and an
  ``ended`` with no answer left to end (as many ``ended`` before it as ``answered``) are impossible; they
  count for nothing, and a replay rejects them (kind ``lifecycle``). A ``queued`` while an answered visit is
  still in service (a consultative transfer) is possible. At equal ``ts`` the order is queued, then
  answered/abandoned, then ended (then event id).
* Duplicates (kpis.md "Duplicates", version 2): events of one contact with the same ``event_id`` count once,
  the first arrival winning; the same id under another contact is a producer's id collision and both events
  count (see ``test_event_id_dedup_scope_is_the_contact``; the generators send such collisions).
* A visit still waiting at ``now`` is a breach only when its wait at ``now`` exceeds T, i.e.
  ``queued + T < now``; it is attributed at ``queued + T``. (So the ``all`` window, which ends at
  ``now + 1 us``, does not count a visit that has waited exactly T.)
* The final ``contact.ended`` of a contact is its last non-transferred one.
* ``now`` is stream time, the largest ``ts`` of the accepted (valid, non-duplicate) events, including events
  later found impossible; ``all`` is [first such ``ts``, now + 1 us).
* A (queue, channel) is listed when a count was attributed to it or a contact waits in it.
* Contract v2. A ``survey.followed_up`` is impossible (kind ``lifecycle``, "no such survey") when its contact
  has no accepted ``survey.response`` with that ``event_id`` (at any ts). A detractor feedback's first
  follow-up is the earliest by (ts, event id); a feedback still awaiting one is a breach when its target lies
  before now (``survey ts + target < now``), like a waiting visit. Cost is kept in millionths of the currency
  unit, rounded per contact: round(round(handle seconds * 1e6) * cost_per_hour / 3600) + cost_per_contact * 1e6.
  Distinct customers of a window: customers with a contact whose t0 (first accepted queued) lies inside.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from cxpulse.models.events import (
    ContactQueued,
    InvalidEvent,
    SurveyFollowedUp,
    SurveyResponse,
    format_ts,
    parse_any_event,
    to_us,
)
from cxpulse.settings import KpiSettings, parse_duration

US = 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_RANK = {"contact.queued": 0, "contact.answered": 1, "contact.abandoned": 1, "contact.ended": 2}
COUNTS = (
    "offered", "answered", "answered_within_threshold", "abandoned", "abandoned_short",
    "abandoned_within_threshold", "sla_breaches", "handled", "repeat_contacts", "first_contacts",
    "first_contacts_resolved", "first_contacts_closed", "first_contacts_confirmed", "promoters", "passives",
    "detractors", "csat_1", "csat_2", "csat_3", "csat_4", "csat_5",
    "contacts", "resolved", "costed", "detractor_feedback", "followed_up", "feedback_breaches",
)
SUMS = ("wait_answered_us", "handle_seconds", "resolution_us", "cost_micros", "feedback_response_us")


# -- the final picture ---------------------------------------------------------------------------------------
def accepted(stream: Iterable[Any]) -> list[Any]:
    """Valid events in arrival order, the first arrival of an ``event_id`` *of its contact* winning."""
    seen: set[tuple[str, str]] = set()
    out = []
    for raw in stream:
        try:
            event = parse_any_event(raw)
        except InvalidEvent:
            continue
        key = (event.contact_id, event.event_id)
        if key in seen:
            continue
        seen.add(key)
        out.append(event)
    return out


@dataclass
class Lifecycle:
    visits: list[tuple[Any, Any]] = field(default_factory=list)  # (queued, outcome or None)
    queued: list[Any] = field(default_factory=list)
    ended: list[Any] = field(default_factory=list)
    impossible: list[Any] = field(default_factory=list)


def lifecycle_of(contact_events: list[Any]) -> Lifecycle:
    """events.md: queued -> answered -> ended | queued -> abandoned; at most one open visit."""
    life = Lifecycle()
    ordered = sorted(contact_events, key=lambda e: (to_us(e.ts), _RANK[e.type], e.event_id))
    open_visit = None
    answers_not_ended = 0
    for event in ordered:
        if event.type == "contact.queued":
            if open_visit is not None:
                life.impossible.append(event)
            else:
                open_visit = event
                life.queued.append(event)
        elif event.type in ("contact.answered", "contact.abandoned"):
            if open_visit is None:
                life.impossible.append(event)
            else:
                life.visits.append((open_visit, event))
                open_visit = None
                if event.type == "contact.answered":
                    answers_not_ended += 1
        else:  # contact.ended
            if answers_not_ended == 0:
                life.impossible.append(event)
            else:
                answers_not_ended -= 1
                life.ended.append(event)
    if open_visit is not None:
        life.visits.append((open_visit, None))
    return life


@dataclass
class Picture:
    now: int
    first: int
    contributions: list[tuple[str, int, str, str, float]]  # (measure, at, queue, channel, value)
    waiting: dict[tuple[str, str], list[int]]  # key -> queued ts of waiting visits
    impossible_ids: set[str]
    accepted: list[Any]
    # (contact id, queued event id) -> queue, channel, queued + T of breached visits (an id alone may collide)
    breached: dict[tuple[str, str], tuple[str, str, int]]
    contacts: list[tuple[int, str, str, str]] = field(default_factory=list)  # (t0, customer, queue, channel)
    awaiting: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # key -> survey ts, not followed up


def picture(stream: Iterable[Any], kpi: KpiSettings, now_us: int | None = None) -> Picture:
    events = accepted(stream)
    stream_time = max(to_us(e.ts) for e in events)
    first = min(to_us(e.ts) for e in events)
    now = stream_time if now_us is None else now_us
    by_contact: dict[str, list[Any]] = defaultdict(list)
    surveys: list[SurveyResponse] = []
    followups: list[SurveyFollowedUp] = []
    for event in events:
        if isinstance(event, SurveyResponse):
            surveys.append(event)
        elif isinstance(event, SurveyFollowedUp):
            followups.append(event)
        else:
            by_contact[event.contact_id].append(event)
    lives = {cid: lifecycle_of(evs) for cid, evs in by_contact.items()}
    out: list[tuple[str, int, str, str, float]] = []

    def add(measure: str, at: int, event: Any, value: float = 1) -> None:
        out.append((measure, at, event.queue, event.channel, value))

    waiting: dict[tuple[str, str], list[int]] = defaultdict(list)
    breached: dict[tuple[str, str], tuple[str, str, int]] = {}
    for life in lives.values():
        for queued, outcome in life.visits:
            qs = kpi.for_queue(queued.queue, queued.channel)
            T = round(qs.sl_threshold_seconds * US)
            S = round(qs.short_abandon_seconds * US)
            q_ts = to_us(queued.ts)
            add("offered", q_ts, queued)
            if outcome is None:
                waiting[(queued.queue, queued.channel)].append(q_ts)
                if now - q_ts > T:
                    add("sla_breaches", q_ts + T, queued)
                    breached[(queued.contact_id, queued.event_id)] = (queued.queue, queued.channel, q_ts + T)
                continue
            o_ts = to_us(outcome.ts)
            wait = o_ts - q_ts
            if outcome.type == "contact.answered":
                add("answered", o_ts, outcome)
                add("wait_answered_us", o_ts, outcome, wait)
                if wait <= T:
                    add("answered_within_threshold", o_ts, outcome)
            else:
                add("abandoned", o_ts, outcome)
                if wait < S:
                    add("abandoned_short", o_ts, outcome)
                if wait <= T:
                    add("abandoned_within_threshold", o_ts, outcome)
            if wait > T:
                add("sla_breaches", q_ts + T, queued)
                breached[(queued.contact_id, queued.event_id)] = (queued.queue, queued.channel, q_ts + T)
        for ended in life.ended:
            add("handled", to_us(ended.ts), ended)
            add("handle_seconds", to_us(ended.ts), ended, ended.talk_seconds + ended.hold_seconds + ended.wrap_seconds)
            eq = kpi.for_queue(ended.queue, ended.channel)
            if eq.cost_per_hour > 0 or eq.cost_per_contact > 0:  # kpis.md: both 0 = not configured
                handle_us = round((ended.talk_seconds + ended.hold_seconds + ended.wrap_seconds) * US)
                add("cost_micros", to_us(ended.ts), ended,
                    round(handle_us * eq.cost_per_hour / 3600) + round(eq.cost_per_contact * US))
                add("costed", to_us(ended.ts), ended)
        # v2, resolution: one contact at t0; resolved at its final end, after final ts - t0
        if life.queued:
            first_queued = life.queued[0]
            add("contacts", to_us(first_queued.ts), first_queued)
            finals = [e for e in life.ended if not e.transferred]
            if finals and finals[-1].resolved:
                add("resolved", to_us(finals[-1].ts), finals[-1])
                add("resolution_us", to_us(finals[-1].ts), finals[-1], to_us(finals[-1].ts) - to_us(first_queued.ts))

    # first contact resolution, customer by customer, by brute force
    F = kpi.fcr_window * US
    contacts = []  # (customer, t0, reason, first queued, final ended or None)
    for life in lives.values():
        if not life.queued:
            continue
        first_q: ContactQueued = life.queued[0]
        finals = [e for e in life.ended if not e.transferred]
        contacts.append((first_q.customer_id, to_us(first_q.ts), first_q.reason, first_q, finals[-1] if finals else None))

    def matches(a: str | None, b: str | None) -> bool:
        return a is None or b is None or a == b

    for index, (customer, t0, reason, first_q, final) in enumerate(contacts):
        others = [c for j, c in enumerate(contacts) if j != index and c[0] == customer and matches(c[2], reason)]
        if any(t0 - F <= c[1] < t0 for c in others):
            add("repeat_contacts", t0, first_q)
            continue
        if final is None:
            continue
        final_ts = to_us(final.ts)
        add("first_contacts", final_ts, final)
        if final.resolved:
            add("first_contacts_resolved", final_ts, final)
        closed = max(t0 + F, final_ts)
        add("first_contacts_closed", closed, final)
        if final.resolved and not any(t0 < c[1] <= t0 + F for c in others):
            add("first_contacts_confirmed", closed, final)

    survey_ids = {(s.contact_id, s.event_id) for s in surveys}
    fit_followups = [f for f in followups if (f.contact_id, f.survey_event_id) in survey_ids]
    awaiting: dict[tuple[str, str], list[int]] = defaultdict(list)
    for survey in surveys:
        life = lives.get(survey.contact_id)
        earlier = [q for q in (life.queued if life else []) if to_us(q.ts) <= to_us(survey.ts)]
        queue, channel = (earlier[-1].queue, earlier[-1].channel) if earlier else ("unknown", "unknown")
        at = to_us(survey.ts)
        if survey.nps is not None:
            kind = "promoters" if survey.nps >= 9 else "passives" if survey.nps >= 7 else "detractors"
            out.append((kind, at, queue, channel, 1))
        if survey.csat is not None:
            out.append((f"csat_{survey.csat}", at, queue, channel, 1))
        # v2, closed-loop feedback: nps <= 6 or csat <= 2
        if (survey.nps is not None and survey.nps <= 6) or (survey.csat is not None and survey.csat <= 2):
            out.append(("detractor_feedback", at, queue, channel, 1))
            target = kpi.for_queue(queue, channel).feedback_response_target * US
            mine = sorted((to_us(f.ts), f.event_id) for f in fit_followups
                          if f.contact_id == survey.contact_id and f.survey_event_id == survey.event_id)
            if mine:
                f_ts = mine[0][0]
                out.append(("followed_up", f_ts, queue, channel, 1))
                out.append(("feedback_response_us", f_ts, queue, channel, f_ts - at))
                if f_ts > at + target:
                    out.append(("feedback_breaches", at + target, queue, channel, 1))
            else:
                awaiting[(queue, channel)].append(at)
                if at + target < now:
                    out.append(("feedback_breaches", at + target, queue, channel, 1))

    impossible = {e.event_id for life in lives.values() for e in life.impossible}
    impossible |= {f.event_id for f in followups if (f.contact_id, f.survey_event_id) not in survey_ids}
    contacts = [(to_us(life.queued[0].ts), life.queued[0].customer_id, life.queued[0].queue, life.queued[0].channel)
                for life in lives.values() if life.queued]
    return Picture(now, first, out, dict(waiting), impossible, events, breached, contacts, dict(awaiting))


# -- windows and ratios ----------------------------------------------------------------------------------------
def local_midnight(now: int, tz: str) -> int:
    zone = ZoneInfo(tz)
    local = (EPOCH + timedelta(microseconds=now)).astimezone(zone)
    day_start = datetime(local.year, local.month, local.day, tzinfo=zone)
    return (day_start - EPOCH) // timedelta(microseconds=1)


def bounds(name: str, now: int, first: int, tz: str, bucket_us: int) -> tuple[int, int]:
    if name == "all":
        return first, now + 1
    if name == "today":
        return local_midnight(now, tz), now
    start = now - parse_duration(name) * US
    return (start // bucket_us) * bucket_us, now


def ratio(num: float, den: float, scale: float = 1.0) -> float | None:
    return None if den == 0 else scale * num / den


def window_doc(c: dict[str, float], formula: str, start: int, end: int) -> dict[str, Any]:
    answered, abandoned, short = c["answered"], c["abandoned"], c["abandoned_short"]
    if formula == "exclude_short_abandons":
        sl = ratio(c["answered_within_threshold"], answered + abandoned - short)
    elif formula == "abandons_count_against":
        sl = ratio(c["answered_within_threshold"], answered + abandoned)
    else:
        sl = ratio(c["answered_within_threshold"] + c["abandoned_within_threshold"], answered + abandoned)
    asa = ratio(c["wait_answered_us"], answered)
    nps_n = c["promoters"] + c["passives"] + c["detractors"]
    csat_n = sum(c[f"csat_{k}"] for k in range(1, 6))
    satisfied = c["csat_4"] + c["csat_5"]
    resolution = ratio(c["resolution_us"], c["resolved"])
    response = ratio(c["feedback_response_us"], c["followed_up"])
    return {
        "start": format_ts(start),
        "end": format_ts(end),
        "offered": c["offered"],
        "answered": answered,
        "answered_within_threshold": c["answered_within_threshold"],
        "abandoned": abandoned,
        "abandoned_short": short,
        "sla_breaches": c["sla_breaches"],
        "service_level": sl,
        "abandon_rate": ratio(abandoned - short, answered + abandoned - short),
        "asa_seconds": None if asa is None else asa / US,
        "handled": c["handled"],
        "aht_seconds": ratio(c["handle_seconds"], c["handled"]),
        "repeat_contacts": c["repeat_contacts"],
        "first_contacts": c["first_contacts"],
        "first_contacts_resolved": c["first_contacts_resolved"],
        "fcr": ratio(c["first_contacts_resolved"], c["first_contacts"]),
        "first_contacts_closed": c["first_contacts_closed"],
        "first_contacts_confirmed": c["first_contacts_confirmed"],
        "fcr_confirmed": ratio(c["first_contacts_confirmed"], c["first_contacts_closed"]),
        "nps_responses": nps_n,
        "promoters": c["promoters"],
        "passives": c["passives"],
        "detractors": c["detractors"],
        "nps": ratio(c["promoters"] - c["detractors"], nps_n, 100.0),
        "csat_responses": csat_n,
        "csat_satisfied": satisfied,
        "csat": ratio(satisfied, csat_n, 100.0),
        "contacts": c["contacts"],
        "customers": c["customers"],
        "contacts_per_customer": ratio(c["contacts"], c["customers"]),
        "resolved": c["resolved"],
        "average_resolution_seconds": None if resolution is None else resolution / US,
        "cost": c["cost_micros"] / US if c["costed"] else None,
        "costed_contacts": c["costed"],
        "cost_per_contact": None if not c["costed"] else c["cost_micros"] / c["costed"] / US,
        "detractor_feedback": c["detractor_feedback"],
        "followed_up": c["followed_up"],
        "average_feedback_response_seconds": None if response is None else response / US,
        "feedback_breaches": c["feedback_breaches"],
    }


def _counts(pic: Picture, start: int, end: int, key: tuple[str, str] | None) -> dict[str, float]:
    c: dict[str, float] = {name: 0 for name in COUNTS + SUMS}
    for measure, at, queue, channel, value in pic.contributions:
        if start <= at < end and (key is None or key == (queue, channel)):
            c[measure] += value
    c["customers"] = len({customer for t0, customer, queue, channel in pic.contacts
                          if start <= t0 < end and (key is None or key == (queue, channel))})
    return c


def oracle_document(
    stream: Iterable[Any], kpi: KpiSettings, now_us: int | None = None, *, include_all: bool = True
) -> dict[str, Any]:
    """The KPI document the definitions ask for, in the shape of ``KpiEngine.snapshot``."""
    pic = picture(list(stream), kpi, now_us)
    return document_of(pic, kpi, include_all=include_all)


def document_of(pic: Picture, kpi: KpiSettings, *, include_all: bool = True) -> dict[str, Any]:
    bucket_us = kpi.bucket_seconds * US
    names = list(kpi.windows) + (["all"] if include_all else [])
    keys = {(q, ch) for measure, _, q, ch, _ in pic.contributions if measure in COUNTS} | set(pic.waiting)
    keys |= set(pic.awaiting)
    queues = []
    for queue, channel in sorted(keys):
        qs = kpi.for_queue(queue, channel)
        windows = {}
        for name in names:
            start, end = bounds(name, pic.now, pic.first, qs.timezone, bucket_us)
            windows[name] = window_doc(_counts(pic, start, end, (queue, channel)), qs.sl_formula, start, end)
        waits = pic.waiting.get((queue, channel), [])
        queues.append({
            "queue": queue,
            "channel": channel,
            "live": {"waiting": len(waits), "longest_wait_seconds": max(0, pic.now - min(waits)) / US if waits else 0.0,
                     **_awaiting_doc(pic.awaiting.get((queue, channel), []), pic.now)},
            "windows": windows,
        })
    totals = {}
    for name in names:
        start, end = bounds(name, pic.now, pic.first, kpi.timezone, bucket_us)
        totals[name] = window_doc(_counts(pic, start, end, None), kpi.sl_formula, start, end)
    all_waits = [ts for waits in pic.waiting.values() for ts in waits]
    return {
        "generated_at": format_ts(pic.now),
        "queues": queues,
        "totals": {
            "live": {
                "waiting": len(all_waits),
                "longest_wait_seconds": max(0, pic.now - min(all_waits)) / US if all_waits else 0.0,
                **_awaiting_doc([ts for surveys in pic.awaiting.values() for ts in surveys], pic.now),
            },
            "windows": totals,
        },
    }


def _awaiting_doc(survey_times: list[int], now: int) -> dict[str, Any]:
    """kpis.md v2, live: detractor feedback not followed up, and now - the earliest such survey ts (0 when none)."""
    oldest = max(0, now - min(survey_times)) / US if survey_times else 0.0
    return {"awaiting_follow_up": len(survey_times), "oldest_awaiting_seconds": oldest}


# -- comparing documents -----------------------------------------------------------------------------------------
def differences(expected: Any, actual: Any, path: str = "$", tol: float = 1e-9) -> list[str]:
    """Every field where two documents differ (numbers with a tight relative tolerance)."""
    out: list[str] = []
    if isinstance(expected, dict) and isinstance(actual, dict):
        for k in sorted(set(expected) | set(actual), key=str):
            if k not in actual:
                out.append(f"{path}.{k}: missing (expected {expected[k]!r})")
            elif k not in expected:
                out.append(f"{path}.{k}: unexpected {actual[k]!r}")
            else:
                out += differences(expected[k], actual[k], f"{path}.{k}", tol)
    elif isinstance(expected, list) and isinstance(actual, list):
        if path.endswith(".queues") and all(isinstance(x, dict) and "channel" in x for x in expected + actual):
            e = {(x["queue"], x["channel"]): x for x in expected}
            a = {(x["queue"], x["channel"]): x for x in actual}
            for k in sorted(set(e) | set(a)):
                if k not in a:
                    out.append(f"{path}[{k}]: missing queue (expected {e[k]['windows'].get('all', e[k]['live'])})")
                elif k not in e:
                    out.append(f"{path}[{k}]: unexpected queue {a[k]['live']} {a[k]['windows'].get('all')}")
                else:
                    out += differences(e[k], a[k], f"{path}[{k}]", tol)
        elif len(expected) != len(actual):
            out.append(f"{path}: length {len(actual)} != {len(expected)}")
        else:
            for i, (x, y) in enumerate(zip(expected, actual)):
                out += differences(x, y, f"{path}[{i}]", tol)
    elif expected is None or actual is None or isinstance(expected, (str, bool)) or isinstance(actual, (str, bool)):
        if expected != actual or type(expected) is not type(actual) and not (
            isinstance(expected, (int, float)) and isinstance(actual, (int, float))
        ):
            out.append(f"{path}: {actual!r} != expected {expected!r}")
    elif isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        if not math.isclose(expected, actual, rel_tol=tol, abs_tol=tol):
            out.append(f"{path}: {actual!r} != expected {expected!r}")
    elif expected != actual:
        out.append(f"{path}: {actual!r} != expected {expected!r}")
    return out


def assert_same(expected: Any, actual: Any) -> None:
    diff = differences(expected, actual)
    assert not diff, f"{len(diff)} difference(s):\n" + "\n".join(diff[:40])


# -- the oracle's own sanity checks (hand-computed), so the property tests stand on firm ground ------------------
def _ev(kind: str, eid: str, ts: str, contact: str = "c1", **extra: Any) -> dict[str, Any]:
    base = {"event_id": eid, "type": kind, "ts": ts, "contact_id": contact, "customer_id": extra.pop("customer", "u1")}
    if kind != "survey.response":
        base.update(channel=extra.pop("channel", "voice"), queue=extra.pop("queue", "billing"))
    if kind == "contact.queued":
        base.setdefault("reason", None)
    if kind == "contact.answered":
        base["agent_id"] = "a1"
    if kind == "contact.ended":
        base.update(agent_id="a1", talk_seconds=100, hold_seconds=10, wrap_seconds=5, resolved=True)
    base.update(extra)
    return base


def test_oracle_hand_example() -> None:
    kpi = KpiSettings(fcr_window="1h")
    stream = [
        _ev("contact.queued", "q1", "2026-05-04T10:00:00Z"),
        _ev("contact.answered", "a1", "2026-05-04T10:00:15Z"),
        _ev("contact.ended", "e1", "2026-05-04T10:05:00Z"),
        _ev("contact.queued", "q2", "2026-05-04T10:01:00Z", contact="c2", customer="u2"),
        _ev("contact.abandoned", "x2", "2026-05-04T10:01:03Z", contact="c2", customer="u2"),
        _ev("contact.queued", "q3", "2026-05-04T10:02:00Z", contact="c3", customer="u2"),
        _ev("survey.response", "s1", "2026-05-04T10:06:00Z", nps=10, csat=3),
        _ev("survey.response", "s2", "2026-05-04T10:06:00Z", contact="nobody", nps=2),
        _ev("contact.answered", "bad", "2026-05-04T10:03:00Z", contact="c9"),
    ]
    doc = oracle_document(stream, kpi)
    assert doc["generated_at"] == "2026-05-04T10:06:00.000Z"
    t = doc["totals"]["windows"]["all"]
    assert (t["offered"], t["answered"], t["answered_within_threshold"], t["abandoned"], t["abandoned_short"]) == (3, 1, 1, 1, 1)
    # c3 waits from 10:02:00, breach at 10:02:20 (< now)
    assert t["sla_breaches"] == 1 and doc["totals"]["live"] == {
        "waiting": 1, "longest_wait_seconds": 240.0, "awaiting_follow_up": 1, "oldest_awaiting_seconds": 0.0}
    assert t["service_level"] == 1.0 and t["abandon_rate"] == 0.0 and t["asa_seconds"] == 15.0
    assert t["handled"] == 1 and t["aht_seconds"] == 115.0
    assert t["repeat_contacts"] == 1  # c3 repeats c2 (u2, null reasons)
    assert (t["first_contacts"], t["first_contacts_resolved"], t["first_contacts_closed"]) == (1, 1, 0)  # closes at 11:00
    assert (t["nps_responses"], t["nps"], t["csat_responses"], t["csat"]) == (2, 0.0, 1, 0.0)
    keys = [(q["queue"], q["channel"]) for q in doc["queues"]]
    assert keys == [("billing", "voice"), ("unknown", "unknown")]
    assert picture(stream, kpi).impossible_ids == {"bad"}
    later = oracle_document(stream, kpi, now_us=to_us(datetime(2026, 5, 4, 11, 0, tzinfo=timezone.utc)))
    assert later["totals"]["windows"]["all"]["first_contacts_closed"] == 1
    assert later["totals"]["windows"]["all"]["first_contacts_confirmed"] == 1
    assert later["totals"]["windows"]["1h"]["first_contacts_closed"] == 0  # [10:00, 11:00) excludes 11:00
    # v2: 3 contacts of 2 customers; c1 resolved 5 min after t0; s2 (nps 2) is detractor feedback of nobody
    assert (t["contacts"], t["customers"], t["contacts_per_customer"]) == (3, 2, 1.5)
    assert (t["resolved"], t["average_resolution_seconds"]) == (1, 300.0)
    assert (t["cost"], t["cost_per_contact"], t["costed_contacts"]) == (None, None, 0)  # no cost settings
    assert (t["detractor_feedback"], t["followed_up"], t["feedback_breaches"]) == (1, 0, 0)


def test_differences_reports_fields() -> None:
    assert differences({"a": 1.0, "b": None}, {"a": 1.0 + 1e-12, "b": None}) == []
    assert differences({"a": None}, {"a": 0}) == ["$.a: 0 != expected None"]
    assert differences({"a": 1}, {"a": 2}) == ["$.a: 2 != expected 1"]


# -- agents and staffing (kpis.md "Agents (v2)", "Staffing (v2)"), from the definitions, by brute force -----------
AGENT_STATES_TIMED = ("available", "on_contact", "wrap_up", "away")
AGENT_LIVE = ("logged_in", "available", "on_contact", "wrap_up", "away")


def accepted_agent_events(stream: Iterable[Any]) -> list[Any]:
    """Valid ``agent.state`` events, the first arrival of an ``event_id`` *of its agent* winning."""
    from cxpulse.models.agent_events import parse_agent_event

    seen: set[tuple[str, str]] = set()
    out = []
    for raw in stream:
        try:
            event = parse_agent_event(raw)
        except InvalidEvent:
            continue
        if (event.agent_id, event.event_id) in seen:
            continue
        seen.add((event.agent_id, event.event_id))
        out.append(event)
    return out


def erlang_c_textbook(n: int, a: float) -> float:
    """P(wait) in M/M/n, the textbook way: (a^n/n! * n/(n-a)) / (sum_{k<n} a^k/k! + a^n/n! * n/(n-a))."""
    top = a**n / math.factorial(n) * n / (n - a)
    return top / (sum(a**k / math.factorial(k) for k in range(n)) + top)


def required_agents(offered: float, seconds: float, aht: float | None, t: float, target: float) -> int | None:
    if not offered or aht is None or aht == 0:
        return None
    a = offered / seconds * aht
    n = math.floor(a) + 1
    while 1 - erlang_c_textbook(n, a) * math.exp(-(n - a) * t / aht) < target:
        n += 1
    return n


def agents_oracle(stream: list[Any], kpi: KpiSettings, now: int) -> dict[str, Any]:
    """The document's ``agents`` section at ``now``: each agent in the state of its latest event by ts (equal ts:
    the larger event id last), seconds = the part of each interval inside the window, per team and in total."""
    events = accepted_agent_events(stream)
    by_agent: dict[str, list[Any]] = defaultdict(list)
    for event in events:
        by_agent[event.agent_id].append(event)
    for evs in by_agent.values():
        evs.sort(key=lambda e: (to_us(e.ts), e.event_id))
    bucket_us = kpi.bucket_seconds * US
    live: dict[tuple[str, Any], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for evs in by_agent.values():
        current = [e for e in evs if to_us(e.ts) <= now]
        if not current or current[-1].state == "logged_out":
            continue
        e = current[-1]
        keys = ["logged_in", e.state] + ([f"away:{e.reason or 'unspecified'}"] if e.state == "away" else [])
        for scope in [("total", None), ("team", e.team)] + [("queue", q) for q in set(e.queues)]:
            for key in keys:
                live[scope][key] += 1

    def live_doc(scope: tuple[str, Any]) -> dict[str, Any]:
        c = live.get(scope, {})
        doc: dict[str, Any] = {name: c.get(name, 0) for name in AGENT_LIVE}
        doc["away_by_reason"] = {k[5:]: v for k, v in sorted(c.items()) if k.startswith("away:")}
        return doc

    def seconds(start: int, end: int, team: Any, any_team: bool) -> list[int]:
        out = [0, 0, 0, 0]
        for evs in by_agent.values():
            for i, e in enumerate(evs):
                if e.state not in AGENT_STATES_TIMED or (not any_team and e.team != team):
                    continue
                until = min(to_us(evs[i + 1].ts), now) if i + 1 < len(evs) else now
                part = min(until, end) - max(to_us(e.ts), start)
                if part > 0:
                    out[AGENT_STATES_TIMED.index(e.state)] += part
        return out

    def windows_doc(team: Any, any_team: bool) -> dict[str, Any]:
        out = {}
        for name in kpi.windows:
            start, end = bounds(name, now, 0, kpi.timezone, bucket_us)
            s = seconds(start, end, team, any_team)
            doc: dict[str, Any] = {"start": format_ts(start), "end": format_ts(end)}
            doc.update({f"{state}_seconds": s[i] / US for i, state in enumerate(AGENT_STATES_TIMED)})
            doc["occupancy"] = ratio(s[1] + s[2], s[0] + s[1] + s[2])
            out[name] = doc
        return out

    contact_events = accepted([r for r in stream if _type_of(r) != "agent.state"])
    pic = picture(stream, kpi, now) if contact_events else None
    contact_keys = set()
    if pic is not None:
        contact_keys = {(q, ch) for measure, _, q, ch, _ in pic.contributions if measure in COUNTS} | set(pic.waiting)
        contact_keys = {k for k in contact_keys if k[1] != "unknown"}
    r_start, r_end = bounds("15m", now, 0, kpi.timezone, bucket_us)
    a_start, a_end = bounds("1h", now, 0, kpi.timezone, bucket_us)
    queue_names = {s[1] for s in live if s[0] == "queue"} | {q for q, _ in contact_keys}
    queues = []
    for queue in sorted(queue_names):
        per_channel = []
        for q, ch in contact_keys:
            if q == queue:
                assert pic is not None
                rate = _counts(pic, r_start, r_end, (q, ch))
                per_channel.append((-rate["offered"], ch, rate, _counts(pic, a_start, a_end, (q, ch))))
        per_channel.sort(key=lambda x: (x[0], x[1]))
        offered = sum(x[2]["offered"] for x in per_channel)
        handled = sum(x[3]["handled"] for x in per_channel)
        handle = sum(x[3]["handle_seconds"] for x in per_channel)
        seconds_15m = (r_end - r_start) / US if per_channel else 0.0
        aht = handle / handled if handled else None
        qs = kpi.for_queue(queue, per_channel[0][1] if per_channel else "voice")
        c = live.get(("queue", queue), {})
        staffed = c.get("available", 0) + c.get("on_contact", 0) + c.get("wrap_up", 0)
        rate_s = offered / seconds_15m if seconds_15m else 0.0
        need = required_agents(offered, seconds_15m, aht, qs.sl_threshold_seconds, qs.sl_target)
        queues.append({"queue": queue, "live": live_doc(("queue", queue)), "staffing": {
            "offered_rate_per_hour": rate_s * 3600,
            "aht_seconds": aht,
            "traffic_erlangs": rate_s * aht if aht is not None else None,
            "sl_threshold_seconds": qs.sl_threshold_seconds,
            "sl_target": qs.sl_target,
            "agents_required": need,
            "agents_staffed": staffed,
            "gap": need - staffed if need is not None else None,
        }})
    teams_seen = {s[1] for s in live if s[0] == "team"}
    for e in events:
        if any(any(x > 0 for x in seconds(*bounds(n, now, 0, kpi.timezone, bucket_us), e.team, False)) for n in kpi.windows):
            teams_seen.add(e.team)
    teams = [{"team": t, "live": live_doc(("team", t)), "windows": windows_doc(t, False)}
             for t in sorted(teams_seen, key=lambda t: (t is not None, t or ""))]
    return {"live": live_doc(("total", None)), "windows": windows_doc(None, True), "queues": queues, "teams": teams}


def _type_of(raw: Any) -> Any:
    import json

    if isinstance(raw, dict):
        return raw.get("type")
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data.get("type") if isinstance(data, dict) else None


def _ag(eid: str, ts: str, agent: str, state: str, **extra: Any) -> dict[str, Any]:
    base = {"event_id": eid, "type": "agent.state", "ts": ts, "agent_id": agent, "state": state,
            "queues": extra.pop("queues", ["billing"]), "team": extra.pop("team", "red")}
    base.update(extra)
    return base


def test_agents_oracle_hand_example() -> None:
    """Two agents, one in two queues, a break, a logout; seconds worked out by hand at 09:20 (15m = [09:05, 09:20))."""
    kpi = KpiSettings()
    stream = [
        _ag("a1", "2026-05-04T08:50:00Z", "A", "available"),
        _ag("a2", "2026-05-04T09:10:00Z", "A", "on_contact"),
        _ag("b1", "2026-05-04T09:00:00Z", "B", "available", queues=["billing", "sales"], team="blue"),
        _ag("b2", "2026-05-04T09:12:00Z", "B", "away", queues=["billing", "sales"], team="blue", reason="break"),
        _ag("c1", "2026-05-04T09:01:00Z", "C", "available"),
        _ag("c2", "2026-05-04T09:03:00Z", "C", "logged_out"),
    ]
    doc = agents_oracle(stream, kpi, to_us(datetime(2026, 5, 4, 9, 20, tzinfo=timezone.utc)))
    assert doc["live"] == {"logged_in": 2, "available": 0, "on_contact": 1, "wrap_up": 0, "away": 1,
                           "away_by_reason": {"break": 1}}
    assert [(q["queue"], q["live"]["logged_in"], q["staffing"]["agents_staffed"]) for q in doc["queues"]] == [
        ("billing", 2, 1), ("sales", 1, 0)]
    w = doc["windows"]["15m"]
    # A: available 09:05-09:10 (300), on contact 09:10-09:20 (600); B: available 09:05-09:12 (420), away 480
    assert (w["available_seconds"], w["on_contact_seconds"], w["away_seconds"]) == (720.0, 600.0, 480.0)
    assert w["occupancy"] == 600 / 1320
    h = doc["windows"]["1h"]  # [08:20, 09:20): A available 08:50-09:10, C available 2 min
    assert h["available_seconds"] == 1200 + 720 + 120
    assert [t["team"] for t in doc["teams"]] == ["blue", "red"]
