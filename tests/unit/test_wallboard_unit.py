"""Pure parts of the wallboard and the Redis read model: formatting, colours, document trimming, breach privacy,
the sink's breach buffer and backoff, thresholds, messages' times, boards and tokens.
(The server on the real Redis is in tests/integration/test_wallboard_server.py; the real browser in
test_wallboard_browser.py and test_wallboard_board.py.)"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest

from cxpulse.settings import Settings
from cxpulse.sinks import redis_sink
from cxpulse.sinks.redis_sink import Keys, RedisSink, merge_parts, queue_documents, redacted, worker_id_for
from cxpulse.wallboard import format as fmt
from cxpulse.wallboard import thresholds
from cxpulse.wallboard.server import (
    age_seconds,
    config_document,
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


@pytest.mark.parametrize("value, band, state", [
    (None, {"direction": "below", "warn": 0.8, "critical": 0.7}, "none"),
    (0.9, None, "none"), (5, {"direction": "above", "warn": None, "critical": None}, "none"),
    (0.8, {"direction": "below", "warn": 0.8, "critical": 0.7}, "good"),
    (0.7999999999, {"direction": "below", "warn": 0.8, "critical": 0.7}, "good"),  # float noise is not a miss
    (0.79, {"direction": "below", "warn": 0.8, "critical": 0.7}, "warn"),
    (0.70, {"direction": "below", "warn": 0.8, "critical": 0.7}, "warn"),  # 10 points under: still amber
    (0.6999, {"direction": "below", "warn": 0.8, "critical": 0.7}, "critical"),
    (9.99, {"direction": "above", "warn": 10, "critical": 20}, "good"),
    (10, {"direction": "above", "warn": 10, "critical": 20}, "warn"),  # >= as Grafana's steps
    (20, {"direction": "above", "warn": 10, "critical": 20}, "critical"),
    (25, {"direction": "above", "warn": None, "critical": 20}, "critical"),
    (15, {"direction": "above", "warn": None, "critical": 20}, "good"),
])
def test_threshold_state(value: float | None, band: dict[str, Any] | None, state: str) -> None:
    assert thresholds.state(value, band) == state


def test_default_thresholds_follow_each_queue() -> None:
    settings = Settings(kpi={"queues": {"tech": {"sl_threshold_seconds": 30, "sl_target": 0.75}}})
    voice = thresholds.resolve(settings, "billing", "voice")
    assert voice == {
        "service_level": {"direction": "below", "warn": 0.8, "critical": 0.7},
        "waiting": {"direction": "above", "warn": 5, "critical": 10},
        "longest_wait": {"direction": "above", "warn": 10.0, "critical": 20.0},
        "asa": {"direction": "above", "warn": 10.0, "critical": 20.0},
        "abandon_rate": {"direction": "above", "warn": 0.05, "critical": 0.1},
        # the feedback tile: the channel's feedback_response_target (48 h by default), warn from half of it
        "oldest_awaiting": {"direction": "above", "warn": 86400.0, "critical": 172800},
    }
    tech = thresholds.resolve(settings, "tech", "chat")
    assert tech["service_level"] == {"direction": "below", "warn": 0.75, "critical": 0.65}
    assert tech["longest_wait"]["critical"] == 30
    email = thresholds.resolve(settings, "email-care", "email")
    assert email["longest_wait"] == {"direction": "above", "warn": 7200.0, "critical": 14400.0}
    assert email["waiting"] == {"direction": "above", "warn": None, "critical": None}
    entry = {"live": {"waiting": 3, "longest_wait_seconds": 30.0}, "windows": {"15m": {"service_level": 1.0}}}
    assert thresholds.states(entry, email, "15m")["longest_wait"] == "good"  # not red at 30 s
    assert thresholds.states(entry, voice, "15m")["longest_wait"] == "critical"


def test_configured_thresholds_override_field_by_field() -> None:
    settings = Settings(wallboard={"thresholds": {
        "default": {"abandon_rate": {"warn": "3%"}, "waiting": {"critical": 20}},
        "queues": {"billing": {"longest_wait": {"warn": "45s", "critical": "2m"}, "waiting": {"warn": None}}},
    }})
    billing = thresholds.resolve(settings, "billing", "voice")
    assert billing["abandon_rate"] == {"direction": "above", "warn": 0.03, "critical": 0.1}
    assert billing["longest_wait"] == {"direction": "above", "warn": 45, "critical": 120}
    assert billing["waiting"] == {"direction": "above", "warn": None, "critical": 20}  # null: that band off
    assert thresholds.resolve(settings, "sales", "voice")["waiting"] == {"direction": "above", "warn": 5, "critical": 20}


def test_threshold_settings_errors_name_the_key(tmp_path: Any) -> None:
    from cxpulse.settings import ConfigError, load_settings

    path = tmp_path / "c.yaml"
    path.write_text("wallboard:\n  thresholds:\n    queues:\n      billing:\n        asa: {warn: soon}\n"
                    "  boards:\n    'a b': {}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    text = str(caught.value)
    assert "wallboard.thresholds.queues.billing.asa.warn" in text and "'soon'" in text
    assert "wallboard.boards" in text and "board name 'a b'" in text
    path.write_text("wallboard:\n  thresholds:\n    default:\n      handle_time: {warn: 3}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "wallboard.thresholds.default.handle_time" in str(caught.value)


def test_message_until() -> None:
    from datetime import datetime, timezone

    from cxpulse.wallboard.messages import MessageError, clean_text, parse_until

    now = datetime(2026, 11, 22, 13, 30, tzinfo=timezone.utc)
    assert parse_until("14:00", now, "UTC", 3600) == datetime(2026, 11, 22, 14, 0, tzinfo=timezone.utc)
    assert parse_until("13:00", now, "UTC", 3600) == datetime(2026, 11, 23, 13, 0, tzinfo=timezone.utc)  # tomorrow
    assert parse_until("14:00", now, "Europe/Paris", 3600) == datetime(2026, 11, 23, 13, 0, tzinfo=timezone.utc)
    assert parse_until("30m", now, "UTC", 3600) == datetime(2026, 11, 22, 14, 0, tzinfo=timezone.utc)
    assert parse_until(None, now, "UTC", 7200) == datetime(2026, 11, 22, 15, 30, tzinfo=timezone.utc)
    assert parse_until("2026-11-22T15:00:00+01:00", now, "UTC", 1) == datetime(2026, 11, 22, 14, 0, tzinfo=timezone.utc)
    for text, error in (("24:00", "--until '24:00': not a time of day"),
                        ("2026-11-22T12:00:00Z", "--until '2026-11-22T12:00:00Z' has passed"),
                        ("later", "--until 'later': use a time of day (14:00), a duration (30m, 2h) "
                                  "or an ISO time with offset")):
        with pytest.raises(MessageError) as caught:
            parse_until(text, now, "UTC", 3600)
        assert str(caught.value) == error
    assert clean_text("  outage\n on\tbilling  ") == "outage on billing"
    with pytest.raises(MessageError, match="^the message is empty$"):
        clean_text(" \n ")


def test_boards_and_tokens(tmp_path: Any) -> None:
    from cxpulse.wallboard.boards import Boards, is_loopback

    token_file = tmp_path / "vip.token"
    token_file.write_text("from-a-file\n", encoding="utf-8")
    settings = Settings(wallboard={"token": "global-1", "boards": {
        "vip": {"queues": ["vip", "gold"], "token_file": str(token_file), "display_names": {"vip": "VIP"}},
        "ops": {}}})
    boards = Boards(settings)
    vip, ops, all_queues = boards.get("vip"), boards.get("ops"), boards.get(None)
    assert vip is not None and ops is not None and all_queues is not None and boards.get("nope") is None
    assert vip.queues_for(None) == ["vip", "gold"] and vip.queues_for(["gold", "billing"]) == ["gold"]
    assert all_queues.queues_for(["billing"]) == ["billing"] and all_queues.queues_for(None) is None
    assert boards.accepts(vip, "from-a-file") and boards.accepts(vip, "global-1")
    assert not boards.accepts(vip, "from-a-fil") and not boards.accepts(vip, None)
    assert boards.accepts(ops, "global-1") and not boards.accepts(ops, "from-a-file")  # a board's token opens only it
    assert boards.cookie_for(vip, "global-1") == "cxpulse_token" and boards.cookie_for(vip, "from-a-file") == "cxpulse_token_vip"
    assert "from-a-file" not in repr(vip.public()) and boards.names() == ["vip", "ops"]
    open_boards = Boards(Settings())
    assert not open_boards.needs_token(open_boards.get(None))  # type: ignore[arg-type]
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")


def test_bind_host_stays_on_loopback_without_a_token(caplog: pytest.LogCaptureFixture) -> None:
    from cxpulse.wallboard.server import bind_host

    with caplog.at_level(logging.WARNING, logger="cxpulse.wallboard"):
        assert bind_host(Settings(), "0.0.0.0") == "127.0.0.1"
    assert "no wallboard.token is set" in caplog.text
    assert bind_host(Settings(), "127.0.0.1") == "127.0.0.1"
    assert bind_host(Settings(wallboard={"token": "t"}), "0.0.0.0") == "0.0.0.0"
    assert bind_host(Settings(wallboard={"allow_unauthenticated": True}), "0.0.0.0") == "0.0.0.0"


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
        {"queue": "billing", "channel": "chat", "sl_target": 0.9, "sl_threshold_seconds": 30,
         "feedback_response_target": 172800},
        {"queue": "billing", "channel": "voice", "sl_target": 0.9, "sl_threshold_seconds": 20,
         "feedback_response_target": 172800},
        {"queue": "sales", "channel": "voice", "sl_target": 0.8, "sl_threshold_seconds": 20,
         "feedback_response_target": 172800},
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


def test_interval_stretches_while_a_backlog_waits() -> None:
    """Catching up a backlog, the state goes out every BACKLOG_INTERVAL (2 s); live, at the configured interval."""
    behind = [True]
    sink = _sink(Settings(), client=object(), worker_id="w", behind=lambda: behind[0])
    sink.compute_seconds = 0.01
    assert sink._next_interval(0.5) == redis_sink.BACKLOG_INTERVAL == 2.0
    assert sink._next_interval(3.0) == 3.0  # never shorter than configured
    behind[0] = False
    assert sink._next_interval(0.5) == 0.5
    sink.compute_seconds = 1.0  # and the CPU share still holds while behind
    behind[0] = True
    assert sink._next_interval(0.5) == pytest.approx(1.0 / redis_sink.CPU_SHARE)


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
    assert fake.subscribed == ["p:updates", "p:wallboard:messages:changed"] and fake.failures == 0
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
