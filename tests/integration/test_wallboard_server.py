"""Issue 15, the wallboard server on the real Redis (no browser): its event stream, thresholds, messages, access.

The server runs in this process (aiohttp's test server, with the real Redis client it makes itself) under a
key prefix of its own on the local stack's Redis; breaches are published by the worker's own
:class:`RedisSink` code (PUBLISH + XADD), documents as the sink writes them (SET + PUBLISH).

1. no missed breach: every event carries an id; breaches published while the connection is closed come on
   the next connection (``Last-Event-ID`` or ``?last_id=``), in order, once each, then the live ones;
2. thresholds: each entry of the page's document carries its resolved bands, ``/api/v1/thresholds`` the same;
   the e-mail queue (4 h) is not critical at a 30 s wait, the voice queue is;
3. messages: POST -> every open connection gets the list at once; the message leaves at its expiry;
4. access: a board with a token answers 401 without it, 403 with a wrong one, and its document holds only its
   queues (no centre totals).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from cxpulse.settings import Settings
from cxpulse.sinks.redis_sink import Keys, RedisSink
from cxpulse.wallboard.server import create_app, stream_id

pytestmark = pytest.mark.integration


def document(generated_at: str, entries: list[tuple[str, str, int, float, float | None]]) -> dict[str, Any]:
    """A read-model document: (queue, channel, waiting, longest wait, service level of 15m) per entry."""
    def window(sl: float | None) -> dict[str, Any]:
        return {"offered": 10, "service_level": sl, "asa_seconds": 5.0, "abandon_rate": 0.0, "nps": None,
                "csat": None, "fcr": None}

    return {
        "generated_at": generated_at,
        "queues": [{"queue": q, "channel": c, "live": {"waiting": w, "longest_wait_seconds": lw},
                    "windows": {"15m": window(sl)}} for q, c, w, lw, sl in entries],
        "totals": {"live": {"waiting": sum(e[2] for e in entries), "longest_wait_seconds": 30.0},
                   "windows": {"15m": window(0.8)}},
    }


class Events:
    """An SSE connection read event by event: (event, id, data)."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.last_id: str | None = None

    async def next(self, kind: str | None = None, timeout: float = 5.0) -> tuple[str, str | None, Any]:
        async def one() -> tuple[str, str | None, Any]:
            event, event_id, data = "message", None, None
            while True:
                line = (await self.response.content.readline()).decode()
                assert line, "the stream ended"
                line = line.rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("data: "):
                    data = orjson.loads(line[6:])
                elif line == "" and data is not None:
                    return event, event_id, data

        deadline = time.monotonic() + timeout
        while True:
            event, event_id, data = await asyncio.wait_for(one(), max(0.01, deadline - time.monotonic()))
            assert event_id is not None, f"event {event} without an id"
            self.last_id = event_id
            if kind is None or event == kind:
                return event, event_id, data


class _NoLive:
    def partial(self, worker_id: str) -> dict[str, Any]:
        raise AssertionError("not used")


@pytest.fixture
async def served(redis_url: str) -> AsyncIterator[dict[str, Any]]:
    import redis.asyncio as aioredis

    prefix = f"t-wb-{uuid.uuid4().hex[:10]}"
    settings = Settings(
        redis={"url": redis_url, "key_prefix": prefix},
        kpi={"queues": {"email-care": {"sl_threshold_seconds": 14400}, "vip": {"sl_threshold_seconds": 10}}},
        wallboard={"boards": {"vip-desk": {"queues": ["vip"], "token": "s3cret-vip", "title": "VIP desk"},
                              "open": {"queues": ["billing", "vip"]}},
                   "admin_token": "adm1n"})
    client = aioredis.Redis.from_url(redis_url)
    sink = RedisSink(settings, _NoLive(), lambda: True, client=client, worker_id="w-test")
    try:
        async with TestClient(TestServer(create_app(settings))) as http:
            yield {"http": http, "redis": client, "keys": Keys(prefix), "sink": sink, "settings": settings}
    finally:
        keys = await client.keys(f"{prefix}:*")
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def publish_doc(served: dict[str, Any], doc: dict[str, Any]) -> None:
    keys, r = served["keys"], served["redis"]
    raw = orjson.dumps(doc)
    await r.set(keys.kpis, raw, ex=15)
    await r.publish(keys.updates, raw)


