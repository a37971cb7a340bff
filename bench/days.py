"""What N simulated days of a large centre cost: ``cxpulse replay`` and one ``cxpulse worker``, memory and time.

Why: kpis.md asks every contact to be remembered for 30 days (FCR, survey attribution, duplicates), so what a
worker holds grows with the days it has seen. Issue 9 (Engine v2) sets limits on a week of a centre of about
66k contacts a day (1.5M events): replay speed, peak memory of replay and of a loaded worker, and the time a
loaded worker needs to be ready again after a restart; and it asks that the memory per remembered contact be
flat, so that 7 and 14 days (and so 31) can be compared. This script prints all of those in one table.

Steps:

1. The shipped centre (``cxpulse/simulator/centres/default.yaml``, with its hour profile) is scaled, arrivals and
   agents, to about ``--contacts-per-day`` and written to a temporary YAML; ``cxpulse simulate --out FILE
   --fast`` writes ``--days`` days of it ending two minutes ago (so nothing is in the future for the worker).
2. Unless ``--skip-replay``: ``cxpulse replay FILE`` as a subprocess; events/s over the wall time (start-up
   included) and the core's own events/s (what replay prints), peak RSS (``/usr/bin/time -f %M``, else the
   largest ``VmHWM`` polled), and the same for a replay of a one-event file: the start-up footprint, subtracted
   to get the bytes per remembered contact. Then, for each number in ``--replay-jobs`` above 1 (default ``auto``,
   one per CPU; skipped for a ``--rev`` whose replay has no ``--jobs``), ``cxpulse replay --jobs N``: the same
   figures, its peak memory being the largest sum of the RSS of its processes (polled every 50 ms). With
   ``--replay-baseline REV``, the same file is then replayed by REV's code too, and each replay's speed is
   printed as a ratio to the baseline's one process.
3. Unless ``--skip-worker``: an empty worker (own empty topics) is started to learn the RSS of a worker holding
   nothing; then the file goes to fresh topics and one worker (rocksdb store, every KPI, Redis sink under its
   own key prefix) consumes it: events/s from its first to its last processed event (``/api/v1/status``
   polled, as in ``bench/worker_throughput.py``), its RSS once everything is processed, then a kill -9 at once
   and a start: the time to ``/readyz`` 200 (the contact side is read from its last checkpoint taken while
   running and the contacts stored since, see ``cxpulse/streams/checkpoint.py``; the customers are rebuilt);
   then SIGTERM, its data dir size (``du``), a start again and the time to ``/readyz`` 200 (the stop wrote a
   checkpoint of the live state: the start reads it back), and its RSS once ready; then (``--no-cold-restart``
   skips it) a stop, the checkpoints deleted, and a start that rebuilds every contact from the tables.
4. Bytes per remembered contact = (RSS − RSS of the empty one) / contacts in the file (every contact of a run of
   up to 30 days is still remembered).

Every topic under the run's prefix, the Redis keys of its workers and the temporary directory are removed at
the end (``--keep`` keeps them).

Usage::

    .venv/bin/python bench/days.py --days 1                # a quick run (about 214k events)
    .venv/bin/python bench/days.py --days 7                # the week of issue 9 (about 1.5M events)
    .venv/bin/python bench/days.py --days 14 --skip-replay
    .venv/bin/python bench/days.py --days 7 --rev HEAD     # a commit (git archive) instead of the working tree
    .venv/bin/python bench/days.py --days 7 --skip-worker --replay-baseline 8c75dd0   # replay, next to Engine v1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faust_baseline import (  # noqa: E402  (the sibling script's worker measurement, shared on purpose)
    bench_worker,
    delete_redis_keys,
    measure_worker,
    prepare_worker_topics,
    archive_code,
    proc_kb,
    use_code,
    worker_pid,
)

S = 1_000_000
# the shipped centre with its hour profile, measured (cxpulse simulate --fast --seed 1, one day from midnight
# UTC): 15,408 contacts and 51,252 events a day at scale 1
CONTACTS_PER_DAY_AT_SCALE_1 = 15_400
MIB = 1024 * 1024


def say(text: str) -> None:
    """Progress lines, flushed at once: a week takes minutes and must not look stuck."""
    print(text, flush=True)


def cxpulse_bin() -> str:
    from worker_harness import CXPULSE

    return CXPULSE


def child_env() -> dict[str, str]:
    """The environment of simulate / replay: no CXPULSE_* settings leak in from the developer's shell (the
    shipped defaults are what is measured), ``PYTHONPATH`` kept (it selects the code under ``--rev``)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CXPULSE_")}


