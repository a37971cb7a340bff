"""How fast ``cxpulse worker`` is next to a bare Faust agent on the same topic and the same events, in one run.

Why one run: this machine has 2 cores shared with other work, so an absolute events/s figure moves with the
load average from one hour to the next. Two consumers measured back to back on the same records, the same
broker and the same partition count see about the same machine; their *ratio* is the figure that says how much
of Faust's own pace cxpulse keeps (issue 9 asks for at least 0.7x; ``--repeat K`` interleaves the runs
a, b, a, b, ... and prints the median ratio, which a single noisy run cannot move much).

Steps:

1. The simulator writes a file (the shipped centre made flat over the day and scaled, exactly as
   ``bench/worker_throughput.py`` does; the first N lines are kept).
2. The file goes once to two fresh source topics (``<prefix>-contact-events``, ``<prefix>-survey-responses``,
   ``--partitions`` each, key = contact_id).
3. Each consumer then reads those same topics from the beginning as its own consumer group (a fresh app id):

   a. **bare Faust agent** (a subprocess of this script, so its Faust app has a process and an event loop of its
      own): ``stream.take_events(2000, within=0.05)`` and ``orjson.loads`` of every event, memory store, no
      state. It gets the worker's consumer settings (raw serializers, at-least-once, commit every 10,000 or
      1 s, stream buffer 8,192, session timeout 10 s) so that the ratio measures what cxpulse adds, not a
      different Faust configuration. It times itself: from the arrival of its first batch to the decoding of
      its N-th event;
   b. **cxpulse worker** (rocksdb store, every KPI, Redis sink under its own key prefix): a subprocess started
      by ``tests/integration/worker_harness.py`` with the source topics above and DLQ / breach / changelog
      topics of its own; ``/api/v1/status`` is polled every 100 ms and the rate is N / (last poll with nothing
      processed .. first poll with all N processed), as in ``bench/worker_throughput.py`` (the poll adds at most
      about 0.2 s to the worker's span, which makes its rate a little lower, never higher);
   c. (first round only, unless ``--skip-aiokafka``) **bare aiokafka**: ``getmany`` + ``orjson.loads`` of every
      event, for reference (the ceiling of the client library under Faust).

4. One table: each run's events/s and start-up, the ratio worker / bare Faust per round, the median ratio.
   Every topic created under the run's prefix is deleted at the end, and the temporary directory removed.

Usage::

    .venv/bin/python bench/faust_baseline.py                          # 200k events, 8 partitions
    .venv/bin/python bench/faust_baseline.py --events 100000 --repeat 3
    .venv/bin/python bench/faust_baseline.py --rev HEAD                 # a commit (git archive), not the tree

The first line of the output names the code measured: ``working tree at <HEAD>[+dirty]`` or ``commit <hash>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from worker_harness import WorkerProcess  # noqa: E402  (the integration tests' worker harness; no cxpulse import)

S = 1_000_000
EVENTS_PER_HOUR_AT_SCALE_1 = 2_800  # the shipped centre, flat profile (measured; as in bench/worker_throughput.py)
BATCH_MAX = 2000  # the bare agent: take_events(2000, within=0.05) (the worker: 2000, 0.05 s live, 0.5 s behind)
BATCH_WITHIN = 0.05


# ------------------------------------------------------------------------------------------------ shared helpers
def git_head() -> str:
    """The commit measured, with ``+dirty`` if cxpulse/ has uncommitted changes (the engine is being rebuilt in
    this checkout while benchmarks run, so a figure is only worth something next to the code it measured)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "cxpulse"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def use_code(rev: str | None, work: Path) -> str:
    """Which cxpulse the benchmark runs; returns the label printed with every figure.

    Without ``rev``: the working tree (``<HEAD>+dirty`` when cxpulse/ has uncommitted changes). With ``rev``:
    :func:`archive_code` unpacks it under ``work``, and that directory is put first on ``PYTHONPATH`` of this
    process and of every child (``cxpulse`` workers, replay, simulate). Why: the engine is rebuilt in this very
    checkout while benchmarks run, and neither stash nor checkout is allowed there; an archive measures exactly
    one commit, and the editable install's finder comes after ``PYTHONPATH`` on the import path."""
    if rev is None:
        return f"working tree at {git_head()}"
    src, commit = archive_code(rev, work)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))
    sys.path.insert(0, str(src))
    return f"commit {commit} (git archive)"


