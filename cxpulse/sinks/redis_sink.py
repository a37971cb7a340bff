"""The Redis read model: every worker's raw counts, the merged KPI document, live updates and breaches.

Why Redis: a CRM widget, the wallboard or any other reader gets the whole centre's figures with one ``GET``
(or a ``SUBSCRIBE``) without knowing how many workers there are or which partitions each one owns. Each worker
writes its own *partial* (raw counts, see :mod:`cxpulse.core.partials`) and merges the partials of all live
workers with the core's own ratio code, so the document is the same shape as ``GET /api/v1/kpis``.

Key schema (``P`` = ``redis.key_prefix``; see docs/read-model.md)::

    P:part:<worker id>        this worker's partial (JSON), TTL ttl_seconds
    P:parts                   set of worker ids that published a partial (expired ones are removed)
    P:kpis                    the merged document (JSON), TTL ttl_seconds
    P:kpis:queue:<queue>      the merged document with only that queue's entries, TTL ttl_seconds
    P:updates                 pub/sub channel: the merged document, every publish_interval_seconds
    P:breaches                pub/sub channel: each SLA breach as published on topic sla-breaches
    P:breaches:stream         stream of the same breaches (MAXLEN ~ 1000), for readers that were away
    P:wallboard:messages      sorted set: message id -> expiry (epoch s) of the wallboard's message line
    P:wallboard:message:<id>  one message (JSON), expiring with it
    P:wallboard:messages:changed  pub/sub channel: a message was added or removed

Never blocking the worker: the breach listener only appends to a bounded buffer; all network I/O runs in one
Faust task. When Redis is away the worker keeps computing; the task logs one warning, retries with exponential
backoff (0.5 s .. 10 s) and, once Redis answers, publishes the current document at once and the breaches
buffered meanwhile. A TTL on every read-model key means stale figures disappear instead of passing for live.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Iterable, Protocol
from urllib.parse import urlsplit, urlunsplit

import orjson

from cxpulse.core.agent_report import merge_agents
from cxpulse.core.partials import merge
from cxpulse.settings import RedisSettings, Settings

if TYPE_CHECKING:  # the wallboard imports this module too, and needs no Faust
    import faust

log = logging.getLogger("cxpulse.redis")

BREACH_BUFFER = 10_000  # breaches kept while Redis is away (oldest dropped first, counted)
STREAM_MAXLEN = 1000
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 10.0
CPU_SHARE = 0.25  # at most this share of the event loop goes to computing partials (the interval stretches)
# While the worker catches up a backlog (streams/liveness.py: Liveness.behind), the state is published every
# BACKLOG_INTERVAL at most: the figures are behind by the backlog anyway, and each publish folds and sums every
# window of every partition, which cost a worker catching up 100k events 13% of its pace (bench/faust_baseline.py
# with and without the sink, session 7). Breaches still go out at once; live, without a backlog, nothing changes.
BACKLOG_INTERVAL = 2.0


# ---------------------------------------------------------------------------------------------- keys
class Keys:
    """Every key and channel name of the read model for one prefix (readers import this too)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.parts = f"{prefix}:parts"
        self.kpis = f"{prefix}:kpis"
        self.updates = f"{prefix}:updates"
        self.breaches = f"{prefix}:breaches"
        self.breaches_stream = f"{prefix}:breaches:stream"
        self.messages = f"{prefix}:wallboard:messages"
        self.messages_changed = f"{prefix}:wallboard:messages:changed"

    def message(self, message_id: str) -> str:
        return f"{self.prefix}:wallboard:message:{message_id}"

    def part(self, worker_id: str) -> str:
        return f"{self.prefix}:part:{worker_id}"

    def queue(self, queue: str) -> str:
        return f"{self.prefix}:kpis:queue:{queue}"


def worker_id_for(app_id: str, web_port: int, host: str | None = None) -> str:
    """``<app id>@<host>:<web port>``: unique among live workers (one port per host) and stable across a
    restart, so a restarted worker overwrites its own partial instead of being counted twice until the old
    one expires (in Kubernetes the StatefulSet pod name is the stable host name)."""
    return f"{app_id}@{host or socket.gethostname()}:{web_port}"


def redacted(url: str) -> str:
    """The URL without its password (for logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{netloc}", parts.path, parts.query, parts.fragment))


def new_client(settings: RedisSettings) -> Any:
    """An asyncio Redis client with short timeouts and no built-in retries (the callers back off)."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return aioredis.Redis.from_url(
        settings.url, socket_connect_timeout=2.0, socket_timeout=3.0, retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


