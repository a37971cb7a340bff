"""Issue 12 (contract v2), Done-when "integration on the real broker": feedback breaches published live, once.

A real ``cxpulse worker`` (``rocksdb://`` store) with ``feedback_response_target`` 2 s on channel voice. Detractor
feedback not followed up by survey ts + 2 s must appear on the worker's ``feedback-breaches`` topic once,
soon after that moment, without any further event; a detractor followed up within 2 s, and a promoter, never.
After ``kill -9`` and a restart on the same data dir, nothing is published again; the document equals
``cxpulse replay --now <generated_at>`` of the same events, before and after the crash.

No fixed sleeps: every wait polls with a deadline. "Not again" is proven by markers: a detractor sent later,
whose own breach can only come from a later tick of the same timer, which would have repeated the older one
first (its moment is older, and one tick offers every partition's due breaches).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from test_live_engine import answered, ended, live_equals_replay, queued, workers  # noqa: F401 - the fixture
from waiting import eventually
from worker_harness import Producer, WorkerProcess, consume_all, iso, now_us

pytestmark = pytest.mark.integration

S = 1_000_000
MS = 1_000
TARGET_S = 2
KPI = {"channels": {"voice": {"feedback_response_target": f"{TARGET_S}s"}}}


def survey(contact: str, ts_us: int, nps: int) -> dict[str, Any]:
    return {"event_id": f"sv-{contact}", "type": "survey.response", "ts": iso(ts_us), "contact_id": contact,
            "customer_id": f"cu-{contact}", "nps": nps, "csat": None, "comment": "private words"}


def followed_up(contact: str, ts_us: int) -> dict[str, Any]:
    return {"event_id": f"fu-{contact}", "type": "survey.followed_up", "ts": iso(ts_us), "contact_id": contact,
            "customer_id": f"cu-{contact}", "survey_event_id": f"sv-{contact}", "agent_id": "ag-7"}


def handled(contact: str, t0: int, queue: str = "care") -> list[dict[str, Any]]:
    """A voice contact queued 30 s before ``t0``, answered after 5 s, ended 20 s later."""
    return [queued(contact, t0 - 30 * S, queue), answered(contact, t0 - 25 * S, queue),
            ended(contact, t0 - 5 * S, queue)]


async def test_feedback_breach_published_once_live_and_not_again_after_kill_9(
        workers, kafka_bootstrap: str, tmp_path: Path) -> None:  # noqa: F811
    worker: WorkerProcess = await workers(name="feedback", kpi=KPI, store="rocksdb://")
    topic = worker.topics.feedback_breaches
    t0 = (now_us() // MS) * MS
    # fb-ignored: a detractor nobody calls back (breach at t0 + 2 s);
    # fb-called: a detractor called back 1 s after the survey, in time (sent before the moment: no breach);
    # fb-promoter: nps 9, never awaits anything
    events = [*handled("fb-ignored", t0), survey("fb-ignored", t0, nps=3),
              *handled("fb-called", t0), survey("fb-called", t0, nps=2), followed_up("fb-called", t0 + 1 * S),
              *handled("fb-promoter", t0), survey("fb-promoter", t0, nps=9)]

    async def read() -> list[Any]:
        return await consume_all(kafka_bootstrap, [topic])

    def published(records: list[Any]) -> Counter[str]:
        return Counter(orjson.loads(r.value)["contact_id"] for r in records)

    def published_with(*contacts: str):  # noqa: ANN202 - a poll for eventually()
        async def check() -> list[Any]:
            records = await read()
            assert set(published(records)) >= set(contacts), [orjson.loads(r.value) for r in records]
            return records
        return check

    async with Producer(kafka_bootstrap, worker.topics) as producer:
        await producer.send(events)
        records = await eventually(published_with("fb-ignored"), timeout=20.0, every=0.2)

        body = orjson.loads(records[0].value)
        assert body == {
            "kind": "feedback", "queue": "care", "channel": "voice", "contact_id": "fb-ignored",
            "survey_event_id": "sv-fb-ignored", "survey_ts": iso(t0), "target_seconds": TARGET_S,
            "breached_at": iso(t0 + TARGET_S * S),
        }
        assert records[0].key == b"fb-ignored"
        assert records[0].timestamp_ms >= (t0 + TARGET_S * S) // MS, "published before its moment"
        print(f"feedback breach on the topic {records[0].timestamp_ms - (t0 + TARGET_S * S) // MS} ms after its moment")

        # marker 1: a detractor surveyed now, whose breach comes from a later tick than fb-called's moment
        marker_1 = (now_us() // MS) * MS
        before_crash = [*handled("fb-marker-1", marker_1), survey("fb-marker-1", marker_1, nps=0)]
        await producer.send(before_crash)
        events += before_crash
        records = await eventually(published_with("fb-marker-1"), timeout=20.0, every=0.2)
        assert published(records) == {"fb-ignored": 1, "fb-marker-1": 1}, [orjson.loads(r.value) for r in records]
        status = await worker.status()
        assert status["feedback_breaches_published"] == 2, status
        assert status["breaches_published"] == 0, status  # nothing of it went to sla-breaches
        assert await consume_all(kafka_bootstrap, [worker.topics.sla_breaches]) == []

        path = tmp_path / "feedback.jsonl"
        path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
        doc, _ = await live_equals_replay(worker, path)
        care = next(q for q in doc["queues"] if q["queue"] == "care")
        window = care["windows"]["all"]
        assert (window["detractor_feedback"], window["followed_up"], window["feedback_breaches"]) == (3, 1, 2), window
        assert window["average_feedback_response_seconds"] == 1.0
        assert care["live"]["awaiting_follow_up"] == 2  # fb-ignored and the marker: still not followed up

        # kill -9 and a restart on the same data dir: the breach log is read back before the timer publishes
        worker.kill()
        worker.start()
        await worker.wait_ready()
        marker_2 = (now_us() // MS) * MS
        after_crash = [*handled("fb-marker-2", marker_2), survey("fb-marker-2", marker_2, nps=1)]
        await producer.send(after_crash)
        events += after_crash

    records = await eventually(published_with("fb-marker-2"), timeout=30.0, every=0.2)
    assert published(records) == {"fb-ignored": 1, "fb-marker-1": 1, "fb-marker-2": 1}, (
        [orjson.loads(r.value) for r in records])
    assert (await worker.status())["feedback_breaches_published"] == 1  # this run's: only the new marker's

    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    doc, _ = await live_equals_replay(worker, path)
    window = next(q for q in doc["queues"] if q["queue"] == "care")["windows"]["all"]
    assert (window["detractor_feedback"], window["followed_up"], window["feedback_breaches"]) == (4, 1, 3), window

    # privacy: the survey's comment and the contact ids never reach the worker's log (INFO)
    log = worker.log_path.read_bytes()
    assert b"private words" not in log and b"fb-ignored" not in log and b"sv-fb-" not in log
