"""How many events per second ``cxpulse simulate --rate`` really puts into Kafka on this machine.

Runs the simulator's load mode (the same code path as the command: simulation and encoding in a child
process, pacing and a batched idempotent producer in this one) into fresh, uniquely named topics for a
given wall time, samples the records handed to the producer every second, and reports:

* ``overall``: all records, acknowledged by the broker, divided by the wall time (includes the ramp of an
  empty centre filling up and the final flush);
* ``steady``: the rate over the samples after ``--warm-up`` seconds (what a load test sees after the ramp);
* ``acked``: records confirmed by the broker (acks=all; must equal the records sent).

With ``--flat-out`` the same scaled centre is simulated without pacing: the ceiling of the machine.
``--one-process`` keeps simulation and production in one process (for comparison).

Usage::

    .venv/bin/python bench/simulate_rate.py --rate 60000 --seconds 40
    .venv/bin/python bench/simulate_rate.py --flat-out --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time
import uuid
from collections.abc import AsyncIterable

from aiokafka.admin import AIOKafkaAdminClient

from cxpulse.kafka_io import BatchSender, ensure_topics, new_producer
from cxpulse.simulator.centre import load_centre
from cxpulse.simulator.clock import now_ms
from cxpulse.simulator.events import CONTACT_TOPIC, SURVEY_TOPIC
from cxpulse.simulator.feed import ProcessFeed
from cxpulse.simulator.load import scale_for_rate, sharded_simulations, slice_ms_for
from cxpulse.simulator.writers import Pacer, RunSummary, WireRecord, local_chunks, write_kafka


async def _run(
    args: argparse.Namespace, chunks: AsyncIterable[list[WireRecord]], topics: dict[str, str], start: int
) -> tuple[RunSummary, int, list[tuple[float, int]]]:
    samples: list[tuple[float, int]] = []
    stop = asyncio.Event()
    producer = new_producer(args.kafka, client_id="cxpulse-bench")
    await producer.start()
    try:
        sender = BatchSender(producer)
        await sender.prepare(topics.values())
        began = time.monotonic()
        if args.flat_out:
            asyncio.get_running_loop().call_later(args.seconds, stop.set)

        def sample(summary: RunSummary) -> None:
            samples.append((time.monotonic() - began, summary.total))

        speed = 0.0 if args.flat_out else args.speed
        summary = await write_kafka(chunks, sender, topics, Pacer(speed, start), stop=stop, progress=sample)
    finally:
        await producer.stop()
    if not args.keep:
        admin = AIOKafkaAdminClient(bootstrap_servers=args.kafka)
        await admin.start()
        try:
            await admin.delete_topics(list(topics.values()))
        finally:
            await admin.close()
    return summary, sender.acked, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=60_000, help="target events/s (load mode)")
    parser.add_argument("--speed", type=float, default=60.0, help="simulated seconds per wall second")
    parser.add_argument("--seconds", type=float, default=40.0, help="wall-clock length of the run")
    parser.add_argument("--warm-up", type=float, default=15.0, help="wall seconds excluded from 'steady'")
    parser.add_argument("--flat-out", action="store_true", help="no pacing: the machine's ceiling")
    parser.add_argument("--one-process", action="store_true", help="simulate in this process too")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="simulator processes (sites)")
    parser.add_argument("--kafka", default=os.environ.get("CXPULSE_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092"))
    parser.add_argument("--keep", action="store_true", help="keep the bench topics afterwards")
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    topics = {CONTACT_TOPIC: f"bench-sim-{tag}-contacts", SURVEY_TOPIC: f"bench-sim-{tag}-surveys"}
    asyncio.run(ensure_topics(args.kafka, topics.values(), partitions=8))
    centre = load_centre()
    scale = scale_for_rate(centre, args.rate, args.speed, seed=1)
    start = now_ms()
    shards = 1 if args.one_process else args.processes
    sims = sharded_simulations(centre, scale=scale, shards=shards, seed=1, start_ms=start)
    simulated_s = args.seconds * (args.speed if not args.flat_out else 3000)
    until = start + int(simulated_s * 1000)
    sources = [lambda sim=sim: sim.events(until) for sim in sims]
    slice_ms = slice_ms_for(args.rate, args.speed, shards) if shards > 1 else None
    records = sims[0].events(until)

    feed = None if args.one_process else ProcessFeed(sources, slice_ms=slice_ms, start_ms=start).start()
    try:
        chunks = feed.chunks() if feed is not None else local_chunks(records)
        summary, acked, samples = asyncio.run(_run(args, chunks, topics, start))
    finally:
        if feed is not None:
            feed.close()

    mine, child = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    steady = [(t, n) for t, n in samples if t >= args.warm_up]
    steady_rate = (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0]) if len(steady) > 1 else float("nan")
    mode = "flat out" if args.flat_out else f"paced x{args.speed:g}, target {args.rate:,.0f}/s"
    processes = "one process" if args.one_process else f"{shards} simulator process(es)"
    print(f"mode      {mode}; centre scaled x{scale:,.1f}; {processes}")
    print(f"records   {summary.total:,} sent, {acked:,} acked by the broker")
    print(f"wall      {summary.wall_seconds:,.1f} s for {summary.simulated_seconds:,.0f} simulated s")
    print(f"overall   {summary.total / summary.wall_seconds:,.0f} events/s (ramp and final flush included)")
    print(f"steady    {steady_rate:,.0f} events/s (after {args.warm_up:g} s)")
    per_event = 1e6 / max(1, summary.total)
    print(
        f"cpu       producer process {(mine.ru_utime + mine.ru_stime) * per_event:.1f} us/event, "
        f"simulator process {(child.ru_utime + child.ru_stime) * per_event:.1f} us/event "
        f"(load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
