"""Property tests: the KPI core against the brute-force oracle of ``test_kpi_oracle``, on random histories.

Each example is a small contact centre over ~2.5 hours around a local midnight (some on DST days): several
customers with several contacts each (reasons, some null), transfers (``ended`` transferred=true then a new
``queued``, sometimes at the same instant), answers and abandons with waits on the T and S boundaries,
contacts still waiting or still in service, resolved true/false, surveys (nps, csat, both; before and after
the contact's queued; for unknown contacts), per-queue settings (threshold, short abandon, every
``sl_formula``, time zone) and a 1 h FCR window so repeats and confirmations happen. Then the stream is
spoiled the way producers spoil it: duplicates (sometimes with an altered payload: the first arrival wins),
schema-invalid records, impossible lifecycle events, disorder (each event arrives less than
``allowed_disorder`` late in stream time), and ``event_id`` collisions: now and then an event reuses the id of
another contact's event, which is not a duplicate (kpis.md "Duplicates": per contact) and must count.

Checked for every example:
* the core's document equals the oracle's, field by field, at stream time and at a later "now";
* it equals the core's own document for the in-order, duplicate-free stream of the winning events;
* the impossible events, and only they, are rejected with kind ``lifecycle`` and count for nothing.
"""

from __future__ import annotations

import os
import random
from datetime import datetime, timezone
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxpulse.core.engine import KpiEngine
from cxpulse.models.events import format_ts, to_us
from cxpulse.settings import KpiSettings
from test_kpi_oracle import assert_same, document_of, picture

US = 1_000_000
FORMULAS = ("exclude_short_abandons", "abandons_count_against", "abandons_within_count_for")
ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata")
PAIRS = (("billing", "voice"), ("tech", "chat"), ("tech", "voice"), ("sales", "sms"), ("care", "email"), ("care", "voice"))
REASONS = (None, "billing", "outage", "cancel")
BASES = (  # ~2.5 h histories that cross a local midnight somewhere
    datetime(2026, 3, 28, 21, 50, tzinfo=timezone.utc),  # Paris springs forward the next night
    datetime(2026, 10, 24, 21, 40, tzinfo=timezone.utc),  # Paris falls back
    datetime(2026, 6, 15, 3, 0, tzinfo=timezone.utc),  # New York midnight at 04:00Z
    datetime(2026, 1, 10, 17, 45, tzinfo=timezone.utc),  # Kolkata midnight at 18:30Z
)
SPAN_S = 9000
FEEDBACK_TARGET = "30m"  # v2: short enough that follow-ups come late and feedback breaches happen in ~2.5 h
COLLIDE = 0.06  # share of events that reuse another contact's event_id (a producer's id collision)
# deterministic in CI; CXPULSE_PROPERTY_EXAMPLES=5000 CXPULSE_PROPERTY_RANDOM=1 hunts with fresh seeds
EXAMPLES = int(os.environ.get("CXPULSE_PROPERTY_EXAMPLES", "600"))
PROFILE = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("CXPULSE_PROPERTY_RANDOM"),
                   database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def kpi_settings(draw: st.DrawFn) -> KpiSettings:
    queues: dict[str, Any] = {}
    for queue in ("billing", "tech", "sales", "care"):
        if draw(st.booleans()):
            queues[queue] = {
                "sl_threshold_seconds": draw(st.sampled_from([None, 10, 20, 30.5, 60])),
                "short_abandon_seconds": draw(st.sampled_from([None, 0, 3, 5, 7.5])),
                "sl_formula": draw(st.sampled_from((None,) + FORMULAS)),
                "timezone": draw(st.sampled_from((None,) + ZONES)),
            }
    for queue in ("billing", "tech", "sales", "care"):  # v2: cost and feedback target per queue, sometimes
        if draw(st.integers(0, 3)) == 0:
            queues.setdefault(queue, {}).update(
                cost_per_hour=draw(st.sampled_from([None, 0, 31.7])), cost_per_contact=draw(st.sampled_from([None, 0, 0.35])),
                feedback_response_target=draw(st.sampled_from([None, "10m", "1h"])))
    channels = {  # v2: per-channel cost (voice configured, chat not, email only per contact) and targets
        "voice": {"cost_per_hour": draw(st.sampled_from([0, 24.5])), "feedback_response_target": FEEDBACK_TARGET},
        "chat": {"feedback_response_target": draw(st.sampled_from(["5m", FEEDBACK_TARGET]))},
        "email": {"cost_per_contact": draw(st.sampled_from([0, 1.25]))},
    }
    return KpiSettings(
        sl_formula=draw(st.sampled_from(FORMULAS)),
        timezone=draw(st.sampled_from(ZONES)),
        fcr_window="1h",
        allowed_disorder=draw(st.sampled_from(["60s", "30s", "2m"])),
        queues=queues,
        channels=channels,
    )