async def breach(served: dict[str, Any], queue: str, n: int) -> None:
    """A breach as the worker publishes it (with ids the page must never get)."""
    served["sink"].on_breach({"queue": queue, "channel": "voice", "contact_id": f"ct-secret-{n}",
                              "visit_id": f"ev-secret-{n}", "queued_ts": "2026-11-22T10:00:00Z",
                              "threshold_seconds": 20.0, "breached_at": f"2026-11-22T10:00:{n:02d}Z"})
    assert await served["sink"].publish_breaches() == 1


async def open_events(http: TestClient, path: str = "/events", headers: dict[str, str] | None = None) -> Events:
    response = await http.get(path, headers=headers or {})
    assert response.status == 200, await response.text()
    return Events(response)


async def test_breaches_of_a_cut_connection_come_once_on_reconnect(served: dict[str, Any]) -> None:
    http = served["http"]
    events = await open_events(http)
    kind, first_id, hello = await events.next("hello")
    assert first_id == "0-0" and hello["resumed"] is False  # the stream is empty: its head

    await breach(served, "billing", 1)
    _, id1, b1 = await events.next("breach")
    assert b1 == {"queue": "billing", "channel": "voice", "threshold_seconds": 20.0,
                  "breached_at": "2026-11-22T10:00:01Z", "id": id1}
    events.response.close()

    # while the page is away: three breaches and a document (pub/sub alone would lose the breaches)
    for n in (2, 3, 4):
        await breach(served, "billing", n)
    await publish_doc(served, document("2026-11-22T10:00:05.000000Z", [("billing", "voice", 1, 3.0, 0.9)]))

    again = await open_events(http, headers={"Last-Event-ID": id1})
    _, hello_id, hello = await again.next("hello")
    assert hello["resumed"] is True and hello_id == id1
    seen = []
    raw_texts = []
    while len(seen) < 3:
        kind, event_id, data = await again.next()
        raw_texts.append(orjson.dumps(data).decode())
        if kind == "breach":
            seen.append((event_id, data["breached_at"]))
    assert [at for _, at in seen] == ["2026-11-22T10:00:02Z", "2026-11-22T10:00:03Z", "2026-11-22T10:00:04Z"]
    assert all(stream_id(event_id) > stream_id(id1) for event_id, _ in seen)

    # then live, nothing twice: the next breach is the fifth, and the next document carries its id
    await breach(served, "billing", 5)
    _, id5, b5 = await again.next("breach")
    assert b5["breached_at"] == "2026-11-22T10:00:05Z" and stream_id(id5) > stream_id(seen[-1][0])
    await publish_doc(served, document("2026-11-22T10:00:06.000000Z", [("billing", "voice", 1, 3.0, 0.9)]))
    _, doc_id, _ = await again.next("kpis")
    assert doc_id == id5
    assert not any("secret" in text for text in raw_texts)
    again.response.close()

    # a page that opens a new connection itself passes ?last_id=; the same replay, from there
    third = await open_events(http, f"/events?last_id={seen[0][0]}")
    replayed = []
    while len(replayed) < 3:
        kind, event_id, data = await third.next("breach")
        replayed.append(data["breached_at"])
    assert replayed == ["2026-11-22T10:00:03Z", "2026-11-22T10:00:04Z", "2026-11-22T10:00:05Z"]
    third.response.close()


