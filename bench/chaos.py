"""The chaos suite of issue 10: hostile input, a rebalance soak and a broker outage, against live workers.

Scenarios (``--scenarios a,b,c``; all by default):

a. hostile input: a simulator stream with hostile records mixed in (the boundary table and hypothesis examples
   of ``tests/integration/chaos_lib.py``; what is valid is decided by events.md through ``spec_verdict``, never
   by the code under test), all sent to one worker; checks the worker stays alive and ready, the DLQ holds
   exactly the invalid records (bytes, key, reason, source), ``/api/v1/status`` agrees, the live document
   equals ``cxpulse replay --now <generated_at>`` of exactly the valid records, an engine-independent count of
   offered/answered/abandoned/handled/surveys (lost, doubled), every breach once, the Redis read model alive.
b. rebalance soak: two workers of one app id while the stream is produced in chunks; per repetition the other
   worker joins, one is SIGKILLed and rejoins (roles swap each time); at the end the count fields of the
   workers' ``/api/v1/kpis?all=1`` summed must equal the replay's, and every breach is on ``sla-breaches`` once.
c. broker stop/kill: the suite's OWN broker (``.local-chaos/``, ports 29092-29094, Redis 26379; never the
   shared one): SIGTERM and later SIGKILL of the broker for ``--outage`` seconds mid-stream; the worker must
   resume, its document must equal the replay and every breach must be published once.

Each scenario prints its figures (messages sent valid/invalid, DLQ records, mismatches, lost, doubled,
repetitions and their results) and the process exits 1 on any failure.

Usage::

    make chaos                                   # shared stack for a and b; c starts its own broker
    .venv/bin/python bench/chaos.py --scenarios a --random 2000 --minutes 60 --scale 2
    .venv/bin/python bench/chaos.py --scenarios b --repetitions 6 --events 40000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import orjson  # noqa: E402

from chaos_lib import (  # noqa: E402  (the integration tests' chaos module)
    Outcome,
    doc_diff,
    poll_status,
    prepare_topics_for,
    print_outcome,
    replay_counts,
    run_hostile,
)
from worker_harness import (  # noqa: E402
    WorkerProcess,
    breach_visits,
    breaches_on_topic,
    consume_all,
    delete_topics_with_prefix,
    false_breaches,
    free_port,
    missing_breaches,
    new_worker,
    now_us,
    published_twice,
    simulate_file,
    worker_env,
)

S = 1_000_000
CHAOS_STACK = {
    "CXPULSE_STACK_DIR": str(ROOT / ".local-chaos"),
    "CXPULSE_STACK_KAFKA_PORT": "29092",
    "CXPULSE_STACK_CONTROLLER_PORT": "29093",
    "CXPULSE_STACK_KAFKA_SASL_PORT": "29094",
    "CXPULSE_STACK_REDIS_PORT": "26379",
}
EVENTS_PER_MINUTE_AT_SCALE_1 = 47  # the shipped centre made flat (simulate_file), measured


# ---------------------------------------------------------------------------------------------- shared
def sim_for(path: Path, events: int, seed: int) -> int:
    """A simulator stream of about ``events`` records over 30 minutes ending 2 minutes ago."""
    minutes = 30
    scale = max(0.2, events / (EVENTS_PER_MINUTE_AT_SCALE_1 * minutes))
    start = (now_us() // S - (minutes + 2) * 60) * S
    return simulate_file(path, start_us=start, seconds=minutes * 60, seed=seed, scale=scale)


class Feeder:
    """Produces a file's lines in order, in chunks with pauses (events keep flowing during the chaos);
    ``paused`` holds it (a broker outage), ``sent`` counts acknowledged records."""

    def __init__(self, bootstrap: str, topics: Any, path: Path, chunk: int, pause: float) -> None:
        self.bootstrap, self.topics, self.path = bootstrap, topics, path
        self.chunk, self.pause = chunk, pause
        self.sent = 0
        self.paused = asyncio.Event()
        self.done = asyncio.Event()

    async def run(self) -> None:
        from aiokafka import AIOKafkaProducer

        lines = [line for line in self.path.read_bytes().splitlines() if line.strip()]
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=True, linger_ms=5,
                                    request_timeout_ms=60_000, client_id="cxpulse-chaos-feeder")
        await producer.start()
        try:
            for begin in range(0, len(lines), self.chunk):
                while self.paused.is_set():
                    await asyncio.sleep(0.2)
                futures = []
                for line in lines[begin:begin + self.chunk]:
                    obj = orjson.loads(line)
                    topic = self.topics.survey_responses if obj["type"] == "survey.response" else self.topics.contact_events
                    futures.append(await producer.send(topic, key=obj["contact_id"].encode(), value=line))
                for future in futures:
                    await future
                self.sent += len(futures)
                await asyncio.sleep(self.pause)
        finally:
            await producer.stop()
            self.done.set()


async def committed_everything(bootstrap: str, group: str, topics: list[str]) -> bool:
    """Has consumer group ``group`` committed the end offset of every partition of ``topics``?"""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(t, p) for t in topics for p in range(4)])
    finally:
        await consumer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="cxpulse-chaos-admin")
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return all(tp in committed and committed[tp].offset >= end for tp, end in ends.items() if end > 0)


async def wait_committed(bootstrap: str, workers: list[WorkerProcess], timeout: float) -> bool:
    topics = [workers[0].topics.contact_events, workers[0].topics.survey_responses]
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        try:
            if await committed_everything(bootstrap, workers[0].app_id, topics):
                return True
        except Exception:  # noqa: BLE001 - broker still coming back
            pass
        await asyncio.sleep(1.0)
    return False


def count_fields(doc: dict[str, Any]) -> dict[tuple[str, str, str], int]:
    """Every integer count of the ``all`` window per (queue, channel, field) (ratios and live state left out:
    they do not add over workers)."""
    out = {}
    for q in doc["queues"]:
        for name, value in q["windows"]["all"].items():
            if isinstance(value, int) and not isinstance(value, bool):
                out[(q["queue"], q["channel"], name)] = value
    return out


def check_breach_topic(records: list[Any], path: Path, read_at: int, out: Outcome, *, false_is_failure: bool) -> None:
    counts = breaches_on_topic(records)
    expected = breach_visits(path)
    twice, missing = published_twice(counts), missing_breaches(counts, expected, read_at)
    false = false_breaches(counts, expected, read_at)
    out.notes.append(f"breaches: {sum(counts.values())} records for {len(counts)} visits; the file has "
                     f"{sum(1 for at in expected.values() if at < read_at)} due; twice {len(twice)}, "
                     f"missing {len(missing)}, not breaches (yet) {len(false)}")
    if twice:
        out.fail(f"breaches published twice: {len(twice)}, e.g. {sorted(twice)[:3]}")
    if missing:
        out.fail(f"breaches never published: {len(missing)}, e.g. {missing[:3]}")
    if false and false_is_failure:
        out.fail(f"breach records for visits that did not breach: {len(false)}, e.g. {false[:3]}")


def twin(worker: WorkerProcess, tmp: Path, name: str) -> WorkerProcess:
    """A second member of ``worker``'s consumer group: same app id and topics, own port, data dir and log."""
    data_dir = tmp / f"{worker.app_id}-{name}-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = worker_env(worker.bootstrap, worker.app_id, worker.topics, free_port(), data_dir,
                     worker.env["CXPULSE_WORKER__STORE"], None)
    env.update({k: v for k, v in worker.env.items() if k in ("BROKER_SESSION_TIMEOUT", "CXPULSE_REDIS__URL")})
    return WorkerProcess(worker.app_id, worker.topics, int(env["CXPULSE_WORKER__WEB_PORT"]), data_dir,
                         tmp / f"{worker.app_id}-{name}.log", env, worker.bootstrap)


