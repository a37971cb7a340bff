"""Helpers for the live-engine integration tests: a real ``cxpulse worker`` process on the real broker.

* :func:`start_worker` / :class:`WorkerProcess`: ``.venv/bin/cxpulse worker`` as a subprocess with a unique app
  id and unique topic names (uuid suffix), a free web port, its own data dir, ``CXPULSE_KAFKA__PARTITIONS=4``;
  :meth:`WorkerProcess.wait_ready` waits for ``/readyz`` == 200 (on timeout: fails with the tail of its log);
  :meth:`WorkerProcess.stop` sends SIGTERM, then SIGKILL; :meth:`WorkerProcess.kill` is a crash (SIGKILL).
* :class:`Producer`: sends event dicts (or raw bytes) to the right topic with key = contact_id and waits for
  delivery, returning where each record landed (partition, offset).
* :meth:`WorkerProcess.wait_processed`: polls ``/api/v1/status`` until processed + duplicates + invalid reach
  a count (on timeout: fails with the status JSON).
* :func:`simulate_file`: a simulator run written to a JSON Lines file (the code path of ``cxpulse simulate
  --out``), :func:`produce_file` puts such a file on the worker's topics, :func:`replay` runs ``cxpulse replay``.
* :func:`consume_all`: everything on some topics up to their current end (with headers and timestamps).

Everything a worker creates is named ``<app id>-...`` and deleted by :func:`delete_topics_with_prefix`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

import orjson
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
CXPULSE = str(VENV_BIN / "cxpulse") if (VENV_BIN / "cxpulse").exists() else str(Path(sys.executable).with_name("cxpulse"))
PARTITIONS = 4
READY_TIMEOUT = 60.0


# ------------------------------------------------------------------------------------------------ time
def now_us() -> int:
    return time.time_ns() // 1000


def iso(us: int) -> str:
    """RFC 3339 UTC with milliseconds (what producers write)."""
    moment = datetime.fromtimestamp(us // 1_000_000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{(us % 1_000_000) // 1000:03d}Z"


def parse_iso_us(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)


# ------------------------------------------------------------------------------------------------ worker
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Topics:
    contact_events: str
    survey_responses: str
    contact_events_dlq: str
    survey_responses_dlq: str
    sla_breaches: str
    agent_events: str = ""
    agent_events_dlq: str = ""
    feedback_breaches: str = ""

    @classmethod
    def unique(cls, prefix: str) -> "Topics":
        return cls(
            contact_events=f"{prefix}-contact-events",
            survey_responses=f"{prefix}-survey-responses",
            contact_events_dlq=f"{prefix}-contact-events-dlq",
            survey_responses_dlq=f"{prefix}-survey-responses-dlq",
            sla_breaches=f"{prefix}-sla-breaches",
            agent_events=f"{prefix}-agent-events",
            agent_events_dlq=f"{prefix}-agent-events-dlq",
            feedback_breaches=f"{prefix}-feedback-breaches",
        )

    def for_event(self, event: dict[str, Any] | bytes) -> str:
        """The topic of an event: survey.response and survey.followed_up (contract v2) on the survey topic."""
        if isinstance(event, dict) and str(event.get("type", "")).startswith("survey."):
            return self.survey_responses
        return self.contact_events


@dataclass
class WorkerProcess:
    """One ``cxpulse worker`` subprocess; see the module docstring."""

    app_id: str
    topics: Topics
    port: int
    data_dir: Path
    log_path: Path
    env: dict[str, str]
    bootstrap: str
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log_handle: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> "WorkerProcess":
        assert self.proc is None or self.proc.poll() is not None, "worker already running"
        self.starts += 1
        self._log_handle = self.log_path.open("ab")
        self._log_handle.write(f"\n===== start #{self.starts} at {iso(now_us())} =====\n".encode())
        self._log_handle.flush()
        self.proc = subprocess.Popen(
            [CXPULSE, "worker", "--loglevel", "info"],
            cwd=str(self.data_dir.parent),
            env=self.env,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our own process group: signals reach the worker only
        )
        return self

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def start_log(self, lines: int = 400) -> str:
        """The log of the latest start only (what its recovery said), from the last ``lines`` lines."""
        return self.log_tail(lines).rsplit(f"===== start #{self.starts}", 1)[-1]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _signal(self, sig: int) -> None:
        if self.alive():
            assert self.proc is not None
            try:
                os.killpg(self.proc.pid, sig)  # the group we started (start_new_session)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """A crash: SIGKILL, no chance to commit offsets or flush anything."""
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)
        self._close_log()

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""
        if self.proc is None:
            return
        if self.alive():
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(timeout=30)
        self._close_log()

    def _close_log(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    # -- HTTP ------------------------------------------------------------------------------------------
    async def get(self, path: str, timeout: float = 5.0) -> tuple[int, Any]:
        """(status, parsed JSON body) of GET ``path`` on the worker's web port."""
        import aiohttp

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.get(self.url + path) as response:
                body = await response.read()
                try:
                    return response.status, orjson.loads(body)
                except orjson.JSONDecodeError:
                    return response.status, body.decode(errors="replace")

    async def get_json(self, path: str) -> Any:
        status, body = await self.get(path)
        assert status == 200, f"GET {path} -> {status}: {body}"
        return body

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> float:
        """Wait for ``/readyz`` == 200; returns the seconds it took. Fails with the log tail otherwise."""
        began = time.monotonic()
        last: Any = None
        while time.monotonic() - began < timeout:
            if not self.alive():
                pytest.fail(f"worker {self.app_id} exited (rc {self.proc.returncode if self.proc else None}) "
                            f"before it was ready; log tail:\n{self.log_tail()}", pytrace=False)
            try:
                status, body = await self.get("/readyz", timeout=2.0)
                last = (status, body)
                if status == 200:
                    return time.monotonic() - began
            except Exception as exc:  # noqa: BLE001 - not listening yet
                last = repr(exc)
            await asyncio.sleep(0.25)
        pytest.fail(f"worker {self.app_id} not ready after {timeout:.0f}s (last /readyz: {last}); "
                    f"log tail:\n{self.log_tail()}", pytrace=False)

    async def status(self) -> dict[str, Any]:
        return await self.get_json("/api/v1/status")

    @staticmethod
    def seen(status: dict[str, Any]) -> int:
        """processed + duplicates + invalid over both source topics, each record read once.

        Invalid of kind ``lifecycle`` is left out: such an event is schema-valid, so it was first counted as
        processed, and only later (once the allowed disorder passed without the missing event) rejected;
        counting it twice would overshoot the number of records sent (``cxpulse replay`` counts the same way)."""
        total = 0
        for health in status.get("topics", {}).values():
            invalid = sum(n for kind, n in health["invalid"].items() if kind != "lifecycle")
            total += health["processed"] + health["duplicates"] + invalid
        return total

    async def wait_status(self, predicate: Any, what: str, timeout: float = 60.0, every: float = 0.2) -> dict[str, Any]:
        """Poll ``/api/v1/status`` until ``predicate(status)``; fails with the status JSON after ``timeout``."""
        began = time.monotonic()
        status: dict[str, Any] = {}
        while time.monotonic() - began < timeout:
            if not self.alive():
                pytest.fail(f"worker {self.app_id} died; status {status}; log tail:\n{self.log_tail()}", pytrace=False)
            try:
                status = await self.status()
            except Exception as exc:  # noqa: BLE001
                status = {"error": repr(exc)}
            if "topics" in status and predicate(status):
                return status
            await asyncio.sleep(every)
        pytest.fail(f"worker {self.app_id}: {what} not reached within {timeout:.0f}s; status: {json.dumps(status)}",
                    pytrace=False)

    async def wait_processed(self, expected: int, timeout: float = 60.0, *, exact: bool = True) -> dict[str, Any]:
        """Poll ``/api/v1/status`` until processed + duplicates + invalid (see :meth:`seen`) reach ``expected``;
        return the status. With ``exact`` the count must then be exactly ``expected`` (more: counted twice)."""
        status = await self.wait_status(lambda st: self.seen(st) >= expected,
                                        f"processed+duplicates+invalid = {expected}", timeout)
        if exact:
            assert self.seen(status) == expected, f"more than the {expected} records sent were seen: {status}"
        return status

    async def kpis(self, all_window: bool = False) -> dict[str, Any]:
        return await self.get_json("/api/v1/kpis" + ("?all=1" if all_window else ""))


