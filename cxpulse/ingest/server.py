"""The ingest service: ``POST /api/v1/events`` validates contract events and writes them to Kafka.

A request carries one event (a JSON object), a JSON array of events, or NDJSON (``Content-Type:
application/x-ndjson``, one event a line). Each event is validated with the contract's models (contact,
survey and agent events, routed by ``type`` to their topic with their key); the answer lists a result per
event, in order: ``{"index": 0, "status": "accepted", "event_id": ...}`` or ``{"index": 1, "status":
"rejected", "kind": ..., "reason": ...}``.

Why 200 only after Kafka acknowledged: a webhook sender treats 200 as "delivered" and forgets the event; so
the accepted events of a request are written and acknowledged (``acks=all``) first. When Kafka cannot be
reached or does not acknowledge within ``ingest.kafka_timeout_seconds``, the answer is 503 with
``Retry-After`` and no event of the request counts as accepted: the sender retries, and since event ids are
the sender's, a copy that did reach Kafka before the failure is dropped by the pipeline as a duplicate.

Status codes: 200 (results; at least one accepted, or nothing to write), 422 (every event rejected), 400 (not
JSON / NDJSON, or no event), 401 (token), 413 (body larger than ``ingest.max_body_bytes``, or more events
than the rate limit's burst), 429 (the token's rate limit; ``Retry-After``), 503 (Kafka).
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from cxpulse.ingest.access import RateLimiter, Unauthorized, client_of, is_loopback, load_tokens
from cxpulse.models.agent_events import parse_agent_event
from cxpulse.models.events import InvalidEvent, parse_contact_event, parse_survey_response
from cxpulse.sources.records import AGENT, CONTACT, SURVEY, Produced

if TYPE_CHECKING:
    from cxpulse.settings import Settings
    from cxpulse.sources.outputs import KafkaOutput

log = logging.getLogger(__name__)

NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines")
RETRY_AFTER_SECONDS = 5


class RefusedToStart(RuntimeError):
    """The configuration would expose an open door; the message says what to set."""


class KafkaGate:
    """The one producer of the service, started on demand.

    Why on demand: the service must come up (and answer 503) while Kafka is away, and recover by itself once
    it is back. After a failure the producer is dropped, so the next request starts a fresh one rather than
    waiting behind records of a broken connection."""

    def __init__(self, settings: "Settings", bootstrap: str | None = None, create_topics: bool = True) -> None:
        self._settings = settings
        self._bootstrap = bootstrap
        self._create_topics = create_topics
        self._output: KafkaOutput | None = None
        self._lock = asyncio.Lock()
        self.timeout = settings.ingest.kafka_timeout_seconds

    async def _started(self) -> "KafkaOutput":
        from cxpulse.sources.outputs import KafkaOutput

        async with self._lock:
            if self._output is None:
                self._output = await KafkaOutput.start(self._settings.kafka, bootstrap=self._bootstrap,
                                                       create_topics=self._create_topics, role="ingest")
            return self._output

    async def write(self, events: list[Produced]) -> None:
        """Write ``events`` and wait for the acknowledgement; raises :class:`KafkaDown` on any failure."""
        try:
            output = await asyncio.wait_for(self._started(), timeout=self.timeout)
            async with asyncio.timeout(self.timeout):
                for produced in events:
                    await output.put(produced)
                await output.commit()
        except (Exception, asyncio.TimeoutError) as exc:  # noqa: BLE001 - any failure of Kafka means 503
            await self._drop()
            raise KafkaDown(_why(exc)) from None

    async def _drop(self) -> None:
        output, self._output = self._output, None
        if output is not None:
            asyncio.get_running_loop().create_task(_close_quietly(output))

    async def close(self) -> None:
        output, self._output = self._output, None
        if output is not None:
            await _close_quietly(output)


async def _close_quietly(output: "KafkaOutput") -> None:
    try:
        await asyncio.wait_for(output.close(), timeout=10)
    except Exception:  # noqa: BLE001 - closing a broken producer may fail in many ways; it is gone either way
        log.debug("closing a failed producer failed", exc_info=True)


def _why(exc: BaseException) -> str:
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "no acknowledgement in time"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class KafkaDown(RuntimeError):
    """Kafka did not take the events; the request is answered 503."""


def _json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _items(body: bytes, content_type: str) -> list[bytes | Any]:
    """The events of a body: raw lines (NDJSON) or decoded values (JSON); raises ValueError with the reason."""
    if content_type in NDJSON_TYPES:
        return [line for line in body.splitlines() if line.strip()]
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"the body is not JSON ({exc}); send NDJSON with Content-Type: application/x-ndjson") from None
    return value if isinstance(value, list) else [value]


def _validate(item: bytes | Any) -> Produced:
    """One event, validated and routed; raises InvalidEvent."""
    if isinstance(item, (bytes, bytearray)):
        try:
            obj = orjson.loads(item)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent("not_json", f"not valid JSON: {exc}") from None
        raw = bytes(item)
    else:
        obj, raw = item, b""
    if not isinstance(obj, dict):
        raise InvalidEvent("not_json", f"not a JSON object but {type(obj).__name__}")
    kind = obj.get("type")
    if kind == "agent.state":
        event: Any = parse_agent_event(obj)
        topic, key = AGENT, event.agent_id
    elif isinstance(kind, str) and kind.startswith("survey."):
        event = parse_survey_response(obj)
        topic, key = SURVEY, event.contact_id
    else:
        event = parse_contact_event(obj)
        topic, key = CONTACT, event.contact_id
    return Produced(topic, key.encode("utf-8"), raw or orjson.dumps(obj), event.event_id)


def build_app(settings: "Settings", gate: KafkaGate, tokens: list[str]) -> web.Application:
    """The aiohttp application (tests run it in-process on a real Kafka)."""
    ingest = settings.ingest
    limiter = RateLimiter(ingest.rate_limit_events_per_second, ingest.rate_limit_burst_events)
    app = web.Application(client_max_size=ingest.max_body_bytes)

    async def post_events(request: web.Request) -> web.Response:
        try:
            client = client_of(request.headers.get("Authorization"), tokens)
        except Unauthorized as exc:
            return _json_error(401, str(exc), {"WWW-Authenticate": 'Bearer realm="cxpulse-ingest"'})
        if request.content_length is not None and request.content_length > ingest.max_body_bytes:
            return _json_error(413, f"body of {request.content_length} bytes; the limit is {ingest.max_body_bytes}")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _json_error(413, f"body larger than the limit of {ingest.max_body_bytes} bytes")
        try:
            items = _items(body, request.content_type)
        except ValueError as exc:
            return _json_error(400, str(exc))
        if not items:
            return _json_error(400, "no event in the body")
        if len(items) > ingest.rate_limit_burst_events:
            return _json_error(413, f"{len(items)} events in one request; at most {ingest.rate_limit_burst_events} "
                                    "(ingest.rate_limit_burst_events)")
        wait = limiter.take(client, len(items))
        if wait > 0:
            return _json_error(429, f"rate limit of {ingest.rate_limit_events_per_second:g} events/s exceeded",
                               {"Retry-After": str(max(1, math.ceil(wait)))})
        results: list[dict[str, Any]] = []
        accepted: list[Produced] = []
        for index, item in enumerate(items):
            try:
                produced = _validate(item)
            except InvalidEvent as exc:
                results.append({"index": index, "status": "rejected", "kind": exc.kind, "reason": exc.reason})
                continue
            accepted.append(produced)
            results.append({"index": index, "status": "accepted", "event_id": produced.event_id})
        if accepted:
            try:
                await gate.write(accepted)
            except KafkaDown as exc:
                log.warning("%s: %d events not written, Kafka unavailable (%s): answered 503", client, len(accepted), exc)
                return _json_error(503, f"Kafka unavailable ({exc}); nothing was accepted, retry later",
                                   {"Retry-After": str(RETRY_AFTER_SECONDS)})
        rejected = len(results) - len(accepted)
        log.info("%s: %d accepted, %d rejected", client, len(accepted), rejected)
        status = 422 if rejected and not accepted else 200
        return web.json_response({"accepted": len(accepted), "rejected": rejected, "results": results}, status=status)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def close_gate(app: web.Application) -> None:
        await gate.close()

    app.router.add_post("/api/v1/events", post_events)
    app.router.add_get("/healthz", healthz)
    app.on_cleanup.append(close_gate)
    return app


def check_exposure(host: str, tokens: list[str]) -> None:
    """Refuse an address beyond loopback without a token: anyone on the network could write KPIs."""
    if not tokens and not is_loopback(host):
        raise RefusedToStart(f"ingest.host={host!r} is not a loopback address and no token is configured: "
                             "set ingest.tokens or ingest.token_file (or bind 127.0.0.1)")


def run(settings: "Settings", host: str | None = None, port: int | None = None, bootstrap: str | None = None) -> None:
    """Serve until interrupted; raises :class:`RefusedToStart` before binding when the door would be open."""
    bind = host or settings.ingest.host
    tokens = load_tokens(settings.ingest)
    check_exposure(bind, tokens)
    gate = KafkaGate(settings, bootstrap)
    log.info("ingest on http://%s:%d/api/v1/events (%s)", bind, port or settings.ingest.port,
             f"{len(tokens)} token(s)" if tokens else "no token: loopback only")
    web.run_app(build_app(settings, gate, tokens), host=bind, port=port or settings.ingest.port, print=None,
                access_log=None)
