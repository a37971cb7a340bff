"""``cxpulse simulate`` and ``cxpulse produce`` against the real Kafka of ``make up``.

Each run writes to topics no other test uses. What arrives is compared with the same run written to a
file (same seed and start give the same records), so nothing is lost, duplicated or mis-routed; every good
event validates against the models, and every deliberately bad one is rejected with a reason naming its field.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import defaultdict
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import murmur2

from cxpulse.commands.produce import route_line
from cxpulse.models.events import InvalidEvent, parse_contact_event, parse_survey_response
from cxpulse.simulator.events import SURVEY_TOPIC

pytestmark = pytest.mark.integration

CXPULSE = str(Path(sys.executable).with_name("cxpulse"))
START = "2026-11-23T09:00:00Z"
SCHEMA_KINDS = {"not_json", "missing_field", "wrong_type", "out_of_range", "unknown_type",
                "timestamp_without_offset", "negative_duration"}
LIFECYCLE_KINDS = {"no_open_visit", "never_answered"}


async def _cxpulse(*args: str, bootstrap: str, timeout: float = 60) -> str:
    env = dict(os.environ, CXPULSE_KAFKA__BOOTSTRAP_SERVERS=bootstrap, COLUMNS="200")
    proc = await asyncio.create_subprocess_exec(
        CXPULSE, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env
    )
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    text = output.decode(errors="replace")
    assert proc.returncode == 0, f"cxpulse {' '.join(args)} failed:\n{text}"
    return text


async def _consume(bootstrap: str, topics: list[str]) -> dict[str, list[tuple[int, bytes | None, bytes]]]:
    """Everything in ``topics`` up to their current end: topic -> [(partition, key, value)] in offset order."""
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
        group_id=None, client_id="cxpulse-test-sim",
    )
    await consumer.start()
    try:
        while not consumer.assignment():
            await asyncio.sleep(0.05)
        ends = await consumer.end_offsets(list(consumer.assignment()))
        remaining = {tp: end for tp, end in ends.items() if end > 0}
        got: dict[str, list[tuple[int, bytes | None, bytes]]] = defaultdict(list)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while remaining and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=20_000)
            for tp, messages in batch.items():
                for message in messages:
                    got[tp.topic].append((tp.partition, message.key, message.value))
                if messages and messages[-1].offset + 1 >= remaining.get(tp, 0):
                    remaining.pop(tp, None)
        assert not remaining, f"did not reach the end of {remaining}"
        return got
    finally:
        await consumer.stop()


def _check(value: bytes, topic_kind: str) -> str | None:
    """Validate one record; returns the bad kind it was marked with (None for a good event)."""
    parse = parse_survey_response if topic_kind == "survey" else parse_contact_event
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        with pytest.raises(InvalidEvent) as caught:
            parse(value)
        assert caught.value.kind == "not_json"
        return "not_json"
    marked = obj.get("_sim_invalid")
    if marked in SCHEMA_KINDS:
        with pytest.raises(InvalidEvent) as caught:
            parse(value)
        assert caught.value.kind == marked, caught.value.reason
        field = caught.value.reason.split(":", 1)[0]
        assert field in obj or field in ("event",) or marked == "missing_field", caught.value.reason
        if marked == "missing_field" and field != "event":
            assert field not in obj
        return marked
    parse(value)  # good events and lifecycle impossibilities are schema-valid
    return marked


def _compare_with_file(
    got: dict[str, list[tuple[int, bytes | None, bytes]]], file: Path, contact_topic: str, survey_topic: str
) -> dict[str, int]:
    """Same records per topic as the file, keyed and partitioned as Kafka's default partitioner would."""
    expected: dict[str, list[bytes]] = {contact_topic: [], survey_topic: []}
    for line in file.read_bytes().splitlines():
        logical, _ = route_line(line)  # surveys by type; anything else, unparsable included, to contacts
        expected[survey_topic if logical == SURVEY_TOPIC else contact_topic].append(line)
    kinds: dict[str, int] = defaultdict(int)
    for topic, records in got.items():
        assert sorted(v for _, _, v in records) == sorted(expected[topic]), f"{topic}: records differ from the file"
        per_key: dict[bytes, list[bytes]] = defaultdict(list)
        for partition, key, value in records:
            kind = _check(value, "survey" if topic == survey_topic else "contact")
            kinds[kind or "good"] += 1
            if key is not None:
                contact_id = orjson.loads(value).get("contact_id")
                if isinstance(contact_id, str) and kind != "wrong_type":
                    assert key == contact_id.encode()
                assert partition == (murmur2(key) & 0x7FFFFFFF) % 8
                per_key[key].append(value)
            else:
                assert kind in ("not_json", "missing_field", "wrong_type", "out_of_range"), value
        # one contact's events arrive in the order they were written
        order = {value: index for index, value in enumerate(expected[topic])}
        for values in per_key.values():
            assert [order[v] for v in values] == sorted(order[v] for v in values)
    assert set(got) == {t for t, lines in expected.items() if lines}
    return dict(kinds)


