"""Issue "Redis read model": a real ``cxpulse worker`` publishing to a real ``redis-server`` of our own.

The redis-server is started by this module on a free port (``--save '' --appendonly no``), so the outage test
can SIGKILL it and start it again on the same port without touching the shared stack's Redis.

1. the read model equals the worker's API: ``P:kpis`` vs ``GET /api/v1/kpis`` (windows 24h and today, every
   field but the window bounds; live ``waiting``), per-queue keys, TTLs, the parts set, one update a second;
2. outage: Redis is SIGKILLed mid-stream, events keep coming (the worker keeps computing and serving its API,
   and a breach happens), Redis comes back empty on the same port: within seconds the read model equals the
   API again and the breach of the outage is in ``P:breaches:stream``; the worker logged one warning.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

import orjson
import pytest

from worker_harness import (
    Producer,
    WorkerProcess,
    delete_topics_with_prefix,
    free_port,
    iso,
    new_worker,
    now_us,
    parse_iso_us,
)

pytestmark = pytest.mark.integration

S = 1_000_000
FAST_QUEUE = "fast-lane"  # sl_threshold_seconds 2: a breach within seconds
COMPARED_WINDOWS = ("24h", "today")  # bounds do not move between two reads a moment apart


# ------------------------------------------------------------------------------------------------ redis-server
class RedisServer:
    """Our own ``redis-server`` on a fixed free port: start, SIGKILL, start again (same port, empty)."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / f"redis-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "RedisServer":
        import redis

        assert self.proc is None or self.proc.poll() is not None
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--logfile", str(self.log), "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
                client.ping()
                client.close()
                return self
            except Exception:  # noqa: BLE001 - not listening yet
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on {self.port} did not start: {self.log.read_text()[-2000:]}")
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no save."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()


def with_redis(worker: WorkerProcess, redis_url: str, prefix: str | None = None) -> str:
    """Point ``worker`` at our redis-server under a prefix of its own; returns the prefix."""
    prefix = prefix or f"cxp-{worker.app_id}"
    worker.env["CXPULSE_REDIS__URL"] = redis_url
    worker.env["CXPULSE_REDIS__KEY_PREFIX"] = prefix
    worker.env["CXPULSE_REDIS__ENABLED"] = "true"
    return prefix


def doc_counts(doc: dict[str, Any], windows: tuple[str, ...] = COMPARED_WINDOWS) -> dict[str, Any]:
    """Everything of a KPI document that must not move between two reads a moment apart."""
    def window_fields(entry: dict[str, Any]) -> dict[str, Any]:
        return {w: {k: v for k, v in entry["windows"][w].items() if k not in ("start", "end")} for w in windows}

    return {
        "queues": {(q["queue"], q["channel"]): {"waiting": q["live"]["waiting"], **window_fields(q)}
                   for q in doc["queues"]},
        "totals": {"waiting": doc["totals"]["live"]["waiting"], **window_fields(doc["totals"])},
    }


async def read_model(client: Any, prefix: str) -> dict[str, Any] | None:
    raw = await client.get(f"{prefix}:kpis")
    return None if raw is None else orjson.loads(raw)


async def until_read_model_equals_api(worker: WorkerProcess, client: Any, prefix: str, timeout: float) -> float:
    """Seconds until ``P:kpis`` and the API agree (counts of 24h/today, live waiting); fails with a diff."""
    began = time.monotonic()
    last: tuple[Any, Any] = (None, None)
    while time.monotonic() - began < timeout:
        try:
            model = await read_model(client, prefix)
        except Exception as exc:  # noqa: BLE001 - Redis may still be coming back
            model, last = None, (repr(exc), None)
        if model is not None:
            api = await worker.kpis()
            got, want = doc_counts(model), doc_counts(api)
            if got == want:
                return time.monotonic() - began
            last = (got, want)
        await asyncio.sleep(0.25)
    got, want = last
    if isinstance(got, dict) and isinstance(want, dict):
        diff = {k: (got["queues"].get(k), want["queues"].get(k)) for k in set(got["queues"]) | set(want["queues"])
                if got["queues"].get(k) != want["queues"].get(k)}
        pytest.fail(f"read model != API after {timeout}s; differing queues (model, api): {diff}; "
                    f"totals equal: {got['totals'] == want['totals']}", pytrace=False)
    pytest.fail(f"no read model after {timeout}s: {got}", pytrace=False)


