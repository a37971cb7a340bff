"""How many events per second one ``cxpulse worker`` processes on this machine, on the real broker.

Steps: the simulator writes a file (``cxpulse simulate --out --fast`` with the shipped centre made flat over
the day and scaled so the run holds at least N events; the first N lines are kept), the file goes to fresh,
uniquely named topics, then a worker starts on that backlog. ``/api/v1/status`` is polled every 100 ms; the rate
is N / (time of the last poll short of N .. time N was seen), i.e. from the first processed to the last processed
event (the worker's start-up and recovery are reported apart). Prints one table of figures.

Usage::

    .venv/bin/python bench/worker_throughput.py                      # 200k events, rocksdb store
    .venv/bin/python bench/worker_throughput.py --events 50000 --store memory://
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from worker_harness import (  # noqa: E402  (the integration tests' worker harness)
    delete_topics_with_prefix,
    new_worker,
    now_us,
    produce_file,
    simulate_file,
)

S = 1_000_000
EVENTS_PER_HOUR_AT_SCALE_1 = 2_800  # the shipped centre, flat profile (measured)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events to process (N)")
    parser.add_argument("--hours", type=float, default=4.0, help="simulated hours the N events span")
    parser.add_argument("--store", default="rocksdb://", help="worker table store: rocksdb:// or memory://")
    parser.add_argument("--kafka", default=os.environ.get("CXPULSE_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092"))
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    parser.add_argument("--keep", action="store_true", help="keep the topics and the data dir")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cxpulse-bench-"))
    path = work / "events.jsonl"
    scale = 1.15 * args.events / (EVENTS_PER_HOUR_AT_SCALE_1 * args.hours)
    began = time.monotonic()
    total = simulate_file(path, start_us=(now_us() // S - int(args.hours * 3600) - 120) * S,
                          seconds=int(args.hours * 3600), seed=1, scale=scale)
    if total < args.events:
        raise SystemExit(f"the simulator wrote {total} events, fewer than {args.events}: raise --hours")
    lines = path.read_bytes().splitlines(keepends=True)[: args.events]
    path.write_bytes(b"".join(lines))
    simulated_s = time.monotonic() - began

    worker = new_worker(work, args.kafka, store=args.store, name="bench")
    try:
        from cxpulse.settings import load_settings
        from cxpulse.streams.runner import prepare_topics

        saved = dict(os.environ)
        os.environ.update(worker.env)
        try:
            await prepare_topics(load_settings())
        finally:
            os.environ.clear()
            os.environ.update(saved)
        began = time.monotonic()
        produced = await produce_file(args.kafka, worker.topics, path)
        produce_s = time.monotonic() - began
        assert produced == args.events, produced

        started = time.monotonic()
        worker.start()
        ready_s = await worker.wait_ready(timeout=120)
        samples: list[tuple[float, int]] = []
        deadline = time.monotonic() + args.timeout
        seen = 0
        while seen < args.events:
            if time.monotonic() > deadline or not worker.alive():
                raise SystemExit(f"stopped at {seen}/{args.events} processed; log:\n{worker.log_tail()}")
            status = await worker.status()
            seen = worker.seen(status)
            samples.append((time.monotonic(), seen))
            await asyncio.sleep(0.1)
        first_at = next(t for t, n in samples if n > 0)
        before_first = max((t for t, n in samples if n == 0), default=first_at)
        last_at = samples[-1][0]
        span = last_at - before_first
        steady = [(t, n) for t, n in samples if 0.1 * args.events <= n <= 0.9 * args.events]
        steady_rate = ((steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0])
                       if len(steady) >= 2 and steady[-1][0] > steady[0][0] else float("nan"))
        health = status["topics"]
        rss_kb = _rss_kb(worker.proc.pid if worker.proc else 0)
        print()
        print(f"worker throughput, {args.events:,} events, store {args.store}, {len(status['partitions'])} partitions")
        print(f"  simulator file      {simulated_s:8.2f} s")
        print(f"  produce to Kafka    {produce_s:8.2f} s   ({args.events / produce_s:,.0f} events/s)")
        print(f"  worker start->ready {ready_s:8.2f} s")
        print(f"  first..last event   {span:8.2f} s   ({args.events / span:,.0f} events/s overall)")
        print(f"  steady 10%..90%              ({steady_rate:,.0f} events/s)")
        print(f"  start->all done     {last_at - started:8.2f} s")
        print(f"  processed {sum(h['processed'] for h in health.values()):,}, duplicates "
              f"{sum(h['duplicates'] for h in health.values()):,}, invalid "
              f"{sum(sum(h['invalid'].values()) for h in health.values()):,}, breaches published "
              f"{status['breaches_published']:,}; worker RSS {rss_kb / 1024:,.0f} MiB")
    finally:
        worker.stop()
        if not args.keep:
            await delete_topics_with_prefix(args.kafka, worker.app_id)
            import shutil

            shutil.rmtree(work, ignore_errors=True)


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    asyncio.run(main())