async def test_simulated_events_reach_kafka_valid_and_complete(kafka_bootstrap: str, unique_topic, tmp_path: Path) -> None:
    """Three simulated hours (flat out) with 5% bad events: every record arrives once and is judged right."""
    contacts, surveys = unique_topic.name("sim-contacts"), unique_topic.name("sim-surveys")
    common = ["--fast", "--duration", "3h", "--seed", "31", "--start", START, "--invalid-rate", "0.05"]
    output = await _cxpulse("simulate", *common, "--contact-topic", contacts, "--survey-topic", surveys,
                            bootstrap=kafka_bootstrap)
    assert "events/s" in output
    file = tmp_path / "same-run.jsonl"
    await _cxpulse("simulate", *common, "--out", str(file), bootstrap=kafka_bootstrap)

    got = await _consume(kafka_bootstrap, [contacts, surveys])
    kinds = _compare_with_file(got, file, contacts, surveys)
    assert kinds["good"] > 5_000
    assert SCHEMA_KINDS | LIFECYCLE_KINDS <= set(kinds), kinds
    assert len(got[surveys]) > 100


async def test_one_simulated_minute_in_load_mode(kafka_bootstrap: str, unique_topic, tmp_path: Path) -> None:
    """One simulated minute of a centre scaled for 20k events/s, paced at 60x: all valid, all delivered."""
    contacts, surveys = unique_topic.name("sim-load-contacts"), unique_topic.name("sim-load-surveys")
    common = ["--rate", "20000", "--speed", "60", "--duration", "60s", "--seed", "8", "--start", START]
    output = await _cxpulse("simulate", *common, "--contact-topic", contacts, "--survey-topic", surveys,
                            bootstrap=kafka_bootstrap)
    assert "scaled x" in output
    file = tmp_path / "load.jsonl"
    await _cxpulse("simulate", *common, "--out", str(file), bootstrap=kafka_bootstrap)
    got = await _consume(kafka_bootstrap, [contacts, surveys])
    kinds = _compare_with_file(got, file, contacts, surveys)
    assert set(kinds) == {"good"} and kinds["good"] > 5_000


async def test_produce_sends_a_file_to_the_right_topics(kafka_bootstrap: str, unique_topic, tmp_path: Path) -> None:
    """``cxpulse produce``: surveys to the survey topic, the rest (bad lines included, as-is) to contacts."""
    file = tmp_path / "events.jsonl"
    await _cxpulse("simulate", "--fast", "--duration", "2h", "--seed", "77", "--start", START,
                   "--invalid-rate", "0.05", "--out", str(file), bootstrap=kafka_bootstrap)
    with file.open("ab") as out:
        out.write(b"\n")  # a blank line is skipped, not sent
    contacts, surveys = unique_topic.name("produce-contacts"), unique_topic.name("produce-surveys")
    output = await _cxpulse("produce", str(file), "--contact-topic", contacts, "--survey-topic", surveys,
                            bootstrap=kafka_bootstrap)
    assert "events/s" in output and "1 blank lines skipped" in output
    file.write_bytes(file.read_bytes().rstrip(b"\n") + b"\n")
    got = await _consume(kafka_bootstrap, [contacts, surveys])
    kinds = _compare_with_file(got, file, contacts, surveys)
    assert kinds["not_json"] > 0 and kinds["good"] > 3_000