class History:
    """Builds events in event-time order, remembering which ones are impossible on purpose."""

    def __init__(self, rnd: random.Random, kpi: KpiSettings, base_us: int) -> None:
        self.rnd, self.kpi, self.base = rnd, kpi, base_us
        self.events: list[dict[str, Any]] = []
        self.impossible: set[str] = set()
        self.t0s: dict[str, list[int]] = {}
        self._n = 0
        self.ids: dict[str, set[str]] = {}  # contact -> event ids it used
        self.recent: list[tuple[str, str]] = []  # (contact, event id) of recent events, to collide with
        self.collisions = 0

    def event_id(self, contact: str) -> str:
        """A fresh id, or now and then the id of another contact's event (never one this contact used: that
        would be a duplicate, which the re-sends below cover)."""
        self._n += 1
        mine = self.ids.setdefault(contact, set())
        chosen = f"e{self._n}"
        if self.recent and self.rnd.random() < COLLIDE:
            others = [eid for other, eid in self.recent[-30:] if other != contact and eid not in mine]
            if others:
                chosen = self.rnd.choice(others)
                self.collisions += 1
        mine.add(chosen)
        self.recent.append((contact, chosen))
        return chosen

    def emit(self, kind: str, ts: int, contact: str, customer: str, pair: tuple[str, str] | None = None, **extra: Any) -> dict[str, Any]:
        event: dict[str, Any] = {
            "event_id": self.event_id(contact),
            "type": kind,
            "ts": self.rnd.choice([format_ts(ts), _with_offset(ts)]),
            "contact_id": contact,
            "customer_id": customer,
            "unknown_extra_field": {"ignored": True},
        }
        if pair is not None:
            event["queue"], event["channel"] = pair
        if kind == "contact.answered":
            event.update(agent_id="ag" + str(self.rnd.randint(1, 5)), team=None)
        event.update(extra)
        self.events.append(event)
        return event

    def ended(self, ts: int, contact: str, customer: str, pair: tuple[str, str], transferred: bool) -> dict[str, Any]:
        rnd = self.rnd
        return self.emit(
            "contact.ended", ts, contact, customer, pair, agent_id="ag1",
            talk_seconds=rnd.choice([0, round(rnd.uniform(0, 600), 2)]), hold_seconds=rnd.choice([0, 12.5]),
            wrap_seconds=rnd.randint(0, 60), resolved=rnd.random() < 0.6, transferred=transferred,
            disposition=rnd.choice([None, "done"]),
        )

    def wait(self, pair: tuple[str, str]) -> int:
        qs = self.kpi.for_queue(*pair)
        t, s = qs.threshold_us, qs.short_abandon_us
        rnd = self.rnd
        special = [0, t, t - 1000, t + 1000, t + 1, s, max(0, s - 1000), max(0, s - 1)]
        if rnd.random() < 0.4:
            return rnd.choice(special)
        return rnd.randint(0, min(2 * t, 3 * 3600 * US) // 1000) * 1000

    def contact(self, contact: str, customer: str) -> None:
        rnd = self.rnd
        t = self.base + rnd.randint(0, SPAN_S) * US + rnd.choice([0, rnd.randint(0, 999) * 1000])
        previous = self.t0s.get(customer)
        if previous and rnd.random() < 0.3:  # on the FCR window's edges: [t0 - F, t0) and (t0, t0 + F]
            t = rnd.choice(previous) + rnd.choice([0, 1, -1, 1000]) + rnd.choice([-1, 1]) * rnd.choice([0, self.kpi.fcr_window * US])
        self.t0s.setdefault(customer, []).append(t)
        times: list[int] = []
        reason = rnd.choice(REASONS)
        visits = rnd.choice([1, 1, 1, 2, 3])
        last_ts = t
        for index in range(visits):
            last = index == visits - 1
            pair = rnd.choice(PAIRS)
            self.emit("contact.queued", t, contact, customer, pair, reason=reason if index == 0 else rnd.choice(REASONS),
                      priority=rnd.choice([None, 1]))
            last_ts = t
            times.append(t)
            outcome = rnd.choices(["answered", "abandoned", "waiting"], weights=[6, 3, 1 if last else 0])[0]
            if outcome == "waiting":
                break
            o_ts = t + self.wait(pair)
            o_pair = pair if rnd.random() < 0.9 else rnd.choice(PAIRS)  # attributed to the event's own queue
            self.emit(f"contact.{outcome}", o_ts, contact, customer, o_pair)
            last_ts = o_ts
            if outcome == "abandoned":
                break
            e_ts = o_ts + rnd.choice([0, rnd.randint(0, 900) * US + rnd.randint(0, 999) * 1000])
            if last and rnd.random() < 0.15:
                break  # still in service
            self.ended(e_ts, contact, customer, o_pair, transferred=not last)
            last_ts = e_ts
            t = e_ts + rnd.choice([0, 0, rnd.randint(1, 30) * US])  # a transfer may re-queue at the same instant
            if rnd.random() < 0.1:
                t = o_ts + (e_ts - o_ts) // 2  # or, consultative, while the first agent still works on it
        if rnd.random() < 0.3:  # a survey after (or, now and then, before) the contact, or at one of its queued
            s_ts = rnd.choice([last_ts + rnd.randint(-600, 1800) * US, rnd.choice(times)])
            self.survey(s_ts, contact, customer)
        if rnd.random() < 0.08 and self.events[-1]["type"] == "contact.ended":
            latest = max(to_us(datetime.fromisoformat(e["ts"])) for e in self.events if e["contact_id"] == contact)
            second = self.ended(latest + 5 * US, contact, customer, pair, False)
            self.impossible.add(second["event_id"])  # a second end for one answer

    def survey(self, ts: int, contact: str, customer: str) -> None:
        rnd = self.rnd
        scores = rnd.choice(["nps", "csat", "both"])
        survey = self.emit(
            "survey.response", ts, contact, customer,
            nps=rnd.choice([rnd.randint(0, 10), 6, 7]) if scores != "csat" else None,  # 6/7: detractor bound
            csat=rnd.choice([rnd.randint(1, 5), 2, 3]) if scores != "nps" else None,  # 2/3: detractor bound
            comment=rnd.choice([None, "thanks"]),
        )
        # v2: follow-ups (none, one, or a second that changes nothing), in time, exactly at a target, 1 us after
        # it or much later; now and then one of a survey this contact does not have (impossible: no such survey)
        for _ in range(rnd.choice([0, 0, 1, 1, 2])):
            targets = [5 * 60 * US, 10 * 60 * US, 30 * 60 * US, 3600 * US]
            target = rnd.choice(targets)
            delay = rnd.choice([0, target, target + 1, target - 1, rnd.randint(0, 5400) * US])
            self.emit("survey.followed_up", ts + delay, contact, customer, survey_event_id=survey["event_id"],
                      agent_id=rnd.choice([None, "ag2"]))
        if rnd.random() < 0.05:
            bad = self.emit("survey.followed_up", ts + rnd.randint(0, 600) * US, contact, customer,
                            survey_event_id="no-such-" + survey["event_id"], agent_id=None)
            self.impossible.add(bad["event_id"])

    def impossible_contact(self, contact: str) -> None:
        rnd = self.rnd
        t = self.base + rnd.randint(0, SPAN_S) * US
        pair = rnd.choice(PAIRS)
        shape = rnd.choice(["answered", "abandoned", "ended", "queued_ended", "double_queued", "abandoned_ended"])
        if shape == "ended":
            bad = self.ended(t, contact, "ux", pair, False)
        elif shape in ("answered", "abandoned"):
            bad = self.emit(f"contact.{shape}", t, contact, "ux", pair)
        elif shape == "queued_ended":
            self.emit("contact.queued", t, contact, "ux", pair, reason=None)
            bad = self.ended(t + 40 * US, contact, "ux", pair, False)
        elif shape == "abandoned_ended":
            self.emit("contact.queued", t, contact, "ux", pair, reason=None)
            self.emit("contact.abandoned", t + 3 * US, contact, "ux", pair)
            bad = self.ended(t + 40 * US, contact, "ux", pair, False)
        else:
            self.emit("contact.queued", t, contact, "ux", pair, reason=None)
            bad = self.emit("contact.queued", t + 10 * US, contact, "ux", rnd.choice(PAIRS), reason=None)
        self.impossible.add(bad["event_id"])


def _with_offset(us: int) -> str:
    """The same instant written with a +03:00 offset (events.md allows any explicit offset)."""
    from datetime import timedelta

    local = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=us)
    return local.astimezone(timezone(timedelta(hours=3))).isoformat(timespec="microseconds")


