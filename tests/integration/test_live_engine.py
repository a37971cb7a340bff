"""Issue "Live engine", Done-when bullets, against a real ``cxpulse worker`` on the real broker.

Each test starts its own worker (unique app id and topics, see ``worker_harness.py``), feeds it events through
Kafka and checks what comes out of its HTTP API and its output topics. No mocks, no skips.

1. a hand-worked scenario: every count expected is written here by hand, with the reason next to it; then the
   same scenario under new ids and ``-b`` queues, shuffled within the allowed disorder and with duplicates,
   must give the very same windows;
2. live SLA breaches on a 3 s queue: published at queued + T (200 ms timer), once, also for a late answer;
3. dead letters: one bad event of every kind of events.md, with original bytes and coordinates in headers;
4. live = replay: the worker's document equals ``cxpulse replay --now <generated_at>`` of the same file.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import murmur2

from waiting import eventually
from worker_harness import (
    PARTITIONS,
    Producer,
    WorkerProcess,
    config_path,
    consume_all,
    delete_topics_with_prefix,
    iso,
    new_worker,
    now_us,
    parse_iso_us,
    produce_file,
    replay,
    simulate_file,
    breach_visits,
    breaches_on_topic,
    missing_breaches,
    published_twice,
)

pytestmark = pytest.mark.integration

S = 1_000_000  # microseconds per second


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture
async def workers(tmp_path: Path, kafka_bootstrap: str):
    """``await workers(**new_worker_kwargs)`` -> a started, ready worker; all stopped and cleaned up after."""
    started: list[WorkerProcess] = []

    async def start(**kwargs: Any) -> WorkerProcess:
        worker = new_worker(tmp_path, kafka_bootstrap, **kwargs)
        started.append(worker)
        worker.start()
        await worker.wait_ready()
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()
        for worker in started:
            await delete_topics_with_prefix(kafka_bootstrap, worker.app_id)


def _window(doc: dict[str, Any], queue: str, window: str) -> dict[str, Any]:
    found = [q for q in doc["queues"] if q["queue"] == queue]
    assert len(found) == 1, f"queue {queue!r}: {len(found)} entries in {[q['queue'] for q in doc['queues']]}"
    return found[0]["windows"][window]


def _assert_window(got: dict[str, Any], expected: dict[str, Any], where: str) -> None:
    """Every field of ``expected`` (counts exactly, ratios to 1e-9); fields not listed must be 0 or null."""
    problems = []
    for name, value in got.items():
        if name in ("start", "end"):
            continue
        want = expected[name] if name in expected else (None if name in RATIOS else 0)
        if want is None or value is None:
            ok = want is value
        else:
            ok = value == pytest.approx(want, rel=1e-9, abs=1e-9)
        if not ok:
            problems.append(f"{name}: got {value!r}, expected {want!r}")
    unknown = set(expected) - set(got)
    assert not unknown, f"{where}: fields not in the document: {unknown}"
    assert not problems, f"{where}:\n  " + "\n  ".join(problems)


RATIOS = {"service_level", "abandon_rate", "asa_seconds", "aht_seconds", "fcr", "fcr_confirmed", "nps", "csat",
          # contract v2: null when their denominator is 0, cost null where no cost is configured (the defaults)
          "contacts_per_customer", "average_resolution_seconds", "cost", "cost_per_contact",
          "average_feedback_response_seconds"}


# ------------------------------------------------------------------------------------------------ scenario
class Scenario:
    """Builds contract events at times relative to ``base`` (whole seconds before it: negative)."""

    def __init__(self, base_us: int, suffix: str = "") -> None:
        self.base = base_us
        self.suffix = suffix
        self.events: list[dict[str, Any]] = []
        self._n = 0

    def _common(self, kind: str, t: int, contact: str, customer: str) -> dict[str, Any]:
        self._n += 1
        return {
            "event_id": f"ev-{contact}{self.suffix}-{self._n:03d}",
            "type": kind,
            "ts": iso(self.base + t * S),
            "contact_id": f"{contact}{self.suffix}",
            "customer_id": f"{customer}{self.suffix}",
        }

    def _contact(self, kind: str, t: int, contact: str, customer: str, queue: str, channel: str, **extra: Any) -> None:
        event = self._common(kind, t, contact, customer)
        event.update(channel=channel, queue=f"{queue}{self.suffix}", **extra)
        self.events.append(event)

    def queued(self, t: int, contact: str, customer: str, queue: str, channel: str, reason: str | None) -> None:
        self._contact("contact.queued", t, contact, customer, queue, channel, reason=reason, priority=1)

    def answered(self, t: int, contact: str, customer: str, queue: str, channel: str) -> None:
        self._contact("contact.answered", t, contact, customer, queue, channel, agent_id="ag-1", team="team-a")

    def abandoned(self, t: int, contact: str, customer: str, queue: str, channel: str) -> None:
        self._contact("contact.abandoned", t, contact, customer, queue, channel)

    def ended(self, t: int, contact: str, customer: str, queue: str, channel: str, talk: float, hold: float,
              wrap: float, resolved: bool, transferred: bool = False) -> None:
        self._contact("contact.ended", t, contact, customer, queue, channel, agent_id="ag-1", talk_seconds=talk,
                      hold_seconds=hold, wrap_seconds=wrap, resolved=resolved, transferred=transferred,
                      disposition="done")

    def survey(self, t: int, contact: str, customer: str, nps: int | None, csat: int | None) -> None:
        event = self._common("survey.response", t, contact, customer)
        event.update(nps=nps, csat=csat, comment="thanks")
        self.events.append(event)


def hand_scenario(base_us: int, suffix: str = "") -> list[dict[str, Any]]:
    """The hand-worked day. t is seconds relative to ``base`` (the wall clock when the test starts).

    Default settings: voice T = 20 s, S = 5 s; chat T = 30 s, S = 0; email T = 14400 s; F = 7 days.
    Everything lies in [base - 40 min, base - 5 min]: inside ``1h``; inside ``15m`` only what is at or after
    base - 700 s (the 15m window starts at most 16 min and at least ~12 min before base while the test runs);
    nothing lies between base - 1000 s and base - 700 s, so the rounding of the window start cannot matter."""
    s = Scenario(base_us, suffix)
    V, C, E = "voice", "chat", "email"
    # cards (voice)
    s.queued(-2400, "c1", "cu1", "cards", V, "card-blocked")
    s.answered(-2390, "c1", "cu1", "cards", V)  # wait 10 <= 20: within
    s.ended(-2000, "c1", "cu1", "cards", V, 300, 60, 40, resolved=True)  # handle 400; first contact, resolved
    s.queued(-2300, "c2", "cu2", "cards", V, "fees")
    s.answered(-2270, "c2", "cu2", "cards", V)  # wait 30 > 20: not within, breach at -2280
    s.ended(-2100, "c2", "cu2", "cards", V, 120, 0, 30, resolved=False)  # handle 150; first contact, unresolved
    s.queued(-2200, "c3", "cu3", "cards", V, "lost-card")
    s.answered(-2180, "c3", "cu3", "cards", V)  # wait exactly T = 20: within, no breach
    s.ended(-2000, "c3", "cu3", "cards", V, 100, 10, 20, resolved=True)  # handle 130; first contact, resolved
    s.queued(-2100, "c4", "cu4", "cards", V, "fees")
    s.abandoned(-2098, "c4", "cu4", "cards", V)  # wait 2 < S = 5: short abandon
    s.queued(-2050, "c5", "cu5", "cards", V, None)
    s.abandoned(-2000, "c5", "cu5", "cards", V)  # wait 50: long abandon, > T: breach at -2030
    # a transfer: cards -> loans (voice)
    s.queued(-1900, "c6", "cu6", "cards", V, "mortgage")
    s.answered(-1895, "c6", "cu6", "cards", V)  # wait 5: within
    s.ended(-1800, "c6", "cu6", "cards", V, 90, 0, 10, resolved=False, transferred=True)  # handle 100 (cards)
    s.queued(-1799, "c6", "cu6", "loans", V, "mortgage")
    s.answered(-1790, "c6", "cu6", "loans", V)  # wait 9: within (loans)
    s.ended(-1600, "c6", "cu6", "loans", V, 150, 20, 30, resolved=True)  # handle 200; final: first contact (loans), resolved
    # a repeat: customer cu1 again with the same reason, 30 min after c1 (inside 15m)
    s.queued(-600, "c7", "cu1", "cards", V, "card-blocked")  # repeat_contacts +1 at -600 (cards)
    s.answered(-590, "c7", "cu1", "cards", V)  # wait 10: within
    s.ended(-400, "c7", "cu1", "cards", V, 150, 0, 50, resolved=True)  # handle 200; a repeat: no first contact
    # webchat (chat)
    s.queued(-1500, "c8", "cu8", "webchat", C, "app-login")
    s.answered(-1480, "c8", "cu8", "webchat", C)  # wait 20 <= 30: within
    s.ended(-1300, "c8", "cu8", "webchat", C, 200, 0, 0, resolved=True)  # handle 200; first contact, resolved
    s.queued(-700, "c9", "cu9", "webchat", C, "app-login")  # another customer: not a repeat
    s.answered(-650, "c9", "cu9", "webchat", C)  # wait 50 > 30: breach at -670
    s.ended(-500, "c9", "cu9", "webchat", C, 100, 0, 20, resolved=False)  # handle 120; first contact, unresolved
    s.queued(-550, "c10", "cu10", "webchat", C, "fees")
    s.abandoned(-549, "c10", "cu10", "webchat", C)  # wait 1: not short (S = 0), within T
    # mail (email)
    s.queued(-1800, "c11", "cu11", "mail", E, "statement")
    s.answered(-1100, "c11", "cu11", "mail", E)  # wait 700 <= 14400: within
    s.ended(-1000, "c11", "cu11", "mail", E, 60, 0, 60, resolved=True)  # handle 120; first contact, resolved
    s.queued(-1200, "c12", "cu12", "mail", E, "statement")  # still waiting (no breach before base + 13200 s)
    # surveys (attributed to the queue of the contact's latest queued not after the survey)
    s.survey(-1900, "c1", "cu1", nps=10, csat=5)  # cards: promoter, satisfied
    s.survey(-2000, "c2", "cu2", nps=3, csat=2)  # cards: detractor, not satisfied
    s.survey(-1500, "c6", "cu6", nps=8, csat=4)  # loans (queued -1799 is the latest): passive, satisfied
    s.survey(-300, "c9", "cu9", nps=9, csat=None)  # webchat: promoter; no csat
    s.survey(-1200, "c8", "cu8", nps=None, csat=3)  # webchat: csat not satisfied; no nps
    s.survey(-400, "c-unknown", "cu-x", nps=0, csat=1)  # a contact the pipeline never saw: unknown/unknown
    return s.events


# expected per queue, window 1h (all of the scenario) and 15m; counts by hand, see hand_scenario
EXPECTED_1H: dict[str, dict[str, Any]] = {
    "cards": dict(
        offered=7,  # c1..c7 queued in cards
        answered=5,  # c1, c2, c3, c6, c7
        answered_within_threshold=4,  # c1 (10 s), c3 (20 s = T), c6 (5 s), c7 (10 s); not c2 (30 s)
        abandoned=2,  # c4, c5
        abandoned_short=1,  # c4 (2 s < 5 s)
        sla_breaches=2,  # c2 (30 s), c5 (50 s)
        service_level=4 / 6,  # 4 / (5 answered + 2 abandoned - 1 short)
        abandon_rate=1 / 6,  # (2 - 1) / (5 + 2 - 1)
        asa_seconds=15.0,  # (10 + 30 + 20 + 5 + 10) / 5
        handled=5,  # ended in cards: c1, c2, c3, c6 (transferred), c7
        aht_seconds=196.0,  # (400 + 150 + 130 + 100 + 200) / 5
        repeat_contacts=1,  # c7 (cu1, card-blocked, 30 min after c1)
        first_contacts=3,  # c1, c2, c3 (c4, c5 never ended; c6 ended finally in loans; c7 is a repeat)
        first_contacts_resolved=2,  # c1, c3
        fcr=2 / 3,
        nps_responses=2, promoters=1, detractors=1,  # c1: 10, c2: 3
        nps=0.0,  # 100 * (1 - 1) / 2
        csat_responses=2, csat_satisfied=1,  # c1: 5, c2: 2
        csat=50.0,
        # contract v2 (no cost configured: cost and cost per contact null; no follow-up: no response time)
        contacts=7, customers=6, contacts_per_customer=7 / 6,  # c1..c7 first queued here; cu1 twice (c1, c7)
        resolved=3,  # final ends resolved here: c1, c3, c7 (c6's final end is in loans)
        average_resolution_seconds=800 / 3,  # (c1 400 + c3 200 + c7 200) / 3, from each contact's t0
        detractor_feedback=1,  # c2's survey: nps 3, csat 2
    ),
    "loans": dict(
        offered=1, answered=1, answered_within_threshold=1,  # c6 after the transfer, wait 9 s
        service_level=1.0, abandon_rate=0.0, asa_seconds=9.0,
        handled=1, aht_seconds=200.0,  # c6's final end: 150 + 20 + 30
        first_contacts=1, first_contacts_resolved=1, fcr=1.0,  # c6, attributed to its final end's queue
        nps_responses=1, passives=1, nps=0.0,  # c6's survey: 8
        csat_responses=1, csat_satisfied=1, csat=100.0,  # c6's survey: 4
        resolved=1, average_resolution_seconds=300.0,  # c6: final end -1600, t0 -1900 (in cards, across the transfer)
    ),
    "webchat": dict(
        offered=3,  # c8, c9, c10
        answered=2,  # c8, c9
        answered_within_threshold=1,  # c8 (20 s <= 30 s)
        abandoned=1,  # c10 (1 s: not short, S = 0 on chat)
        sla_breaches=1,  # c9 (50 s)
        service_level=1 / 3,  # 1 / (2 + 1 - 0)
        abandon_rate=1 / 3,  # (1 - 0) / (2 + 1 - 0)
        asa_seconds=35.0,  # (20 + 50) / 2
        handled=2, aht_seconds=160.0,  # (200 + 120) / 2
        first_contacts=2, first_contacts_resolved=1, fcr=0.5,  # c8 resolved, c9 not
        nps_responses=1, promoters=1, nps=100.0,  # c9: 9
        csat_responses=1, csat=0.0,  # c8: 3
        contacts=3, customers=3, contacts_per_customer=1.0,  # c8, c9, c10
        resolved=1, average_resolution_seconds=200.0,  # c8: -1300 - (-1500)
    ),
    "mail": dict(
        offered=2,  # c11, c12 (still waiting)
        answered=1, answered_within_threshold=1,  # c11 after 700 s
        service_level=1.0, abandon_rate=0.0, asa_seconds=700.0,
        handled=1, aht_seconds=120.0,
        first_contacts=1, first_contacts_resolved=1, fcr=1.0,  # c11
        contacts=2, customers=2, contacts_per_customer=1.0,  # c11, c12
        resolved=1, average_resolution_seconds=800.0,  # c11: -1000 - (-1800)
    ),
    "unknown": dict(
        nps_responses=1, detractors=1, nps=-100.0,  # the survey of the unknown contact: 0
        csat_responses=1, csat=0.0,  # ... and csat 1
        detractor_feedback=1,  # nps 0
    ),
}
EXPECTED_15M: dict[str, dict[str, Any]] = {
    "cards": dict(
        offered=1, answered=1, answered_within_threshold=1,  # c7 (wait 10 s)
        service_level=1.0, abandon_rate=0.0, asa_seconds=10.0,
        handled=1, aht_seconds=200.0,  # c7
        repeat_contacts=1,  # c7 at -600
        # c7 is a repeat: no first contact, fcr null; c1/c2's surveys are older
        contacts=1, customers=1, contacts_per_customer=1.0,  # c7 (t0 -600)
        resolved=1, average_resolution_seconds=200.0,  # c7: -400 - (-600)
    ),
    "loans": dict(),  # all of loans is 25+ minutes old: every count 0, every ratio null
    "webchat": dict(
        offered=2,  # c9, c10
        answered=1,  # c9
        abandoned=1,  # c10
        sla_breaches=1,  # c9's, at -670
        service_level=0.0,  # 0 within / (1 + 1 - 0)
        abandon_rate=0.5,  # 1 / (1 + 1 - 0)
        asa_seconds=50.0,  # c9
        handled=1, aht_seconds=120.0,  # c9
        first_contacts=1, fcr=0.0,  # c9, unresolved
        nps_responses=1, promoters=1, nps=100.0,  # c9's survey at -300; csat: none -> null
        contacts=2, customers=2, contacts_per_customer=1.0,  # c9 (t0 -700), c10 (-550); c9 unresolved
    ),
    "mail": dict(),  # c11 ended at -1000: nothing in 15m (c12 still waits: live, not a window count)
    "unknown": dict(nps_responses=1, detractors=1, nps=-100.0, csat_responses=1, csat=0.0,  # at -400
                    detractor_feedback=1),
}
# totals over both halves (the -b copy doubles every count; "unknown" is shared by both halves)
TOTALS_1H = dict(
    offered=26,  # 2 x (7 + 1 + 3 + 2)
    answered=18,  # 2 x (5 + 1 + 2 + 1)
    answered_within_threshold=14,  # 2 x (4 + 1 + 1 + 1)
    abandoned=6, abandoned_short=2,  # 2 x (2 + 1), 2 x 1
    sla_breaches=6,  # 2 x (2 + 1)
    service_level=14 / 22,  # 14 / (18 + 6 - 2)
    abandon_rate=4 / 22,  # (6 - 2) / 22
    asa_seconds=854 / 9,  # 2 x (75 + 9 + 70 + 700) / 18
    handled=18, aht_seconds=180.0,  # 2 x (5 + 1 + 2 + 1); 2 x (980 + 200 + 320 + 120) / 18
    repeat_contacts=2,
    first_contacts=14, first_contacts_resolved=10, fcr=10 / 14,  # 2 x (3 + 1 + 2 + 1), 2 x (2 + 1 + 1 + 1)
    nps_responses=10, promoters=4, passives=2, detractors=4, nps=0.0,  # 2 x (2 + 1 + 1 + 1) ...
    csat_responses=10, csat_satisfied=4, csat=40.0,  # 2 x (2 + 1 + 1 + 1), 2 x (1 + 1)
    contacts=24, customers=22,  # 2 x (7 + 0 + 3 + 2); each customer once: 2 x (6 + 3 + 2) (cu6 is cards')
    contacts_per_customer=24 / 22,
    resolved=12, average_resolution_seconds=350.0,  # 2 x (3 + 1 + 1 + 1); 2 x (800 + 300 + 200 + 800) / 12
    detractor_feedback=4,  # 2 x (c2, unknown)
)
TOTALS_15M = dict(
    offered=6,  # 2 x (c7 + c9 + c10)
    answered=4, answered_within_threshold=2,  # 2 x (c7, c9); 2 x c7
    abandoned=2,  # 2 x c10
    sla_breaches=2,  # 2 x c9
    service_level=2 / 6, abandon_rate=2 / 6,  # 2 / (4 + 2 - 0); (2 - 0) / 6
    asa_seconds=30.0,  # (10 + 50) / 2
    handled=4, aht_seconds=160.0,  # 2 x (c7: 200, c9: 120)
    repeat_contacts=2,  # 2 x c7
    first_contacts=2, fcr=0.0,  # 2 x c9, unresolved
    nps_responses=4, promoters=2, detractors=2, nps=0.0,  # 2 x (c9: 9, unknown: 0)
    csat_responses=2, csat=0.0,  # 2 x unknown: 1
    contacts=6, customers=6, contacts_per_customer=1.0,  # 2 x (c7, c9, c10)
    resolved=2, average_resolution_seconds=200.0,  # 2 x c7
    detractor_feedback=2,  # 2 x unknown
)
QUEUES = ("cards", "loans", "webchat", "mail")


def _doubled_unknown(expected: dict[str, Any]) -> dict[str, Any]:
    return {k: (2 * v if isinstance(v, int) and k not in RATIOS else v) for k, v in expected.items()}


def shuffled_copy(events: list[dict[str, Any]], rng: random.Random, max_delay_s: float) -> list[tuple[float, dict[str, Any]]]:
    """(send position, event): each event delayed by up to ``max_delay_s`` of event time, so events of one
    contact arrive out of order, but never more than the allowance behind the newest event sent before them."""
    return [(parse_iso_us(e["ts"]) / S + rng.uniform(0, max_delay_s), e) for e in events]


async def test_hand_worked_scenario_and_its_shuffled_copy(workers, kafka_bootstrap: str) -> None:
    """Counts worked out by hand, then the same scenario shuffled and duplicated gives the same windows.

    Why both halves are sent interleaved: the allowed disorder is measured against the stream time of the
    partition, so a second copy of the same past 40 minutes sent *after* the first would be 35 minutes late,
    far outside the allowance (its out-of-order events would rightly be dead-lettered). Interleaved by event
    time, the copy is shuffled by up to 50 s behind what was sent before it, inside the 60 s of events.md.
    """
    worker = await workers(name="hand")
    base = (now_us() // S) * S
    first = hand_scenario(base)
    second = hand_scenario(base, suffix="-b")
    assert len(first) == len(second) == 40

    rng = random.Random(20261122)
    plan: list[tuple[float, int, dict[str, Any]]] = []
    for index, event in enumerate(first):  # the original: exactly in event-time order
        plan.append((parse_iso_us(event["ts"]) / S, index, event))
    copy = shuffled_copy(second, rng, max_delay_s=50.0)
    for index, (position, event) in enumerate(copy):
        plan.append((position, 1000 + index, event))
    # duplicates of the copy: three exact copies, and one with an altered payload, always after the original
    by_id = {e["event_id"]: (pos, e) for pos, e in copy}
    dup_ids = ["ev-c3-b-008", "ev-c9-b-026", "ev-c-unknown-b-040"]
    altered_id = "ev-c1-b-002"  # c1-b's answer after 10 s; the altered copy says 60 s (not within, a breach)
    for n, event_id in enumerate(dup_ids):
        pos, event = by_id[event_id]
        plan.append((pos + 5.0, 2000 + n, dict(event)))
    pos, event = by_id[altered_id]
    assert event["type"] == "contact.answered"
    altered = dict(event, ts=iso(parse_iso_us(event["ts"]) + 50 * S), agent_id="ag-someone-else", queue="loans-b")
    plan.append((pos + 5.0, 3000, altered))
    plan.sort(key=lambda item: (item[0], item[1]))
    order = [event for _, _, event in plan]

    # the copy really is out of order for some contacts (else this would test nothing)
    sent_ts: dict[str, list[int]] = defaultdict(list)
    for event in order:
        if event["contact_id"].endswith("-b") and event["event_id"] not in dup_ids + [altered_id]:
            sent_ts[event["contact_id"]].append(parse_iso_us(event["ts"]))
    disordered = [c for c, ts in sent_ts.items() if ts != sorted(ts)]
    assert len(disordered) >= 3, f"the shuffle left the copy in order: {disordered}"
    # ... and never by more than the allowance behind the newest event before it (the altered duplicate is
    # ignored by the worker, its time moves nothing)
    newest = 0
    for event in order:
        if event is altered:
            continue
        ts = parse_iso_us(event["ts"])
        assert newest - ts < 60 * S
        newest = max(newest, ts)

    async with Producer(kafka_bootstrap, worker.topics) as producer:
        await producer.send(order)
    status = await worker.wait_processed(len(order))
    contact_h = status["topics"][worker.topics.contact_events]
    survey_h = status["topics"][worker.topics.survey_responses]
    assert contact_h["processed"] + survey_h["processed"] == 80, status  # 40 + 40
    assert contact_h["duplicates"] + survey_h["duplicates"] == 4, status  # 3 exact copies + 1 altered
    assert survey_h["duplicates"] == 1 and contact_h["invalid"] == {} and survey_h["invalid"] == {}, status

    async def check() -> dict[str, Any]:
        doc = await worker.kpis()
        names = sorted(q["queue"] for q in doc["queues"])
        assert names == sorted([*QUEUES, *(f"{q}-b" for q in QUEUES), "unknown"]), names
        for queue in QUEUES:
            for window, expected in (("1h", EXPECTED_1H), ("15m", EXPECTED_15M)):
                _assert_window(_window(doc, queue, window), expected[queue], f"{queue} {window}")
        _assert_window(_window(doc, "unknown", "1h"), _doubled_unknown(EXPECTED_1H["unknown"]), "unknown 1h")
        _assert_window(_window(doc, "unknown", "15m"), _doubled_unknown(EXPECTED_15M["unknown"]), "unknown 15m")
        _assert_window(doc["totals"]["windows"]["1h"], TOTALS_1H, "totals 1h")
        _assert_window(doc["totals"]["windows"]["15m"], TOTALS_15M, "totals 15m")
        return doc

    doc = await eventually(check)

    # channels as written on the events
    channels = {q["queue"]: q["channel"] for q in doc["queues"]}
    assert channels == {"cards": "voice", "loans": "voice", "webchat": "chat", "mail": "email", "unknown": "unknown",
                        "cards-b": "voice", "loans-b": "voice", "webchat-b": "chat", "mail-b": "email"}
    # live state: c12 (and c12-b) still wait in mail, since base - 1200 s
    generated = parse_iso_us(doc["generated_at"])
    for queue in ("mail", "mail-b"):
        live = next(q["live"] for q in doc["queues"] if q["queue"] == queue)
        assert live["waiting"] == 1
        assert live["longest_wait_seconds"] == pytest.approx((generated - (base - 1200 * S)) / S, abs=1e-6)
    for queue in ("cards", "loans", "webchat", "unknown"):
        assert next(q["live"] for q in doc["queues"] if q["queue"] == queue)["waiting"] == 0
    assert doc["totals"]["live"]["waiting"] == 2
    # 24h holds the same as 1h (nothing older than 40 minutes); bounds end at generated_at
    assert _strip(doc["totals"]["windows"]["24h"]) == _strip(doc["totals"]["windows"]["1h"])
    assert doc["totals"]["windows"]["1h"]["end"] == doc["generated_at"]

    # the copy: every window of every -b queue equals the original's, bounds aside
    for queue in QUEUES:
        original = next(q for q in doc["queues"] if q["queue"] == queue)
        twin = next(q for q in doc["queues"] if q["queue"] == f"{queue}-b")
        assert twin["live"] == original["live"], queue
        assert set(twin["windows"]) == set(original["windows"]) == {"15m", "1h", "24h", "today"}
        for window in original["windows"]:
            assert _strip(twin["windows"][window]) == _strip(original["windows"][window]), f"{queue}-b {window}"

    # the per-queue endpoint gives the same figures
    status_code, one = await worker.get("/api/v1/kpis/webchat-b")
    assert status_code == 200 and [q["queue"] for q in one["queues"]] == ["webchat-b"]
    _assert_window(one["queues"][0]["windows"]["1h"], EXPECTED_1H["webchat"], "GET /api/v1/kpis/webchat-b 1h")
    assert (await worker.get("/api/v1/kpis/no-such-queue"))[0] == 404


def _strip(window: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in window.items() if k not in ("start", "end")}


# ------------------------------------------------------------------------------------------------ 2. breaches
def _contact_event(kind: str, contact: str, ts_us: int, queue: str, channel: str = "voice", **extra: Any) -> dict[str, Any]:
    event = {"event_id": f"ev-{contact}-{kind.split('.')[1]}-{ts_us}", "type": kind, "ts": iso(ts_us),
             "contact_id": contact, "customer_id": f"cu-{contact}", "channel": channel, "queue": queue}
    event.update(extra)
    return event


def queued(contact: str, ts_us: int, queue: str, channel: str = "voice", reason: str | None = "fees") -> dict[str, Any]:
    return _contact_event("contact.queued", contact, ts_us, queue, channel, reason=reason, priority=1)


def answered(contact: str, ts_us: int, queue: str, channel: str = "voice") -> dict[str, Any]:
    return _contact_event("contact.answered", contact, ts_us, queue, channel, agent_id="ag-1", team=None)


def abandoned(contact: str, ts_us: int, queue: str, channel: str = "voice") -> dict[str, Any]:
    return _contact_event("contact.abandoned", contact, ts_us, queue, channel)


def ended(contact: str, ts_us: int, queue: str, channel: str = "voice", resolved: bool = True, **extra: Any) -> dict[str, Any]:
    fields = dict(agent_id="ag-1", talk_seconds=100, hold_seconds=0, wrap_seconds=20, resolved=resolved,
                  transferred=False, disposition=None)
    fields.update(extra)
    return _contact_event("contact.ended", contact, ts_us, queue, channel, **fields)


async def test_live_breach_published_at_queued_plus_threshold_once(workers, kafka_bootstrap: str) -> None:
    """Queue ``fast`` has T = 3 s. A contact still waiting at queued + 3 s is published then (200 ms timer),
    without any further event, never before its crossing and never again; one answered after 5 s gives one record
    too (published while it waited, not again on the answer); one answered late whose answer arrives before the
    timer did gives one (the late-answer path); one answered within 2 s gives none.

    No fixed sleeps: the late answer is sent once the breach it must not repeat is on the topic, and "never
    again" is proven by a marker: a contact queued after the late answer was processed, whose own breach can only
    be published 3 s later by the same timer, so every tick that could have repeated one has run before it."""
    worker = await workers(name="breach", kpi={"queues": {"fast": {"sl_threshold_seconds": 3}}})
    t0 = (now_us() // 1000) * 1000
    waiting, late, quick, already_late, marker = "x-waits", "x-late", "x-quick", "x-answered-late", "x-marker"

    async def read() -> list[Any]:
        return await consume_all(kafka_bootstrap, [worker.topics.sla_breaches])

    def published(records: list[Any]) -> Counter[str]:
        return Counter(orjson.loads(r.value)["contact_id"] for r in records)

    async def three_published() -> list[Any]:
        records = await read()
        assert set(published(records)) >= {waiting, late, already_late}, records
        return records

    async def late_answer_counted() -> None:
        fast = next(q for q in (await worker.kpis())["queues"] if q["queue"] == "fast")
        assert fast["windows"]["15m"]["answered"] == 3, fast["windows"]["15m"]

    async with Producer(kafka_bootstrap, worker.topics) as producer:
        await producer.send([
            queued(waiting, t0, "fast"), queued(late, t0, "fast"), queued(quick, t0, "fast"),
            # queued 10 s ago, answered 4 s ago (wait 6 s): both arrive now, already a breach (at t0 - 7 s)
            queued(already_late, t0 - 10 * S, "fast"), answered(already_late, t0 - 4 * S, "fast"),
            answered(quick, t0 + 2 * S, "fast"),  # wait 2 s <= 3 s: in time (2 s ahead of the clock: plausible)
        ])
        await eventually(three_published, timeout=15.0, every=0.2)
        await producer.send([answered(late, t0 + 5 * S, "fast")])  # wait 5 s: breach (already published)
        await eventually(late_answer_counted, timeout=15.0, every=0.2)
        marker_at = (now_us() // 1000) * 1000
        await producer.send([queued(marker, marker_at, "fast")])

    async def marker_published() -> list[Any]:
        records = await read()
        assert marker in published(records), records
        return records

    records = await eventually(marker_published, timeout=15.0, every=0.2)
    visits = {queued(c, t0, "fast")["event_id"]: c for c in (waiting, late, quick)}
    visits[queued(already_late, t0 - 10 * S, "fast")["event_id"]] = already_late
    visits[queued(marker, marker_at, "fast")["event_id"]] = marker
    by_contact = {c: v for v, c in visits.items()}
    queued_at = {waiting: t0, late: t0, already_late: t0 - 10 * S, marker: marker_at}

    got = [orjson.loads(r.value) for r in records]
    assert published(records) == {waiting: 1, late: 1, already_late: 1, marker: 1}, got  # none for the quick one
    for record, body in zip(records, got):
        contact = body["contact_id"]
        queued_ts = queued_at[contact]
        assert body == {
            "queue": "fast", "channel": "voice", "contact_id": contact, "visit_id": by_contact[contact],
            "queued_ts": iso(queued_ts), "threshold_seconds": 3.0, "breached_at": iso(queued_ts + 3 * S),
        }
        assert record.key == contact.encode()
        if contact in (waiting, late, marker):  # published by the timer: not before the crossing
            assert record.timestamp_ms >= (queued_ts + 3 * S) // 1000, f"{contact}: published before its breach"

    status = await worker.status()
    assert status["breaches_published"] == 4
    # the wall time of the last event it handled (the marker, sent this run): what bench/faust_baseline.py times by
    assert 0 <= now_us() - parse_iso_us(status["last_processed"]) < 300 * S, status["last_processed"]
    # what a restarted worker reads back before it publishes anything (so it never publishes one again)
    from cxpulse.streams.breach_log import read_published_visits

    assert await read_published_visits(kafka_bootstrap, worker.topics.sla_breaches) == {
        (c, by_contact[c]) for c in (waiting, late, already_late, marker)}
    doc = await worker.kpis()
    fast = next(q for q in doc["queues"] if q["queue"] == "fast")
    assert fast["live"]["waiting"] == 2  # x-waits and the marker
    window = fast["windows"]["15m"]
    assert (window["offered"], window["answered"], window["answered_within_threshold"], window["sla_breaches"]) == (5, 3, 1, 4)


# ------------------------------------------------------------------------------------------------ 3. dead letters
def _partition_of(key: bytes) -> int:
    """Kafka's default partitioner (murmur2), as the producer uses it."""
    return (murmur2(key) & 0x7FFFFFFF) % PARTITIONS