def worker_env(
    bootstrap: str, app_id: str, topics: Topics, port: int, data_dir: Path, store: str, config: Path | None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXPULSE_")}
    env.update({
        "CXPULSE_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "CXPULSE_KAFKA__TOPICS__CONTACT_EVENTS": topics.contact_events,
        "CXPULSE_KAFKA__TOPICS__SURVEY_RESPONSES": topics.survey_responses,
        "CXPULSE_KAFKA__TOPICS__CONTACT_EVENTS_DLQ": topics.contact_events_dlq,
        "CXPULSE_KAFKA__TOPICS__SURVEY_RESPONSES_DLQ": topics.survey_responses_dlq,
        "CXPULSE_KAFKA__TOPICS__SLA_BREACHES": topics.sla_breaches,
        # never the shared agent-events topic of a running stack
        "CXPULSE_KAFKA__TOPICS__AGENT_EVENTS": topics.agent_events or f"{app_id}-agent-events",
        "CXPULSE_KAFKA__TOPICS__AGENT_EVENTS_DLQ": topics.agent_events_dlq or f"{app_id}-agent-events-dlq",
        # never the shared feedback-breaches topic either
        "CXPULSE_KAFKA__TOPICS__FEEDBACK_BREACHES": topics.feedback_breaches or f"{app_id}-feedback-breaches",
        "CXPULSE_KAFKA__PARTITIONS": str(PARTITIONS),
        "CXPULSE_WORKER__APP_ID": app_id,
        "CXPULSE_REDIS__KEY_PREFIX": f"test-{app_id}",  # never the shared cxpulse:* keys of a running wallboard
        "CXPULSE_WORKER__WEB_PORT": str(port),
        "CXPULSE_WORKER__DATA_DIR": str(data_dir),
        "CXPULSE_WORKER__STORE": store,
        # 2 settled contacts kept per partition, not 1,024: the tests' few hundred contacts would otherwise never
        # leave memory, and the read-back from the table (a survey, an end, a duplicate of a settled contact) would
        # go untested; with 2 both roads run (bench/ workers take the default: bench/faust_baseline.bench_worker)
        "CXPULSE_WORKER__RECENT_CONTACTS": "2",
        "PYTHONUNBUFFERED": "1",
    })
    if config is not None:
        env["CXPULSE_CONFIG"] = str(config)
    return env


def new_worker(
    tmp_path: Path,
    bootstrap: str,
    *,
    store: str = "memory://",
    kpi: dict[str, Any] | None = None,
    name: str = "le",
) -> WorkerProcess:
    """A worker (not started yet) with a unique app id, unique topics, a free port and its own data dir.

    ``kpi`` goes to a YAML settings file (``{"queues": {"fast": {"sl_threshold_seconds": 3}}}``); the same file
    is what :func:`replay` should be given."""
    app_id = f"test-{name}-{uuid.uuid4().hex[:10]}"
    topics = Topics.unique(app_id)
    data_dir = tmp_path / f"{app_id}-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    config = None
    if kpi:
        config = tmp_path / f"{app_id}.yaml"
        config.write_text(yaml.safe_dump({"kpi": kpi}), encoding="utf-8")
    port = free_port()
    env = worker_env(bootstrap, app_id, topics, port, data_dir, store, config)
    return WorkerProcess(app_id, topics, port, data_dir, tmp_path / f"{app_id}.log", env, bootstrap)


def config_path(worker: WorkerProcess) -> Path | None:
    value = worker.env.get("CXPULSE_CONFIG")
    return Path(value) if value else None


async def prepare_topics_for(worker: "WorkerProcess") -> None:
    """Create the worker's topics as the worker itself would (partitions, configs), before it runs: with its
    environment, through the worker's own ``prepare_topics``."""
    from cxpulse.settings import load_settings
    from cxpulse.streams.runner import prepare_topics

    saved = dict(os.environ)
    try:
        os.environ.update(worker.env)
        await prepare_topics(load_settings())
    finally:
        os.environ.clear()
        os.environ.update(saved)


async def delete_topics_with_prefix(bootstrap: str, prefix: str) -> None:
    """Delete every topic named ``<prefix>...`` (the worker's own, its changelogs, Faust's leader topic)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="cxpulse-tests-admin")
    try:
        await admin.start()
        doomed = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed)
    except Exception:  # noqa: BLE001 - cleanup must not mask the test's own outcome
        pass
    finally:
        await admin.close()


# ------------------------------------------------------------------------------------------------ producing
class Producer:
    """Sends events with key = contact_id and waits for delivery; remembers where each one landed."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        from aiokafka import AIOKafkaProducer

        self.topics = topics
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5,
                                          client_id="cxpulse-tests-producer")
        self.sent = 0

    async def __aenter__(self) -> "Producer":
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._producer.stop()

    async def send(
        self, events: Iterable[dict[str, Any] | bytes], *, topic: str | None = None, key: bytes | None = None
    ) -> list[tuple[str, int, int]]:
        """Send ``events`` in order (dicts are JSON-encoded; bytes are sent as they are, to ``topic`` with
        ``key``); wait until all are acknowledged; return (topic, partition, offset) of each."""
        futures = []
        for event in events:
            if isinstance(event, (bytes, bytearray)):
                value, to, k = bytes(event), topic or self.topics.contact_events, key
            else:
                value = orjson.dumps(event)
                to = topic or self.topics.for_event(event)
                k = key if key is not None else str(event["contact_id"]).encode()
            futures.append((to, await self._producer.send(to, key=k, value=value)))
        out = []
        for to, future in futures:
            meta = await future
            out.append((to, meta.partition, meta.offset))
        self.sent += len(out)
        return out