def archive_code(rev: str, work: Path) -> tuple[Path, str]:
    """``git archive <rev> cxpulse`` unpacked under ``work``; returns the directory to put first on
    ``PYTHONPATH`` and the short commit. A commit with a ``setup.py`` has its core compiled there (mypyc), as
    ``make venv`` does for the working tree, so each side runs what it would run installed."""
    commit = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    src = work / f"src-{commit}"
    src.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", commit, "cxpulse"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    build = subprocess.run(["git", "archive", commit, "setup.py", "pyproject.toml", "README.md"], cwd=ROOT,
                           capture_output=True)
    if build.returncode == 0:  # a commit whose core is compiled (setup.py): compiled here too, as installed
        subprocess.run(["tar", "-x", "-C", str(src)], input=build.stdout, check=True)
        print(f"bench: compiling the KPI core of {commit} (setup.py build_ext --inplace)", flush=True)
        subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=src, check=True,
                       capture_output=True)
    return src, commit


def proc_kb(pid: int, field: str) -> int:
    """``VmRSS`` / ``VmHWM`` (KiB) of a live process from /proc; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, every thread) a live process has used, from /proc; 0.0 if it is gone.

    Why beside the rates: on this shared machine a consumer's wall time moves with the load of other processes,
    its CPU time much less; CPU per event tells two versions of the worker apart when their rates' noise
    (a few % from round to round) hides the difference."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)
    except (OSError, ValueError, IndexError):
        return 0.0


def wall_of(text: str) -> float:
    """Unix seconds of an RFC 3339 instant as the worker writes it (``format_ts``)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def worker_pid(worker: WorkerProcess) -> int:
    """The worker's process id (0 before it was started: /proc then reads as nothing)."""
    return worker.proc.pid if worker.proc is not None else 0


