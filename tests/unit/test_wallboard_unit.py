"""Pure parts of the wallboard and the Redis read model: formatting, colours, document trimming, breach privacy,
``/api/config`` and ``/events`` of the aiohttp server against a fake Redis, the sink's breach buffer and backoff.
(The real Redis and the real browser are in tests/integration/test_redis_sink.py and test_wallboard_browser.py.)"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from cxpulse.settings import Settings
from cxpulse.sinks import redis_sink
from cxpulse.sinks.redis_sink import Keys, RedisSink, merge_parts, queue_documents, redacted, worker_id_for
from cxpulse.wallboard import format as fmt
from cxpulse.wallboard.server import (
    HUB_KEY,
    age_seconds,
    config_document,
    create_app,
    parse_queues,
    safe_breach,
    trim_document,
)
from waiting import until


# ------------------------------------------------------------------------------------------------ formatting
@pytest.mark.parametrize("value, text", [
    (None, "\u2013"), (0.0, "0%"), (0.8, "80%"), (0.805, "81%"), (0.80499, "80%"), (0.995, "100%"), (1.0, "100%"),
    (2 / 3, "67%"), (0.125, "13%"),  # half-up, not Python's half-to-even
])
def test_percent(value: float | None, text: str) -> None:
    assert fmt.fmt_percent(value) == text


@pytest.mark.parametrize("value, text", [
    (None, "\u2013"), (0.0, "0.0%"), (0.0342, "3.4%"), (0.0345, "3.5%"), (0.1, "10.0%"), (1.0, "100.0%"), (1 / 6, "16.7%"),
])
def test_percent_one_decimal(value: float | None, text: str) -> None:
    assert fmt.fmt_percent1(value) == text


@pytest.mark.parametrize("value, text", [
    (None, "\u2013"), (0.0, "0"), (41.6, "+42"), (-5.0, "-5"), (-4.5, "-4"), (-0.4, "0"), (100.0, "+100"), (-100.0, "-100"),
])
def test_nps(value: float | None, text: str) -> None:
    assert fmt.fmt_nps(value) == text


@pytest.mark.parametrize("value, text", [
    (None, "\u2013"), (0.0, "00:00"), (0.4, "00:00"), (0.5, "00:01"), (83.4, "01:23"), (599.6, "10:00"),
    (3599.4, "59:59"), (3600, "1:00:00"), (14400 + 61, "4:01:01"), (-3, "00:00"),
])
def test_duration(value: float | None, text: str) -> None:
    assert fmt.fmt_duration(value) == text


@pytest.mark.parametrize("value, text", [(20, "20s"), (30, "30s"), (90, "90s"), (120, "2m"), (3600, "1h"),
                                         (14400, "4h"), (5400, "90m"), (2, "2s"), (None, "\u2013")])
def test_threshold(value: float | None, text: str) -> None:
    assert fmt.fmt_threshold(value) == text


def test_score_and_count() -> None:
    assert fmt.fmt_score(86.66) == "87%" and fmt.fmt_score(None) == "\u2013"
    assert fmt.fmt_count(0) == "0" and fmt.fmt_count(12) == "12" and fmt.fmt_count(None) == "\u2013"


@pytest.mark.parametrize("sl, target, state", [
    (None, 0.8, "none"), (0.9, None, "none"),
    (0.8, 0.8, "good"), (0.95, 0.8, "good"), (0.7999999999, 0.8, "good"),  # float noise is not a miss
    (0.79, 0.8, "warn"), (0.70, 0.8, "warn"),  # within 10 points below: amber (0.7 exactly too)
    (0.6999, 0.8, "bad"), (0.2, 0.8, "bad"),
    (0.9, 0.9, "good"), (0.8, 0.9, "warn"), (0.79, 0.9, "bad"),
])
def test_service_level_colour(sl: float | None, target: float | None, state: str) -> None:
    assert fmt.sl_state(sl, target) == state


def test_tile_texts_and_test_ids() -> None:
    entry = {"queue": "billing", "channel": "voice", "live": {"waiting": 3, "longest_wait_seconds": 83.2},
             "windows": {"15m": {"service_level": 0.8123, "asa_seconds": 12.5, "abandon_rate": None, "nps": 12.0,
                                 "csat": 90.0, "fcr": 0.5}}}
    assert fmt.tile_texts(entry, "15m") == {
        "waiting": "3", "longest_wait": "01:23", "service_level": "81%", "asa": "00:13", "abandon_rate": "\u2013",
        "nps": "+12", "csat": "90%", "fcr": "50%",
    }
    assert fmt.tile_texts(entry, "1h")["service_level"] == "\u2013"  # window missing: shown as null
    assert fmt.testid_of("billing", "voice", "service_level") == "tile-billing-voice-service_level"
    assert fmt.testid_of(None, None, "waiting") == "totals-waiting"


# ------------------------------------------------------------------------------------------------ documents
def _window(offered: int) -> dict[str, Any]:
    return {"start": "a", "end": "b", "offered": offered, "service_level": None}


DOC = {
    "generated_at": "2026-11-22T10:00:00.000000Z",
    "queues": [
        {"queue": "billing", "channel": "voice", "live": {"waiting": 1, "longest_wait_seconds": 5.0},
         "windows": {"15m": _window(1), "1h": _window(2)}},
        {"queue": "billing", "channel": "chat", "live": {"waiting": 0, "longest_wait_seconds": 0.0},
         "windows": {"15m": _window(3), "1h": _window(4)}},
        {"queue": "sales", "channel": "voice", "live": {"waiting": 2, "longest_wait_seconds": 9.0},
         "windows": {"15m": _window(5), "1h": _window(6)}},
    ],
    "totals": {"live": {"waiting": 3, "longest_wait_seconds": 9.0}, "windows": {"15m": _window(9), "1h": _window(12)}},
}


def test_parse_queues() -> None:
    assert parse_queues(None) is None and parse_queues("") is None and parse_queues(" , ") is None
    assert parse_queues("billing, tech-support,") == ["billing", "tech-support"]


def test_trim_document_keeps_chosen_queues_and_one_window() -> None:
    trimmed = trim_document(DOC, ["billing"], "1h")
    assert [(q["queue"], q["channel"]) for q in trimmed["queues"]] == [("billing", "voice"), ("billing", "chat")]
    assert all(list(q["windows"]) == ["1h"] for q in trimmed["queues"])
    assert trimmed["totals"]["windows"] == {"1h": _window(12)} and trimmed["totals"]["live"]["waiting"] == 3
    assert trimmed["generated_at"] == DOC["generated_at"] and trimmed["window"] == "1h"
    assert len(trim_document(DOC, None, "15m")["queues"]) == 3
    assert trim_document(DOC, None, "7d")["queues"][0]["windows"] == {}  # unknown window: nothing, no error
    assert DOC["queues"][0]["windows"].keys() == {"15m", "1h"}  # the input is not changed


def test_queue_documents_like_the_api_per_queue() -> None:
    per_queue = queue_documents(DOC)
    assert set(per_queue) == {"billing", "sales"}
    assert [q["channel"] for q in per_queue["billing"]["queues"]] == ["voice", "chat"]
    assert per_queue["sales"]["totals"] == DOC["totals"] and per_queue["sales"]["generated_at"] == DOC["generated_at"]


def test_breach_on_screen_has_no_ids() -> None:
    record = {"queue": "billing", "channel": "voice", "contact_id": "ct-1", "visit_id": "ev-9",
              "queued_ts": "2026-11-22T10:00:00Z", "threshold_seconds": 20, "breached_at": "2026-11-22T10:00:20Z"}
    assert safe_breach(record) == {"queue": "billing", "channel": "voice", "threshold_seconds": 20,
                                   "breached_at": "2026-11-22T10:00:20Z"}


def test_age_seconds() -> None:
    from datetime import datetime

    at = datetime.fromisoformat("2026-11-22T10:00:00+00:00").timestamp()
    assert age_seconds(DOC, now=at + 2.5) == pytest.approx(2.5)
    assert age_seconds(DOC, now=at - 10) == 0.0  # a clock behind: never negative
    assert age_seconds({"generated_at": None}) == 0.0 and age_seconds({"generated_at": "junk"}) == 0.0


def test_config_document_targets_from_settings() -> None:
    settings = Settings(kpi={"queues": {"billing": {"sl_target": 0.9}, "vip": {"sl_threshold_seconds": 10}},
                             "channels": {"chat": {"sl_target": 0.7}}},
                        wallboard={"stale_after_seconds": 7})
    config = config_document(settings, DOC)
    assert config["stale_after_seconds"] == 7 and config["default_window"] == "15m"
    assert config["windows"] == ["15m", "1h", "24h", "today"]
    assert config["queues"] == [
        {"queue": "billing", "channel": "chat", "sl_target": 0.9, "sl_threshold_seconds": 30},
        {"queue": "billing", "channel": "voice", "sl_target": 0.9, "sl_threshold_seconds": 20},
        {"queue": "sales", "channel": "voice", "sl_target": 0.8, "sl_threshold_seconds": 20},
    ]
    assert config["channels"]["chat"] == {"sl_target": 0.7, "sl_threshold_seconds": 30}
    assert config["overrides"]["vip"] == {"sl_target": None, "sl_threshold_seconds": 10}
    assert config_document(settings, None)["queues"] == []


# ------------------------------------------------------------------------------------------------ server
class FakePubSub:
    def __init__(self, owner: "FakeRedis") -> None:
        self.owner = owner

    async def subscribe(self, *channels: str) -> None:
        if self.owner.failures:
            self.owner.failures -= 1
            raise ConnectionError("connection refused")
        self.owner.subscribed.extend(channels)

    async def get_message(self, timeout: float = 0.0, **_: Any) -> dict[str, Any] | None:
        try:
            return await asyncio.wait_for(self.owner.messages.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class FakeRedis:
    def __init__(self, values: dict[str, bytes], failures: int = 0) -> None:
        self.failures = failures  # the first subscriptions fail, as while Redis is away
        self.values = values
        self.subscribed: list[str] = []
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def get(self, key: str) -> bytes | None:
        return self.values.get(key)

    def pubsub(self, **_: Any) -> FakePubSub:
        return FakePubSub(self)

    def publish(self, channel: str, data: bytes) -> None:
        self.messages.put_nowait({"type": "message", "channel": channel.encode(), "data": data})

    async def aclose(self) -> None:
        return None


async def _read_events(response: Any, count: int, timeout: float = 5.0) -> list[tuple[str, Any]]:
    """The next ``count`` SSE events (comments skipped) as (event, parsed data)."""
    out: list[tuple[str, Any]] = []
    event = "message"
    async def run() -> None:
        nonlocal event
        while len(out) < count:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                out.append((event, orjson.loads(line[6:])))
                event = "message"
    await asyncio.wait_for(run(), timeout)
    return out


async def test_server_routes_config_and_events() -> None:
    settings = Settings(redis={"key_prefix": "pfx"}, kpi={"queues": {"billing": {"sl_target": 0.9}}})
    keys = Keys("pfx")
    fake = FakeRedis({keys.kpis: orjson.dumps(DOC)})
    async with TestClient(TestServer(create_app(settings, fake))) as client:
        page = await client.get("/")
        html = await page.text()
        assert page.status == 200 and "/static/wallboard.js" in html and "http" not in html.replace("http-equiv", "")
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]
        for name in ("wallboard.js", "wallboard.css"):
            assert (await client.get(f"/static/{name}")).status == 200
        health = await (await client.get("/healthz")).json()
        assert health["status"] == "ok"
        config = await (await client.get("/api/config")).json()
        assert {(q["queue"], q["channel"], q["sl_target"]) for q in config["queues"]} == {
            ("billing", "voice", 0.9), ("billing", "chat", 0.9), ("sales", "voice", 0.8)}

        response = await client.get("/events?queues=sales&window=1h")
        assert response.headers["Content-Type"].startswith("text/event-stream")
        (kind, first), = await _read_events(response, 1)
        assert kind == "kpis" and [q["queue"] for q in first["document"]["queues"]] == ["sales"]
        assert list(first["document"]["queues"][0]["windows"]) == ["1h"] and first["age_seconds"] >= 0
        hub = client.server.app[HUB_KEY]
        await until(lambda: fake.subscribed, "the hub subscribes")
        assert fake.subscribed == ["pfx:updates", "pfx:breaches"]
        newer = {**DOC, "generated_at": "2026-11-22T10:00:01.000000Z"}
        fake.publish("pfx:updates", orjson.dumps(newer))
        fake.publish("pfx:breaches", orjson.dumps({"queue": "sales", "channel": "voice", "contact_id": "ct-secret",
                                                   "visit_id": "ev-secret", "threshold_seconds": 20,
                                                   "breached_at": "2026-11-22T10:00:20Z"}))
        events = await _read_events(response, 2)
        assert events[0][0] == "kpis" and events[0][1]["document"]["generated_at"] == newer["generated_at"]
        assert events[1] == ("breach", {"queue": "sales", "channel": "voice", "threshold_seconds": 20,
                                        "breached_at": "2026-11-22T10:00:20Z"})
        assert len(hub.clients) == 1
        response.close()


async def test_events_heartbeat_when_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    from cxpulse.wallboard import server

    monkeypatch.setattr(server, "HEARTBEAT_SECONDS", 0.1)
    fake = FakeRedis({})  # no document yet (expired or no worker): no kpis event, only heartbeats
    async with TestClient(TestServer(create_app(Settings(), fake))) as client:
        response = await client.get("/events")
        lines = []
        while len([line for line in lines if line.startswith(b": hb")]) < 2:
            lines.append(await asyncio.wait_for(response.content.readline(), 2.0))
        assert b"retry: 2000\n" in lines and not any(line.startswith(b"data:") for line in lines)
        response.close()


# ------------------------------------------------------------------------------------------------ sink
def test_keys_and_ids() -> None:
    keys = Keys("cx")
    assert (keys.parts, keys.kpis, keys.updates, keys.breaches, keys.breaches_stream) == (
        "cx:parts", "cx:kpis", "cx:updates", "cx:breaches", "cx:breaches:stream")
    assert keys.part("w1") == "cx:part:w1" and keys.queue("billing") == "cx:kpis:queue:billing"
    assert worker_id_for("cxpulse", 6066, "pod-0") == "cxpulse@pod-0:6066"
    assert redacted("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert redacted("rediss://user:pw@host:6380/1") == "rediss://user:***@host:6380/1"
    assert redacted("redis://host:6379/0") == "redis://host:6379/0"


def test_merge_parts_skips_expired_foreign_and_garbage() -> None:
    mine = {"worker": "app@h:1", "now": 1, "queues": [], "totals": {}}
    other_app = {"worker": "other@h:2", "now": 1, "queues": [], "totals": {}}
    old_shape = {"worker": "app@h:3", "now": 1, "queues": {"billing\x1fvoice": {}}, "totals": {}}  # an older worker
    raws = [orjson.dumps(mine), None, b"not json", orjson.dumps(other_app), orjson.dumps([1]), orjson.dumps(old_shape)]
    assert merge_parts(raws, "app") == [mine]


class _Live:
    """What the sink reads of the live state: this worker's partial."""

    def partial(self, worker_id: str) -> dict[str, Any]:
        return {"worker": worker_id, "now": 1, "queues": {}, "totals": {}}


