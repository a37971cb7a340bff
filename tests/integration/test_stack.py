"""The local stack itself: a real round trip through the broker, real Redis, and an idempotent launcher."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "deploy" / "local" / "stack.sh"


async def test_kafka_round_trip_keeps_per_key_order(kafka_bootstrap: str, unique_topic) -> None:
    topic = await unique_topic("roundtrip", partitions=3)
    keys = [f"contact-{i}" for i in range(6)]
    sent = [(keys[i % len(keys)], f"event-{i:03d}") for i in range(60)]

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for key, value in sent:
            await producer.send(topic, key=key.encode(), value=value.encode())
        await producer.flush()
    finally:
        await producer.stop()

    group = f"test-roundtrip-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: list[tuple[str, str]] = []
    partitions_seen: set[int] = set()
    try:
        async with asyncio.timeout(60):
            while len(got) < len(sent):
                batch = await consumer.getmany(timeout_ms=500)
                for tp, records in batch.items():
                    partitions_seen.add(tp.partition)
                    got.extend((r.key.decode(), r.value.decode()) for r in records)
        await consumer.commit()
        committed = {p: await consumer.committed(TopicPartition(topic, p)) for p in range(3)}
    finally:
        await consumer.stop()

    assert sorted(got) == sorted(sent)
    for key in keys:  # one key -> one partition -> its order is kept
        assert [v for k, v in got if k == key] == [v for k, v in sent if k == key]
    assert len(partitions_seen) > 1, "6 keys over 3 partitions should not all hash to one partition"
    assert sum(c or 0 for c in committed.values()) == len(sent)


async def test_auto_created_topic_gets_8_partitions(kafka_bootstrap: str, unique_topic) -> None:
    topic = unique_topic.name("autocreate")  # not created: the broker's auto.create.topics.enable does it
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello")
        partitions = await producer.partitions_for(topic)
    finally:
        await producer.stop()
    assert len(partitions) == 8


def test_redis_set_get(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    key = f"cxpulse-test:{uuid.uuid4().hex}"
    try:
        assert client.set(key, "42", ex=30)
        assert client.get(key) == b"42"
        assert 0 < client.ttl(key) <= 30
    finally:
        client.delete(key)
        client.close()


def _stack(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STACK), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def test_stack_up_is_idempotent(kafka_bootstrap: str, redis_url: str) -> None:
    before = _stack("status")
    if before.returncode != 0:
        pytest.fail(
            "the services answer but deploy/local/stack.sh does not know them as running "
            f"(not started by `make up`?):\n{before.stdout}{before.stderr}",
            pytrace=False,
        )
    again = _stack("up")  # (bounded by _stack's timeout; how long it takes is not the test's business)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already running" in again.stdout
    assert "starting" not in again.stdout

    status = _stack("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "kafka  RUNNING" in status.stdout and "redis  RUNNING" in status.stdout
    # the same processes as before the second `up`
    assert status.stdout == before.stdout
