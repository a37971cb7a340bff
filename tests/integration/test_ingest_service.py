"""``cxpulse ingest`` on the real Kafka: a good batch, a mixed batch, bad tokens, an oversized body, the rate
limit per token, and a Kafka outage (503, then everything once Kafka answers again).

The service runs in-process (its aiohttp application on a free port) with unique topics. The outage: the
service is pointed at a port where no Kafka listens; "Kafka comes back" is a TCP relay opened on that port to
the real broker (the shared broker itself is never stopped).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from cxpulse.ingest.server import KafkaGate, build_app
from cxpulse.settings import IngestSettings, KafkaSettings, Settings, TopicSettings
from tests.integration.worker_harness import consume_all, free_port
from tests.waiting import eventually

pytestmark = pytest.mark.integration

TOKEN, OTHER = "s3cret-token-1", "s3cret-token-2"
TS = "2026-11-23T08:00:00.000Z"


def _queued(n: int) -> dict[str, Any]:
    return {"event_id": f"q-{n}", "type": "contact.queued", "ts": TS, "contact_id": f"c-{n}",
            "customer_id": f"cust-{n}", "channel": "voice", "queue": "sales", "reason": None}


class Service:
    def __init__(self, settings: Settings, url: str, runner: web.AppRunner) -> None:
        self.settings, self.url, self.runner = settings, url, runner
        self.topics = settings.kafka.topics

    async def post(self, body: bytes, token: str | None = TOKEN, content_type: str = "application/json"
                   ) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{self.url}/api/v1/events", data=body, headers=headers) as response:
                return response.status, await response.json(), dict(response.headers)

    def names(self) -> list[str]:
        t = self.topics
        return [t.contact_events, t.survey_responses, t.agent_events]


@pytest.fixture
async def start_service(kafka_bootstrap: str, unique_topic: Any,
                        monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[..., Any]]:
    # `make test` exports the stack's address as CXPULSE_KAFKA__BOOTSTRAP_SERVERS; pydantic-settings lets that
    # environment rebuild the `kafka` section given here (topics back to their defaults, the outage test's dead
    # port replaced by the live broker), so the service under test must not see it
    monkeypatch.delenv("CXPULSE_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    runners: list[web.AppRunner] = []

    async def start(bootstrap: str | None = None, **ingest: Any) -> Service:
        topics = TopicSettings(**{name: unique_topic.name(f"ingest-{name}") for name in (
            "contact_events", "survey_responses", "agent_events", "contact_events_dlq", "survey_responses_dlq",
            "agent_events_dlq")})
        options = {"tokens": [TOKEN, OTHER], "max_body_bytes": 4096, "kafka_timeout_seconds": 5.0, **ingest}
        settings = Settings(kafka=KafkaSettings(bootstrap_servers=bootstrap or kafka_bootstrap, topics=topics,
                                                partitions=2), ingest=IngestSettings(**options))
        app = build_app(settings, KafkaGate(settings), [TOKEN, OTHER])
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return Service(settings, f"http://127.0.0.1:{port}", runner)

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_a_good_ndjson_batch_is_on_kafka_before_200(start_service: Any, kafka_bootstrap: str) -> None:
    service = await start_service()
    answered = {"event_id": "a-1", "type": "contact.answered", "ts": "2026-11-23T08:00:07Z", "contact_id": "c-1",
                "customer_id": "cust-1", "channel": "voice", "queue": "sales", "agent_id": "ag-9", "team": None}
    survey = {"event_id": "s-1", "type": "survey.response", "ts": "2026-11-23T08:10:00Z", "contact_id": "c-1",
              "customer_id": "cust-1", "nps": 9, "csat": None, "comment": None}
    lines = [orjson.dumps(e) for e in (_queued(1), answered, survey)]
    status, body, _ = await service.post(b"\n".join(lines) + b"\n", content_type="application/x-ndjson")
    assert status == 200, body
    assert body == {"accepted": 3, "rejected": 0, "results": [
        {"index": 0, "status": "accepted", "event_id": "q-1"}, {"index": 1, "status": "accepted", "event_id": "a-1"},
        {"index": 2, "status": "accepted", "event_id": "s-1"}]}
    # acknowledged before 200: the records are there at once, no waiting
    records = await consume_all(kafka_bootstrap, service.names())
    by_topic = {(r.topic, r.key, r.value) for r in records}
    assert by_topic == {(service.topics.contact_events, b"c-1", lines[0]), (service.topics.contact_events, b"c-1", lines[1]),
                        (service.topics.survey_responses, b"c-1", lines[2])}


async def test_a_mixed_batch_gets_a_result_per_event(start_service: Any, kafka_bootstrap: str) -> None:
    service = await start_service()
    missing = {k: v for k, v in _queued(2).items() if k != "customer_id"}
    agent = {"event_id": "g-1", "type": "agent.state", "ts": TS, "agent_id": "ag-1", "state": "away",
             "reason": "lunch", "queues": ["sales"]}
    bad_agent = {**agent, "event_id": "g-2", "state": "available"}
    status, body, _ = await service.post(orjson.dumps([_queued(1), missing, agent, bad_agent, "x"]))
    assert status == 200, body
    assert body["accepted"] == 2 and body["rejected"] == 3
    assert body["results"] == [
        {"index": 0, "status": "accepted", "event_id": "q-1"},
        {"index": 1, "status": "rejected", "kind": "missing_field", "reason": "customer_id: field required"},
        {"index": 2, "status": "accepted", "event_id": "g-1"},
        {"index": 3, "status": "rejected", "kind": "invalid_value",
         "reason": "reason: reason is only allowed when state is 'away' (got state 'available')"},
        {"index": 4, "status": "rejected", "kind": "not_json", "reason": "not a JSON object but str"},
    ]
    records = await consume_all(kafka_bootstrap, service.names())
    assert sorted((r.topic, r.key) for r in records) == sorted(
        [(service.topics.contact_events, b"c-1"), (service.topics.agent_events, b"ag-1")])
    status, body, _ = await service.post(orjson.dumps([missing]))
    assert (status, body["accepted"], body["rejected"]) == (422, 0, 1)


async def test_tokens_size_and_rate_limits(start_service: Any, kafka_bootstrap: str) -> None:
    service = await start_service(rate_limit_events_per_second=0.01, rate_limit_burst_events=20)
    one = orjson.dumps(_queued(1))
    status, body, headers = await service.post(one, token=None)
    assert (status, body) == (401, {"error": "missing bearer token (Authorization: Bearer <token>)"})
    assert headers["WWW-Authenticate"] == 'Bearer realm="cxpulse-ingest"'
    status, body, _ = await service.post(one, token="wrong")
    assert (status, body) == (401, {"error": "invalid bearer token"})
    big = orjson.dumps([_queued(n) for n in range(40)])
    assert len(big) > 4096
    status, body, _ = await service.post(big)
    assert (status, body) == (413, {"error": f"body of {len(big)} bytes; the limit is 4096"})
    fifteen = orjson.dumps([_queued(n) for n in range(15)])
    assert (await service.post(fifteen))[0] == 200
    status, body, headers = await service.post(fifteen)
    assert (status, body) == (429, {"error": "rate limit of 0.01 events/s exceeded"})
    assert int(headers["Retry-After"]) >= 1
    status, body, _ = await service.post(fifteen, token=OTHER)  # another token has its own bucket
    assert (status, body["accepted"]) == (200, 15)
    records = await consume_all(kafka_bootstrap, service.names())
    assert len(records) == 30 and {r.value for r in records} == {orjson.dumps(_queued(n)) for n in range(15)}


async def _relay(port: int, target: str) -> asyncio.Server:
    """A TCP relay 127.0.0.1:port -> target: Kafka 'coming back' on the address the service knows."""
    host, target_port = target.rsplit(":", 1)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(host, int(target_port))
        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

    return await asyncio.start_server(handle, "127.0.0.1", port)


async def test_kafka_outage_answers_503_and_loses_nothing_once_kafka_is_back(
        start_service: Any, kafka_bootstrap: str) -> None:
    port = free_port()
    service = await start_service(bootstrap=f"127.0.0.1:{port}")
    batch = orjson.dumps([_queued(n) for n in range(5)])
    status, body, headers = await service.post(batch)
    assert status == 503, body
    assert body["error"].startswith("Kafka unavailable (") and body["error"].endswith("nothing was accepted, retry later")
    assert headers["Retry-After"] == "5"
    relay = await _relay(port, kafka_bootstrap)
    try:
        async def retried() -> dict[str, Any]:  # the sender retries after Retry-After, as a webhook sender does
            status, body, _ = await service.post(batch)
            assert status == 200, body
            return body

        body = await eventually(retried, timeout=30, every=0.5)
        assert body["accepted"] == 5
    finally:
        relay.close()
        await relay.wait_closed()
    records = await consume_all(kafka_bootstrap, [service.topics.contact_events])
    ids = sorted(orjson.loads(r.value)["event_id"] for r in records)
    assert ids == [f"q-{n}" for n in range(5)]
