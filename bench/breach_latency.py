"""How late a live SLA breach reaches ``sla-breaches``: record timestamp - ``breached_at``, on the real broker.

A worker runs with one queue, ``b1s``, whose threshold is 1 s. K contacts are queued on it (event time = the
wall clock when sent), in waves spread over a few seconds so they fall on every phase of the worker's 200 ms
breach timer, and never answered. Every breach record's Kafka timestamp (producer create time, ms) minus its
``breached_at`` is the publication delay; its p50/p95/max are printed (the design bound is ~200 ms + a batch).

Usage::

    .venv/bin/python bench/breach_latency.py             # K = 1000
    .venv/bin/python bench/breach_latency.py --contacts 5000 --waves 50
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from worker_harness import (  # noqa: E402  (the integration tests' worker harness)
    Producer,
    consume_all,
    delete_topics_with_prefix,
    iso,
    new_worker,
    now_us,
    parse_iso_us,
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1000, help="contacts queued (K)")
    parser.add_argument("--waves", type=int, default=20, help="sent in this many waves")
    parser.add_argument("--gap", type=float, default=0.137, help="seconds between waves (not a multiple of 0.2)")
    parser.add_argument("--kafka", default=os.environ.get("CXPULSE_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092"))
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cxpulse-bench-breach-"))
    worker = new_worker(work, args.kafka, store="memory://", name="bench-breach",
                        kpi={"queues": {"b1s": {"sl_threshold_seconds": 1}}})
    try:
        worker.start()
        await worker.wait_ready(timeout=120)
        per_wave = -(-args.contacts // args.waves)
        sent = 0
        async with Producer(args.kafka, worker.topics) as producer:
            for wave in range(args.waves):
                batch = []
                for _ in range(min(per_wave, args.contacts - sent)):
                    sent += 1
                    ts = (now_us() // 1000) * 1000
                    batch.append({"event_id": f"q-{sent}", "type": "contact.queued", "ts": iso(ts),
                                  "contact_id": f"ct-{sent}", "customer_id": f"cu-{sent}", "channel": "voice",
                                  "queue": "b1s", "reason": None})
                await producer.send(batch)
                await asyncio.sleep(args.gap)
        deadline = time.monotonic() + 60
        records = []
        while time.monotonic() < deadline:
            status = await worker.status()
            if status["breaches_published"] >= args.contacts:
                records = await consume_all(args.kafka, [worker.topics.sla_breaches])
                if len(records) >= args.contacts:
                    break
            await asyncio.sleep(0.5)
        if len(records) < args.contacts:
            raise SystemExit(f"only {len(records)} of {args.contacts} breaches published; log:\n{worker.log_tail()}")
        delays_ms = [r.timestamp_ms - parse_iso_us(orjson.loads(r.value)["breached_at"]) / 1000 for r in records]
        visits = {orjson.loads(r.value)["visit_id"] for r in records}
        print()
        print(f"breach publication delay (record timestamp - breached_at), K = {len(records):,} contacts, T = 1 s")
        print(f"  p50  {percentile(delays_ms, 50):7.1f} ms")
        print(f"  p95  {percentile(delays_ms, 95):7.1f} ms")
        print(f"  p99  {percentile(delays_ms, 99):7.1f} ms")
        print(f"  max  {max(delays_ms):7.1f} ms")
        print(f"  min  {min(delays_ms):7.1f} ms   mean {statistics.fmean(delays_ms):.1f} ms")
        print(f"  distinct visits {len(visits):,} (records {len(records):,}); negative delays: "
              f"{sum(1 for d in delays_ms if d < 0)}")
    finally:
        worker.stop()
        if not args.keep:
            await delete_topics_with_prefix(args.kafka, worker.app_id)
            import shutil

            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
