"""The loop of a line source: read a batch, convert, write, wait for the acknowledgement, then move on.

Why batches and one acknowledgement per batch: waiting for Kafka after each line would cap a backfill at a few
hundred lines a second; waiting once per batch (up to a few thousand lines, or what is there when following)
keeps the promise that matters, that the saved position never passes a line whose events are not durable.
"""

from __future__ import annotations

import asyncio
import logging

from cxpulse.sources.asterisk_queue_log import QueueLogConverter
from cxpulse.sources.outputs import Output
from cxpulse.sources.position import PositionStore
from cxpulse.sources.records import Rejected, Rejection, Tally
from cxpulse.sources.tail import LineReader

log = logging.getLogger(__name__)

BATCH_LINES = 5000


async def pump_lines(reader: LineReader, converter: QueueLogConverter, output: Output, *, source: str,
                     store: PositionStore | None, poll_seconds: float, stop: asyncio.Event | None = None) -> Tally:
    """Convert every line ``reader`` gives into ``output``; following, until ``stop`` is set.

    After each batch: :meth:`Output.commit` (acknowledged), then the position and the converter's state are
    saved together (``store``). Returns the run's counts (``output.tally``, with the lines read)."""
    tally = output.tally
    while stop is None or not stop.is_set():
        lines = reader.read(BATCH_LINES)
        if not lines:
            if not reader.follow:
                break
            if stop is None:
                await asyncio.sleep(poll_seconds)
            else:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=poll_seconds)
                except asyncio.TimeoutError:
                    pass
            continue
        for offset, raw in lines:
            if not raw.strip():
                continue
            tally.read += 1
            try:
                conversion = converter.convert(raw)
            except Rejection as exc:
                await output.reject(Rejected(exc.topic, raw.rstrip(b"\r\n"), exc.reason, exc.kind, source, offset))
                continue
            if conversion.ignored is not None:
                tally.ignored[conversion.ignored] += 1
            for produced in conversion.events:
                await output.put(produced)
        await output.commit()
        if store is not None:
            store.save(reader.position, converter.state())
        log.info("%d lines done (%s)", tally.read, ", ".join(f"{t} {n}" for t, n in sorted(tally.events.items())))
    return tally