def _sink(settings: Settings, **kwargs: Any) -> RedisSink:
    """A sink given what it reads (settings, the live state, readiness), as ``create_worker`` gives it."""
    return RedisSink(settings, _Live(), lambda: True, **kwargs)


def test_breach_buffer_is_bounded_drop_oldest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_sink, "BREACH_BUFFER", 3)
    sink = _sink(Settings(), client=object(), worker_id="w")
    for n in range(5):
        sink.on_breach({"queue": "q", "n": n})
    assert [orjson.loads(b)["n"] for b in sink.breaches] == [2, 3, 4] and sink.breaches_dropped == 2


class _DownRedis:
    """Every command fails, as when Redis is away."""

    def __init__(self) -> None:
        self.calls = 0

    def pipeline(self, **_: Any) -> Any:
        self.calls += 1
        raise ConnectionError("connection refused")

    async def aclose(self) -> None:
        return None


async def test_publisher_backs_off_and_warns_once(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Redis away: every retry waits twice as long as the one before, up to BACKOFF_MAX (not a busy loop), one
    warning without the password or a contact id, and the breach is kept for later. The waits are recorded by an
    injected backoff sleep, so the test checks them exactly and waits for nothing but the retries themselves."""
    monkeypatch.setattr(redis_sink, "BACKOFF_FIRST", 0.01)
    monkeypatch.setattr(redis_sink, "BACKOFF_MAX", 0.04)

    waits: list[float] = []

    async def backoff_sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)  # let the test run; no wall-clock wait

    down = _DownRedis()
    sink = _sink(Settings(redis={"url": "redis://:pw@127.0.0.1:1/0"}), client=down, worker_id="w",
                 backoff_sleep=backoff_sleep)
    sink.on_breach({"queue": "q", "contact_id": "ct-1"})
    with caplog.at_level(logging.WARNING, logger="cxpulse.redis"):
        task = asyncio.create_task(sink.run())
        await until(lambda: len(waits) >= 6, "six retries")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "pw" not in warnings[0].getMessage() and "ct-1" not in warnings[0].getMessage()
    assert waits[:6] == [0.01, 0.02, 0.04, 0.04, 0.04, 0.04]  # doubling, capped at BACKOFF_MAX
    assert down.calls == len(waits) or down.calls == len(waits) + 1  # one attempt per wait (the last may be cut)
    assert sink.failures == down.calls
    assert len(sink.breaches) == 1  # kept for when Redis is back


def test_interval_stretches_when_computing_is_slow(caplog: pytest.LogCaptureFixture) -> None:
    sink = _sink(Settings(), client=object(), worker_id="w")
    sink.compute_seconds = 0.1
    assert sink._next_interval(1.0) == 1.0  # 10% of the loop: as configured
    sink.compute_seconds = 0.5
    with caplog.at_level(logging.WARNING, logger="cxpulse.redis"):
        assert sink._next_interval(1.0) == pytest.approx(0.5 / redis_sink.CPU_SHARE)
        assert sink._next_interval(1.0) == pytest.approx(2.0)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


async def test_hub_resubscribes_after_redis_comes_back(monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    from cxpulse.wallboard import server

    monkeypatch.setattr(server, "BACKOFF_FIRST", 0.01)
    fake = FakeRedis({}, failures=3)
    hub = server.Hub(Settings(redis={"key_prefix": "p"}), fake)
    with caplog.at_level(logging.WARNING, logger="cxpulse.wallboard"):
        await hub.start()
        await until(lambda: hub.subscribed, "the hub subscribes again")
        await hub.stop()
    assert fake.subscribed == ["p:updates", "p:breaches"] and fake.failures == 0
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