def scaled_flat_file(path: Path, events: int, hours: float, seed: int = 1) -> int:
    """The first ``events`` lines of a simulator file of the shipped centre, flat over the day, scaled so that
    ``hours`` of it hold about 1.15 x ``events`` (the recipe of bench/worker_throughput.py); returns the count."""
    from worker_harness import now_us, simulate_file

    scale = 1.15 * events / (EVENTS_PER_HOUR_AT_SCALE_1 * hours)
    total = simulate_file(path, start_us=(now_us() // S - int(hours * 3600) - 120) * S,
                          seconds=int(hours * 3600), seed=seed, scale=scale)
    if total < events:
        raise SystemExit(f"the simulator wrote {total} events, fewer than {events}: raise --hours")
    lines = path.read_bytes().splitlines(keepends=True)[:events]
    path.write_bytes(b"".join(lines))
    return len(lines)


def bench_worker(work: Path, bootstrap: str, app_id: str, source: tuple[str, str], partitions: int,
                 store: str = "rocksdb://", extra_env: dict[str, str] | None = None) -> WorkerProcess:
    """A ``WorkerProcess`` (not started) reading the given source topics with its own app id, data dir, port,
    DLQ / breach topics (``<app id>-...``, so a second worker on the same source starts from an empty breach
    log and does the same work as the first) and partition count."""
    from worker_harness import Topics, free_port, worker_env

    topics = Topics(
        contact_events=source[0],
        survey_responses=source[1],
        contact_events_dlq=f"{app_id}-contact-events-dlq",
        survey_responses_dlq=f"{app_id}-survey-responses-dlq",
        sla_breaches=f"{app_id}-sla-breaches",
    )
    data_dir = work / f"{app_id}-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = worker_env(bootstrap, app_id, topics, free_port(), data_dir, store, None)
    env["CXPULSE_KAFKA__PARTITIONS"] = str(partitions)
    env.pop("CXPULSE_WORKER__RECENT_CONTACTS", None)  # the tests' 2; a benchmark measures the default
    env.update(extra_env or {})  # e.g. CXPULSE_WORKER__ROCKSDB_BLOCK_CACHE_MIB=1: settings compared in one run
    port = int(env["CXPULSE_WORKER__WEB_PORT"])
    return WorkerProcess(app_id, topics, port, data_dir, work / f"{app_id}.log", env, bootstrap)


def delete_redis_keys(prefix: str) -> None:
    """Delete the Redis keys ``<prefix>*`` the benchmark's workers wrote (the harness gives each worker the key
    prefix ``test-<app id>``); they would expire on their own, this only keeps the shared Redis tidy."""
    try:
        import redis

        client = redis.Redis.from_url(os.environ.get("CXPULSE_REDIS__URL", "redis://127.0.0.1:16379/0"))
        doomed = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if doomed:
            client.delete(*doomed)
    except Exception:  # noqa: BLE001 - tidying up must not hide the figures
        pass


async def prepare_worker_topics(worker: WorkerProcess) -> None:
    """Create the worker's topics and changelogs up front with its partition count (what ``cxpulse worker``
    does at start-up), so that records produced before it starts land on the partitions it will own."""
    from cxpulse.settings import load_settings
    from cxpulse.streams.runner import prepare_topics

    saved = dict(os.environ)
    os.environ.update(worker.env)
    try:
        await prepare_topics(load_settings())
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass
class WorkerRun:
    """What one worker run measured."""

    ready_s: float  # start -> /readyz 200
    span_s: float  # last poll with nothing processed .. the last event handled (the worker's own clock)
    rate: float  # events / span_s
    steady_rate: float  # between 10% and 90% of the events
    rss_kb: int  # VmRSS right after the last event
    status: dict[str, Any]
    cpu_s: float = 0.0  # CPU seconds of the worker process over the span (to the poll that saw every event)


async def measure_worker(worker: WorkerProcess, events: int, *, timeout: float, ready_timeout: float = 120.0,
                         progress_every: float = 0.0, poll: float = 0.1, poll_busy: float = 0.5,
                         say: Callable[[str], None] = print, profile: Path | None = None,
                         native: bool = False) -> WorkerRun:
    """Start ``worker`` on a backlog of ``events`` records and time it from its first to its last processed
    event (start-up and recovery are reported apart). The start: the last poll of ``/api/v1/status`` (every
    ``poll`` seconds until something is processed) that saw nothing processed. The end: the status's
    ``last_processed``, the worker's own wall clock at its last event, read by the first poll (every
    ``poll_busy`` seconds meanwhile) that sees every event. Why not poll every 100 ms throughout: each request
    costs the worker about a millisecond of its event loop (aiohttp), 1.5% of its time in a py-spy profile
    (session 16), a cost the bare Faust agent, which times itself, does not pay. With
    ``progress_every`` > 0, a progress line (seen, rate so far, RSS) every that many seconds: a week of events
    takes minutes, and a silent benchmark cannot be told from a stuck one. With ``profile``, py-spy samples the
    worker from ready to the last event into that file (raw stacks) and the top functions are printed (the
    sampling costs the worker a little: do not take that run's rate for a figure)."""
    worker.start()
    ready_s = await worker.wait_ready(timeout=ready_timeout)
    spy = start_profile(worker_pid(worker), profile, native) if profile else None
    samples: list[tuple[float, int]] = []
    cpu: list[float] = []  # the worker's CPU seconds at each sample
    deadline = time.monotonic() + timeout
    next_report = time.monotonic() + progress_every
    seen = 0
    status: dict[str, Any] = {}
    while seen < events:
        if time.monotonic() > deadline or not worker.alive():
            raise SystemExit(f"worker stopped at {seen}/{events} processed; log:\n{worker.log_tail()}")
        status = await worker.status()
        seen = worker.seen(status)
        now, wall = time.monotonic(), time.time()
        cpu.append(proc_cpu_s(worker_pid(worker)))
        if seen >= events and status.get("last_processed"):  # the worker's own time of its last event
            now = min(now, max(now - (wall - wall_of(status["last_processed"])), samples[-1][0] if samples else 0))
        samples.append((now, seen))
        if progress_every and now >= next_report:
            began = next((t for t, n in reversed(samples) if n == 0), samples[0][0])
            rate = seen / (now - began) if now > began else 0.0
            say(f"    worker {seen:>10,}/{events:,} events  {rate:8,.0f} events/s so far  "
                f"RSS {proc_kb(worker_pid(worker), 'VmRSS') / 1024:,.0f} MiB")
            next_report = now + progress_every
        if seen < events:  # a worker before session 16 has no last_processed: polled every ``poll`` throughout
            await asyncio.sleep(poll if seen == 0 or "last_processed" not in status else poll_busy)
    rss_kb = proc_kb(worker_pid(worker), "VmRSS")
    if spy is not None and profile is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        spy.wait(timeout=60)
        say(top_functions(profile))
    first_at = next(t for t, n in samples if n > 0)
    start = max((k for k, (_, n) in enumerate(samples) if n == 0), default=None)
    before_first = samples[start][0] if start is not None else first_at
    span = samples[-1][0] - before_first
    cpu_s = cpu[-1] - cpu[start] if start is not None else cpu[-1]
    return WorkerRun(ready_s, span, events / span, steady_rate(samples, events), rss_kb, status, cpu_s)


def py_spy() -> list[str]:
    """The py-spy command with the options both profiles share (``FAUST_BASELINE_IDLE=1``: idle samples too)."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        raise SystemExit("--profile needs py-spy on PATH (pip install py-spy)")
    idle = ["--idle"] if os.environ.get("FAUST_BASELINE_IDLE") else []  # how much the event loop waits
    return [spy, "record", "--rate", "200", "--format", "raw", *idle]


def start_profile(pid: int, out: Path, native: bool = False) -> subprocess.Popen[bytes]:
    """py-spy (a sampling profiler that attaches to a running process) on ``pid``, raw stacks into ``out``;
    ``native`` adds the C frames (the compiled core is invisible without them, its time lands on its caller)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    # py-spy reads native stacks only from a paused process: --native costs the worker some of its pace
    mode = ["--native"] if native else ["--nonblocking"]
    return subprocess.Popen([*py_spy(), "--pid", str(pid), *mode, "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def top_functions(path: Path, top: int = 30) -> str:
    """The functions with the most samples in a raw py-spy file: on the stack at all (inclusive) and on top
    (self), as shares of the samples of the main thread."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [f.rsplit(":", 1)[0] for f in stack.split(";")]  # drop line numbers: one row per function
        count = int(count_text)
        total += count
        for frame in set(frames[1:]):
            inclusive[frame] = inclusive.get(frame, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count
    if not total:
        return f"  profile {path}: no samples"
    lines = [f"  profile {path}: {total:,} samples; inclusive % | self % | function"]
    for frame, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"    {100 * count / total:5.1f} | {100 * own.get(frame, 0) / total:5.1f} | {frame[:150]}")
    lines.append("  top self:")
    for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"    {100 * count / total:5.1f} | {frame[:150]}")
    return "\n".join(lines)


def cpu_us(cpu_s: float, events: int) -> float:
    return 1e6 * cpu_s / events


# ------------------------------------------------------------------------------------------------ children
def steady_rate(marks: list[tuple[float, int]], events: int) -> float:
    """events/s between 10% and 90% of ``events`` (NaN if too few marks): the rate without the ramp-up of the
    first fetches and the tail of the last partitions, to see whether first..last hides a slow start."""
    steady = [(t, n) for t, n in marks if 0.1 * events <= n <= 0.9 * events]
    if len(steady) < 2 or steady[-1][0] <= steady[0][0]:
        return float("nan")
    return (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0])


def child_faust(args: argparse.Namespace) -> None:
    """The bare Faust agent (runs in its own process): decode every event, keep nothing, time itself."""
    import faust
    import orjson

    started = time.monotonic()
    app = faust.App(
        args.app_id,
        broker=[f"kafka://{server.strip()}" for server in args.kafka.split(",")],
        store="memory://",
        datadir=str(Path(args.result).parent / f"{args.app_id}-data"),  # not the caller's cwd
        web_enabled=False,
        topic_partitions=args.partitions,
        topic_replication_factor=1,
        key_serializer="raw",
        value_serializer="raw",
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        table_standby_replicas=0,
        broker_commit_every=10_000,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=8192,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
    )
    source = app.topic(*args.topics.split(","), value_serializer="raw", key_serializer="raw")
    state: dict[str, float] = {"count": 0}
    marks: list[tuple[float, int]] = []  # (time, events so far) after each batch

    @app.agent(source, name="bare")
    async def bare(stream: Any) -> None:
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
            if "first" not in state:
                state["first"] = time.monotonic()
                state["cpu_first"] = time.process_time()
            for event in batch:
                orjson.loads(event.value)
            state["count"] += len(batch)
            marks.append((time.monotonic(), int(state["count"])))
            if state["count"] >= args.events and "done" not in state:
                state["done"] = time.monotonic()
                result = {"events": int(state["count"]), "span_s": state["done"] - state["first"],
                          "cpu_s": time.process_time() - state["cpu_first"],
                          "startup_s": state["first"] - started, "steady": steady_rate(marks, args.events),
                          "batches": len(marks)}
                Path(args.result).write_text(json.dumps(result))  # Faust routes sys.stdout to its logger
                os.kill(os.getpid(), signal.SIGTERM)  # Faust's own orderly shutdown

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


def child_aiokafka(args: argparse.Namespace) -> None:
    """Bare aiokafka (own process): ``getmany`` + decode of every event; the client library's ceiling."""
    import orjson
    from aiokafka import AIOKafkaConsumer

    async def run() -> None:
        started = time.monotonic()
        consumer = AIOKafkaConsumer(*args.topics.split(","), bootstrap_servers=args.kafka, group_id=args.app_id,
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    client_id=args.app_id)
        await consumer.start()
        count = 0
        first = 0.0
        marks: list[tuple[float, int]] = []
        try:
            while count < args.events:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    if records and not first:
                        first = time.monotonic()
                    for record in records:
                        orjson.loads(record.value)
                    count += len(records)
                marks.append((time.monotonic(), count))
            done = time.monotonic()
        finally:
            await consumer.stop()
        result = {"events": count, "span_s": done - first, "startup_s": first - started,
                  "steady": steady_rate(marks, args.events), "batches": len(marks)}
        Path(args.result).write_text(json.dumps(result))

    asyncio.run(run())


@dataclass
class ChildRun:
    """What a bare consumer (Faust or aiokafka) measured of itself."""

    startup_s: float
    span_s: float
    rate: float
    steady_rate: float  # between 10% and 90% of the events
    batches: int
    cpu_s: float = 0.0  # CPU seconds of the process over the span (the Faust child; 0 for aiokafka)


def run_child(kind: str, app_id: str, args: argparse.Namespace, source: tuple[str, str], log: Path) -> ChildRun:
    """Run this script as ``--child KIND`` in its own process group and wait for it to exit (so the next
    measurement does not share the CPU with its shutdown); it leaves its figures in a JSON file."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--app-id", app_id,
           "--topics", ",".join(source), "--events", str(args.events), "--partitions", str(args.partitions),
           "--kafka", args.kafka, "--result", str(log.with_suffix(".json"))]
    if args.profile and kind == "faust":  # the bare agent sampled too: what Faust's own machinery costs it
        args.profile.mkdir(parents=True, exist_ok=True)
        cmd = [*py_spy(), "--nonblocking", "--subprocesses",
               "--output", str(args.profile / f"{app_id.rsplit('-', 1)[-1]}.txt"), "--", *cmd]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        try:
            proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise SystemExit(f"{kind} child did not finish in {args.timeout:.0f}s; log {log}:\n"
                             + log.read_text(errors="replace")[-3000:])
    try:
        result = json.loads(log.with_suffix(".json").read_text())
    except (OSError, ValueError):
        raise SystemExit(f"{kind} child left no result (rc {proc.returncode}); log:\n"
                         + log.read_text(errors="replace")[-3000:]) from None
    return ChildRun(result["startup_s"], result["span_s"], result["events"] / result["span_s"], result["steady"],
                    result["batches"], result.get("cpu_s", 0.0))


# ------------------------------------------------------------------------------------------------ main
async def main(args: argparse.Namespace) -> None:
    from cxpulse.kafka_io import ensure_topics
    from worker_harness import Topics, delete_topics_with_prefix, produce_file

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="cxpulse-fbase-", dir="/tmp"))
    commit = use_code(args.rev, work)
    prefix = f"bench-fb-{uuid.uuid4().hex[:8]}"
    source = (f"{prefix}-contact-events", f"{prefix}-survey-responses")
    print(f"faust_baseline: {commit}, {args.events:,} events, {args.partitions} partitions, "
          f"repeat {args.repeat}, prefix {prefix}, load average {load_before[0]:.2f}"
          + (f", worker env {' '.join(args.worker_env)}" if args.worker_env else ""), flush=True)
    bare_runs: list[ChildRun] = []
    worker_runs: list[WorkerRun] = []
    aiokafka_run: ChildRun | None = None
    try:
        path = work / "events.jsonl"
        began = time.monotonic()
        scaled_flat_file(path, args.events, args.hours)
        print(f"  simulated {args.events:,} events in {time.monotonic() - began:.1f} s", flush=True)
        await ensure_topics(args.kafka, list(source), partitions=args.partitions)
        began = time.monotonic()
        dummy = Topics(source[0], source[1], "", "", "")
        produced = await produce_file(args.kafka, dummy, path)
        assert produced == args.events, produced
        print(f"  produced to {source[0]} / {source[1]} in {time.monotonic() - began:.1f} s", flush=True)

        for k in range(1, args.repeat + 1):
            bare = run_child("faust", f"{prefix}-bare{k}", args, source, work / f"bare{k}.log")
            bare_runs.append(bare)
            print(f"  round {k}: bare Faust agent {bare.rate:9,.0f} events/s (steady {bare.steady_rate:,.0f}, "
                  f"{bare.batches} batches, start-up {bare.startup_s:.1f} s)", flush=True)
            worker = bench_worker(work, args.kafka, f"{prefix}-w{k}", source, args.partitions,
                                  extra_env=dict(item.split("=", 1) for item in args.worker_env))
            await prepare_worker_topics(worker)
            try:
                run = await measure_worker(worker, args.events, timeout=args.timeout,
                                           profile=args.profile / f"worker{k}.txt" if args.profile else None,
                                           native=args.native)
            finally:
                worker.stop(grace=60)
            worker_runs.append(run)
            print(f"  round {k}: cxpulse worker   {run.rate:9,.0f} events/s "
                  f"(start-up {run.ready_s:.1f} s) -> ratio {run.rate / bare.rate:.2f}; CPU per event: bare "
                  f"{cpu_us(bare.cpu_s, args.events):.0f} us, worker {cpu_us(run.cpu_s, args.events):.0f} us",
                  flush=True)
            if k == 1 and not args.skip_aiokafka:
                aiokafka_run = run_child("aiokafka", f"{prefix}-aiokafka", args, source, work / "aiokafka.log")
                print(f"  round {k}: bare aiokafka    {aiokafka_run.rate:9,.0f} events/s", flush=True)
    finally:
        if not args.keep:
            await delete_topics_with_prefix(args.kafka, prefix)
            delete_redis_keys(f"test-{prefix}")
            shutil.rmtree(work, ignore_errors=True)

    ratios = [w.rate / b.rate for w, b in zip(worker_runs, bare_runs)]
    load_after = os.getloadavg()
    print()
    print(f"one-run comparison, {commit}: {args.events:,} events on {args.partitions} partitions, "
          f"same topics; load average {load_before[0]:.2f} -> {load_after[0]:.2f}")
    print("| round | bare Faust agent events/s (steady 10-90%) | cxpulse worker events/s (steady 10-90%) "
          "| worker / bare | CPU us/event bare, worker | bare start-up s | worker start->ready s | worker RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for k, (b, w) in enumerate(zip(bare_runs, worker_runs), 1):
        print(f"| {k} | {b.rate:,.0f} ({b.steady_rate:,.0f}) | {w.rate:,.0f} ({w.steady_rate:,.0f}) | "
              f"{w.rate / b.rate:.2f}x | {cpu_us(b.cpu_s, args.events):.0f}, {cpu_us(w.cpu_s, args.events):.0f} | "
              f"{b.startup_s:.1f} | {w.ready_s:.1f} | {w.rss_kb / 1024:,.0f} |")
    if aiokafka_run is not None:
        print(f"bare aiokafka getmany + orjson decode: {aiokafka_run.rate:,.0f} events/s "
              f"(steady {aiokafka_run.steady_rate:,.0f}; reference)")
    print(f"median CPU per event: bare Faust {statistics.median(cpu_us(b.cpu_s, args.events) for b in bare_runs):.0f}"
          f" us, worker {statistics.median(cpu_us(w.cpu_s, args.events) for w in worker_runs):.0f} us")
    print(f"median bare Faust {statistics.median(b.rate for b in bare_runs):,.0f} events/s, median worker "
          f"{statistics.median(w.rate for w in worker_runs):,.0f} events/s, "
          f"median ratio worker / bare Faust: {statistics.median(ratios):.2f}x")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events each consumer reads (N)")
    parser.add_argument("--partitions", type=int, default=8, help="partitions of the source topics")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of (bare Faust, worker); median ratio")
    parser.add_argument("--hours", type=float, default=4.0, help="simulated hours the N events span")
    parser.add_argument("--kafka", default=os.environ.get("CXPULSE_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092"))
    parser.add_argument("--timeout", type=float, default=900.0, help="give up on one consumer after this many s")
    parser.add_argument("--skip-aiokafka", action="store_true", help="no bare aiokafka reference run")
    parser.add_argument("--keep", action="store_true", help="keep the topics and the temporary directory")
    parser.add_argument("--rev", help="measure this commit (git archive) instead of the working tree")
    parser.add_argument("--worker-env", action="append", default=[], metavar="KEY=VALUE",
                        help="an environment variable for the worker (repeatable), e.g. CXPULSE_REDIS__ENABLED=false")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy samples of each worker run into DIR (raw stacks) and its top functions printed")
    parser.add_argument("--native", action="store_true", help="with --profile: C frames too (the compiled core)")
    parser.add_argument("--child", choices=("faust", "aiokafka"), help=argparse.SUPPRESS)
    parser.add_argument("--app-id", help=argparse.SUPPRESS)
    parser.add_argument("--topics", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.child == "faust":
        child_faust(arguments)
    elif arguments.child == "aiokafka":
        child_aiokafka(arguments)
    else:
        asyncio.run(main(arguments))
