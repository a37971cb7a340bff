"""Helpers for the wallboard's browser tests: a ``cxpulse wallboard`` process, headless Chromium, a page.

* :class:`Wallboard`: ``cxpulse wallboard`` as a subprocess on a free port (stale after :data:`STALE_AFTER` s);
  :meth:`Wallboard.start` waits for ``/healthz`` (on timeout: fails with the tail of its log).
* :func:`browser`: a module-scoped fixture, Debian's Chromium headless (import it into a test module).
* :func:`open_page`: a page at a URL, once it shows live data (not stale).
* :func:`wait_for`: poll a page with JavaScript until a check holds, with a deadline.
* :func:`wallboard_env` writes a settings YAML and gives the environment that points a process at it;
  :func:`fed_redis` keeps a read-model document in Redis (SET + PUBLISH, as the worker's sink does) under a
  prefix of its own and removes that prefix's keys afterwards.

One home for what tests/integration/test_wallboard_{browser,board,agents,feedback}.py all need, so the four
start, drive and clean up the wallboard the same way.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import orjson
import pytest
import yaml

from cxpulse.sinks.redis_sink import Keys
from worker_harness import CXPULSE, free_port

STALE_AFTER = 3.0
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
FEED_EVERY = 0.5  # seconds between two documents written by fed_redis, as often as the worker writes them


class Wallboard:
    """``cxpulse wallboard`` in its own process group (so :meth:`stop` ends all of it), logging to ``log``."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.env = {**env, "CXPULSE_WALLBOARD__PORT": str(self.port), "CXPULSE_WALLBOARD__HOST": "127.0.0.1",
                    "CXPULSE_WALLBOARD__STALE_AFTER_SECONDS": str(STALE_AFTER)}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        import aiohttp

        self.proc = subprocess.Popen([CXPULSE, "wallboard"], env=self.env, stdout=self.log.open("wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while True:
                assert self.proc.poll() is None, f"wallboard exited: {self.log.read_text()[-3000:]}"
                try:
                    async with session.get(self.url + "/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, f"wallboard not up: {self.log.read_text()[-3000:]}"
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium for a whole test module: starting it is the slow part of a browser test."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


async def open_page(browser: Any, url: str, size: tuple[int, int] = (1920, 1080)) -> Any:
    """A new page at ``url`` once it shows live data, so a test never reads the empty page before the first
    document arrives."""
    page = await browser.new_page(viewport={"width": size[0], "height": size[1]})
    await page.goto(url)
    await page.wait_for_function("() => document.body.dataset.stale === 'false'", timeout=15_000)
    return page


async def wait_for(page: Any, js: str, check: Callable[[Any], bool], what: str | Callable[[Any], object],
                   timeout: float = 10.0) -> Any:
    """Evaluate ``js`` on the page every 0.2 s until ``check`` holds for the result, and return it: the page
    updates asynchronously (server-sent events), so a test waits for a state rather than sleeping. On timeout
    it fails with ``what`` and the last result (``what`` may be a function of the last result)."""
    deadline = time.monotonic() + timeout
    while True:
        got = await page.evaluate(js)
        if check(got):
            return got
        assert time.monotonic() < deadline, what(got) if callable(what) else f"{what}: {got}"
        await asyncio.sleep(0.2)


def wallboard_env(path: Path, config: dict[str, Any]) -> dict[str, str]:
    """Write ``config`` to the YAML file ``path`` and return this process's environment without any
    ``CXPULSE_`` variable but ``CXPULSE_CONFIG=path``, so only that file configures the wallboard."""
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXPULSE_")}
    env["CXPULSE_CONFIG"] = str(path)
    return env


@asynccontextmanager
async def fed_redis(redis_url: str, prefix: str,
                    make_document: Callable[[], dict[str, Any]]) -> AsyncIterator[tuple[Any, Keys]]:
    """A Redis client and the keys of ``prefix``, while a task writes ``make_document()`` every
    :data:`FEED_EVERY` s as the worker's sink does (SET with a 15 s TTL + PUBLISH), so a page stays live without
    a worker; afterwards the task stops and every key of the prefix is deleted."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    keys = Keys(prefix)

    async def feed() -> None:
        while True:
            raw = orjson.dumps(make_document())
            await client.set(keys.kpis, raw, ex=15)
            await client.publish(keys.updates, raw)
            await asyncio.sleep(FEED_EVERY)

    feeder = asyncio.create_task(feed())
    try:
        yield client, keys
    finally:
        feeder.cancel()
        found = await client.keys(f"{prefix}:*")
        if found:
            await client.delete(*found)
        await client.aclose()
