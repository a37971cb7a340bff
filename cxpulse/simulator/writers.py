"""Thin writers of simulated records: a JSON Lines file or Kafka, paced to a speed of simulated time.

Why pacing lives here and not in the core: the core is a pure generator in event-time order; whether one
simulated minute takes a minute, a second, or no time at all is only a question of when a writer hands a
record on.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import orjson

from cxpulse.simulator.events import SimEvent
from cxpulse.simulator.invalid import MARKER

SUBMIT_EVERY_S = 0.02
"""How long a paced Kafka writer lets records collect before handing partial batches on (like linger_ms)."""
PROGRESS_EVERY_S = 1.0


@dataclass
class RunSummary:
    """What a run wrote: the end-of-run report and the progress line."""

    by_topic: Counter[str] = field(default_factory=Counter)
    invalid: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    interrupted: bool = False
    samples: list[tuple[float, int]] = field(default_factory=list)
    """(wall time, records so far), about once a second: for the rate after the ramp-up"""

    @property
    def total(self) -> int:
        return sum(self.by_topic.values())

    @property
    def wall_seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def events_per_second(self) -> float:
        wall = self.wall_seconds
        return self.total / wall if wall > 0 else 0.0

    def sample(self) -> None:
        self.samples.append((time.monotonic(), self.total))

    @property
    def second_half_events_per_second(self) -> float | None:
        """The rate over the second half of the run: a load test's steady state, after the centre filled up."""
        if len(self.samples) < 4:
            return None
        middle = self.samples[0][0] + (self.samples[-1][0] - self.samples[0][0]) / 2
        later = [sample for sample in self.samples if sample[0] >= middle]
        (t0, n0), (t1, n1) = later[0], later[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else None

    @property
    def simulated_seconds(self) -> float:
        if self.first_ms is None or self.last_ms is None:
            return 0.0
        return (self.last_ms - self.first_ms) / 1000.0


class Pacer:
    """Maps simulated time onto the wall clock: ``speed`` simulated seconds per real second (0 = no waiting)."""

    def __init__(self, speed: float, start_ms: int, anchor_ms: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``anchor_ms``: the simulated instant that maps to the wall clock's "now" (default ``start_ms``).
        An anchor after the start writes the history before it at once, then goes on at ``speed``
        (``--history``: a live demo whose windows are already full). ``clock`` (seconds, monotonic) is
        injectable so that tests check the pacing exactly, without waiting for it."""
        if speed < 0:
            raise ValueError(f"speed must be >= 0, got {speed}")
        self.speed = speed
        self.start_ms = start_ms
        self.anchor_ms = start_ms if anchor_ms is None else anchor_ms
        self.clock = clock
        self.wall_start = clock()

    def delay(self, at_ms: int) -> float:
        """Seconds to wait before a record at ``at_ms`` is due (<= 0 when due or when running flat out)."""
        if self.speed == 0:
            return 0.0
        return self.wall_start + (at_ms - self.anchor_ms) / 1000.0 / self.speed - self.clock()


def encode(record: SimEvent) -> bytes:
    """The record's bytes on the wire / in the file: compact JSON (orjson keeps dict order: deterministic)."""
    return orjson.dumps(record.event) if isinstance(record.event, dict) else record.event


ProgressHook = Callable[[RunSummary], None]


class BatchSenderLike(Protocol):
    """What :func:`write_kafka` needs from :class:`cxpulse.kafka_io.BatchSender` (kept structural: no Kafka here)."""

    async def send(self, topic: str, key: bytes | None, value: bytes) -> None: ...

    async def submit(self) -> None: ...

    async def flush(self) -> None: ...


WireRecord = tuple[int, str, bytes | None, bytes, bool]
"""A record ready for Kafka: (event time ms, logical topic, key, value, deliberately invalid)."""


def to_wire(record: SimEvent) -> WireRecord:
    """Encode a record once (in whichever process generates it): key = contact_id, value = JSON bytes."""
    event = record.event
    if isinstance(event, dict):
        value, invalid = orjson.dumps(event), MARKER in event
    else:
        value, invalid = event, True
    key = record.contact_id.encode() if record.contact_id is not None else None
    return (record.at_ms, record.topic, key, value, invalid)


def wire_chunks(records: Iterable[SimEvent], size: int = 1024) -> Iterator[list[WireRecord]]:
    """Encode records in this process, a chunk at a time (see :mod:`cxpulse.simulator.feed` for other cores)."""
    chunk: list[WireRecord] = []
    for record in records:
        chunk.append(to_wire(record))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def local_chunks(records: Iterable[SimEvent], size: int = 1024) -> AsyncIterator[list[WireRecord]]:
    """:func:`wire_chunks` for the asyncio writer."""
    for chunk in wire_chunks(records, size):
        yield chunk


def write_jsonl(
    chunks: Iterable[list[WireRecord]],
    path: Path,
    pacer: Pacer,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    progress: ProgressHook | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RunSummary:
    """Write both topics' records to one JSON Lines file in event-time order, paced like the Kafka writer.

    ``sleep`` is injectable (with the pacer's clock) so that tests check the waits, not the wall time."""
    summary = RunSummary()
    next_progress = time.monotonic() + PROGRESS_EVERY_S
    try:
        with path.open("wb") as out:
            write = out.write
            for chunk in chunks:
                for at_ms, logical, _key, value, bad in chunk:
                    wait = pacer.delay(at_ms)
                    if wait > 0.001:
                        out.flush()  # a reader tailing the file sees everything that is due
                        sleep(wait)
                    if should_stop():
                        summary.interrupted = True
                        break
                    write(value)
                    write(b"\n")
                    summary.by_topic[logical] += 1
                    summary.invalid += bad
                    if summary.first_ms is None:
                        summary.first_ms = at_ms
                    summary.last_ms = at_ms
                if summary.interrupted:
                    break
                if time.monotonic() >= next_progress:
                    summary.sample()
                    if progress is not None:
                        progress(summary)
                    next_progress = time.monotonic() + PROGRESS_EVERY_S
    except KeyboardInterrupt:
        summary.interrupted = True
    summary.finished = time.monotonic()
    return summary


async def write_kafka(
    chunks: AsyncIterable[list[WireRecord]],
    sender: BatchSenderLike,
    topics: dict[str, str],
    pacer: Pacer,
    *,
    stop: asyncio.Event | None = None,
    progress: ProgressHook | None = None,
) -> RunSummary:
    """Produce encoded records to Kafka, paced; ``topics`` maps the logical topic to the configured name.

    Each record is handed over when its event time is due at the pacer's speed. Before sleeping, partial
    batches go out (at most every :data:`SUBMIT_EVERY_S`), so a slow live stream is not held back.
    """
    summary = RunSummary()
    by_topic = dict.fromkeys(topics.values(), 0)
    invalid = 0
    last_submit = time.monotonic()
    next_progress = last_submit + PROGRESS_EVERY_S
    stop = stop or asyncio.Event()
    send = sender.send
    speed, anchor_ms, wall_start = pacer.speed, pacer.anchor_ms, pacer.wall_start
    at_ms = 0
    async for chunk in chunks:
        for at_ms, logical, key, value, bad in chunk:
            if speed:
                wait = wall_start + (at_ms - anchor_ms) / 1000.0 / speed - time.monotonic()
                if wait > 0.001:
                    now = time.monotonic()
                    if wait >= SUBMIT_EVERY_S or now - last_submit >= SUBMIT_EVERY_S:
                        await sender.submit()
                        last_submit = now
                    while wait > 0.001 and not stop.is_set():
                        await asyncio.sleep(min(wait, 0.25))
                        wait = pacer.delay(at_ms)
            if stop.is_set():
                break
            topic = topics[logical]
            await send(topic, key, value)
            by_topic[topic] += 1
            invalid += bad
            if summary.first_ms is None:
                summary.first_ms = at_ms
        if stop.is_set():
            summary.interrupted = True
            break
        summary.by_topic.update(by_topic)
        by_topic = dict.fromkeys(topics.values(), 0)
        summary.invalid, summary.last_ms = summary.invalid + invalid, at_ms
        invalid = 0
        await asyncio.sleep(0)  # let the producer's sender task run even when we never wait
        if time.monotonic() >= next_progress:
            summary.sample()
            if progress is not None:
                progress(summary)
            next_progress = time.monotonic() + PROGRESS_EVERY_S
    summary.by_topic.update(by_topic)
    summary.invalid += invalid
    if summary.first_ms is not None:
        summary.last_ms = at_ms
    await sender.flush()
    summary.finished = time.monotonic()
    return summary