# ------------------------------------------------------------------------------------------------ simulate
@dataclass
class Simulated:
    """The event file and what it holds."""

    path: Path
    events: int
    contacts: int
    customers: int
    surveys: int
    seconds: float  # wall time of the simulator


def simulate_days(work: Path, days: float, contacts_per_day: int, seed: int) -> Simulated:
    """``days`` days of the shipped centre scaled to ``contacts_per_day``, ending two minutes ago."""
    from cxpulse.simulator.centre import DEFAULT_CENTRE

    scale = contacts_per_day / CONTACTS_PER_DAY_AT_SCALE_1
    centre = yaml.safe_load(DEFAULT_CENTRE.read_text(encoding="utf-8"))
    for queue in centre["queues"].values():
        queue["arrivals_per_hour"] = queue["arrivals_per_hour"] * scale
        queue["agents"] = max(1, round(queue["agents"] * scale))
    centre_file = work / "centre.yaml"
    centre_file.write_text(yaml.safe_dump(centre), encoding="utf-8")
    seconds = int(days * 86400)
    from worker_harness import iso, now_us

    start_us = (now_us() // S - seconds - 120) * S
    path = work / "events.jsonl"
    began = time.monotonic()
    done = subprocess.run(
        [cxpulse_bin(), "simulate", "--centre", str(centre_file), "--out", str(path), "--fast", "--seed", str(seed),
         "--start", iso(start_us), "--duration", f"{seconds}s"],
        capture_output=True, env=child_env(),
    )
    if done.returncode != 0:
        raise SystemExit(f"cxpulse simulate failed: {done.stderr.decode(errors='replace')[-2000:]}")
    simulated_s = time.monotonic() - began
    events = surveys = 0
    contacts: set[str] = set()
    customers: set[str] = set()
    with path.open("rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            event = orjson.loads(line)
            events += 1
            contacts.add(event["contact_id"])
            if event.get("customer_id"):
                customers.add(event["customer_id"])
            if event.get("type") == "survey.response":
                surveys += 1
    return Simulated(path, events, len(contacts), len(customers), surveys, simulated_s)


# ------------------------------------------------------------------------------------------------ replay
@dataclass
class ReplayRun:
    """One ``cxpulse replay`` subprocess."""

    wall_s: float
    peak_rss_kb: int  # the replay's own maximum RSS (GNU time's %M), or the largest VmHWM polled
    peak_how: str  # which of the two
    core_rate: float | None  # what replay itself prints: events per second spent in the core
    summary: str


GNU_TIME = Path("/usr/bin/time")


def _child_pid(pid: int) -> int:
    """The first child of ``pid`` (the replay under /usr/bin/time), or ``pid`` itself if it has none."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return pid
    return int(children[0]) if children else pid


def tree_rss_kb(pid: int) -> int:
    """VmRSS of ``pid`` and of all its descendants, summed (a split replay's processes)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += proc_kb(current, "VmRSS")
        try:
            todo += [int(child) for child in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
        except (OSError, ValueError):
            pass
    return total


def rss_parts(pid: int) -> str:
    """What a process's RSS is made of (``/proc/PID/smaps_rollup``): anonymous memory (Python objects, the
    allocators, RocksDB's caches and memtables) against file-backed pages (the interpreter, libraries)."""
    fields: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                fields[name] = int(rest.split()[0])
    except (OSError, ValueError):
        return "smaps_rollup unreadable"
    anon = fields.get("Anonymous", 0)
    return f"anonymous {anon / 1024:,.0f} MiB, file-backed {(fields.get('Rss', 0) - anon) / 1024:,.0f} MiB"


def run_replay(path: Path, log: Path, progress_every: float = 15.0, jobs: int = 1,
               env: dict[str, str] | None = None) -> ReplayRun:
    """``cxpulse replay FILE --no-progress`` (its table to /dev/null); wall time and peak RSS of the replay.

    Why GNU ``time`` and not this process's ``wait4`` / ``RUSAGE_CHILDREN``: Linux charges a child's maximum
    RSS with the memory image it had before ``exec``, i.e. a copy of *this* process (which holds the contact
    ids of the whole file), so a small replay would report this script's size. ``/usr/bin/time`` is a tiny
    parent; without it, the largest ``VmHWM`` polled every 50 ms (it can miss the last 50 ms of growth).
    ``env``: the child's environment (default :func:`child_env`; the baseline's selects other code)."""
    rss_file = log.with_suffix(".maxrss")
    cmd = [cxpulse_bin(), "replay", str(path), "--no-progress"]
    if jobs > 1:  # GNU time's %M is the largest single process: the sum is polled instead
        cmd += ["--jobs", str(jobs)]
    if GNU_TIME.exists() and jobs == 1:
        cmd = [str(GNU_TIME), "-f", "%M", "-o", str(rss_file)] + cmd
    began = time.monotonic()
    polled_hwm = 0
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env or child_env())
        next_report = began + progress_every
        while proc.poll() is None:
            if jobs > 1:
                polled_hwm = max(polled_hwm, tree_rss_kb(proc.pid))
                time.sleep(0.05)
                continue
            replay_pid = _child_pid(proc.pid) if GNU_TIME.exists() else proc.pid
            polled_hwm = max(polled_hwm, proc_kb(replay_pid, "VmHWM"))
            if progress_every and time.monotonic() >= next_report:
                say(f"    replay running {time.monotonic() - began:6.0f} s, RSS "
                    f"{proc_kb(replay_pid, 'VmRSS') / 1024:,.0f} MiB")
                next_report += progress_every
            time.sleep(0.05)
    wall = time.monotonic() - began
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"cxpulse replay failed (rc {proc.returncode}):\n{text[-2000:]}")
    peak, how = polled_hwm, "VmHWM polled every 50 ms"
    if jobs > 1:
        how = f"the sum of {jobs + 1} processes' VmRSS, polled every 50 ms"
    else:
        try:
            peak, how = int(rss_file.read_text().split()[-1]), "GNU time %M"
        except (OSError, ValueError, IndexError):
            pass
    summary = next((line for line in text.splitlines() if " events in " in line), "")
    match = re.search(r"\(([\d,]+) events/s", summary)
    core = float(match.group(1).replace(",", "")) if match else None
    return ReplayRun(wall, peak, how, core, summary.strip())


def source_digest() -> str:
    """A digest of the package the benchmark runs (first on ``sys.path``): a checkpoint is only read back by the
    same code (``cxpulse/streams/checkpoint.py``), so a tree edited during a run turns the restart into a rebuild."""
    import hashlib

    import cxpulse

    digest = hashlib.sha256()
    package = Path(cxpulse.__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def replay_jobs(text: str) -> list[int]:
    """``--replay-jobs``: the process counts above 1 to replay with (``auto``: what ``cxpulse replay --jobs auto``
    takes; only asked of code that has ``--jobs``, see :func:`replay_has_jobs`)."""
    from cxpulse.parallel_replay import default_jobs

    out: list[int] = []
    for item in text.split(","):
        item = item.strip()
        if item in ("", "none", "1"):
            continue
        count = default_jobs() if item == "auto" else int(item)
        if count > 1 and count not in out:
            out.append(count)
    return out


def replay_has_jobs(env: dict[str, str] | None = None) -> bool:
    """Whether the measured code's replay knows ``--jobs`` (a ``--rev`` before it does not)."""
    done = subprocess.run([cxpulse_bin(), "replay", "--help"], capture_output=True, env=env or child_env(), text=True)
    return "--jobs" in done.stdout


def replay_baseline(rev: str, sim: Simulated, work: Path,
                    job_counts: list[int]) -> tuple[str, list[tuple[int, ReplayRun]]]:
    """``--replay-baseline REV``: the same file replayed by REV's code (git archive, first on the child's
    ``PYTHONPATH`` only), with one process and with each of ``job_counts`` it knows. Why in the same run: this
    machine is shared and noisy, and its speed changes from one session to the next; a figure means something
    only next to its baseline measured on the same file within minutes."""
    src, commit = archive_code(rev, work / "baseline")
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    runs: list[tuple[int, ReplayRun]] = []
    for jobs in [1] + (job_counts if replay_has_jobs(env) else []):
        run = run_replay(sim.path, work / f"baseline-{jobs}.log", jobs=jobs, env=env)
        runs.append((jobs, run))
        say(f"  replay of the baseline {commit}" + (f" --jobs {jobs}" if jobs > 1 else "")
            + f": {sim.events / run.wall_s:,.0f} events/s wall, peak RSS {run.peak_rss_kb / 1024:,.0f} MiB; "
            f"{run.summary}")
    return commit, runs


# ------------------------------------------------------------------------------------------------ worker
@dataclass
class WorkerDays:
    """What the worker part measured."""

    empty_rss_kb: int
    produce_s: float
    ready_s: float
    rate: float
    steady_rate: float
    rss_loaded_kb: int
    hwm_loaded_kb: int
    stop_s: float
    data_dir_kb: int
    restart_ready_s: float
    rss_ready_kb: int
    rss_ready_later_kb: int
    restart_how: str = ""  # "from the checkpoint" or "rebuilt"
    cold_restart_s: float = 0.0  # with the checkpoints deleted (every contact rebuilt); 0: not measured
    cold_rss_kb: int = 0
    killed_restart_s: float = 0.0  # after a kill -9 at the end of the load
    killed_how: str = ""
    killed_rss_kb: int = 0


def du_kb(path: Path) -> int:
    """Disk use of a directory in KiB (``du -sk``: blocks, what the volume must hold)."""
    done = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True)
    try:
        return int(done.stdout.split()[0])
    except (ValueError, IndexError):
        return 0


async def run_worker(args: argparse.Namespace, work: Path, prefix: str, sim: Simulated) -> WorkerDays:
    """The empty worker, then the loaded one, its stop, its restart; see the module docstring."""
    from worker_harness import produce_file

    empty = bench_worker(work, args.kafka, f"{prefix}-empty", (f"{prefix}-empty-contact-events",
                                                               f"{prefix}-empty-survey-responses"), args.partitions,
                         extra_env=args.worker_env)
    await prepare_worker_topics(empty)
    try:
        empty.start()
        await empty.wait_ready(timeout=args.ready_timeout)
        await asyncio.sleep(5.0)  # the first Redis refresh, timers and metrics have run once
        empty_rss = proc_kb(worker_pid(empty), "VmRSS")
    finally:
        empty.stop(grace=60)
    say(f"  empty worker: RSS {empty_rss / 1024:,.0f} MiB")

    app_id = f"{prefix}-w"
    worker = bench_worker(work, args.kafka, app_id, (f"{app_id}-contact-events", f"{app_id}-survey-responses"),
                          args.partitions, extra_env=args.worker_env)
    await prepare_worker_topics(worker)
    began = time.monotonic()
    produced = await produce_file(args.kafka, worker.topics, sim.path)
    produce_s = time.monotonic() - began
    assert produced == sim.events, (produced, sim.events)
    say(f"  produced {produced:,} events to {args.partitions} partitions in {produce_s:.1f} s")
    try:
        run = await measure_worker(worker, sim.events, timeout=args.timeout, ready_timeout=args.ready_timeout,
                                   progress_every=15.0, poll=0.25, say=say)
        hwm = proc_kb(worker_pid(worker), "VmHWM")
        say(f"  worker: {run.rate:,.0f} events/s, RSS {run.rss_kb / 1024:,.0f} MiB (peak {hwm / 1024:,.0f} MiB); "
            f"{rss_parts(worker_pid(worker))}")
        worker.kill()  # a crash at the end of the load: no clean stop's checkpoint
        worker.start()
        killed_s = await worker.wait_ready(timeout=args.ready_timeout)
        tail = worker.start_log(400)
        caught = [line.split("[INFO] ", 1)[-1].strip() for line in tail.splitlines()
                  if "recovered from the checkpoint and the" in line]
        killed_how = "; ".join(caught) if caught else "rebuilt"
        await asyncio.sleep(5.0)
        killed_rss = proc_kb(worker_pid(worker), "VmRSS")
        say(f"  killed (-9) and started again: ready after {killed_s:.1f} s ({killed_how}), RSS "
            f"{killed_rss / 1024:,.0f} MiB 5 s later")
        began = time.monotonic()
        worker.stop(grace=120)
        stop_s = time.monotonic() - began
        data_kb = du_kb(worker.data_dir)
        say(f"  stopped (SIGTERM) in {stop_s:.1f} s; data dir {data_kb / 1024:,.0f} MiB; starting again")
        worker.start()
        restart_s = await worker.wait_ready(timeout=args.ready_timeout)
        rss_ready = proc_kb(worker_pid(worker), "VmRSS")
        await asyncio.sleep(5.0)
        rss_later = proc_kb(worker_pid(worker), "VmRSS")
        how = "from the checkpoint" if "recovered from the checkpoint" in worker.log_tail(400) else "rebuilt"
        say(f"  ready again after {restart_s:.1f} s ({how}), RSS {rss_ready / 1024:,.0f} MiB "
            f"({rss_later / 1024:,.0f} MiB 5 s later)")
        cold_s = cold_rss = 0.0
        if args.cold_restart:  # what a start costs with no checkpoint: every contact rebuilt
            worker.stop(grace=120)
            for path in [*worker.data_dir.rglob("*.checkpoint"), *worker.data_dir.rglob("contacts.log")]:
                path.unlink()
            worker.start()
            cold_s = await worker.wait_ready(timeout=args.ready_timeout)
            await asyncio.sleep(5.0)
            cold_rss = proc_kb(worker_pid(worker), "VmRSS")
            say(f"  without the checkpoint: ready after {cold_s:.1f} s, RSS {cold_rss / 1024:,.0f} MiB 5 s later")
    finally:
        worker.stop(grace=60)
    return WorkerDays(empty_rss, produce_s, run.ready_s, run.rate, run.steady_rate, run.rss_kb, hwm, stop_s,
                      data_kb, restart_s, rss_ready, rss_later, how, cold_s, int(cold_rss), killed_s, killed_how,
                      killed_rss)


# ------------------------------------------------------------------------------------------------ main
def per_contact(kb: int, base_kb: int, contacts: int) -> str:
    """(RSS − RSS holding nothing) / contacts, in bytes: the memory a remembered contact costs."""
    return f"{(kb - base_kb) * 1024 / contacts:,.0f} B/contact" if contacts else "-"


async def main(args: argparse.Namespace) -> None:
    from worker_harness import delete_topics_with_prefix

    main_task = asyncio.current_task()
    assert main_task is not None
    for signum in (signal.SIGTERM, signal.SIGHUP):  # killed, the run still stops its workers and deletes its topics
        asyncio.get_running_loop().add_signal_handler(signum, main_task.cancel)
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="cxpulse-days-", dir="/tmp"))
    code = use_code(args.rev, work)
    source_before = source_digest()
    prefix = f"bench-days-{uuid.uuid4().hex[:8]}"
    say(f"days: {code}, {args.days:g} days at ~{args.contacts_per_day:,} contacts/day, {args.partitions} partitions, "
        f"prefix {prefix}, load average {load_before[0]:.2f}")
    if args.worker_env:
        say(f"worker settings: {' '.join(f'{k}={v}' for k, v in args.worker_env.items())}")
    replay: ReplayRun | None = None
    replay_empty: ReplayRun | None = None
    split_runs: list[tuple[int, ReplayRun]] = []
    baseline: tuple[str, list[tuple[int, ReplayRun]]] | None = None
    worker: WorkerDays | None = None
    try:
        sim = simulate_days(work, args.days, args.contacts_per_day, args.seed)
        say(f"  simulated {sim.events:,} events ({sim.contacts:,} contacts, {sim.customers:,} customers, "
            f"{sim.surveys:,} survey responses) in {sim.seconds:.1f} s")
        if not args.skip_replay:
            one = work / "one.jsonl"
            with sim.path.open("rb") as handle:
                one.write_bytes(handle.readline())
            replay_empty = run_replay(one, work / "replay-one.log", progress_every=0)
            say(f"  replay of one event: {replay_empty.wall_s:.1f} s, peak RSS {replay_empty.peak_rss_kb / 1024:,.0f} MiB")
            replay = run_replay(sim.path, work / "replay.log")
            say(f"  replay: {sim.events / replay.wall_s:,.0f} events/s wall, peak RSS "
                f"{replay.peak_rss_kb / 1024:,.0f} MiB; {replay.summary}")
            has_jobs = replay_has_jobs()
            if args.replay_jobs.strip() not in ("", "none", "1") and not has_jobs:
                say(f"  replay --jobs: skipped ({code} has no --jobs)")
            for jobs in replay_jobs(args.replay_jobs) if has_jobs else []:
                split = run_replay(sim.path, work / f"replay-{jobs}.log", jobs=jobs)
                split_runs.append((jobs, split))
                say(f"  replay --jobs {jobs}: {sim.events / split.wall_s:,.0f} events/s wall, peak RSS "
                    f"{split.peak_rss_kb / 1024:,.0f} MiB; {split.summary}")
            if args.replay_baseline:
                baseline = replay_baseline(args.replay_baseline, sim, work, [jobs for jobs, _ in split_runs])
        if not args.skip_worker:
            worker = await run_worker(args, work, prefix, sim)
    finally:
        if not args.keep:
            if not args.skip_worker:
                await delete_topics_with_prefix(args.kafka, prefix)
                delete_redis_keys(f"test-{prefix}")
            shutil.rmtree(work, ignore_errors=True)

    load_after = os.getloadavg()
    if args.rev is None and source_digest() != source_before:  # a --rev run reads an archive nothing edits
        print("\nWARNING: cxpulse/ changed while this ran (measure a commit with --rev instead): the later steps ran "
              "other code, and a restart found a checkpoint of other code, so it rebuilt from the tables.")
    print()
    print(f"{args.days:g} simulated days, {code}: {sim.events:,} events, {sim.contacts:,} contacts, "
          f"{sim.customers:,} customers; {args.partitions} partitions; load average "
          f"{load_before[0]:.2f} -> {load_after[0]:.2f}")
    print("| what | figure |")
    print("|---|---|")
    if replay is not None and replay_empty is not None:
        core = f"; {replay.core_rate:,.0f} events/s in the core" if replay.core_rate else ""
        print(f"| `cxpulse replay` | {sim.events / replay.wall_s:,.0f} events/s ({replay.wall_s:.1f} s wall with "
              f"start-up{core}) |")
        print(f"| `cxpulse replay` peak RSS ({replay.peak_how}) | {replay.peak_rss_kb / 1024:,.0f} MiB (one-event replay "
              f"{replay_empty.peak_rss_kb / 1024:,.0f} MiB; "
              f"{per_contact(replay.peak_rss_kb, replay_empty.peak_rss_kb, sim.contacts)}) |")
        for jobs, split in split_runs:
            core = f"; {split.core_rate:,.0f} events/s in the core" if split.core_rate else ""
            print(f"| `cxpulse replay --jobs {jobs}` | {sim.events / split.wall_s:,.0f} events/s ({split.wall_s:.1f} s "
                  f"wall with start-up{core}; {split.wall_s and replay.wall_s / split.wall_s:.2f}x the one process) |")
            print(f"| `cxpulse replay --jobs {jobs}` peak RSS ({split.peak_how}) | "
                  f"{split.peak_rss_kb / 1024:,.0f} MiB |")
        if baseline is not None:
            commit, runs = baseline
            ours = {1: replay.wall_s, **{jobs: split.wall_s for jobs, split in split_runs}}
            for jobs, run in runs:
                flag = f" --jobs {jobs}" if jobs > 1 else ""
                print(f"| baseline {commit}: `cxpulse replay{flag}`, the same file | {sim.events / run.wall_s:,.0f} "
                      f"events/s ({run.wall_s:.1f} s wall); peak RSS {run.peak_rss_kb / 1024:,.0f} MiB |")
            base_wall = runs[0][1].wall_s  # the baseline's one process: what a user of it had
            for jobs, wall in ours.items():
                flag = f" --jobs {jobs}" if jobs > 1 else ""
                print(f"| `cxpulse replay{flag}` / the baseline's one process | **{base_wall / wall:.2f}x** |")
    if worker is not None:
        print(f"| worker events/s (first..last) | {worker.rate:,.0f} (steady 10-90%: {worker.steady_rate:,.0f}; "
              f"start->ready {worker.ready_s:.1f} s) |")
        print(f"| worker RSS after the load | {worker.rss_loaded_kb / 1024:,.0f} MiB (peak "
              f"{worker.hwm_loaded_kb / 1024:,.0f} MiB; empty worker {worker.empty_rss_kb / 1024:,.0f} MiB; "
              f"{per_contact(worker.rss_loaded_kb, worker.empty_rss_kb, sim.contacts)}) |")
        print(f"| worker restart -> ready after a kill -9 at the end of the load | {worker.killed_restart_s:.1f} s "
              f"({worker.killed_how}); RSS 5 s later {worker.killed_rss_kb / 1024:,.0f} MiB |")
        print(f"| worker data dir (rocksdb, after SIGTERM) | {worker.data_dir_kb / 1024:,.0f} MiB "
              f"({worker.data_dir_kb * 1024 / sim.contacts:,.0f} B/contact) |")
        print(f"| worker SIGTERM -> exit | {worker.stop_s:.1f} s |")
        print(f"| worker restart -> ready (`/readyz` 200) | {worker.restart_ready_s:.1f} s ({worker.restart_how}) |")
        print(f"| worker RSS after ready | {worker.rss_ready_kb / 1024:,.0f} MiB "
              f"({worker.rss_ready_later_kb / 1024:,.0f} MiB 5 s later; "
              f"{per_contact(worker.rss_ready_later_kb, worker.empty_rss_kb, sim.contacts)}) |")
        if worker.cold_restart_s:
            print(f"| worker restart -> ready without any checkpoint (every contact rebuilt) | {worker.cold_restart_s:.1f} s; "
                  f"RSS 5 s later {worker.cold_rss_kb / 1024:,.0f} MiB |")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--days", type=float, default=7.0, help="simulated days")
    parser.add_argument("--contacts-per-day", type=int, default=66_000, help="the centre is scaled to about this")
    parser.add_argument("--partitions", type=int, default=8, help="partitions of the worker's topics")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-replay", action="store_true", help="no cxpulse replay")
    parser.add_argument("--skip-worker", action="store_true", help="no cxpulse worker")
    parser.add_argument("--replay-jobs", default="auto",
                        help="comma-separated process counts for extra `cxpulse replay --jobs N` runs (auto: one per "
                             "CPU; 1 or none: no extra run)")
    parser.add_argument("--replay-baseline", metavar="REV",
                        help="also replay the same file with this commit's code (git archive), one process and each "
                             "--replay-jobs count it knows, and print this code's speed as a ratio to it")
    parser.add_argument("--kafka", default=os.environ.get("CXPULSE_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092"))
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up on the worker's load after this")
    parser.add_argument("--cold-restart", action=argparse.BooleanOptionalAction, default=True,
                        help="also restart once more without any checkpoint (every contact rebuilt)")
    parser.add_argument("--ready-timeout", type=float, default=900.0, help="give up waiting for /readyz after this")
    parser.add_argument("--rev", help="measure this commit (git archive) instead of the working tree")
    parser.add_argument("--keep", action="store_true", help="keep the topics, Redis keys and temporary files")
    parser.add_argument("--worker-env", action="append", default=[], metavar="KEY=VALUE",
                        help="an environment variable for the worker (repeatable), e.g. "
                             "CXPULSE_WORKER__ROCKSDB_BLOCK_CACHE_MIB=1 or MALLOC_ARENA_MAX=2")
    args = parser.parse_args()
    pairs = [item.partition("=") for item in args.worker_env]
    bad = [key for key, eq, _ in pairs if not eq or not key.replace("_", "").isalnum()]
    if bad:
        parser.error(f"--worker-env wants KEY=VALUE, got {bad[0]!r}")
    args.worker_env = {key: value for key, _, value in pairs}
    return args


if __name__ == "__main__":
    try:
        asyncio.run(main(parse_args()))
    except asyncio.CancelledError:  # SIGTERM or SIGHUP: the finally blocks have cleaned up
        print("days: stopped by a signal; its workers, topics and files are gone", file=sys.stderr)
        sys.exit(143)
