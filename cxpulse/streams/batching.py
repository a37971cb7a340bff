"""Batches of a Faust stream whose waiting time is chosen anew for each batch: short live, longer behind.

Why not ``Stream.take_events``: it reads its ``within`` once. Each batch costs the worker a fixed amount on top of
its events, and most of it grows with the partitions, not the events: per partition, the settle pass, a RocksDB
write batch and a changelog request per table, and a record of FCR summaries to the customers agent, which
Faust delivers as one more event. Live, a batch every 50 ms keeps the figures and the breach judgement current;
catching up a backlog, those per-batch costs took a sixth of the worker's pace. 100k events through one worker,
``bench/faust_baseline.py`` (session 7), worker / bare Faust agent: every batch 0.05 s: 0.61x; 0.1 s: 0.66x;
0.2 s: 0.70x; 0.05 s live and 0.25 s behind: 0.69x; 0.05 s live and 0.5 s behind: 0.71x. So the worker waits
:data:`WITHIN_LIVE` per batch, and :data:`WITHIN_BEHIND` while it is behind by a backlog
(:attr:`cxpulse.streams.liveness.Liveness.behind`: at least 5,000 records, seconds of work), where the figures
trail by the backlog anyway.

:func:`take_batches` is Faust's ``take_events`` (faust-streaming 0.15, BSD licence) with one change: the wait is
``within()``, asked before each batch. It uses the stream's own machinery exactly as ``take_events`` does (a
processor that fills the buffer, passive draining, acks only after the batch's body returned), so at-least-once
and the offsets Faust commits are unchanged. faust-streaming is pinned below 0.16 (``pyproject.toml``): these
are its internals.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

from faust.types import EventT
from mode.utils.aiter import aiter
from mode.utils.futures import notify

WITHIN_LIVE = 0.05  # seconds a batch waits when the worker is current: live figures lag by no more
WITHIN_BEHIND = 0.5  # seconds a batch may wait while a backlog waits (see the module docstring)


def batch_wait(behind: Callable[[], bool]) -> Callable[[], float]:
    """The wait for the next batch: :data:`WITHIN_BEHIND` while ``behind()``, else :data:`WITHIN_LIVE`."""
    return lambda: WITHIN_BEHIND if behind() else WITHIN_LIVE


def take_batches(stream: Any, max_: int, within: Callable[[], float]) -> AsyncGenerator[Sequence[EventT], None]:
    """Up to ``max_`` events at a time, or what came within ``within()`` seconds (asked anew for each batch).

    The events of a batch are acknowledged only after the body of the ``async for`` returned for it (and before
    the next batch is taken), as with ``take_events``: a batch whose state was not stored is never committed.
    The generator is registered with the stream as Faust registers its own, so that the stream's stop closes it
    (its ``finally`` detaches the buffering processor) on any interpreter."""
    batches = _take_batches(stream, max_, within)
    stream._active_agens.add(batches)
    return batches


async def _take_batches(stream: Any, max_: int,
                        within: Callable[[], float]) -> AsyncGenerator[Sequence[EventT], None]:
    buffer: list[Any] = []
    events: list[EventT] = []
    buffer_full = asyncio.Event()
    buffer_consumed = asyncio.Event()
    stream_enable_acks: bool = stream.enable_acks
    buffer_consuming: asyncio.Future[Any] | None = None
    channel_it = aiter(stream.channel)

    async def add_to_buffer(value: Any) -> Any:
        nonlocal buffer_consuming
        try:
            if buffer_consuming is not None:  # the batch is being processed: wait for it
                try:
                    await buffer_consuming
                finally:
                    buffer_consuming = None
            buffer.append(value)
            event = stream.current_event
            if event is None:
                raise RuntimeError("Take buffer found current_event is None")
            events.append(event)
            if len(buffer) >= max_:
                buffer_full.set()
                buffer_consumed.clear()
                await stream.wait(buffer_consumed)  # never more than max_ in a batch
        except asyncio.CancelledError:  # pragma: no cover
            raise
        except Exception as exc:  # noqa: BLE001 - as Faust does: the stream crashes, the agent's supervisor acts
            stream.log.exception("Error adding to take buffer: %r", exc)
            await stream.crash(exc)
        return value

    ack = _acker(stream)
    stream.enable_acks = False  # acked here, after the body
    stream.add_processor(add_to_buffer)
    stream._enable_passive(channel_it)
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(buffer_full, timeout=within())
            if buffer:
                buffer_consuming = stream.loop.create_future()
                try:
                    yield list(events)
                finally:
                    buffer.clear()
                    for event in events:
                        ack(event)
                    events.clear()
                    notify(buffer_consuming)
                    buffer_full.clear()
                    buffer_consumed.set()
    finally:
        stream.enable_acks = stream_enable_acks
        stream._processors.remove(add_to_buffer)


def _acker(stream: Any) -> Callable[[EventT], bool]:
    """``Stream.ack`` without its coroutine: its body is synchronous (faust-streaming 0.15: the event's ack, then
    the sensors' ``on_stream_event_out`` and, for the last stream to ack, ``on_message_out``). Why: it runs once
    per event, and creating and awaiting a coroutine for each was a measurable part of a loaded worker's time."""
    on_event_out = stream._on_stream_event_out
    on_message_out = stream._on_message_out

    def ack(event: EventT) -> bool:
        last_stream_to_ack = event.ack()
        message = event.message
        tp = message.tp
        offset = message.offset
        on_event_out(tp, offset, stream, event)
        if last_stream_to_ack:
            on_message_out(tp, offset, message)
        return last_stream_to_ack

    return ack