# queue, channel, share of the answered within the threshold, threshold seconds (defaults of kpis.md)
SYNTHETIC_QUEUES = (
    ("billing", "voice", 1.0, 20),  # green: service level ~0.88 against 0.80
    ("tech-support", "voice", 0.86, 20),  # amber: ~0.75
    ("web-chat", "chat", 0.45, 30),  # red: ~0.4
    ("email-care", "email", 1.0, 14400),
)


def synthetic_centre(now: int, seed: int, *, minutes: int = 12, per_queue: int = 40, tag: str = "sy") -> list[dict[str, Any]]:
    """A small contact centre's last ``minutes`` (answers, abandons, ends, surveys, a few still waiting), in
    event-time order, everything before ``now``. Independent of the simulator, and with known colours: one
    queue above its target, one a few points below, one far below (shares are spread evenly, not drawn)."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    span = minutes * 60 - 40
    for queue, channel, within_share, threshold in SYNTHETIC_QUEUES:
        for n in range(per_queue):
            contact = f"{tag}-{queue}-{n}"
            queued = now - (40 + int(span * (n + rng.random()) / per_queue)) * S
            if n % 13 == 5:  # still waiting
                events += contact_events(contact, queue, channel, now - rng.randint(3, 15) * S, answer_after=None)
                continue
            if n % 10 == 3:  # abandoned, not short
                base = {"contact_id": contact, "customer_id": f"cu-{contact}", "channel": channel, "queue": queue}
                events += contact_events(contact, queue, channel, queued, answer_after=None)
                events.append({**base, "event_id": f"{contact}-x", "type": "contact.abandoned",
                               "ts": iso(queued + int(rng.uniform(6, 30) * S))})
                continue
            within = (n * 0.6180339887) % 1.0 < within_share
            wait = rng.uniform(1, min(threshold * 0.9, 25)) if within else rng.uniform(threshold * 1.1, threshold * 3)
            talk = rng.uniform(20, 200)
            survey = (rng.randint(0, 10), rng.randint(1, 5)) if rng.random() < 0.5 else None
            for event in contact_events(contact, queue, channel, queued, answer_after=wait, end_after=talk,
                                        survey=survey, resolved=rng.random() < 0.75):
                if parse_iso_us(event["ts"]) < now - S:
                    events.append(event)
    events.sort(key=lambda e: e["ts"])
    return events


def contact_events(contact: str, queue: str, channel: str, queued_us: int, *, answer_after: float | None,
                   end_after: float | None = None, survey: tuple[int, int] | None = None,
                   resolved: bool = True) -> list[dict[str, Any]]:
    """One contact's events (``answer_after`` None: still waiting)."""
    base = {"contact_id": contact, "customer_id": f"cu-{contact}", "channel": channel, "queue": queue}
    out = [{**base, "event_id": f"{contact}-q", "type": "contact.queued", "ts": iso(queued_us), "reason": "r",
            "priority": 1}]
    if answer_after is not None:
        answered = queued_us + int(answer_after * S)
        out.append({**base, "event_id": f"{contact}-a", "type": "contact.answered", "ts": iso(answered),
                    "agent_id": "ag-1", "team": None})
        if end_after is not None:
            ended = answered + int(end_after * S)
            out.append({**base, "event_id": f"{contact}-e", "type": "contact.ended", "ts": iso(ended),
                        "agent_id": "ag-1", "talk_seconds": end_after, "hold_seconds": 0, "wrap_seconds": 0,
                        "resolved": resolved, "transferred": False, "disposition": None})
            if survey is not None:
                out.append({"event_id": f"{contact}-s", "type": "survey.response", "ts": iso(ended + S),
                            "contact_id": contact, "customer_id": f"cu-{contact}", "nps": survey[0],
                            "csat": survey[1], "comment": None})
    return out


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
async def setup(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> AsyncIterator[dict[str, Any]]:
    """One redis-server of ours and one worker publishing to it (shared by the tests of this module)."""
    import redis.asyncio as aioredis

    tmp = tmp_path_factory.mktemp("redis-sink")
    server = RedisServer(tmp / "redis").start()
    worker = new_worker(tmp, kafka_bootstrap, kpi={"queues": {FAST_QUEUE: {"sl_threshold_seconds": 2}}}, name="rs")
    prefix = with_redis(worker, server.url)
    client = aioredis.Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=3)
    try:
        worker.start()
        await worker.wait_ready()
        yield {"server": server, "worker": worker, "prefix": prefix, "client": client, "tmp": tmp}
    finally:
        worker.stop()
        await client.aclose()
        server.stop()
        await delete_topics_with_prefix(kafka_bootstrap, worker.app_id)


