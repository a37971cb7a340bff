"""Run the simulation (and the JSON encoding) in child processes, so Kafka production keeps a core of its own.

Why: one Python process spends about 70% of its time simulating and encoding and 30% building Kafka
batches; putting the simulation in a child roughly doubles the ceiling on two cores. Load mode goes one
step further: its big centre is simulated as several identical *sites* (shards), one per process, each
with the centre scaled by 1/N and its own seed-derived ids. Shards send their records in slices of
simulated time; the parent sorts each slice (C speed, stable, so ties keep shard order), which keeps the
merged stream in exact event-time order and deterministic for a seed. The children only compute; the
parent paces, sends, and owns Ctrl-C.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue as queue_module
import signal
import traceback
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from multiprocessing.queues import Queue
from operator import itemgetter
from typing import Any

from cxpulse.simulator.events import SimEvent
from cxpulse.simulator.writers import WireRecord, to_wire

CHUNK = 2048
"""Records per message of a single simulator (no slicing): large enough that pickling overhead is small."""
AHEAD = 32
"""Messages a child may run ahead of the parent (bounded memory, about a second of load)."""

_DONE = "done"
_BY_TIME = itemgetter(0)
_ERROR = "error"

RecordSource = Callable[[], Iterable[SimEvent]]
"""Called in the child (inherited through ``fork``, so it need not be picklable)."""


def _child(make_records: RecordSource, out: "Queue[Any]", chunk_size: int, slice_ms: int | None, start_ms: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        chunk: list[WireRecord] = []
        if slice_ms is None:
            for record in make_records():
                chunk.append(to_wire(record))
                if len(chunk) >= chunk_size:
                    out.put(chunk)
                    chunk = []
        else:
            slice_end = start_ms + slice_ms
            for record in make_records():
                while record.at_ms >= slice_end:  # one message per slice, empty ones included
                    out.put(chunk)
                    chunk = []
                    slice_end += slice_ms
                chunk.append(to_wire(record))
        if chunk:
            out.put(chunk)
        out.put(_DONE)
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        out.put((_ERROR, traceback.format_exc()))


class ProcessFeed:
    """Chunks of encoded records computed by forked children; iterate :meth:`chunks` with ``async for``.

    One source: chunks of :data:`CHUNK` records as they come. Several sources (shards): ``slice_ms`` is
    required, and each chunk is one slice of simulated time from every shard, merged in time order.
    Start the feed before the asyncio loop runs; :meth:`close` stops the children if the parent stops early.
    """

    def __init__(self, sources: list[RecordSource], *, slice_ms: int | None = None, start_ms: int = 0) -> None:
        if not sources:
            raise ValueError("a feed needs at least one record source")
        if len(sources) > 1 and slice_ms is None:
            raise ValueError("several shards need slice_ms to be merged in time order")
        context = multiprocessing.get_context("fork")
        self._queues: list[Queue[Any]] = [context.Queue(maxsize=AHEAD) for _ in sources]
        self._processes = [
            context.Process(
                target=_child,
                args=(source, out, CHUNK, slice_ms if len(sources) > 1 else None, start_ms),
                name=f"cxpulse-simulator-{index}",
                daemon=True,
            )
            for index, (source, out) in enumerate(zip(sources, self._queues))
        ]

        self._live = list(range(len(sources)))

    def start(self) -> "ProcessFeed":
        for process in self._processes:
            process.start()
        return self

    def next_chunk(self) -> list[WireRecord] | None:
        """The next chunk (blocking), or ``None`` when every source is exhausted."""
        while self._live:
            parts: list[list[WireRecord]] = []
            for index in list(self._live):
                item = self._get(index)
                if isinstance(item, str) and item == _DONE:
                    self._live.remove(index)
                elif isinstance(item, tuple):
                    raise RuntimeError(f"simulator process {index} failed:\n{item[1]}")
                else:
                    parts.append(item)
            if len(parts) == 1:
                return parts[0]
            if parts:
                merged = [record for part in parts for record in part]
                merged.sort(key=_BY_TIME)
                return merged
        return None

    def sync_chunks(self) -> Iterator[list[WireRecord]]:
        """For a synchronous writer (the JSON Lines file)."""
        while (chunk := self.next_chunk()) is not None:
            yield chunk

    async def chunks(self) -> AsyncIterator[list[WireRecord]]:
        """For the asyncio Kafka writer: waiting for a child never blocks the event loop."""
        loop = asyncio.get_running_loop()
        while (chunk := await loop.run_in_executor(None, self.next_chunk)) is not None:
            yield chunk

    def _get(self, index: int) -> Any:
        """Blocking get that notices a child that died without saying so."""
        while True:
            try:
                return self._queues[index].get(timeout=1.0)
            except queue_module.Empty:
                process = self._processes[index]
                if not process.is_alive():
                    return (_ERROR, f"exit code {process.exitcode}")

    def close(self) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()
        for process, out in zip(self._processes, self._queues):
            process.join(timeout=5)
            out.close()
            out.cancel_join_thread()