def queue_documents(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Queue name -> the document with only that queue's entries (every channel of it), like
    ``GET /api/v1/kpis/{queue}``: ``generated_at`` and ``totals`` stay those of the whole centre."""
    out: dict[str, dict[str, Any]] = {}
    for entry in document["queues"]:
        doc = out.get(entry["queue"])
        if doc is None:
            doc = out[entry["queue"]] = {**document, "queues": []}
        doc["queues"].append(entry)
    return out


def merge_parts(raw_parts: Iterable[bytes | None], app_id: str) -> list[dict[str, Any]]:
    """Decoded partials of workers of ``app_id`` (a group under another app id sharing the prefix is a
    misconfiguration: its counts are not ours to add). ``None`` (expired) and undecodable values are skipped.
    Used by :meth:`RedisSink.publish_state` for the other workers' partials."""
    out = []
    for raw in raw_parts:
        if raw is None:
            continue
        try:
            part = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        # a partial of another shape (a worker of an older version during a rolling upgrade) is skipped, not
        # allowed to make every worker's merge fail
        if (isinstance(part, dict) and str(part.get("worker", "")).startswith(f"{app_id}@")
                and isinstance(part.get("queues"), list) and isinstance(part.get("totals"), dict)):
            out.append(part)
    return out


# ---------------------------------------------------------------------------------------------- sink
class PartialSource(Protocol):
    """What the sink reads of the live state: this worker's partial (:meth:`cxpulse.core.live.LiveKpis.partial`)."""

    def partial(self, worker_id: str) -> dict[str, Any]: ...


class RedisSink:
    """The publisher loop and the breach buffer of one worker."""

    def __init__(self, settings: Settings, live: PartialSource, ready: Callable[[], bool], client: Any = None,
                 worker_id: str | None = None,
                 backoff_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 behind: Callable[[], bool] = lambda: False) -> None:
        """The sink takes what it reads, not the worker: the settings (``redis``, ``kpi``, the app id and web
        port that make the worker id), the live state whose partial it publishes, and ``ready`` (publish only
        while it says true: state recovered). ``backoff_sleep`` waits between retries while Redis is away:
        injectable so that a test can check the backoff delays themselves (doubling, capped) instead of counting
        retries over a wall-clock sleep. ``behind`` says whether the worker is catching up a backlog: then the
        state is published every ``BACKLOG_INTERVAL`` at most."""
        self.live = live
        self.ready = ready
        self.behind = behind
        self.backoff_sleep = backoff_sleep
        self.settings = settings.redis
        self.kpi = settings.kpi
        self.app_id = settings.worker.app_id
        self.worker_id = worker_id or worker_id_for(self.app_id, settings.worker.web_port)
        self.keys = Keys(self.settings.key_prefix)
        self.client = client
        self.breaches: deque[bytes] = deque()
        self.breaches_dropped = 0
        self.publishes = 0
        self.failures = 0
        self.connected = False
        self.compute_seconds = 0.0  # last time spent computing this worker's partial and the merge
        self._slow_warned = False
        self._wake = asyncio.Event()

    # -- called by the breach timer (synchronous, must not block) --------------------------------------
    def on_breach(self, record: dict[str, Any]) -> None:
        if len(self.breaches) >= BREACH_BUFFER:
            self.breaches.popleft()
            self.breaches_dropped += 1
        self.breaches.append(orjson.dumps(record))
        self._wake.set()

    # -- one round of publishing -----------------------------------------------------------------------
    async def publish_state(self) -> dict[str, Any]:
        """Write this worker's partial, merge all live partials, write and announce the document."""
        ttl = self.settings.ttl_seconds
        keys = self.keys
        began = time.perf_counter()
        mine = self.live.partial(self.worker_id)
        mine_raw = orjson.dumps(mine)
        computing = time.perf_counter() - began
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.set(keys.part(self.worker_id), mine_raw, ex=ttl)
            pipe.sadd(keys.parts, self.worker_id)
            pipe.expire(keys.parts, max(ttl * 4, 60))
            pipe.smembers(keys.parts)
            results = await pipe.execute()
        members = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in results[3])
        others = [m for m in members if m != self.worker_id]
        raws: list[bytes | None] = []
        if others:
            raws = await self.client.mget([keys.part(m) for m in others])
        expired = [m for m, raw in zip(others, raws) if raw is None]
        began = time.perf_counter()
        parts = [mine, *merge_parts(raws, self.app_id)]
        document = merge(self.kpi, parts)
        agents = merge_agents(self.kpi, parts)  # contract v2: the agents section, when any worker has agents
        if agents is not None:
            document["agents"] = agents
        doc_raw = orjson.dumps(document)
        self.compute_seconds = computing + time.perf_counter() - began
        async with self.client.pipeline(transaction=False) as pipe:
            if expired:
                pipe.srem(keys.parts, *expired)
            pipe.set(keys.kpis, doc_raw, ex=ttl)
            for queue, doc in queue_documents(document).items():
                pipe.set(keys.queue(queue), orjson.dumps(doc), ex=ttl)
            pipe.publish(keys.updates, doc_raw)
            await pipe.execute()
        self.publishes += 1
        return document

    async def publish_breaches(self) -> int:
        """Send the buffered breaches (PUBLISH + XADD each); they leave the buffer only once Redis took them."""
        batch = list(self.breaches)
        if not batch:
            return 0
        async with self.client.pipeline(transaction=False) as pipe:
            for raw in batch:
                pipe.publish(self.keys.breaches, raw)
                pipe.xadd(self.keys.breaches_stream, {"breach": raw}, maxlen=STREAM_MAXLEN, approximate=True)
            await pipe.execute()
        for _ in range(min(len(batch), len(self.breaches))):
            self.breaches.popleft()
        return len(batch)

    async def forget(self) -> None:
        """On a clean stop: remove this worker's partial so the others stop adding it at once."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.delete(self.keys.part(self.worker_id))
            pipe.srem(self.keys.parts, self.worker_id)
            await pipe.execute()

    # -- the loop --------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Publish every ``publish_interval_seconds`` while the worker is ready; breaches as soon as they come."""
        if self.client is None:
            self.client = new_client(self.settings)
        interval = self.settings.publish_interval_seconds
        loop = asyncio.get_running_loop()
        backoff = BACKOFF_FIRST
        down = False
        next_state = loop.time()
        try:
            while True:
                if not self.ready():
                    await self._sleep(min(interval, 0.5))
                    continue
                try:
                    if self.breaches:
                        await self.publish_breaches()
                    if loop.time() >= next_state or down:
                        await self.publish_state()
                        next_state = loop.time() + self._next_interval(interval)
                    if self.breaches:  # came in while we were publishing the state
                        await self.publish_breaches()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - any Redis or network error: back off, keep computing
                    self.failures += 1
                    self.connected = False
                    if not down:
                        log.warning(
                            "Redis read model: cannot publish to %s (%s); the worker keeps computing, "
                            "retrying with backoff up to %.0f s", redacted(self.settings.url),
                            type(exc).__name__, BACKOFF_MAX,
                        )
                        down = True
                    await self.backoff_sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                    continue
                if down:
                    log.info("Redis read model: publishing again (%d breaches dropped while away)",
                             self.breaches_dropped)
                    down = False
                    backoff = BACKOFF_FIRST
                self.connected = True
                await self._sleep(max(0.0, next_state - loop.time()))
        except asyncio.CancelledError:
            await self._close(forget=True)
            raise

    def _next_interval(self, interval: float) -> float:
        """``interval``, stretched so that computing takes at most CPU_SHARE of the time (warned once), and to
        ``BACKLOG_INTERVAL`` while a backlog waits."""
        if self.behind():
            interval = max(interval, BACKLOG_INTERVAL)
        needed = self.compute_seconds / CPU_SHARE
        if needed <= interval:
            return interval
        if not self._slow_warned:
            log.warning("Redis read model: computing the counts took %.0f ms; publishing every %.2f s instead "
                        "of %.2f s to leave the event loop to the agents", self.compute_seconds * 1000, needed,
                        interval)
            self._slow_warned = True
        return needed

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up early when a breach arrives."""
        self._wake.clear()
        if self.breaches:
            return
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

    async def _close(self, forget: bool) -> None:
        if self.client is None:
            return
        try:
            if forget and self.connected:
                await asyncio.wait_for(self.forget(), timeout=1.0)
        except BaseException:  # noqa: BLE001 - best effort on the way out
            pass
        try:
            await asyncio.wait_for(self.client.aclose(), timeout=1.0)
        except BaseException:  # noqa: BLE001
            pass


def attach_redis_sink(app: faust.App, settings: Settings, live: PartialSource,
                      ready: Callable[[], bool], behind: Callable[[], bool] = lambda: False) -> RedisSink | None:
    """The Redis read model when ``redis.enabled``: a Faust task on ``app`` runs its loop. The caller adds
    :meth:`RedisSink.on_breach` to the worker's breach listeners."""
    if not settings.redis.enabled:
        return None
    sink = RedisSink(settings, live, ready, behind=behind)

    @app.task
    async def redis_read_model() -> None:
        await sink.run()

    log.info("Redis read model: worker id %s, prefix %s, every %.1f s", sink.worker_id,
             settings.redis.key_prefix, settings.redis.publish_interval_seconds)
    return sink


__all__ = ["Keys", "PartialSource", "RedisSink", "attach_redis_sink", "merge_parts", "new_client", "queue_documents", "redacted",
           "worker_id_for"]
