"""Waiting for a condition, with a deadline: the one way tests synchronise with a worker, a sink or a server.

Why not ``sleep(n)`` then assert: a fixed sleep is either too short on a loaded machine (a flaky failure) or
longer than needed (a slow suite), and it asserts nothing about *why* the state should hold by then. These
helpers poll until the condition holds and fail with the last observation once the deadline passes. They are
not a way to measure speed: durations belong to ``bench/``.

``eventually`` takes an async check whose assertions raise ``AssertionError`` until they hold (its return
value is returned); ``until`` takes a plain predicate (sync or async) and returns once it is true.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = 15.0, every: float = 0.2) -> T:
    """Run ``check`` until it returns without an ``AssertionError``; after ``timeout`` s re-raise its last one."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(every)


async def until(predicate: Callable[[], Any], what: str, timeout: float = 15.0, every: float = 0.05) -> None:
    """Poll ``predicate`` (a function, or a coroutine function) until it is truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(every)