async def ready(worker: WorkerProcess, timeout: float = 90.0) -> str | None:
    """None when ready, else why not (harness failures are pytest outcomes: caught here)."""
    try:
        await worker.wait_ready(timeout)
        return None
    except BaseException as exc:  # noqa: BLE001 - pytest.fail's exception
        return str(exc)[:600]


# ---------------------------------------------------------------------------------------------- a
async def scenario_a(args: argparse.Namespace, tmp: Path) -> bool:
    (tmp / "a").mkdir()
    run = await run_hostile(tmp / "a", args.kafka, args.redis, seed=args.seed, random_count=args.random,
                            duplicates=args.duplicates, huge=args.huge, minutes=args.minutes, scale=args.scale,
                            timeout=args.timeout)
    print_outcome("a. hostile input", run.outcome)
    return not run.outcome.failures


# ---------------------------------------------------------------------------------------------- b
def log_lines(worker: WorkerProcess, text: str) -> list[str]:
    """The lines of ``worker``'s log (every run of it: the log is appended to) that contain ``text``."""
    if not worker.log_path.exists():
        return []
    return [line.strip() for line in worker.log_path.read_text(errors="replace").splitlines() if text in line]


async def scenario_b(args: argparse.Namespace, tmp: Path) -> bool:
    out = Outcome()
    (tmp / "b").mkdir()
    path = tmp / "b" / "sim.jsonl"
    count = sim_for(path, args.events, args.seed)
    a = new_worker(tmp / "b", args.kafka, name="soak")
    a.env["BROKER_SESSION_TIMEOUT"] = "10"
    a.env["CXPULSE_REDIS__ENABLED"] = "false"
    b = twin(a, tmp / "b", "b")
    if args.static_membership:
        for worker, name in ((a, "a"), (b, "b")):
            worker.env["CXPULSE_WORKER__GROUP_INSTANCE_ID"] = f"{worker.app_id}-{name}"
            worker.env["CXPULSE_WORKER__CHECKPOINT_EVERY_SECONDS"] = "1"
            worker.env["CXPULSE_WORKER__STORE"] = "rocksdb://"  # the log needs the store to outlive the process
    workers = [a, b]
    results: list[str] = []
    try:
        await prepare_topics_for(a)
        a.start()
        if why := await ready(a):
            out.fail(f"worker A not ready: {why}")
            return False
        feeder = Feeder(args.kafka, a.topics, path, chunk=max(20, count // (args.repetitions * 45)), pause=0.5)
        feeding = asyncio.ensure_future(feeder.run())
        stay, victim = b, a  # the one that joins / stays, the one killed
        for rep in range(1, args.repetitions + 1):
            began = time.monotonic()
            if not stay.alive():
                stay.start()
            why = await ready(stay)
            sent_at_join = feeder.sent
            await asyncio.sleep(3.0)
            sent_at_kill = feeder.sent
            victim.kill()
            why = why or await ready(stay)
            await asyncio.sleep(args.hold)
            victim.start()
            why = why or await ready(victim)
            start_log = victim.start_log(300)
            how = ", ".join(f"{side} " + ("checkpoint and log" if f"{side} recovered from the checkpoint and the"
                                          in start_log else "rebuilt" if f"{side} recovered:" in start_log else "?")
                            for side in ("contacts", "customers"))
            results.append(f"rep {rep}: join at {sent_at_join}, kill -9 at {sent_at_kill} of {count} sent, rejoin "
                           f"{'ok' if why is None else 'FAILED: ' + why} ({time.monotonic() - began:.0f} s; "
                           f"{how})")
            if why:
                out.fail(f"repetition {rep}: {why}")
            stay, victim = victim, stay
        await feeding
        if not await wait_committed(args.kafka, workers, args.timeout):
            status = []
            for w in workers:
                try:
                    status.append(await w.status())
                except Exception as exc:  # noqa: BLE001
                    status.append(repr(exc))
            out.fail(f"the group did not commit every end offset within {args.timeout:.0f}s (a stalled hand-over?): "
                     f"{status}")
        await asyncio.sleep(3.0)
        docs = []
        for w in workers:
            if not w.alive():
                out.fail(f"worker on port {w.port} is not alive at the end:\n{w.log_tail(10)}")
                continue
            docs.append(await w.kpis(all_window=True))
        if docs:
            at = max(d["generated_at"] for d in docs)
            offline, summary = await asyncio.to_thread(replay_counts, path, at)
            out.notes.append(f"replay: {summary.splitlines()[0]}")
            summed: Counter[tuple[str, str, str]] = Counter()
            for d in docs:
                summed.update(count_fields(d))
            want = count_fields(offline)
            wrong = []
            for key in sorted(set(want) | set(summed)):
                if summed.get(key, 0) != want.get(key, 0):
                    diff = summed.get(key, 0) - want.get(key, 0)
                    out.lost += max(0, -diff) if key[2] in ("offered", "answered", "abandoned", "handled") else 0
                    out.doubled += max(0, diff) if key[2] in ("offered", "answered", "abandoned", "handled") else 0
                    wrong.append(f"{key}: workers {summed.get(key, 0)}, replay {want.get(key, 0)}")
            out.mismatches = wrong
            if wrong:
                out.fail(f"summed counts != replay ({len(wrong)} fields): " + "; ".join(wrong[:12]))
        # no commit may pass a record no stream processed (the shipped producers write no transaction markers)
        passed = [line for w in workers for line in log_lines(w, "committing past offset")]
        if passed:
            out.fail(f"{len(passed)} commits past an unprocessed record: {passed[0]}")
        kept = sum(len(log_lines(w, "a resume of the active flow kept")) for w in workers)
        out.notes.append(f"resumes of the active flow that kept queued records (mode's would have dropped them): "
                         f"{kept}")
        records = await consume_all(args.kafka, [a.topics.sla_breaches])
        # events are produced while read: a visit whose (minutes old) answer is not produced yet looks waiting,
        # so a breach of a visit the file says was answered in time is reported, not failed
        check_breach_topic(records, path, now_us(), out, false_is_failure=False)
        out.sent = {"contact+survey": Counter(valid=count)}
    finally:
        for w in workers:
            w.stop()
        if out.failures:  # the changelogs say which contact lost what: kept for a look (delete them by hand)
            out.notes.append(f"topics kept for inspection: {a.app_id}-* on {args.kafka}")
        else:
            await delete_topics_with_prefix(args.kafka, a.app_id)
    print_outcome(f"b. rebalance soak ({args.repetitions} repetitions)", out, results)
    return not out.failures


# ---------------------------------------------------------------------------------------------- c
def chaos_stack(*command: str) -> subprocess.CompletedProcess[str]:
    """deploy/local/stack.sh on the suite's own broker (never the shared one)."""
    env = {**os.environ, **CHAOS_STACK}
    return subprocess.run([str(ROOT / "deploy/local/stack.sh"), *command], env=env, text=True, capture_output=True,
                          timeout=240)


def chaos_kafka_pid() -> int | None:
    pid_file = Path(CHAOS_STACK["CXPULSE_STACK_DIR"]) / "kafka" / "kafka.pid"
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def link_jar_cache() -> None:
    """Reuse the shared jar cache: nothing is downloaded twice."""
    cache = Path(CHAOS_STACK["CXPULSE_STACK_DIR"]) / "kafka-jars"
    cache.mkdir(parents=True, exist_ok=True)
    for version in (ROOT / ".local" / "kafka-jars").iterdir():
        target = cache / version.name
        if not target.exists() and (version / ".complete").exists():
            target.symlink_to(version.resolve())


async def scenario_c(args: argparse.Namespace, tmp: Path) -> bool:
    out = Outcome()
    results: list[str] = []
    link_jar_cache()
    up = chaos_stack("up")
    if up.returncode != 0:
        out.fail(f"the chaos stack did not start: {up.stdout[-800:]} {up.stderr[-800:]}")
        print_outcome("c. broker stop/kill", out)
        return False
    bootstrap, redis = "127.0.0.1:29092", "redis://127.0.0.1:26379/0"
    (tmp / "c").mkdir()
    path = tmp / "c" / "sim.jsonl"
    count = sim_for(path, args.events, args.seed + 1)
    worker = new_worker(tmp / "c", bootstrap, name="outage")
    worker.env["CXPULSE_REDIS__URL"] = redis
    try:
        await prepare_topics_for(worker)
        worker.start()
        if why := await ready(worker):
            out.fail(f"worker not ready: {why}")
            return False
        feeder = Feeder(bootstrap, worker.topics, path, chunk=max(50, count // 40), pause=0.5)
        feeding = asyncio.ensure_future(feeder.run())
        for how, sig in (("stop (SIGTERM)", signal.SIGTERM), ("kill (SIGKILL)", signal.SIGKILL)):
            while feeder.sent < count * (0.3 if sig == signal.SIGTERM else 0.6) and not feeder.done.is_set():
                await asyncio.sleep(0.2)
            feeder.paused.set()
            pid = chaos_kafka_pid()
            if pid is None:
                out.fail("the chaos broker is not running")
                break
            before = (await worker.status()) if worker.alive() else {}
            os.kill(pid, sig)
            down_at = time.monotonic()
            for _ in range(600):
                if chaos_kafka_pid() is None:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(max(0.0, args.outage - (time.monotonic() - down_at)))
            ready_during = None
            try:
                ready_during = (await worker.get("/readyz"))[0]
            except Exception as exc:  # noqa: BLE001
                ready_during = repr(exc)
            up = chaos_stack("up")
            back_at = time.monotonic()
            if up.returncode != 0:
                out.fail(f"the chaos broker did not come back: {up.stdout[-500:]}")
                break
            try:
                before = await worker.status()
            except Exception:  # noqa: BLE001 - still reconnecting
                pass
            seen_before = WorkerProcess.seen(before) if "topics" in before else 0
            feeder.paused.clear()
            status, moved = await poll_status(worker, lambda st: WorkerProcess.seen(st) > seen_before, args.timeout)
            resumed = time.monotonic() - back_at
            results.append(f"broker {how} at {feeder.sent} of {count} sent, down {back_at - down_at:.0f} s; "
                           f"/readyz during the outage: {ready_during}; worker "
                           f"{'resumed ' + format(resumed, '.1f') + ' s after the broker was back' if moved else 'did NOT resume'}")
            if not moved:
                out.fail(f"after the broker {how}, the worker did not process anything within {args.timeout:.0f}s "
                         f"(alive: {worker.alive()}); log tail:\n{worker.log_tail(10)}")
        await feeding
        status, reached = await poll_status(worker, lambda st: WorkerProcess.seen(st) >= count, args.timeout)
        if not reached:
            out.fail(f"the worker saw {WorkerProcess.seen(status) if 'topics' in status else '?'} of {count} "
                     f"(alive: {worker.alive()})")
        if not await wait_committed(bootstrap, [worker], args.timeout):
            out.fail("not every end offset committed at the end")
        if worker.alive():
            diff: list[str] = []
            for _ in range(10):
                live = await worker.kpis(all_window=True)
                offline, summary = await asyncio.to_thread(replay_counts, path, live["generated_at"])
                diff = doc_diff(live, offline)
                if not diff:
                    break
                await asyncio.sleep(1.0)
            out.notes.append(f"replay: {summary.splitlines()[0]}")
            out.mismatches = diff
            if diff:
                want, have = count_fields(offline), count_fields(live)
                for key in set(want) | set(have):
                    if key[2] in ("offered", "answered", "abandoned", "handled"):
                        d = have.get(key, 0) - want.get(key, 0)
                        out.lost += max(0, -d)
                        out.doubled += max(0, d)
                out.fail(f"live document != replay ({len(diff)} leaves): " + "; ".join(diff[:12]))
        records = await consume_all(bootstrap, [worker.topics.sla_breaches])
        check_breach_topic(records, path, now_us(), out, false_is_failure=False)
        out.sent = {"contact+survey": Counter(valid=count)}
    finally:
        worker.stop()
        await delete_topics_with_prefix(bootstrap, worker.app_id)
        down = chaos_stack("down")
        results.append("chaos stack stopped" if down.returncode == 0 else f"chaos stack down failed: {down.stderr}")
    print_outcome("c. broker stop/kill", out, results)
    return not out.failures


# ---------------------------------------------------------------------------------------------- main
async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="a,b,c", help="which of a,b,c to run, comma-separated")
    parser.add_argument("--kafka", default=os.environ.get("CXPULSE_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092"))
    parser.add_argument("--redis", default=os.environ.get("CXPULSE_REDIS__URL", "redis://127.0.0.1:16379/0"))
    parser.add_argument("--seed", type=int, default=10, help="simulator and hypothesis seed")
    parser.add_argument("--random", type=int, default=600, help="a: hypothesis examples (hostile records)")
    parser.add_argument("--minutes", type=int, default=30, help="a: minutes of simulated valid stream")
    parser.add_argument("--scale", type=float, default=1.0, help="a: simulator scale (events ~ 47/min x scale)")
    parser.add_argument("--duplicates", type=int, default=20, help="a: exact re-sends of valid events")
    parser.add_argument("--huge", type=int, default=2, help="a: ~1 MB records (sent last)")
    parser.add_argument("--events", type=int, default=6000, help="b, c: simulator events streamed")
    parser.add_argument("--repetitions", type=int, default=3, help="b: join / kill -9 / rejoin rounds")
    parser.add_argument("--hold", type=float, default=4.0, help="b: seconds a killed worker stays down")
    parser.add_argument("--static-membership", action="store_true",
                        help="b: each worker with its own worker.group_instance_id (as the Helm chart runs them), rocksdb "
                        "and a checkpoint every second: a worker back within the 10 s session takes its partitions back "
                        "and starts from its checkpoint and log; one back later finds the other's writes and rebuilds")
    parser.add_argument("--outage", type=float, default=17.0, help="c: seconds the broker stays down each time")
    parser.add_argument("--timeout", type=float, default=150.0, help="seconds to wait for a worker to catch up")
    args = parser.parse_args()
    wanted = {s.strip() for s in args.scenarios.split(",") if s.strip()}
    tmp = Path(tempfile.mkdtemp(prefix="cxpulse-chaos-"))
    print(f"chaos: scenarios {','.join(sorted(wanted))}, seed {args.seed}, work dir {tmp}")
    ok = True
    for name, run in (("a", scenario_a), ("b", scenario_b), ("c", scenario_c)):
        if name in wanted:
            began = time.monotonic()
            passed = await run(args, tmp)
            print(f"  ({name} took {time.monotonic() - began:.0f} s)")
            ok = ok and passed
    print(f"\nchaos: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