async def test_dead_letters_every_kind_with_original_bytes_and_coordinates(workers, kafka_bootstrap: str) -> None:
    worker = await workers(name="dlq")
    topics = worker.topics
    base = (now_us() // S) * S - 600 * S  # ten minutes ago
    bad_queued = queued("bad-1", base + 10 * S, "dlq-bad")

    def without(event: dict[str, Any], key: str) -> dict[str, Any]:
        return {k: v for k, v in event.items() if k != key}

    # (name, value bytes, topic, key, expected kind, what the reason must name)
    bad: list[tuple[str, bytes, str, bytes, str, str]] = [
        ("not json", b'{"event_id": "bad-0", "type": "contact.queued", oops', topics.contact_events, b"bad-0",
         "not_json", "JSON"),
        ("missing field", orjson.dumps(without(queued("bad-1", base + 10 * S, "dlq-bad"), "queue")),
         topics.contact_events, b"bad-1", "missing_field", "queue"),
        ("wrong type", orjson.dumps(dict(bad_queued, contact_id="bad-2", priority="high")),
         topics.contact_events, b"bad-2", "wrong_type", "priority"),
        ("out of range", orjson.dumps({"event_id": "bad-3-s", "type": "survey.response", "ts": iso(base + 12 * S),
                                       "contact_id": "ok-1", "customer_id": "cu-ok-1", "nps": 11, "csat": 4}),
         topics.survey_responses, b"ok-1", "out_of_range", "nps"),
        ("unknown type", orjson.dumps(dict(bad_queued, contact_id="bad-4", type="contact.teleported")),
         topics.contact_events, b"bad-4", "unknown_type", "type"),
        ("no offset", orjson.dumps(dict(bad_queued, contact_id="bad-5", ts=iso(base + 10 * S)[:-5])),
         topics.contact_events, b"bad-5", "timestamp_without_offset", "ts"),
        ("negative duration", orjson.dumps(ended("bad-6", base + 14 * S, "dlq-bad", hold_seconds=-5)),
         topics.contact_events, b"bad-6", "negative_duration", "hold_seconds"),
        ("answered, never queued", orjson.dumps(answered("lc-1", base + 20 * S, "dlq-bad")),
         topics.contact_events, b"lc-1", "lifecycle", "contact.answered"),
        ("ended, never answered", orjson.dumps(ended("lc-2", base + 25 * S, "dlq-bad")),
         topics.contact_events, b"lc-2", "lifecycle", "contact.ended"),
    ]
    assert b"+" not in bad[5][1].split(b'"ts":"')[1][:30] and b'Z"' not in bad[5][1].split(b'"ts":"')[1][:30]
    valid_before = [queued("ok-1", base, "dlq-ok"), answered("ok-1", base + 8 * S, "dlq-ok"),  # within 20 s
                    queued("ok-2", base + 2 * S, "dlq-ok")]
    valid_after = [abandoned("ok-2", base + 30 * S, "dlq-ok"),  # wait 28 s: a long abandon, a breach
                   ended("ok-1", base + 40 * S, "dlq-ok"),  # handle 120 s, resolved
                   {"event_id": "ok-1-s", "type": "survey.response", "ts": iso(base + 50 * S), "contact_id": "ok-1",
                    "customer_id": "cu-ok-1", "nps": 9, "csat": None, "comment": None}]
    # 2 min after the lifecycle impossibilities, on every partition: the allowed disorder (60 s) passes for them
    later: list[dict[str, Any]] = []
    covered: set[int] = set()
    n = 0
    while covered != set(range(PARTITIONS)):
        contact = f"later-{n}"
        n += 1
        if _partition_of(contact.encode()) in covered:
            continue
        covered.add(_partition_of(contact.encode()))
        later += [queued(contact, base + 145 * S, "dlq-later"), answered(contact, base + 150 * S, "dlq-later")]

    landed: dict[str, tuple[str, int, int]] = {}
    async with Producer(kafka_bootstrap, topics) as producer:
        await producer.send(valid_before)
        for name, value, topic, key, _, _ in bad:  # the bad between the valid ones
            [landed[name]] = await producer.send([value], topic=topic, key=key)
        await producer.send(valid_after)
        await producer.send(later)
    sent = len(valid_before) + len(bad) + len(valid_after) + len(later)

    await worker.wait_processed(sent)
    status = await worker.wait_status(
        lambda st: st["topics"].get(topics.contact_events, {}).get("invalid", {}).get("lifecycle") == 2,
        "both lifecycle impossibilities rejected", timeout=30)
    assert status["topics"][topics.contact_events]["invalid"] == {
        "not_json": 1, "missing_field": 1, "wrong_type": 1, "unknown_type": 1, "timestamp_without_offset": 1,
        "negative_duration": 1, "lifecycle": 2,
    }, status
    assert status["topics"][topics.survey_responses]["invalid"] == {"out_of_range": 1}, status
    assert status["topics"][topics.survey_responses]["processed"] == 1  # the good survey

    letters = await consume_all(kafka_bootstrap, [topics.contact_events_dlq, topics.survey_responses_dlq])
    assert len(letters) == len(bad), [(l.topic, l.value) for l in letters]
    by_value = {letter.value: letter for letter in letters}
    for name, value, topic, key, kind, field in bad:
        letter = by_value.get(value)
        assert letter is not None, f"{name}: not in a dead-letter topic with its original bytes"
        source_topic, partition, offset = landed[name]
        expected_dlq = topics.survey_responses_dlq if topic == topics.survey_responses else topics.contact_events_dlq
        assert letter.topic == expected_dlq, name
        headers = letter.headers
        assert headers["cxpulse-kind"] == kind.encode(), (name, headers)
        assert headers["cxpulse-source-topic"] == source_topic.encode(), (name, headers)
        assert headers["cxpulse-source-partition"] == str(partition).encode(), (name, headers)
        assert headers["cxpulse-source-offset"] == str(offset).encode(), (name, headers)
        reason = headers["cxpulse-reason"].decode()
        assert field in reason and len(reason) > len(field) + 5, f"{name}: reason {reason!r} does not name {field!r}"

    # the valid events around them are all counted; the bad ones nowhere. FCR (first_contacts) comes through the
    # worker's repartition topic and may trail the contact side by a second or two: wait for it, bounded.
    deadline = time.monotonic() + 15
    while True:
        doc = await worker.kpis()
        queues = {q["queue"]: q for q in doc["queues"]}
        first = queues.get("dlq-ok", {}).get("windows", {}).get("15m", {}).get("first_contacts")
        if first == 1 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert "dlq-bad" not in queues, queues["dlq-bad"]
    ok = queues["dlq-ok"]["windows"]["15m"]
    assert {k: ok[k] for k in ("offered", "answered", "answered_within_threshold", "abandoned", "abandoned_short",
                               "sla_breaches", "handled", "aht_seconds", "promoters", "first_contacts")} == {
        "offered": 2, "answered": 1, "answered_within_threshold": 1, "abandoned": 1, "abandoned_short": 0,
        "sla_breaches": 1, "handled": 1, "aht_seconds": 120.0, "promoters": 1, "first_contacts": 1}
    assert queues["dlq-later"]["windows"]["15m"]["answered"] == PARTITIONS
    assert queues["dlq-ok"]["live"]["waiting"] == 0

    # still running and still working
    assert worker.alive()
    assert (await worker.get("/healthz"))[0] == 200
    async with Producer(kafka_bootstrap, topics) as producer:
        await producer.send([queued("after-1", base + 160 * S, "dlq-after")])
    await worker.wait_processed(sent + 1)


# ------------------------------------------------------------------------------------------------ 4. live = replay
async def live_equals_replay(worker: WorkerProcess, path: Path, attempts: int = 15) -> tuple[dict[str, Any], int]:
    """GET ``/api/v1/kpis?all=1`` and ``cxpulse replay --now <generated_at>`` until the two are identical
    (the customer side may trail by a moment, see :func:`eventually`); returns (document, attempts used)."""
    live: dict[str, Any] = {}
    offline: dict[str, Any] = {}
    for attempt in range(1, attempts + 1):
        live = await worker.kpis(all_window=True)
        offline = await asyncio.to_thread(replay, path, live["generated_at"], config_path(worker))
        if live == offline:
            return live, attempt
        await asyncio.sleep(1.0)
    assert live == offline, _diff(live, offline)
    raise AssertionError("unreachable")


def _diff(live: dict[str, Any], offline: dict[str, Any], limit: int = 25) -> str:
    """The first differing leaves, as path: live != replay."""
    out: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                walk(a.get(key, "<missing>"), b.get(key, "<missing>"), f"{path}.{key}")
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                out.append(f"{path}: {len(a)} items live, {len(b)} in the replay")
            for index, (x, y) in enumerate(zip(a, b)):
                label = x.get("queue", index) if isinstance(x, dict) else index
                walk(x, y, f"{path}[{label}]")
        elif a != b:
            out.append(f"{path}: live {a!r} != replay {b!r}")

    walk(live, offline, "doc")
    return "live document differs from the replay:\n  " + "\n  ".join(out)


async def test_live_document_equals_replay_of_the_same_file(workers, kafka_bootstrap: str, tmp_path: Path) -> None:
    """A simulator half hour ending 2 minutes ago: the live ``/api/v1/kpis?all=1`` is the replay's document at
    the live ``generated_at``, to the last field. Every breach of the file is on ``sla-breaches`` once."""
    path = tmp_path / "sim.jsonl"
    start = (now_us() // S - 32 * 60) * S
    count = simulate_file(path, start_us=start, seconds=30 * 60, seed=7, scale=2.0)
    assert 2_000 <= count <= 8_000, count
    worker = await workers(name="replay")
    assert await produce_file(kafka_bootstrap, worker.topics, path) == count
    await worker.wait_processed(count)
    doc, attempts = await live_equals_replay(worker, path)
    totals = doc["totals"]["windows"]
    assert totals["15m"]["offered"] > 50 and totals["1h"]["handled"] > 100 and totals["all"]["offered"] > 500
    assert totals["1h"]["first_contacts"] > 0 and totals["1h"]["nps_responses"] > 0 and totals["1h"]["sla_breaches"] > 0
    assert len(doc["queues"]) >= 3

    expected = breach_visits(path)
    # a visit still waiting at the file's end breaches by the partition's breach clock, which follows event time
    # until the consumer sees the partition caught up and idle (a loaded machine delays that by seconds: seen once
    # in CI beside two chaos soaks); what is due must be on the topic within a few more seconds, and once
    for _ in range(15):
        read_at = now_us()
        counts = breaches_on_topic(await consume_all(kafka_bootstrap, [worker.topics.sla_breaches]))
        missing = missing_breaches(counts, expected, read_at)
        if not missing:
            break
        await asyncio.sleep(1.0)
    assert not published_twice(counts)
    assert not missing, f"{len(missing)} breaches due but never published, e.g. {missing[:5]}"
    # (a breach record for a visit answered in time: see test_live_crash.py, the catch-up test)
