"""A worker refuses to start on source topics whose partition count is not ``kafka.partitions`` (real Kafka).

The topics are made the way a producer or a platform team would make them, before the worker ever ran; the
worker (``cxpulse worker``, a real process) must stop before Faust starts, with exit code 2 and one line that
names the topic, its count and the expected one.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from cxpulse.kafka_io import ensure_topics
from worker_harness import PARTITIONS, delete_topics_with_prefix, new_worker

pytestmark = pytest.mark.integration


async def _exit_code(worker, timeout: float = 90.0) -> int:
    """Poll until the process ends (it must end by itself); its return code."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = worker.proc.poll()
        if code is not None:
            return code
        await asyncio.sleep(0.2)
    worker.kill()
    pytest.fail(f"the worker still runs after {timeout:.0f} s; log:\n{worker.log_tail()}")


async def _consumer_groups(bootstrap: str) -> set[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {group for group, _protocol in await admin.list_consumer_groups()}
    finally:
        await admin.close()


async def test_worker_refuses_source_topics_with_another_partition_count(tmp_path: Path, kafka_bootstrap: str) -> None:
    worker = new_worker(tmp_path, kafka_bootstrap, name="parts")
    wrong = PARTITIONS - 1
    try:
        await ensure_topics(kafka_bootstrap, [worker.topics.contact_events], partitions=wrong)
        await ensure_topics(kafka_bootstrap, [worker.topics.survey_responses], partitions=PARTITIONS)
        worker.start()
        code = await _exit_code(worker)
        log = worker.log_path.read_text(errors="replace")
        assert code == 2, log
        assert "Traceback" not in log, log
        lines = [line for line in log.splitlines() if line.strip() and not line.startswith("=====")]
        assert lines[-1] == (
            f"error: topic '{worker.topics.contact_events}' has {wrong} partitions; kafka.partitions is {PARTITIONS}: "
            f"every topic the worker reads or writes needs exactly that many (recreate the topic with {PARTITIONS} "
            f"partitions, or set kafka.partitions to match before the worker's first start)"
        ), log
        assert worker.topics.survey_responses not in lines[-1]
        assert worker.app_id not in await _consumer_groups(kafka_bootstrap), "Faust joined its group: too late"
    finally:
        worker.stop()
        await delete_topics_with_prefix(kafka_bootstrap, worker.app_id)


async def test_worker_with_matching_topics_passes_the_check(tmp_path: Path, kafka_bootstrap: str) -> None:
    """The same set-up with the right count starts and gets ready (the check is not a refusal of everything)."""
    worker = new_worker(tmp_path, kafka_bootstrap, name="partsok")
    try:
        await ensure_topics(kafka_bootstrap, [worker.topics.contact_events, worker.topics.survey_responses],
                            partitions=PARTITIONS)
        worker.start()
        await worker.wait_ready()
        assert worker.alive()
        assert worker.app_id in await _consumer_groups(kafka_bootstrap)  # what the refusal test looks for
    finally:
        worker.stop()
        await delete_topics_with_prefix(kafka_bootstrap, worker.app_id)