# ------------------------------------------------------------------------------------------------ tests
async def test_read_model_equals_api_with_ttl_and_an_update_every_second(setup: dict[str, Any], kafka_bootstrap: str) -> None:
    worker: WorkerProcess = setup["worker"]
    prefix, client = setup["prefix"], setup["client"]

    # a synthetic centre's last 20 minutes, plus a few hand-made contacts
    stream = synthetic_centre(now_us(), seed=7, minutes=20, per_queue=60)
    extra = contact_events("rs-1", "billing", "voice", now_us() - 300 * S, answer_after=12, end_after=60, survey=(9, 5))
    extra += contact_events("rs-2", "billing", "voice", now_us() - 200 * S, answer_after=None)  # still waiting
    async with Producer(kafka_bootstrap, worker.topics) as producer:
        await producer.send(stream + extra)
    await worker.wait_processed(len(stream) + len(extra), timeout=90)

    took = await until_read_model_equals_api(worker, client, prefix, timeout=15)
    model = await read_model(client, prefix)
    assert model is not None and model["queues"], "empty read model"
    assert set(model) == {"generated_at", "queues", "totals"}

    # TTLs: every read-model key expires (stale data cannot pass for live)
    members = {m.decode() for m in await client.smembers(f"{prefix}:parts")}
    assert len(members) == 1, members
    (worker_id,) = members
    assert worker_id.startswith(f"{worker.app_id}@") and worker_id.endswith(f":{worker.port}")
    for key in (f"{prefix}:kpis", f"{prefix}:part:{worker_id}", f"{prefix}:kpis:queue:billing"):
        ttl = await client.ttl(key)
        assert 0 < ttl <= 15, f"TTL of {key} is {ttl}"
    part = orjson.loads(await client.get(f"{prefix}:part:{worker_id}"))
    assert part["worker"] == worker_id and set(part) == {"worker", "now", "queues", "totals"}

    # one key per queue: only that queue's entries (every channel of it), as GET /api/v1/kpis/{queue}
    billing = orjson.loads(await client.get(f"{prefix}:kpis:queue:billing"))
    assert {q["queue"] for q in billing["queues"]} == {"billing"}
    assert [q for q in model["queues"] if q["queue"] == "billing"] == billing["queues"]
    billing_api = await worker.get_json("/api/v1/kpis/billing")
    assert doc_counts(billing)["queues"] == doc_counts(billing_api)["queues"]
    assert any(q["live"]["waiting"] >= 1 for q in billing["queues"])  # rs-2 still waits

    # P:updates: the merged document, republished by the publisher loop even without new events (every 0.5 s by
    # default: the interval itself is a unit test of RedisSink; here the outcome: fresh documents keep coming)
    pubsub = client.pubsub()
    await pubsub.subscribe(f"{prefix}:updates")
    docs: list[dict[str, Any]] = []
    deadline = time.monotonic() + 15
    while len(docs) < 4:
        assert time.monotonic() < deadline, f"{len(docs)} updates on {prefix}:updates within 15 s"
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message is not None:
            docs.append(orjson.loads(message["data"]))
    await pubsub.aclose()
    assert all(set(d) == {"generated_at", "queues", "totals"} for d in docs)
    stamps = [parse_iso_us(d["generated_at"]) for d in docs]
    assert all(a < b for a, b in zip(stamps, stamps[1:])), f"each update is a newer document: {stamps}"
    print(f"read model equal to the API {took:.2f}s after processing")