def _altered(event: dict[str, Any], rnd: random.Random) -> dict[str, Any]:
    """Same event_id, ts, type and contact, different payload (a producer bug): the first arrival must win."""
    copy = dict(event)
    kind = event["type"]
    if kind == "contact.queued":
        copy["reason"] = rnd.choice(REASONS)
        copy["queue"], copy["channel"] = rnd.choice(PAIRS)
    elif kind in ("contact.answered", "contact.abandoned"):
        copy["queue"], copy["channel"] = rnd.choice(PAIRS)
    elif kind == "contact.ended":
        copy["resolved"] = not event["resolved"]
        copy["talk_seconds"] = event["talk_seconds"] + 100
    elif kind == "survey.followed_up":
        copy["agent_id"] = rnd.choice([None, "someone-else"])
    else:
        copy["nps"], copy["csat"] = rnd.randint(0, 10), None
    return copy


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[KpiSettings, list[Any], set[str], int, list[int]]:
    kpi = draw(kpi_settings())
    rnd = draw(st.randoms(use_true_random=False))
    base = to_us(draw(st.sampled_from(BASES)))
    history = History(rnd, kpi, base)
    n_customers = rnd.randint(1, 5) if rnd.random() < 0.8 else rnd.randint(6, 15)  # now and then a busier centre
    for c in range(n_customers):
        for k in range(rnd.choice([1, 1, 2, 3, 4])):
            history.contact(f"c{c}-{k}", f"cust{c}")
    for k in range(rnd.randint(0, 2)):
        history.survey(base + rnd.randint(0, SPAN_S) * US, f"stranger{k}", "cust-x")
    for k in range(rnd.randint(0, 3)):
        history.impossible_contact(f"bad{k}")
    disorder = kpi.allowed_disorder * US
    # arrival: event time plus a delay shorter than the allowed disorder (so stream time - ts < allowance)
    arrivals: list[tuple[int, int, Any]] = []
    for index, event in enumerate(history.events):
        ts = to_us(datetime.fromisoformat(event["ts"]))
        arrivals.append((ts + rnd.randrange(disorder), index, event))
        if rnd.random() < 0.15:  # a re-send, maybe altered, maybe much later
            copy = _altered(event, rnd) if rnd.random() < 0.5 else dict(event)
            delay = rnd.randrange(disorder) if rnd.random() < 0.7 else disorder + rnd.randrange(3600 * US)
            arrivals.append((ts + delay, index, copy))
    arrivals.sort(key=lambda item: (item[0], item[1]))
    stream: list[Any] = [orjson.dumps(e) if rnd.random() < 0.5 else e for _, _, e in arrivals]
    for junk in (b"{not json", b'{"event_id": "j1", "type": "contact.queued"}',
                 orjson.dumps({**history.events[0], "ts": "2026-03-29T10:00:00"})):
        if rnd.random() < 0.5:
            stream.insert(rnd.randrange(len(stream) + 1), junk)
    later = rnd.choice([0, rnd.randint(1, 7200)]) * US
    snaps = sorted(rnd.sample(range(1, len(stream)), k=min(len(stream) - 1, rnd.choice([0, 1, 3]))))
    return kpi, stream, history.impossible, later, snaps


