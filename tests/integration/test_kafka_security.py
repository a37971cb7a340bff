"""Kafka security settings on a real broker: a worker, a producer and the breach log over SASL_PLAINTEXT/PLAIN.

The local stack's broker has a second listener (``CXPULSE_STACK_KAFKA_SASL_PORT``, 19094) that only admits the
PLAIN user of ``CXPULSE_STACK_SASL_USER`` / ``_PASSWORD``. Everything here talks to that listener alone, with
the credentials given as cxpulse settings (environment variables, as a platform team would set them).
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from cxpulse.kafka_io import KafkaUnavailable, started_producer
from cxpulse.kafka_security import client_options
from cxpulse.settings import KafkaSettings
from worker_harness import iso, new_worker, now_us

pytestmark = pytest.mark.integration

SASL_BOOTSTRAP = f"127.0.0.1:{os.environ.get('CXPULSE_STACK_KAFKA_SASL_PORT', '19094')}"
USER = os.environ.get("CXPULSE_STACK_SASL_USER", "cxpulse")
PASSWORD = os.environ.get("CXPULSE_STACK_SASL_PASSWORD", "local-test-only")
S = 1_000_000


def sasl_settings(password: str = PASSWORD) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=SASL_BOOTSTRAP, security_protocol="SASL_PLAINTEXT",
                         sasl_mechanism="PLAIN", sasl_username=USER, sasl_password=password)


async def test_wrong_password_is_refused_by_the_broker(kafka_bootstrap: str) -> None:
    """The listener really authenticates: otherwise the test below would prove nothing."""
    with pytest.raises(KafkaUnavailable):
        producer = await started_producer(SASL_BOOTSTRAP, "cxpulse-test", client_options(sasl_settings("wrong")))
        await producer.stop()


async def test_worker_over_sasl_counts_and_publishes_breaches(tmp_path: Path, kafka_bootstrap: str) -> None:
    worker = new_worker(tmp_path, SASL_BOOTSTRAP, name="sasl", kpi={"queues": {"sasl-q": {"sl_threshold_seconds": 2}}})
    worker.env.update({
        "CXPULSE_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "CXPULSE_KAFKA__SASL_MECHANISM": "PLAIN",
        "CXPULSE_KAFKA__SASL_USERNAME": USER,
        "CXPULSE_KAFKA__SASL_PASSWORD": PASSWORD,
        "CXPULSE_REDIS__ENABLED": "false",
    })
    options = client_options(sasl_settings())
    worker.start()
    try:
        await worker.wait_ready()
        base = now_us() - 60 * S
        events = []
        for n in range(3):  # answered after 1 s: in time
            common = {"contact_id": f"sasl-{n}", "customer_id": f"u{n}", "queue": "sasl-q", "channel": "voice"}
            events.append({"event_id": f"s{n}q", "type": "contact.queued", "ts": iso(base + n * S), "reason": None, **common})
            events.append({"event_id": f"s{n}a", "type": "contact.answered", "ts": iso(base + (n + 1) * S), "agent_id": "a", **common})
        waiting = {"contact_id": "sasl-w", "customer_id": "uw", "queue": "sasl-q", "channel": "voice"}
        events.append({"event_id": "swq", "type": "contact.queued", "ts": iso(base + 10 * S), "reason": None, **waiting})
        producer = await started_producer(SASL_BOOTSTRAP, "cxpulse-test", options)
        try:
            for event in events:
                await producer.send_and_wait(worker.topics.contact_events, orjson.dumps(event), key=event["contact_id"].encode())
        finally:
            await producer.stop()
        await worker.wait_processed(len(events))
        window = next(q for q in (await worker.kpis())["queues"] if q["queue"] == "sasl-q")["windows"]["15m"]
        assert (window["offered"], window["answered"], window["answered_within_threshold"]) == (4, 3, 3)

        # the waiting contact's breach went out on the sla-breaches topic, read back over SASL
        await worker.wait_status(lambda st: st["breaches_published"] >= 1, "the breach published", timeout=20)
        consumer = AIOKafkaConsumer(bootstrap_servers=SASL_BOOTSTRAP, group_id=None, enable_auto_commit=False, **options)
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(worker.topics.sla_breaches) or set(range(4))
            tps = [TopicPartition(worker.topics.sla_breaches, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            batch = await consumer.getmany(*tps, timeout_ms=5000)
            records = [orjson.loads(r.value) for rs in batch.values() for r in rs]
        finally:
            await consumer.stop()
        assert [(r["contact_id"], r["queue"]) for r in records] == [("sasl-w", "sasl-q")]
    finally:
        worker.stop()
