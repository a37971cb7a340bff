"""``cxpulse wallboard``: the wallboard page and its Server-Sent Events, fed from the Redis read model.

Why from Redis and not from a worker: the read model already holds the whole centre (every worker's counts
merged, see :mod:`cxpulse.sinks.redis_sink`), so the wallboard works with any number of workers, can run on
its own host and keeps serving the page (marked stale) while workers restart.

Routes:

* ``GET /``: the page (``static/index.html``; ``/static/wallboard.js``, ``/static/wallboard.css``). No CDN,
  no build step.
* ``GET /events?queues=a,b&window=15m``: ``text/event-stream``. On connect the current ``P:kpis``, then every
  ``P:updates`` message, as event ``kpis`` with data ``{"age_seconds", "document"}`` (the document trimmed to
  the chosen queues and window); every ``P:breaches`` message as event ``breach`` with only queue, channel,
  threshold and time (never a contact, visit or customer id); a ``: hb`` comment every 2 s.
* ``GET /api/config``: ``sl_target`` and ``sl_threshold_seconds`` of each known (queue, channel) and of each
  channel, ``stale_after_seconds``, the windows.
* ``GET /healthz``: 200 while the server runs (``redis`` says whether the subscription is up).

One Redis subscription serves every browser (a hub fans out to per-client bounded queues; a slow client
loses old updates, never the newest).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from cxpulse.settings import CHANNELS, Settings
from cxpulse.sinks.redis_sink import BACKOFF_FIRST, BACKOFF_MAX, Keys, new_client, redacted

log = logging.getLogger("cxpulse.wallboard")

STATIC = Path(__file__).resolve().parent / "static"
HEARTBEAT_SECONDS = 2.0
CLIENT_QUEUE = 8
BREACH_FIELDS = ("queue", "channel", "threshold_seconds", "breached_at")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "SAMEORIGIN",
}

SETTINGS_KEY = web.AppKey("settings", Settings)
HUB_KEY = web.AppKey("hub", object)


# ---------------------------------------------------------------------------------------------- pure helpers
def parse_queues(text: str | None) -> list[str] | None:
    """``"billing, tech-support"`` -> ``["billing", "tech-support"]``; empty or missing -> None (all)."""
    if not text:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    return names or None


def trim_document(document: dict[str, Any], queues: list[str] | None, window: str) -> dict[str, Any]:
    """The document with only the chosen queues (None: all) and only ``window`` in every ``windows``."""
    def one(entry: dict[str, Any]) -> dict[str, Any]:
        win = entry.get("windows", {})
        return {**entry, "windows": {window: win[window]} if window in win else {}}

    chosen = set(queues) if queues else None
    return {
        "generated_at": document.get("generated_at"),
        "window": window,
        "queues": [one(q) for q in document.get("queues", []) if chosen is None or q["queue"] in chosen],
        "totals": one(document.get("totals") or {"live": {"waiting": 0, "longest_wait_seconds": 0.0}, "windows": {}}),
    }


def safe_breach(record: dict[str, Any]) -> dict[str, Any]:
    """What the page may know of a breach: queue, channel, threshold, time. Never contact or customer ids."""
    return {name: record.get(name) for name in BREACH_FIELDS}


def age_seconds(document: dict[str, Any], now: float | None = None) -> float:
    """Seconds since the document was computed (0 when unknown or in the future)."""
    text = document.get("generated_at")
    if not text:
        return 0.0
    try:
        at = datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
    return max(0.0, (time.time() if now is None else now) - at)


def config_document(settings: Settings, document: dict[str, Any] | None) -> dict[str, Any]:
    """Targets for the page: each known (queue, channel) of ``document``, each channel's defaults and each
    queue's overrides (null: the channel's), so the page also colours a queue that appears later."""
    kpi = settings.kpi
    known = sorted({(q["queue"], q["channel"]) for q in (document or {}).get("queues", [])})
    return {
        "stale_after_seconds": settings.wallboard.stale_after_seconds,
        "windows": list(kpi.windows),
        "default_window": "15m" if "15m" in kpi.windows else kpi.windows[0],
        "channels": {
            name: {"sl_target": d.sl_target, "sl_threshold_seconds": d.sl_threshold_seconds}
            for name, d in kpi.channels.items() if name in CHANNELS
        },
        "overrides": {
            queue: {"sl_target": o.sl_target, "sl_threshold_seconds": o.sl_threshold_seconds}
            for queue, o in kpi.queues.items()
        },
        "queues": [
            {
                "queue": queue,
                "channel": channel,
                "sl_target": kpi.for_queue(queue, channel).sl_target,
                "sl_threshold_seconds": kpi.for_queue(queue, channel).sl_threshold_seconds,
            }
            for queue, channel in known
        ],
    }


def sse(event: str | None, data: Any) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


# ---------------------------------------------------------------------------------------------- hub
class Client:
    """One browser connection: a bounded queue of (event, payload)."""

    def __init__(self, queues: list[str] | None, window: str) -> None:
        self.queues = queues
        self.window = window
        self.inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=CLIENT_QUEUE)

    def offer(self, item: tuple[str, Any]) -> None:
        if self.inbox.full():  # drop the oldest: the newest document supersedes it
            try:
                self.inbox.get_nowait()
            except asyncio.QueueEmpty:
                pass
        self.inbox.put_nowait(item)


class Hub:
    """One Redis subscription (updates + breaches) shared by all SSE clients; reconnects with backoff."""

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.settings = settings
        self.keys = Keys(settings.redis.key_prefix)
        self.client = client
        self.clients: set[Client] = set()
        self.subscribed = False
        self.messages = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.client is None:
            self.client = new_client(self.settings.redis)
        self._task = asyncio.create_task(self._run(), name="wallboard-hub")

    async def stop(self) -> None:
        for client in list(self.clients):
            client.offer(("close", None))
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except BaseException:  # noqa: BLE001
                pass
        if self.client is not None:
            try:
                await asyncio.wait_for(self.client.aclose(), timeout=1.0)
            except BaseException:  # noqa: BLE001
                pass

    async def current(self) -> dict[str, Any] | None:
        """The current ``P:kpis`` document (None when missing, expired or Redis is away)."""
        try:
            raw = await self.client.get(self.keys.kpis)
        except Exception:  # noqa: BLE001
            return None
        if raw is None:
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None

    def broadcast(self, channel: str, raw: bytes) -> None:
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        self.messages += 1
        kind = "kpis" if channel == self.keys.updates else "breach"
        for client in list(self.clients):
            client.offer((kind, payload))

    async def _run(self) -> None:
        backoff = BACKOFF_FIRST
        warned = False
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.keys.updates, self.keys.breaches)
                self.subscribed = True
                if warned:
                    log.info("wallboard: Redis subscription is back")
                warned = False
                backoff = BACKOFF_FIRST
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None:
                        await pubsub.ping()  # notices a dead connection while nothing is published
                        continue
                    if message.get("type") != "message":
                        continue
                    channel = message["channel"]
                    channel = channel.decode() if isinstance(channel, bytes) else str(channel)
                    self.broadcast(channel, message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                self.subscribed = False
                if not warned:
                    log.warning("wallboard: Redis at %s unreachable (%s); retrying with backoff",
                                redacted(self.settings.redis.url), type(exc).__name__)
                    warned = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            finally:
                try:
                    await asyncio.wait_for(pubsub.aclose(), timeout=1.0)
                except BaseException:  # noqa: BLE001
                    pass


# ---------------------------------------------------------------------------------------------- routes
def _static(name: str, content_type: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=(STATIC / name).read_bytes(), content_type=content_type,
                            headers={"Cache-Control": "no-cache", **SECURITY_HEADERS})
    return handler


async def events(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB_KEY]
    window = request.query.get("window") or "15m"
    client = Client(parse_queues(request.query.get("queues")), window)
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
        **SECURITY_HEADERS,
    })
    await response.prepare(request)
    hub.clients.add(client)
    try:
        await response.write(b"retry: 2000\n\n")  # EventSource reconnects 2 s after a drop
        current = await hub.current()
        if current is not None:
            await response.write(_kpis_event(current, client))
        while True:
            try:
                kind, payload = await asyncio.wait_for(client.inbox.get(), timeout=HEARTBEAT_SECONDS)
            except asyncio.TimeoutError:
                await response.write(b": hb\n\n")
                continue
            if kind == "close":
                break
            if kind == "kpis":
                await response.write(_kpis_event(payload, client))
            else:
                await response.write(sse("breach", safe_breach(payload)))
    except ConnectionResetError:  # the browser went away
        pass
    finally:
        hub.clients.discard(client)
    return response


def _kpis_event(document: dict[str, Any], client: Client) -> bytes:
    return sse("kpis", {"age_seconds": round(age_seconds(document), 3),
                        "document": trim_document(document, client.queues, client.window)})


async def api_config(request: web.Request) -> web.Response:
    settings, hub = request.app[SETTINGS_KEY], request.app[HUB_KEY]
    return web.json_response(config_document(settings, await hub.current()), dumps=lambda o: orjson.dumps(o).decode(),
                             headers={"Cache-Control": "no-cache"})


async def healthz(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    return web.json_response({"status": "ok", "redis": hub.subscribed, "clients": len(hub.clients)})


def create_app(settings: Settings, redis_client: Any = None) -> web.Application:
    """The aiohttp application (tests pass a fake ``redis_client``)."""
    app = web.Application()
    hub = Hub(settings, redis_client)
    app[SETTINGS_KEY] = settings
    app[HUB_KEY] = hub
    app.router.add_get("/", _static("index.html", "text/html"))
    app.router.add_get("/static/wallboard.js", _static("wallboard.js", "application/javascript"))
    app.router.add_get("/static/wallboard.css", _static("wallboard.css", "text/css"))
    app.router.add_get("/events", events)
    app.router.add_get("/api/config", api_config)
    app.router.add_get("/healthz", healthz)

    async def on_startup(_: web.Application) -> None:
        await hub.start()

    async def on_shutdown(_: web.Application) -> None:
        for client in list(hub.clients):
            client.offer(("close", None))

    async def on_cleanup(_: web.Application) -> None:
        await hub.stop()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app


def run(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve until SIGINT/SIGTERM."""
    host = host or settings.wallboard.host
    port = port or settings.wallboard.port
    log.info("wallboard on http://%s:%d/ reading %s (prefix %s)", host, port, redacted(settings.redis.url),
             settings.redis.key_prefix)
    web.run_app(create_app(settings), host=host, port=port, print=None, shutdown_timeout=2.0,
                access_log=None)