async def test_outage_keeps_computing_and_catches_up(setup: dict[str, Any], kafka_bootstrap: str) -> None:
    worker: WorkerProcess = setup["worker"]
    server: RedisServer = setup["server"]
    prefix, client = setup["prefix"], setup["client"]
    tag = uuid.uuid4().hex[:6]

    base = worker.seen(await worker.status())
    async with Producer(kafka_bootstrap, worker.topics) as producer:
        before = contact_events(f"o1-{tag}", "billing", "voice", now_us() - 30 * S, answer_after=5, end_after=20)
        await producer.send(before)
        await worker.wait_processed(base + len(before), timeout=30)
        await until_read_model_equals_api(worker, client, prefix, timeout=10)

        # Redis dies mid-stream
        server.kill()
        killed_at = time.monotonic()
        during = contact_events(f"o2-{tag}", "sales", "voice", now_us() - 10 * S, answer_after=3, end_after=4,
                                survey=(10, 5))
        during += contact_events(f"o3-{tag}", FAST_QUEUE, "chat", now_us(), answer_after=None)  # breaches at +2 s
        await producer.send(during)
        # the worker keeps computing and serving while Redis is away
        await worker.wait_processed(base + len(before) + len(during), timeout=30)
        deadline = time.monotonic() + 20
        while True:
            api = await worker.kpis()
            fast = [q for q in api["queues"] if q["queue"] == FAST_QUEUE]
            if fast and fast[0]["windows"]["15m"]["sla_breaches"] == 1:
                break
            assert time.monotonic() < deadline, f"no breach on {FAST_QUEUE} while Redis is down: {fast}"
            await asyncio.sleep(0.25)
        assert (await worker.status())["breaches_published"] >= 1
        # the scenario, not a synchronisation: Redis stays away a few seconds in all
        await asyncio.sleep(max(0.0, 5.0 - (time.monotonic() - killed_at)))

    # Redis comes back, empty, on the same port
    server.start()
    back_at = time.monotonic()
    took = await until_read_model_equals_api(worker, client, prefix, timeout=15)  # fails if it never catches up
    caught_up = time.monotonic() - back_at

    # the breach of the outage was buffered and is in the stream
    deadline = time.monotonic() + 5
    while True:
        entries = await client.xrange(f"{prefix}:breaches:stream")
        breaches = [orjson.loads(fields[b"breach"]) for _, fields in entries]
        ours = [b for b in breaches if b["contact_id"] == f"o3-{tag}"]
        if ours or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert len(ours) == 1, f"breach of o3-{tag} not in {prefix}:breaches:stream: {breaches}"
    assert ours[0]["queue"] == FAST_QUEUE and ours[0]["channel"] == "chat" and ours[0]["threshold_seconds"] == 2
    assert await client.ttl(f"{prefix}:kpis") > 0

    log = worker.log_path.read_text(errors="replace")
    warnings = [line for line in log.splitlines() if "Redis read model: cannot publish" in line]
    assert len(warnings) == 1, warnings
    assert f"o3-{tag}" not in warnings[0] and "cu-" not in warnings[0]
    assert "Redis read model: publishing again" in log
    print(f"outage ~{time.monotonic() - killed_at - caught_up:.1f}s; read model right again {caught_up:.2f}s "
          f"after Redis came back (compare loop {took:.2f}s)")
