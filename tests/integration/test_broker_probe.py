"""The worker's broker probe (``streams/timers.BrokerProbe``) against the real broker.

Bug (found in session 7): the probe made an aiokafka client and asked it for metadata without bootstrapping it,
so it knew no broker and every probe failed. 15 s after every start /readyz said "Kafka unreachable", and that
judgement switched off the stall guard (a stall is not judged while the broker counts as unreachable).
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from cxpulse.settings import KafkaSettings
from cxpulse.streams.timers import PROBE_EVERY, BrokerProbe
from worker_harness import delete_topics_with_prefix, new_worker

pytestmark = pytest.mark.integration

SASL_BOOTSTRAP = f"127.0.0.1:{os.environ.get('CXPULSE_STACK_KAFKA_SASL_PORT', '19094')}"
USER = os.environ.get("CXPULSE_STACK_SASL_USER", "cxpulse")
PASSWORD = os.environ.get("CXPULSE_STACK_SASL_PASSWORD", "local-test-only")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_probe_finds_the_running_broker_and_keeps_finding_it(kafka_bootstrap: str) -> None:
    probe = BrokerProbe(KafkaSettings(bootstrap_servers=kafka_bootstrap), "cxpulse-test-probe")
    try:
        assert await probe.answers()  # the first probe bootstraps
        client = probe.client
        assert client is not None
        assert await probe.answers() and await probe.answers()  # later ones ask the brokers it knows
        assert probe.client is client  # one client, not one per probe
    finally:
        await probe.close()


async def test_a_bootstrap_server_nobody_listens_on_does_not_answer(kafka_bootstrap: str) -> None:
    probe = BrokerProbe(KafkaSettings(bootstrap_servers=f"127.0.0.1:{_free_port()}"), "cxpulse-test-probe",
                        timeout=2.0)
    assert not await probe.answers()
    assert probe.client is None  # dropped: the next probe bootstraps afresh
    assert not await probe.answers()


async def test_the_probe_authenticates_like_the_worker(kafka_bootstrap: str) -> None:
    """Over the SASL listener: right credentials answer, a wrong password does not."""
    def settings(password: str) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=SASL_BOOTSTRAP, security_protocol="SASL_PLAINTEXT",
                             sasl_mechanism="PLAIN", sasl_username=USER, sasl_password=password)

    right = BrokerProbe(settings(PASSWORD), "cxpulse-test-probe", timeout=3.0)
    wrong = BrokerProbe(settings("wrong"), "cxpulse-test-probe", timeout=3.0)
    try:
        assert await right.answers()
        assert await right.answers()
        assert not await wrong.answers()
    finally:
        await right.close()
        await wrong.close()


async def test_a_worker_beside_a_running_broker_stays_ready(tmp_path: Path, kafka_bootstrap: str) -> None:
    """End to end: with the unreachable judgement after 1 s, a worker that has probed Kafka several times is
    still ready, and its log never said Kafka does not answer (before the fix: 503 "Kafka unreachable")."""
    worker = new_worker(tmp_path, kafka_bootstrap, name="probe")
    worker.env.update({"CXPULSE_WORKER__BROKER_UNREACHABLE_SECONDS": "1", "CXPULSE_REDIS__ENABLED": "false"})
    worker.start()
    try:
        await worker.wait_ready()
        await asyncio.sleep(2 * PROBE_EVERY + 1)  # the first probe and two more
        code, body = await worker.get("/readyz")
        assert code == 200, body
        status = await worker.get_json("/api/v1/status")
        assert status["problems"] == [], status
        assert "does not answer a metadata request" not in worker.log_tail(400)
    finally:
        worker.stop()
        await delete_topics_with_prefix(kafka_bootstrap, worker.app_id)
