"""``cxpulse wallboard``: the wallboard page and its Server-Sent Events, fed from the Redis read model.

Why from Redis and not from a worker: the read model already holds the whole centre (every worker's counts
merged, see :mod:`cxpulse.sinks.redis_sink`), so the wallboard works with any number of workers, can run on
its own host and keeps serving the page (marked stale) while workers restart.

Routes (``board`` is a name of ``wallboard.boards``; none: every queue; see :mod:`.boards` for tokens):

* ``GET /?board=NAME&queues=a,b&window=15m&rotate=30s``: the page (``static/index.html``; ``/static/...``).
  No CDN, no build step. ``?token=`` once: kept in a cookie, then a redirect to the URL without it.
* ``GET /events?board=&queues=&window=``: ``text/event-stream``. Every event carries ``id:``, the id in
  ``P:breaches:stream`` of the last breach this connection has passed (see "No missed breach" below). Events:
  ``hello`` (the board), ``kpis`` (``{"age_seconds", "document"}``: the document with only the board's queues
  and the window, each entry with its resolved ``thresholds`` and ``display_name``), ``breach`` (queue,
  channel, threshold, time: never a contact, visit or customer id), ``messages`` (the board's live messages),
  and a ``: hb`` comment every 2 s.
* ``GET /api/config?board=``: targets, the board, ``stale_after_seconds``, the windows.
* ``GET /api/v1/thresholds?board=``: the resolved warn/critical bands of each (queue, channel) of the board.
* ``GET|POST /api/v1/messages``, ``DELETE /api/v1/messages/{id}``: the message line (POST and DELETE need
  ``Authorization: Bearer <admin token>`` when a token is configured).
* ``GET /healthz``: 200 while the server runs (``redis`` says whether the subscription is up).

No missed breach: the hub tails ``P:breaches:stream`` (``XREAD``), so every breach has the stream's id. A
connection starts at the stream's head; the browser sends the last id it saw as ``Last-Event-ID`` when it
reconnects (or ``?last_id=`` when the page opens a new connection itself), and the server first replays the
breaches after that id (``XRANGE``), then the live ones, skipping any id it has already passed: each breach
reaches the page once, including those published while it was away.

One Redis subscription and one stream reader serve every browser (a hub fans out to per-client queues; a slow
client loses old documents, never the newest, and never a breach: past a bound the connection is closed and
the browser resumes from its last id).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import web

from cxpulse.settings import CHANNELS, Settings
from cxpulse.sinks.redis_sink import BACKOFF_FIRST, BACKOFF_MAX, Keys, new_client, redacted
from cxpulse.wallboard import messages as msg
from cxpulse.wallboard.boards import GLOBAL_COOKIE, Board, Boards, is_loopback
from cxpulse.wallboard.thresholds import Resolver

log = logging.getLogger("cxpulse.wallboard")

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"wallboard.js": "application/javascript", "wallboard.css": "text/css"}
HEARTBEAT_SECONDS = 2.0
MAX_PENDING = 500  # queued items of one client beyond the newest document; more: closed, the browser resumes
REPLAY_MAX = 1000  # breaches replayed on a reconnect (the stream keeps about as many)
STREAM_BLOCK_MS = 1000  # under the client's socket timeout (3 s)
BREACH_FIELDS = ("queue", "channel", "threshold_seconds", "breached_at")
COOKIE_MAX_AGE = 365 * 86400
_STREAM_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "SAMEORIGIN",
}

SETTINGS_KEY = web.AppKey("settings", Settings)
HUB_KEY = web.AppKey("hub", object)
BOARDS_KEY = web.AppKey("boards", Boards)
RESOLVER_KEY = web.AppKey("resolver", Resolver)


# ---------------------------------------------------------------------------------------------- pure helpers
def parse_queues(text: str | None) -> list[str] | None:
    """``"billing, tech-support"`` -> ``["billing", "tech-support"]``; empty or missing -> None (all)."""
    if not text:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    return names or None


def stream_id(text: str | None) -> tuple[int, int] | None:
    """``"1700000000000-3"`` -> ``(1700000000000, 3)``; anything else -> None (ignored, never an error)."""
    if not text:
        return None
    match = _STREAM_ID.match(text.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def id_text(value: tuple[int, int]) -> str:
    return f"{value[0]}-{value[1]}"


def trim_document(document: dict[str, Any], queues: list[str] | None, window: str,
                  resolver: Resolver | None = None, board: Board | None = None,
                  show_agents: bool = False) -> dict[str, Any]:
    """The document with only the chosen queues (None: all; in the chosen order) and only ``window`` in every
    ``windows``; with a resolver, each entry carries its resolved ``thresholds`` and ``display_name``. A board
    that lists its queues gets no centre totals (they would add up queues it may not see).

    Agents (contract v2): each entry carries its queue's ``agents`` (live counts and staffing) when the
    document has an agents section. ``agents_panel`` (the agents listed by state) only with ``show_agents``
    (setting ``wallboard.show_agents``), only agents serving a queue the board shows, and only their name,
    state, away reason and time in state: nothing else that could identify an agent without a name."""
    def one(entry: dict[str, Any]) -> dict[str, Any]:
        win = entry.get("windows", {})
        return {**entry, "windows": {window: win[window]} if window in win else {}}

    entries = document.get("queues", [])
    if queues is not None:
        rank = {name: i for i, name in enumerate(queues)}
        entries = sorted((q for q in entries if q["queue"] in rank), key=lambda q: rank[q["queue"]])
    out_queues = []
    for entry in entries:
        trimmed = one(entry)
        if resolver is not None:
            trimmed["thresholds"] = resolver.of(entry["queue"], entry["channel"])
            names = board.display_names if board is not None else {}
            trimmed["display_name"] = names.get(entry["queue"], entry["queue"])
        out_queues.append(trimmed)
    totals = None
    if board is None or board.queues is None:
        totals = one(document.get("totals") or {"live": {"waiting": 0, "longest_wait_seconds": 0.0}, "windows": {}})
    out = {"generated_at": document.get("generated_at"), "window": window, "queues": out_queues, "totals": totals}
    agents = document.get("agents")
    if agents:
        by_queue = {item["queue"]: item for item in agents.get("queues", [])}
        for trimmed in out_queues:
            item = by_queue.get(trimmed["queue"])
            if item is not None:
                trimmed["agents"] = {"live": item["live"], "staffing": item["staffing"]}
        if show_agents:
            shown = {q["queue"] for q in out_queues} if queues is not None else None
            out["agents_panel"] = [
                {key: listed.get(key) for key in AGENT_PANEL_FIELDS}
                for listed in agents.get("listed") or []
                if shown is None or shown.intersection(listed.get("queues") or [])
            ]
    return out


AGENT_PANEL_FIELDS = ("agent_name", "state", "reason", "seconds_in_state")
"""What the agents panel may know of an agent: never its id, team or queues (with no name, a state and a time
in state identify nobody)."""


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


def config_document(settings: Settings, document: dict[str, Any] | None, board: Board | None = None,
                    boards: list[str] | None = None) -> dict[str, Any]:
    """Targets for the page: each known (queue, channel) of ``document`` (the board's only), each channel's
    defaults and each queue's overrides (null: the channel's), so the page also colours a queue that appears
    later; the board and the names of the other boards (for ``?rotate=``)."""
    kpi = settings.kpi
    shown = set(board.queues) if board is not None and board.queues is not None else None
    known = sorted({(q["queue"], q["channel"]) for q in (document or {}).get("queues", [])
                    if shown is None or q["queue"] in shown})
    return {
        "stale_after_seconds": settings.wallboard.stale_after_seconds,
        "windows": list(kpi.windows),
        "default_window": "15m" if "15m" in kpi.windows else kpi.windows[0],
        "board": board.public() if board is not None else None,
        "boards": boards or [],
        "channels": {
            name: {"sl_target": d.sl_target, "sl_threshold_seconds": d.sl_threshold_seconds}
            for name, d in kpi.channels.items() if name in CHANNELS
        },
        "overrides": {
            queue: {"sl_target": o.sl_target, "sl_threshold_seconds": o.sl_threshold_seconds}
            for queue, o in kpi.queues.items() if shown is None or queue in shown
        },
        "queues": [
            {
                "queue": queue,
                "channel": channel,
                "sl_target": kpi.for_queue(queue, channel).sl_target,
                "sl_threshold_seconds": kpi.for_queue(queue, channel).sl_threshold_seconds,
                "feedback_response_target": kpi.for_queue(queue, channel).feedback_response_target,
            }
            for queue, channel in known
        ],
    }


def visible_messages(messages: list[dict[str, Any]], queues: list[str] | None, now: datetime) -> list[dict[str, Any]]:
    """The messages a board shows: those for every queue, and those naming one of its queues; with the seconds
    left (the page hides a message when they run out, whatever its clock says)."""
    out = []
    for message in messages:
        left = msg.seconds_left(message, now)
        if left <= 0:
            continue
        if message.get("queues") and queues is not None and not set(message["queues"]) & set(queues):
            continue
        out.append({"id": message["id"], "text": message["text"], "queues": message.get("queues") or [],
                    "until": message["until"], "seconds_left": round(left, 3)})
    return out


def sse(event: str | None, data: Any, event_id: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    if event_id is not None:
        head += f"id: {event_id}\n".encode()
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


# ---------------------------------------------------------------------------------------------- hub
class Client:
    """One browser connection: what it shows, how far it has read the breaches stream, and its pending items.

    Why not a plain bounded queue: a newer document supersedes an older one (dropped), but a breach or a
    message list must never be dropped silently; past ``MAX_PENDING`` the connection is closed instead, and the
    browser comes back with its ``Last-Event-ID``."""

    def __init__(self, board: Board, queues: list[str] | None, window: str) -> None:
        self.board = board
        self.queues = queues
        self.window = window
        self.cursor: tuple[int, int] | None = None
        self.items: deque[tuple[str, Any]] = deque()
        self.overflow = False
        self._ready = asyncio.Event()

    def offer(self, item: tuple[str, Any]) -> None:
        if item[0] == "kpis":
            for i, (kind, _) in enumerate(self.items):
                if kind == "kpis":
                    del self.items[i]
                    break
        elif len(self.items) >= MAX_PENDING:
            self.overflow = True
        self.items.append(item)
        self._ready.set()

    async def next(self, timeout: float) -> tuple[str, Any] | None:
        if not self.items:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except asyncio.TimeoutError:
                return None
        return self.items.popleft() if self.items else None

    def shows(self, queue: str | None) -> bool:
        return self.queues is None or queue in self.queues


class Hub:
    """One Redis subscription (updates, message changes) and one reader of the breaches stream, shared by all
    SSE clients; each reconnects with backoff."""

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.settings = settings
        self.keys = Keys(settings.redis.key_prefix)
        self.client = client
        self.clients: set[Client] = set()
        self.subscribed = False
        self.reading = False
        self.received = 0
        self.messages: list[dict[str, Any]] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self.client is None:
            self.client = new_client(self.settings.redis)
        self._tasks = [asyncio.create_task(self._run_pubsub(), name="wallboard-pubsub"),
                       asyncio.create_task(self._run_stream(), name="wallboard-breaches"),
                       asyncio.create_task(self._run_expiry(), name="wallboard-messages")]

    async def stop(self) -> None:
        for client in list(self.clients):
            client.offer(("close", None))
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
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

    async def stream_head(self) -> tuple[int, int] | None:
        """The id of the newest breach in the stream (``(0, 0)``: empty); None when Redis is away."""
        try:
            newest = await self.client.xrevrange(self.keys.breaches_stream, "+", "-", count=1)
        except Exception:  # noqa: BLE001
            return None
        if not newest:
            return (0, 0)
        return stream_id(_text(newest[0][0]))

    async def breaches_after(self, cursor: tuple[int, int]) -> list[tuple[tuple[int, int], dict[str, Any]]]:
        """The breaches of the stream after ``cursor`` (oldest first); empty when Redis is away."""
        try:
            entries = await self.client.xrange(self.keys.breaches_stream, f"({id_text(cursor)}", "+", count=REPLAY_MAX)
        except Exception:  # noqa: BLE001
            return []
        return [parsed for parsed in (_entry(e) for e in entries) if parsed is not None]

    def broadcast(self, item: tuple[str, Any]) -> None:
        for client in list(self.clients):
            client.offer(item)

    async def reload_messages(self) -> bool:
        """Read the live messages and push them to every client; False when Redis is away."""
        try:
            self.messages = await msg.list_messages(self.client, self.keys, datetime.now(timezone.utc))
        except Exception:  # noqa: BLE001 - Redis away: keep the last list
            return False
        self.broadcast(("messages", self.messages))
        return True

    async def _run_pubsub(self) -> None:
        backoff = BACKOFF_FIRST
        warned = False
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.keys.updates, self.keys.messages_changed)
                self.subscribed = True
                if warned:
                    log.info("wallboard: Redis subscription is back")
                warned = False
                backoff = BACKOFF_FIRST
                await self.reload_messages()
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None:
                        await pubsub.ping()  # notices a dead connection while nothing is published
                        continue
                    if message.get("type") != "message":
                        continue
                    channel = _text(message["channel"])
                    if channel == self.keys.messages_changed:
                        await self.reload_messages()
                        continue
                    try:
                        payload = orjson.loads(message["data"])
                    except orjson.JSONDecodeError:
                        continue
                    self.received += 1
                    self.broadcast(("kpis", payload))
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

    async def _run_stream(self) -> None:
        """Tail the breaches stream from its head at start; every breach goes to every client with its id."""
        backoff = BACKOFF_FIRST
        cursor: tuple[int, int] | None = None
        while True:
            try:
                head = await self.client.xrevrange(self.keys.breaches_stream, "+", "-", count=1)
                newest = stream_id(_text(head[0][0])) if head else (0, 0)
                if cursor is None or (newest is not None and newest < cursor):  # first start, or Redis came back empty
                    cursor = newest or (0, 0)
                self.reading = True
                backoff = BACKOFF_FIRST
                while True:
                    answer = await self.client.xread({self.keys.breaches_stream: id_text(cursor)},
                                                     count=100, block=STREAM_BLOCK_MS)
                    for _, entries in answer or []:
                        for entry in entries:
                            parsed = _entry(entry)
                            if parsed is None:
                                continue
                            cursor = parsed[0]
                            self.broadcast(("breach", parsed))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the subscription's task logs the outage once
                self.reading = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def _run_expiry(self) -> None:
        """A message leaves every board within half a second of its ``until``."""
        while True:
            await asyncio.sleep(0.5)
            now = datetime.now(timezone.utc)
            if any(msg.seconds_left(m, now) <= 0 for m in self.messages) and not await self.reload_messages():
                self.messages = [m for m in self.messages if msg.seconds_left(m, now) > 0]
                self.broadcast(("messages", self.messages))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(entry: Any) -> tuple[tuple[int, int], dict[str, Any]] | None:
    """A stream entry ``(id, {b"breach": json})`` -> (id, record)."""
    entry_id, fields = entry
    parsed = stream_id(_text(entry_id))
    raw = fields.get(b"breach") if isinstance(fields, dict) else None
    if raw is None and isinstance(fields, dict):
        raw = fields.get("breach")
    if parsed is None or raw is None:
        return None
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return (parsed, record) if isinstance(record, dict) else None


# ---------------------------------------------------------------------------------------------- access
def _presented(request: web.Request, board: Board, boards: Boards) -> str | None:
    """The token a request carries: ``?token=``, ``Authorization: Bearer``, or a kept cookie."""
    token = request.query.get("token")
    if token:
        return token
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth[7:].strip()
    kept = [request.cookies.get(name) for name in (board.cookie, GLOBAL_COOKIE)]
    kept = [value for value in kept if value]
    for value in kept:
        if boards.accepts(board, value):
            return value
    return kept[0] if kept else None


def _refusal(status: int, title: str, text: str, html: bool) -> web.Response:
    if not html:
        return web.json_response({"error": text}, status=status, headers={"Cache-Control": "no-store"})
    body = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>"
            "<link rel=\"stylesheet\" href=\"/static/wallboard.css\"></head>"
            f"<body class=\"refusal\"><main><h1>{title}</h1><p>{text}</p></main></body></html>")
    return web.Response(text=body, status=status, content_type="text/html",
                        headers={"Cache-Control": "no-store", **SECURITY_HEADERS})


def _authorise(request: web.Request, html: bool = False) -> Board | web.Response:
    """The board of the request if it may be opened, else the refusal (404, 401 without token, 403 wrong)."""
    boards = request.app[BOARDS_KEY]
    name = request.query.get("board") or ""
    board = boards.get(name)
    if board is None:
        return _refusal(404, "No such board", f"There is no board named \u201c{_escape(name)}\u201d.", html)
    if not boards.needs_token(board):
        return board
    presented = _presented(request, board, boards)
    if not presented:
        return _refusal(401, "This board needs a token",
                        "Open it once with <code>?token=&hellip;</code> in the address; the browser keeps it."
                        if html else "this board needs a token (?token=, a cookie or Authorization: Bearer)", html)
    if not boards.accepts(board, presented):
        return _refusal(403, "Token refused", "The token is not valid for this board." if html
                        else "the token is not valid for this board", html)
    return board


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


# ---------------------------------------------------------------------------------------------- routes
def _static(name: str, content_type: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=(STATIC / name).read_bytes(), content_type=content_type,
                            headers={"Cache-Control": "no-cache", **SECURITY_HEADERS})
    return handler


async def index(request: web.Request) -> web.StreamResponse:
    board = _authorise(request, html=True)
    if isinstance(board, web.Response):
        return board
    token = request.query.get("token")
    if token:  # passed once: kept in a cookie, and out of the address bar (and of screenshots)
        boards = request.app[BOARDS_KEY]
        rest = [(k, v) for k, v in request.query.items() if k != "token"]
        response = web.Response(status=303, headers={"Location": "/" + (("?" + urlencode(rest)) if rest else ""),
                                                     "Cache-Control": "no-store"})
        response.set_cookie(boards.cookie_for(board, token), token, max_age=COOKIE_MAX_AGE, httponly=True,
                            samesite="Strict", path="/", secure=request.secure)
        return response
    return web.Response(body=(STATIC / "index.html").read_bytes(), content_type="text/html",
                        headers={"Cache-Control": "no-cache", **SECURITY_HEADERS})


async def events(request: web.Request) -> web.StreamResponse:
    board = _authorise(request)
    if isinstance(board, web.Response):
        return board
    hub: Hub = request.app[HUB_KEY]  # type: ignore[assignment]
    resolver = request.app[RESOLVER_KEY]
    window = request.query.get("window") or "15m"
    client = Client(board, board.queues_for(parse_queues(request.query.get("queues"))), window)
    resume = max((c for c in (stream_id(request.headers.get("Last-Event-ID")),
                              stream_id(request.query.get("last_id"))) if c is not None), default=None)
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
        **SECURITY_HEADERS,
    })
    await response.prepare(request)
    hub.clients.add(client)  # first: a breach published from now on is queued for this client

    def cursor_text() -> str | None:
        return id_text(client.cursor) if client.cursor is not None else None

    async def send(kind: str, payload: Any) -> None:
        if kind == "kpis":
            await response.write(sse("kpis", {"age_seconds": round(age_seconds(payload), 3),
                                              "document": trim_document(payload, client.queues, client.window,
                                                                        resolver, board,
                                                                        hub.settings.wallboard.show_agents)},
                                     cursor_text()))
        elif kind == "breach":
            at, record = payload
            if client.cursor is not None and at <= client.cursor:
                return  # already passed (replayed, or older than this connection)
            client.cursor = at
            if client.shows(record.get("queue")):
                await response.write(sse("breach", {**safe_breach(record), "id": id_text(at)}, cursor_text()))
        elif kind == "messages":
            await response.write(sse("messages", visible_messages(payload, client.queues, datetime.now(timezone.utc)),
                                     cursor_text()))

    try:
        await response.write(b"retry: 2000\n\n")  # EventSource reconnects 2 s after a drop
        replay: list[tuple[tuple[int, int], dict[str, Any]]] = []
        if resume is not None:
            client.cursor = resume
            replay = await hub.breaches_after(resume)
        else:
            client.cursor = await hub.stream_head()
        await response.write(sse("hello", {"board": board.public(), "resumed": resume is not None},
                                 cursor_text()))
        current = await hub.current()
        if current is not None:
            await send("kpis", current)
        await send("messages", hub.messages)
        for item in replay:
            await send("breach", item)
        while not client.overflow:
            item = await client.next(HEARTBEAT_SECONDS)
            if item is None:
                await response.write(b": hb\n\n")
                continue
            if item[0] == "close":
                break
            await send(*item)
    except ConnectionResetError:  # the browser went away
        pass
    finally:
        hub.clients.discard(client)
    return response


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=lambda o: orjson.dumps(o).decode(),
                             headers={"Cache-Control": "no-cache"})


async def api_config(request: web.Request) -> web.Response:
    board = _authorise(request)
    if isinstance(board, web.Response):
        return board
    settings, hub, boards = request.app[SETTINGS_KEY], request.app[HUB_KEY], request.app[BOARDS_KEY]
    return _json(config_document(settings, await hub.current(), board, boards.names()))  # type: ignore[attr-defined]


async def api_thresholds(request: web.Request) -> web.Response:
    board = _authorise(request)
    if isinstance(board, web.Response):
        return board
    hub = request.app[HUB_KEY]
    queues = board.queues_for(parse_queues(request.query.get("queues")))
    pairs = {(q["queue"], q["channel"]) for q in ((await hub.current()) or {}).get("queues", [])}  # type: ignore[attr-defined]
    if queues is not None:
        pairs = {p for p in pairs if p[0] in queues}
    return _json(request.app[RESOLVER_KEY].document(sorted(pairs)))


async def api_messages(request: web.Request) -> web.Response:
    board = _authorise(request)
    if isinstance(board, web.Response):
        return board
    hub: Hub = request.app[HUB_KEY]  # type: ignore[assignment]
    now = datetime.now(timezone.utc)
    try:
        live = await msg.list_messages(hub.client, hub.keys, now)
    except Exception:  # noqa: BLE001
        return _json({"error": "Redis is unreachable"}, 503)
    return _json({"messages": visible_messages(live, board.queues_for(None), now)})


def _admin(request: web.Request) -> web.Response | None:
    boards = request.app[BOARDS_KEY]
    auth = request.headers.get("Authorization", "")
    presented = auth[7:].strip() if auth.startswith("Bearer ") else None
    if boards.admin_accepts(presented):
        return None
    if presented is None:
        return _json({"error": "posting a message needs Authorization: Bearer <wallboard.admin_token>"}, 401)
    return _json({"error": "the token is not the admin token"}, 403)


async def post_message(request: web.Request) -> web.Response:
    refused = _admin(request)
    if refused is not None:
        return refused
    if request.content_type != "application/json":  # also keeps cross-site forms out (no CORS preflight passes)
        return _json({"error": "send JSON: {\"text\": ..., \"queues\": [...], \"until\": \"14:00\"}"}, 415)
    try:
        body = await request.json(loads=orjson.loads)
    except (orjson.JSONDecodeError, UnicodeDecodeError):
        return _json({"error": "the body is not JSON"}, 400)
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        return _json({"error": "\"text\" (a string) is required"}, 400)
    queues = body.get("queues") or []
    until = body.get("until")
    if not isinstance(queues, list) or not all(isinstance(q, str) for q in queues):
        return _json({"error": "\"queues\" must be a list of queue names"}, 400)
    if until is not None and not isinstance(until, str):
        return _json({"error": "\"until\" must be a string (14:00, 30m or an ISO time)"}, 400)
    settings: Settings = request.app[SETTINGS_KEY]
    hub: Hub = request.app[HUB_KEY]  # type: ignore[assignment]
    now = datetime.now(timezone.utc)
    try:
        at = msg.parse_until(until, now, settings.kpi.timezone, settings.wallboard.message_default_seconds)
        message = await msg.add_message(hub.client, hub.keys, body["text"], queues, at, now)
    except msg.MessageError as exc:
        return _json({"error": str(exc)}, 400)
    log.info("wallboard: message %s added, until %s", message["id"], message["until"])
    return _json(message, 201)


async def delete_message(request: web.Request) -> web.Response:
    refused = _admin(request)
    if refused is not None:
        return refused
    hub: Hub = request.app[HUB_KEY]  # type: ignore[assignment]
    removed = await msg.remove_message(hub.client, hub.keys, request.match_info["message_id"])
    return _json({"removed": removed}, 200 if removed else 404)


async def healthz(request: web.Request) -> web.Response:
    hub: Hub = request.app[HUB_KEY]  # type: ignore[assignment]
    return web.json_response({"status": "ok", "redis": hub.subscribed and hub.reading, "clients": len(hub.clients)})


def create_app(settings: Settings, redis_client: Any = None) -> web.Application:
    """The aiohttp application (``redis_client``: a client of the caller's, e.g. a test's)."""
    app = web.Application()
    hub = Hub(settings, redis_client)
    app[SETTINGS_KEY] = settings
    app[HUB_KEY] = hub
    app[BOARDS_KEY] = Boards(settings)
    app[RESOLVER_KEY] = Resolver(settings)
    app.router.add_get("/", index)
    for name, content_type in STATIC_FILES.items():
        app.router.add_get(f"/static/{name}", _static(name, content_type))
    app.router.add_get("/events", events)
    app.router.add_get("/api/config", api_config)
    app.router.add_get("/api/v1/thresholds", api_thresholds)
    app.router.add_get("/api/v1/messages", api_messages)
    app.router.add_post("/api/v1/messages", post_message)
    app.router.add_delete("/api/v1/messages/{message_id}", delete_message)
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


def bind_host(settings: Settings, host: str) -> str:
    """``host``, unless it reaches beyond this machine while no global token is set and
    ``wallboard.allow_unauthenticated`` is false: then 127.0.0.1 (and a warning saying what to set)."""
    if is_loopback(host) or settings.wallboard.allow_unauthenticated or Boards(settings).global_token is not None:
        return host
    log.warning("wallboard: no wallboard.token is set, so it binds to 127.0.0.1 instead of %s; set a token or "
                "wallboard.allow_unauthenticated: true to serve beyond this host", host)
    return "127.0.0.1"


def run(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve until SIGINT/SIGTERM."""
    host = bind_host(settings, host or settings.wallboard.host)
    port = port or settings.wallboard.port
    log.info("wallboard on http://%s:%d/ reading %s (prefix %s)", host, port, redacted(settings.redis.url),
             settings.redis.key_prefix)
    web.run_app(create_app(settings), host=host, port=port, print=None, shutdown_timeout=2.0,
                access_log=None)