async def test_thresholds_follow_each_queue(served: dict[str, Any]) -> None:
    http = served["http"]
    await publish_doc(served, document("2026-11-22T10:00:00.000000Z", [
        ("billing", "voice", 12, 30.0, 0.75), ("email-care", "email", 3, 30.0, 0.95)]))
    events = await open_events(http)
    _, _, payload = await events.next("kpis")
    entries = {q["queue"]: q for q in payload["document"]["queues"]}
    voice, email = entries["billing"]["thresholds"], entries["email-care"]["thresholds"]
    assert voice["longest_wait"] == {"direction": "above", "warn": 10.0, "critical": 20.0}
    assert email["longest_wait"] == {"direction": "above", "warn": 7200.0, "critical": 14400.0}
    assert voice["service_level"] == {"direction": "below", "warn": 0.8, "critical": 0.7}
    assert email["waiting"] == {"direction": "above", "warn": None, "critical": None}
    from cxpulse.wallboard.thresholds import states

    # oldest_awaiting (the feedback tile's metric, issue 12): a document without feedback figures has no state
    assert states(entries["billing"], voice, "15m") == {"service_level": "warn", "waiting": "critical",
                                                       "longest_wait": "critical", "asa": "good",
                                                       "abandon_rate": "good", "oldest_awaiting": "none"}
    assert states(entries["email-care"], email, "15m")["longest_wait"] == "good"
    listed = await (await http.get("/api/v1/thresholds")).json()
    assert {(q["queue"], q["channel"]): q["thresholds"] for q in listed["queues"]} == {
        ("billing", "voice"): voice, ("email-care", "email"): email}
    assert listed["metrics"]["service_level"] == {"direction": "below", "unit": "ratio", "field": "window.service_level"}
    events.response.close()


async def test_messages_reach_open_boards_and_expire(served: dict[str, Any]) -> None:
    http = served["http"]
    events = await open_events(http, "/events?board=open")
    _, _, listed = await events.next("messages")
    assert listed == []
    refused = await http.post("/api/v1/messages", json={"text": "x"})
    assert refused.status == 401
    until = (datetime.now(timezone.utc) + timedelta(seconds=2)).isoformat()
    for text, queues in (("Billing outage,\n callbacks from 14:00", ["billing"]), ("sales only", ["sales"])):
        answer = await http.post("/api/v1/messages", json={"text": text, "queues": queues, "until": until},
                                 headers={"Authorization": "Bearer adm1n"})
        assert answer.status == 201, await answer.text()
    while True:  # the "sales" message is not this board's: never shown here
        _, _, listed = await events.next("messages")
        if listed:
            break
    assert [m["text"] for m in listed] == ["Billing outage, callbacks from 14:00"]
    while listed:
        _, _, listed = await events.next("messages", timeout=5.0)
    bad = await http.post("/api/v1/messages", json={"text": "x", "until": "25:00"},
                          headers={"Authorization": "Bearer adm1n"})
    assert bad.status == 400 and (await bad.json())["error"] == "--until '25:00': not a time of day"
    events.response.close()


async def test_a_board_with_a_token(served: dict[str, Any]) -> None:
    http = served["http"]
    await publish_doc(served, document("2026-11-22T10:00:00.000000Z", [
        ("billing", "voice", 1, 3.0, 0.9), ("vip", "voice", 2, 4.0, 0.5)]))
    assert (await http.get("/events?board=vip-desk")).status == 401
    assert (await http.get("/events?board=vip-desk&token=wrong")).status == 403
    page = await http.get("/?board=vip-desk")
    assert page.status == 401 and "needs a token" in await page.text()
    assert (await http.get("/?board=nope")).status == 404
    # passed once: a cookie, and a redirect to the address without it
    first = await http.get("/?board=vip-desk&token=s3cret-vip", allow_redirects=False)
    assert first.status == 303 and first.headers["Location"] == "/?board=vip-desk"
    cookie = first.cookies["cxpulse_token_vip-desk"]
    assert cookie.value == "s3cret-vip" and cookie["httponly"] and cookie["samesite"] == "Strict"
    assert (await http.get("/?board=vip-desk")).status == 200  # the cookie jar sends it
    events = await open_events(http, "/events?board=vip-desk&queues=billing,vip")
    _, _, payload = await events.next("kpis")
    assert [q["queue"] for q in payload["document"]["queues"]] == ["vip"] and payload["document"]["totals"] is None
    assert "billing" not in orjson.dumps(payload).decode()
    config = await (await http.get("/api/config?board=vip-desk")).json()
    assert [q["queue"] for q in config["queues"]] == ["vip"] and "billing" not in config["overrides"]
    events.response.close()
