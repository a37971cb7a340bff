"""Shared fixtures: the real Kafka and Redis of the local stack (``make up``; ``make test`` starts it).

Fixtures (all fail, never skip, when the service does not answer):

* ``kafka_bootstrap`` (session): ``host:port`` from ``CXPULSE_KAFKA__BOOTSTRAP_SERVERS``, checked with a
  metadata request.
* ``redis_url`` (session): ``redis://...`` from ``CXPULSE_REDIS__URL``, checked with PING.
* ``unique_topic`` (function): ``name = await unique_topic("prefix", partitions=8)`` creates a topic with a
  name no other test uses and waits until its partitions have leaders; ``unique_topic.name("prefix")``
  only reserves a name (for topics a test lets Kafka auto-create). All are deleted when the test ends.

The helpers open their own Kafka clients on the event loop that awaits them, so they work whatever loop
scope a test uses. Integration tests carry ``@pytest.mark.integration``; ``make unit`` runs without them.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator

import pytest

from cxpulse.settings import KafkaSettings, RedisSettings

# Hypothesis profile by name, e.g. CXPULSE_HYPOTHESIS_PROFILE=mutants (set by bench/mutants.py, which also passes
# --hypothesis-seed): no example database, so a mutation run's verdicts do not depend on earlier runs. Not
# derandomize: test_wire's generator guard needs the seeded draw to reach every kind. Tests that pass their own
# max_examples keep it (a decorator's setting beats the profile).
from hypothesis import settings as _hypothesis_settings

_hypothesis_settings.register_profile("mutants", database=None, max_examples=50)
if os.environ.get("CXPULSE_HYPOTHESIS_PROFILE"):
    _hypothesis_settings.load_profile(os.environ["CXPULSE_HYPOTHESIS_PROFILE"])

KAFKA_ENV = "CXPULSE_KAFKA__BOOTSTRAP_SERVERS"
REDIS_ENV = "CXPULSE_REDIS__URL"
_HINT = "Start the local stack with `make up` (or run the whole suite with `make test`); `make status` shows it."


def _why(exc: BaseException) -> str:
    text = str(exc).rstrip(". ")
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}"


def _kafka_from_env() -> str:
    return os.environ.get(KAFKA_ENV) or KafkaSettings().bootstrap_servers


def _redis_from_env() -> str:
    return os.environ.get(REDIS_ENV) or RedisSettings().url


@pytest.fixture(scope="session")
async def kafka_bootstrap() -> str:
    """Bootstrap servers of the test Kafka; fails the test with a clear message if Kafka does not answer."""
    from aiokafka import AIOKafkaClient

    bootstrap = _kafka_from_env()
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, client_id="cxpulse-tests")
    problem = None
    try:
        await asyncio.wait_for(client.bootstrap(), timeout=15)
        if not client.cluster.brokers():
            problem = "the metadata lists no broker"
    except Exception as exc:  # noqa: BLE001
        problem = _why(exc)
    finally:
        await client.close()
    if problem:
        pytest.fail(f"Kafka at {bootstrap} ({KAFKA_ENV}) does not answer a metadata request: {problem}. {_HINT}", pytrace=False)
    return bootstrap


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the test Redis; fails the test with a clear message if Redis does not answer PING."""
    import redis

    url = _redis_from_env()
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    problem = None
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        problem = _why(exc)
    finally:
        client.close()
    if problem:
        pytest.fail(f"Redis at {url} ({REDIS_ENV}) does not answer PING: {problem}. {_HINT}", pytrace=False)
    return url


def _topic_name(prefix: str) -> str:
    clean = re.sub(r"[^a-zA-Z0-9-]+", "-", prefix).strip("-")[:80] or "t"
    return f"test-{clean}-{uuid.uuid4().hex[:12]}"


class TopicFactory:
    """Creates uniquely named topics for one test; :meth:`delete_all` removes them."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.names: list[str] = []

    def name(self, prefix: str) -> str:
        """A fresh topic name, deleted at the end of the test if it exists by then (nothing is created)."""
        topic = _topic_name(prefix)
        self.names.append(topic)
        return topic

    async def __call__(
        self, prefix: str, partitions: int = 8, config: dict[str, str] | None = None, timeout: float = 30.0
    ) -> str:
        """Create a topic named ``test-<prefix>-<random>`` with ``partitions`` partitions (replication 1)."""
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        topic = self.name(prefix)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="cxpulse-tests-admin")
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(topic, num_partitions=partitions, replication_factor=1, topic_configs=config or {})]
            )
        finally:
            await admin.close()
        await self._wait_leaders(topic, partitions, timeout)
        return topic

    async def _wait_leaders(self, topic: str, partitions: int, timeout: float) -> None:
        from aiokafka import AIOKafkaClient

        client = AIOKafkaClient(bootstrap_servers=self.bootstrap, client_id="cxpulse-tests-meta")
        await client.bootstrap()
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:
                client.add_topic(topic)
                await client.force_metadata_update()
                parts = client.cluster.partitions_for_topic(topic) or set()
                leaders_ok = all(
                    (client.cluster.leader_for_partition(_tp(topic, p)) or -1) >= 0 for p in parts
                )
                if len(parts) == partitions and leaders_ok:
                    return
                if loop.time() > deadline:
                    raise TimeoutError(f"topic {topic}: {len(parts)}/{partitions} partitions with leaders after {timeout}s")
                await asyncio.sleep(0.1)
        finally:
            await client.close()

    async def delete_all(self) -> None:
        if not self.names:
            return
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="cxpulse-tests-admin")
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            doomed = [t for t in self.names if t in existing]
            if doomed:
                await admin.delete_topics(doomed)
        finally:
            await admin.close()
        self.names.clear()


def _tp(topic: str, partition: int):  # noqa: ANN202
    from aiokafka.structs import TopicPartition

    return TopicPartition(topic, partition)


@pytest.fixture
async def unique_topic(kafka_bootstrap: str) -> AsyncIterator[TopicFactory]:
    """``await unique_topic("prefix", partitions=8)`` -> a new topic's name; deleted after the test."""
    factory = TopicFactory(kafka_bootstrap)
    try:
        yield factory
    finally:
        await factory.delete_all()


@pytest.fixture
def on_core_sources(request: pytest.FixtureRequest) -> bool:
    """For a test that spies on the KPI core by replacing one of its functions (to count calls a figure cannot
    show): such a replacement needs the core's Python sources, and ``make venv`` compiles the core (setup.py),
    whose modules call each other directly. Under the compiled core the test runs again in a child pytest with
    ``CXPULSE_PURE_PYTHON=1`` (the sources; ``cxpulse/core/__init__.py``), this fixture asserts that it passed,
    and returns False: the test body then returns at once. On the sources it returns True and the body runs."""
    import subprocess
    import sys
    from pathlib import Path

    from cxpulse import core

    if core.runs() != "compiled":
        return True
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", request.node.nodeid],
        cwd=root, env=os.environ | {"CXPULSE_PURE_PYTHON": "1"}, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout[-4000:] + done.stderr[-2000:]
    return False