def run_core(kpi: KpiSettings, stream: list[Any]) -> KpiEngine:
    engine = KpiEngine(kpi)
    for raw in stream:
        engine.process(raw)
    engine.finish()
    return engine


def lifecycle_rejected(engine: KpiEngine) -> set[str]:
    return {r.event_id for r in engine.rejections if r.kind == "lifecycle"}


@PROFILE
@given(scenarios())
def test_core_matches_oracle(scenario: tuple[KpiSettings, list[Any], set[str], int, list[int]]) -> None:
    kpi, stream, planted, later, snaps = scenario
    engine = KpiEngine(kpi)
    done = 0
    for point in snaps:  # live: documents read mid-stream (facts move from "future" to buckets, then get retracted)
        for raw in stream[done:point]:
            engine.process(raw)
        done = point
        if engine.health.processed:
            assert_same(document_of(picture(stream[:point], kpi), kpi), engine.snapshot(include_all=True))
    for raw in stream[done:]:
        engine.process(raw)
    engine.finish()
    pic = picture(stream, kpi)

    # impossible events: exactly those the lifecycle forbids, rejected as "lifecycle", never counted
    assert planted <= pic.impossible_ids
    assert lifecycle_rejected(engine) == pic.impossible_ids
    assert engine.health.processed == len(pic.accepted)

    snapshot = engine.snapshot(include_all=True)
    assert_same(document_of(pic, kpi), snapshot)

    # the same events in order, without duplicates, give the very same document
    in_order = sorted(pic.accepted, key=lambda e: e.ts)
    reference = run_core(kpi, [e.model_dump(mode="json") for e in in_order])
    assert reference.health.duplicates == 0
    assert lifecycle_rejected(reference) == pic.impossible_ids
    assert reference.snapshot(include_all=True) == snapshot

    # later "now" (live operation): waits grow, breaches of waiting visits and FCR closings come due
    if later:
        now = engine.stream_time + later
        assert_same(document_of(picture(stream, kpi, now), kpi), engine.snapshot(now, include_all=True))


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(st.sampled_from(FORMULAS), st.sampled_from(FORMULAS), st.randoms(use_true_random=False))
def test_every_sl_formula_per_queue_and_centre(queue_formula: str, centre_formula: str, rnd: random.Random) -> None:
    """One queue with its own formula, the others on the centre's: each row and the totals use the right one."""
    kpi = KpiSettings(sl_formula=centre_formula, fcr_window="1h",
                      queues={"billing": {"sl_formula": queue_formula, "short_abandon_seconds": 4}})
    history = History(rnd, kpi, to_us(BASES[0]))
    for k in range(12):
        history.contact(f"c{k}", f"u{k % 4}")
    stream = sorted(history.events, key=lambda e: datetime.fromisoformat(e["ts"]))
    engine = run_core(kpi, stream)
    assert_same(document_of(picture(stream, kpi), kpi), engine.snapshot(include_all=True))


