"""The worker's batches of a Faust stream (streams/batching.py), in Faust's own test context (no broker).

What must hold as with Faust's ``take_events``: batches of at most ``max_`` events, every event once and in order,
each batch acknowledged only after the body returned for it (never before its state could be stored); and what
is new: the wait is asked anew for each batch."""

from __future__ import annotations

import asyncio
from typing import Any

import faust

from cxpulse.streams.batching import WITHIN_BEHIND, WITHIN_LIVE, batch_wait, take_batches


async def _run(values: list[bytes], max_: int, within: Any) -> tuple[list[list[bytes]], list[bool], list[Any]]:
    app = faust.App("cxpulse-test-batching", broker="kafka://127.0.0.1:1", value_serializer="raw",
                    key_serializer="raw")
    topic = app.topic("batching-test", value_serializer="raw")
    seen: list[list[bytes]] = []
    acked_inside: list[bool] = []
    events: list[Any] = []

    @app.agent(topic)
    async def agent(stream: Any) -> None:
        async for batch in take_batches(stream, max_, within):
            acked_inside.append(any(event.message.acked for event in batch))
            seen.append([event.value for event in batch])
            events.extend(batch)

    async with agent.test_context() as running:
        for value in values:
            await running.put(value)
        for _ in range(100):
            if sum(map(len, seen)) >= len(values):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # the last batch is acknowledged when the loop asks for the next one
    return seen, acked_inside, events


async def test_batches_hold_at_most_max_events_each_once_in_order_and_are_acked_after_the_body() -> None:
    asked: list[int] = []
    values = [str(n).encode() for n in range(7)]
    seen, acked_inside, events = await _run(values, 3, lambda: asked.append(1) or 0.02)
    assert [value for batch in seen for value in batch] == values
    assert all(1 <= len(batch) <= 3 for batch in seen) and seen[0] == values[:3]
    assert acked_inside == [False] * len(seen)
    assert len(events) == len(values) and all(event.message.acked for event in events)  # and acked after it
    assert len(asked) >= len(seen)  # the wait is asked before each batch


def test_the_wait_is_short_live_and_longer_behind() -> None:
    behind = [False]
    wait = batch_wait(lambda: behind[0])
    assert wait() == WITHIN_LIVE == 0.05
    behind[0] = True
    assert wait() == WITHIN_BEHIND == 0.5