async def produce_file(bootstrap: str, topics: Topics, path: Path) -> int:
    """Every line of a simulator JSON Lines file to the worker's topics (key = contact_id), acknowledged;
    returns the number of records. Uses the project's batched sender (Kafka's default partitioner)."""
    from cxpulse.kafka_io import BatchSender, new_producer

    producer = new_producer(bootstrap, client_id="cxpulse-tests-file")
    await producer.start()
    try:
        sender = BatchSender(producer)
        await sender.prepare([topics.contact_events, topics.survey_responses])
        count = 0
        with path.open("rb") as handle:
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                obj = orjson.loads(line)
                topic = topics.survey_responses if str(obj.get("type", "")).startswith("survey.") else topics.contact_events
                await sender.send(topic, str(obj["contact_id"]).encode(), line)
                count += 1
        await sender.flush()
        return count
    finally:
        await producer.stop()


def simulate_file(path: Path, *, start_us: int, seconds: int, seed: int, scale: float = 1.0,
                  extra: tuple[str, ...] = ()) -> int:
    """``cxpulse simulate --out PATH --fast --seed --start --duration`` with the shipped centre made flat over
    the day and scaled (arrivals and agents x ``scale``), so the volume does not depend on the hour the test
    runs; returns the number of lines. Same arguments, same file."""
    from cxpulse.simulator.centre import DEFAULT_CENTRE

    centre = yaml.safe_load(DEFAULT_CENTRE.read_text(encoding="utf-8"))
    centre["hour_profile"] = [1.0] * 24
    for queue in centre["queues"].values():
        queue.pop("hour_profile", None)
        queue["arrivals_per_hour"] = queue["arrivals_per_hour"] * scale
        queue["agents"] = max(1, round(queue["agents"] * scale))
    centre_file = path.with_suffix(".centre.yaml")
    centre_file.write_text(yaml.safe_dump(centre), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXPULSE_")}
    args = [CXPULSE, "simulate", "--centre", str(centre_file), "--out", str(path), "--fast", "--seed", str(seed),
            "--start", iso(start_us), "--duration", f"{seconds}s", *extra]
    done = subprocess.run(args, capture_output=True, env=env, timeout=300)
    assert done.returncode == 0, f"cxpulse simulate failed: {done.stderr.decode(errors='replace')[-2000:]}"
    return sum(1 for line in path.read_bytes().splitlines() if line.strip())


def replay(path: Path, now: str, config: Path | None = None) -> dict[str, Any]:
    """``cxpulse replay FILE --json --now NOW`` (with the worker's settings file, if any)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXPULSE_")}
    args = [CXPULSE, "replay", str(path), "--json", "--now", now, "--no-progress"]
    if config is not None:
        args += ["--config", str(config)]
    done = subprocess.run(args, capture_output=True, env=env, timeout=300)
    assert done.returncode == 0, f"cxpulse replay failed: {done.stderr.decode(errors='replace')}"
    return orjson.loads(done.stdout)


# ------------------------------------------------------------------------------------------------ consuming
@dataclass
class Consumed:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int
    headers: dict[str, bytes]


async def consume_all(bootstrap: str, topics: list[str], timeout: float = 30.0) -> list[Consumed]:
    """Every record on ``topics`` (which must exist) from the beginning to their current end (no group).

    Why a subscription and not ``topics()`` + ``partitions_for_topic()``: against Kafka 4 aiokafka bootstraps
    with a metadata request for *no* topic (v0, "empty list = all topics", is gone), and ``topics()`` does not
    update the client's cluster view, so ``partitions_for_topic`` stays None; subscribing fetches them."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest", client_id="cxpulse-tests-reader")
    await consumer.start()
    out: list[Consumed] = []
    try:
        deadline = time.monotonic() + timeout
        while {tp.topic for tp in consumer.assignment()} != set(topics):
            assert time.monotonic() < deadline, f"no partitions assigned for {topics}: {consumer.assignment()}"
            await asyncio.sleep(0.05)
        tps = sorted(consumer.assignment())
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for r in records:
                    if r.offset < ends[tp]:
                        out.append(Consumed(tp.topic, tp.partition, r.offset, r.key, r.value, r.timestamp,
                                            {k: bytes(v) for k, v in (r.headers or ())}))
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        assert not remaining, f"could not read {remaining} to their end within {timeout}s"
    finally:
        await consumer.stop()
    out.sort(key=lambda c: (c.topic, c.partition, c.offset))
    return out


# ------------------------------------------------------------------------------------------------ oracle
DEFAULT_THRESHOLDS_S = {"voice": 20, "chat": 30, "sms": 120, "social": 3600, "email": 14400}
_RANK = {"contact.queued": 0, "contact.answered": 1, "contact.abandoned": 1, "contact.ended": 2}


def breach_visits(path: Path, thresholds: dict[str, float] | None = None) -> dict[str, int]:
    """From a simulator file (valid, in order per contact): visit id (queued event id) -> ``breached_at`` (us)
    of every queue visit whose wait exceeds T or that still waits (due at queued + T, maybe in the future).
    A small independent oracle of kpis.md's sla_breaches for the channel defaults."""
    thresholds = thresholds or DEFAULT_THRESHOLDS_S
    per_contact: dict[str, list[tuple[int, int, dict[str, Any]]]] = {}
    for line in path.read_bytes().splitlines():
        event = orjson.loads(line)
        if event["type"] in _RANK:
            per_contact.setdefault(event["contact_id"], []).append((parse_iso_us(event["ts"]), _RANK[event["type"]], event))
    out: dict[str, int] = {}
    for events in per_contact.values():
        events.sort(key=lambda item: (item[0], item[1]))
        open_visit: tuple[int, dict[str, Any]] | None = None
        for ts, _, event in events:
            if event["type"] == "contact.queued":
                open_visit = (ts, event)
            elif event["type"] in ("contact.answered", "contact.abandoned") and open_visit is not None:
                queued_ts, queued = open_visit
                limit = round(thresholds[queued["channel"]] * 1_000_000)
                if ts - queued_ts > limit:
                    out[queued["event_id"]] = queued_ts + limit
                open_visit = None
        if open_visit is not None:
            queued_ts, queued = open_visit
            out[queued["event_id"]] = queued_ts + round(thresholds[queued["channel"]] * 1_000_000)
    return out


def breaches_on_topic(records: list[Consumed]) -> Counter[str]:
    """visit id -> how many records of ``sla-breaches`` name it."""
    return Counter(orjson.loads(r.value)["visit_id"] for r in records)


def published_twice(counts: Counter[str]) -> dict[str, int]:
    return {visit: n for visit, n in counts.items() if n > 1}


def missing_breaches(counts: Counter[str], expected: dict[str, int], read_at_us: int) -> list[str]:
    """Breaches of the oracle due well before ``read_at_us`` (2 s: ten ticks of the timer) not on the topic."""
    return sorted(v for v, at in expected.items() if at < read_at_us - 2_000_000 and v not in counts)


def false_breaches(counts: Counter[str], expected: dict[str, int], read_at_us: int) -> list[str]:
    """Visits on the topic that did not breach (wait <= T), or whose breach is not due yet."""
    return sorted(v for v in counts if v not in expected or expected[v] > read_at_us)