@settings(max_examples=max(50, EXAMPLES // 3), deadline=None, derandomize=not os.environ.get("CXPULSE_PROPERTY_RANDOM"),
          database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios())
def test_breaches_published_once_each(scenario: tuple[KpiSettings, list[Any], set[str], int, list[int]]) -> None:
    """Topic ``sla-breaches``: every visit whose wait exceeds T is published exactly once, with the visit's queue
    and channel and the moment queued + T; a visit still waiting is published once now passes queued + T.

    In order, the published set is exactly the oracle's. Out of order (within the allowance) it may hold more:
    a breach is published as soon as it *looks* certain ("without waiting for the answer or abandon"), and an
    earlier outcome may still arrive (see ``test_kpi_edges.test_breach_published_early_under_disorder``);
    it never misses one and never publishes one twice."""
    kpi, stream, _, later, _ = scenario
    expected_pic = picture(stream, kpi)
    in_order = [e.model_dump(mode="json") for e in sorted(expected_pic.accepted, key=lambda e: e.ts)]
    for events, exact in ((in_order, True), (stream, False)):
        engine = KpiEngine(kpi, publish_breaches=True)
        ids: list[tuple[str, str]] = []  # (contact, queued event id): an id alone may be another contact's too
        for raw in events:
            engine.process(raw)
            ids += [(b.contact_id, b.queued_event_id) for b in engine.due_breaches(engine.stream_time)]  # a live tick
        engine.finish()
        now = engine.stream_time + later
        published = engine.due_breaches(now)
        ids += [(b.contact_id, b.queued_event_id) for b in published]
        assert len(ids) == len(set(ids)), "a breach was published twice"
        expected = picture(stream, kpi, now).breached
        if exact:
            assert set(ids) == set(expected)
        else:
            assert set(ids) >= set(expected)
        for breach in published:
            key = (breach.contact_id, breach.queued_event_id)
            if key in expected:
                assert (breach.queue, breach.channel, breach.breached_at_us) == expected[key]
        # an hour later: only visits still waiting come due, never one again
        again = {(b.contact_id, b.queued_event_id) for b in engine.due_breaches(now + 3600 * US)}
        assert not again & set(ids)
        assert again == set(picture(stream, kpi, now + 3600 * US).breached) - set(ids)


def test_generators_send_id_collisions_that_count_twice() -> None:
    """The collisions above really happen, and the core counts both events of a collision (the oracle agrees):
    over a few seeded histories, some event ids are shared by two contacts, and the document still equals the
    oracle's, where every (contact, event_id) counts once."""
    kpi = KpiSettings(fcr_window="1h")
    collisions = 0
    for seed in range(20):
        history = History(random.Random(seed), kpi, to_us(BASES[0]))
        for k in range(12):
            history.contact(f"c{k}", f"u{k % 4}")
        collisions += history.collisions
        stream = sorted(history.events, key=lambda e: datetime.fromisoformat(e["ts"]))
        engine = run_core(kpi, stream)
        assert engine.health.duplicates == 0
        assert engine.health.processed == len(stream)
        assert_same(document_of(picture(stream, kpi), kpi), engine.snapshot(include_all=True))
    assert collisions >= 10


def test_breaches_of_two_contacts_whose_queued_ids_collide_are_both_published() -> None:
    """The smallest case of the collisions above, by hand: c1 and c2 are both queued with event_id "same" (voice,
    T = 20 s) at 10:00:00 and 10:00:01 and both still wait at 10:01:00. Both visits exceed T, so both breaches
    must be published (kpis.md: every visit whose wait exceeds T, once), each once: c1 at 10:00:20, c2 at 10:00:21.
    The KPI count is 2 either way; this checks the publishing side (topic ``sla-breaches``)."""
    base = to_us(BASES[0])
    events = [
        {"event_id": "same", "type": "contact.queued", "ts": format_ts(base + k * US), "contact_id": f"c{k + 1}",
         "customer_id": f"u{k + 1}", "queue": "billing", "channel": "voice", "reason": None}
        for k in range(2)
    ]
    engine = KpiEngine(KpiSettings(), publish_breaches=True)
    for event in events:
        engine.process(event)
    published = engine.due_breaches(base + 60 * US)
    assert sorted((b.contact_id, b.queued_event_id, b.breached_at_us) for b in published) == [
        ("c1", "same", base + 20 * US), ("c2", "same", base + 21 * US)]
    assert engine.due_breaches(base + 120 * US) == []
    assert engine.snapshot(base + 60 * US, include_all=True)["totals"]["windows"]["all"]["sla_breaches"] == 2


# -- agents and staffing (kpis.md "Agents (v2)", "Staffing (v2)") ------------------------------------------------
AGENT_STATES = ("logged_out", "available", "on_contact", "wrap_up", "away")
AWAY_REASONS = (None, "break", "lunch", "training")
TEAMS = (None, "red", "blue")


@st.composite
def agent_scenarios(draw: st.DrawFn) -> tuple[KpiSettings, list[Any], list[Any], int]:
    """A few agents changing state over ~2.5 h around a local midnight, some contacts for staffing; returns
    (settings, the spoiled stream as it arrives, the in-order stream of the winning events, a later now)."""
    zone = draw(st.sampled_from(ZONES))
    windows = draw(st.sampled_from([("15m", "1h", "24h", "today"), ("15m", "30m", "1h", "today")]))
    kpi = KpiSettings(timezone=zone, windows=windows, allowed_disorder=draw(st.sampled_from([30, 60, 120])),
                      queues={"tech": {"sl_target": draw(st.sampled_from([0.5, 0.8, 0.95]))}})
    rnd = draw(st.randoms(use_true_random=False))
    base = to_us(draw(st.sampled_from(BASES)))
    events: list[dict[str, Any]] = []
    for agent in range(rnd.randint(1, 6)):
        t = base + rnd.randint(0, 3000) * US
        team = rnd.choice(TEAMS)
        for n in range(rnd.randint(1, 25)):
            state = rnd.choice(AGENT_STATES)
            queues = rnd.sample(["billing", "tech", "sales"], rnd.randint(0, 3))
            if rnd.random() < 0.1:
                team = rnd.choice(TEAMS)
            event: dict[str, Any] = {
                "event_id": f"g{agent}-{n}" if rnd.random() > 0.1 else f"g{rnd.randint(0, 5)}-{n}",  # collisions
                "type": "agent.state", "ts": _with_offset(t), "agent_id": f"agent-{agent}", "state": state,
                "queues": queues, "team": team,
                "reason": rnd.choice(AWAY_REASONS) if state == "away" else None,
            }
            if rnd.random() < 0.3:
                event["agent_name"] = f"Name {agent}"
            events.append(event)
            t += rnd.choice([0, rnd.randint(1, 60), rnd.randint(60, 1200)]) * US
    for i in range(rnd.randint(0, 30)):  # contacts: offered in 15m and AHT over 1h for staffing
        queue, channel = rnd.choice([("billing", "voice"), ("tech", "chat"), ("tech", "voice"), ("sales", "sms")])
        t = base + rnd.randint(0, SPAN_S) * US
        common = {"contact_id": f"k{i}", "customer_id": f"u{i}", "queue": queue, "channel": channel}
        events.append({"event_id": f"q{i}", "type": "contact.queued", "ts": _with_offset(t), "reason": None, **common})
        if rnd.random() < 0.8:
            events.append({"event_id": f"a{i}", "type": "contact.answered", "ts": _with_offset(t + 5 * US),
                           "agent_id": "a", "team": None, **common})
            events.append({"event_id": f"e{i}", "type": "contact.ended", "ts": _with_offset(t + 5 * US + rnd.randint(1, 900) * US),
                           "agent_id": "a", "talk_seconds": rnd.randint(1, 600), "hold_seconds": rnd.randint(0, 60),
                           "wrap_seconds": rnd.randint(0, 60), "resolved": True, **common})
    in_order = sorted(events, key=lambda e: to_us(datetime.fromisoformat(e["ts"])))
    # duplicates (some altered: the first arrival wins), then disorder below the allowance
    spoiled = list(in_order)
    for event in rnd.sample(in_order, len(in_order) // 5):
        copy = dict(event)
        if copy["type"] == "agent.state" and rnd.random() < 0.5:
            copy["state"], copy["reason"] = "available", None
        spoiled.append(copy)
    disorder = kpi.allowed_disorder * US
    arrival = sorted(spoiled, key=lambda e: to_us(datetime.fromisoformat(e["ts"])) + rnd.randrange(disorder))
    later = base + (SPAN_S + rnd.randint(0, 4000)) * US
    return kpi, arrival, in_order, later


def _winning(stream: list[Any]) -> list[Any]:
    """The in-order stream of the events that win (first arrival per agent or contact, and id)."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for event in stream:
        key = (event["type"] == "agent.state" and "agent" or "contact", event.get("agent_id") if event["type"] == "agent.state" else event["contact_id"], event["event_id"])
        if key not in seen:
            seen.add(key)
            out.append(event)
    return sorted(out, key=lambda e: (to_us(datetime.fromisoformat(e["ts"])), e["event_id"]))


@settings(max_examples=max(40, EXAMPLES // 10), deadline=None,
          derandomize=not os.environ.get("CXPULSE_PROPERTY_RANDOM"), database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(agent_scenarios())
def test_agents_match_the_oracle_under_disorder_and_duplicates(
        scenario: tuple[KpiSettings, list[Any], list[Any], int]) -> None:
    from cxpulse.core.agent_report import AgentFigures, figures, section
    from cxpulse.core.agents import AgentProcessor, AgentTimeline
    from cxpulse.models.agent_events import parse_agent_event
    from test_kpi_oracle import agents_oracle

    kpi, arrival, _, later = scenario
    engine = run_core(kpi, [orjson.dumps(e) for e in arrival])
    for now in (engine.stream_time, max(later, engine.stream_time)):
        doc = engine.snapshot(now)
        assert_same(agents_oracle(arrival, kpi, now), doc["agents"])
        # in order and without copies: the same
        clean = run_core(kpi, [orjson.dumps(e) for e in _winning(arrival)])
        assert_same(doc["agents"], clean.snapshot(now)["agents"])
    # partitioned by agent, stored, restored, and added up: the same (each agent counted once)
    engine = run_core(kpi, [orjson.dumps(e) for e in arrival])
    now = engine.stream_time
    parts = [AgentProcessor(kpi) for _ in range(3)]
    for event in arrival:
        if event["type"] == "agent.state":
            parsed = parse_agent_event(event)
            parts[int(parsed.agent_id.split("-")[1]) % 3].handle(parsed)
    merged = AgentFigures()
    for index, proc in enumerate(parts):
        restored = AgentProcessor(kpi)
        for agent_id, timeline in proc.agents.items():
            restored.restore(agent_id, AgentTimeline.from_row(orjson.loads(orjson.dumps(timeline.to_row()))))
        contact_parts = [engine.aggregates] if index == 0 else []
        merged.add(AgentFigures.from_json(orjson.loads(orjson.dumps(figures(kpi, [restored], contact_parts, now).to_json()))))
    assert_same(engine.snapshot(now)["agents"], section(kpi, merged))


# -- contract v2: resolution, cost, closed-loop feedback ----------------------------------------------------------
def test_generators_reach_every_v2_count() -> None:
    """A guard on the generator: over a few seeded histories the v2 counts all happen (a customer with several
    contacts, cost in configured and unconfigured queues, follow-ups in time and late, second follow-ups,
    follow-ups of promoters, feedback still awaiting and past its target), so the oracle comparison above
    really covers them."""
    kpi = KpiSettings(fcr_window="1h", channels={"voice": {"cost_per_hour": 24.5, "feedback_response_target": "30m"},
                                                  "chat": {"feedback_response_target": "5m"}})
    seen: dict[str, float] = {}
    for seed in range(12):
        history = History(random.Random(seed), kpi, to_us(BASES[0]))
        for k in range(12):
            history.contact(f"c{k}", f"u{k % 4}")
        pic = picture(history.events, kpi)
        for measure, *_rest, value in pic.contributions:
            seen[measure] = seen.get(measure, 0) + value
        followups = [e for e in history.events if e["type"] == "survey.followed_up"]
        per_survey = [e["survey_event_id"] for e in followups]
        seen["second_follow_up"] = seen.get("second_follow_up", 0) + len(per_survey) - len(set(per_survey))
        seen["awaiting"] = seen.get("awaiting", 0) + sum(len(v) for v in pic.awaiting.values())
        doc = document_of(pic, kpi)
        seen["uncosted_queue"] = seen.get("uncosted_queue", 0) + sum(
            1 for q in doc["queues"] if q["windows"]["all"]["handled"] and q["windows"]["all"]["cost"] is None)
        seen["repeat_customer"] = seen.get("repeat_customer", 0) + (
            doc["totals"]["windows"]["all"]["customers"] < doc["totals"]["windows"]["all"]["contacts"])
    for name in ("contacts", "resolved", "cost_micros", "costed", "detractor_feedback", "followed_up",
                 "feedback_breaches", "second_follow_up", "awaiting", "uncosted_queue", "repeat_customer"):
        assert seen.get(name, 0) > 0, name


def valid_events(stream: list[Any]) -> list[tuple[Any, bytes]]:
    """The stream's valid events, parsed, with their bytes (a worker's agents send the others to the DLQ)."""
    from cxpulse.models.wire import decode_any_event

    out: list[tuple[Any, bytes]] = []
    for raw in stream:
        data = raw if isinstance(raw, bytes) else orjson.dumps(raw)
        try:
            out.append((decode_any_event(data), data))
        except Exception:  # noqa: BLE001 - the invalid ones go to the DLQ before the core
            continue
    return out


def _crc(text: str, parts: int) -> int:
    import zlib

    return zlib.crc32(text.encode()) % parts


@settings(max_examples=max(30, EXAMPLES // 10), deadline=None, derandomize=not os.environ.get("CXPULSE_PROPERTY_RANDOM"),
          database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios(), st.floats(0.1, 0.9))
def test_live_partitions_and_a_restart_match_the_oracle(
    scenario: tuple[KpiSettings, list[Any], set[str], int, list[int]], cut: float
) -> None:
    """The live split (contacts on 3 partitions, customers on 2, as a worker holds them) with a restart in the
    middle: every stored contact and customer goes through the stored form (streams.codec) and is rebuilt, then
    the rest of the stream follows. The document equals the oracle's, every v2 count included (distinct
    customers add up over customer partitions; feedback still awaiting survives the restart), and a feedback
    breach is handed out once over the restart."""
    from cxpulse.core.live import LiveKpis
    from cxpulse.streams import codec

    kpi, stream, _, later, _ = scenario
    events = valid_events(stream)
    split = int(len(events) * cut)

    def feed(live: LiveKpis, part: list[tuple[Any, bytes]], published: set[tuple[str, str]], now: int) -> None:
        for offset, (event, data) in enumerate(part):
            p = _crc(event.contact_id, 3)
            live.handle("contact-events", p, event, data, offset)
            live.settle(p)
            for summary in live.contacts(p).drain_summaries():
                live.customers(_crc(summary.customer_id, 2)).update(summary)
            for breach in live.due_feedback_breaches(live.stream_time()):
                key = (breach.contact_id, breach.survey_event_id)
                assert key not in published, "a feedback breach was handed out twice"
                published.add(key)

    published: set[tuple[str, str]] = set()
    first = LiveKpis(kpi, clock=lambda: 0)
    feed(first, events[:split], published, 0)
    stored_contacts = [(cid, *codec.decode_contact(codec.encode_contact(state, p)))
                       for p, proc in first.contact_parts.items() for cid, state in proc.contacts.items()]
    stored_customers = [(cid, codec.decode(codec.encode_customer(state, p)))
                        for p, proc in first.customer_parts.items() for cid, state in proc.items()]
    second = LiveKpis(kpi, clock=lambda: 0)
    second.rebuild_contacts(stored_contacts, {0, 1, 2})
    second.rebuild_customers(stored_customers, {0, 1})
    second.published_feedback |= first.published_feedback  # what the breach log says was published
    feed(second, events[split:], published, 0)
    # the configured windows (24 h covers the whole history); not ``all``, a replay's window, whose start (the first
    # event's time) a live worker does not keep over a restart
    pic = picture(stream, kpi)
    assert_same(document_of(pic, kpi, include_all=False), second.document(pic.now))
    if later:
        now = pic.now + later
        assert_same(document_of(picture(stream, kpi, now), kpi, include_all=False), second.document(now))
