"""``cxpulse source asterisk-queue-log --follow`` on the real Kafka: across a kill -9, a rotation while the
source is dead and a rotation while it runs, it loses and doubles nothing.

"Doubles nothing" is what the pipeline sees: every event id expected from the whole queue_log is on the
topics, no other id is, and an id written twice (a kill -9 after Kafka acknowledged a batch but before the
position was saved) carries byte-identical records, which the pipeline drops as duplicates.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from cxpulse.sources.asterisk_queue_log import QueueLogConverter
from tests.integration.worker_harness import CXPULSE, consume_all
from tests.waiting import until

pytestmark = pytest.mark.integration

T0 = 1795420800
TOPIC_KEYS = ("contact_events", "survey_responses", "agent_events", "contact_events_dlq", "survey_responses_dlq",
              "agent_events_dlq")


def _calls(first: int, last: int) -> bytes:
    """Calls ``first..last-1``: answered and completed, every fourth abandoned; an agent pause now and then."""
    out = []
    for n in range(first, last):
        t, uid, queue = T0 + 10 * n, f"{T0 + 10 * n}.{n}", ("sales", "support")[n % 2]
        agent = ("Alice", "Bob", "Carol")[n % 3]
        out.append(f"{t}|{uid}|{queue}|NONE|ENTERQUEUE||+1555{n:07d}|1")
        if n % 4 == 3:
            out.append(f"{t + 7}|{uid}|{queue}|NONE|ABANDON|1|1|7")
        else:
            out.append(f"{t + 3}|{uid}|{queue}|{agent}|CONNECT|3|{uid}9|2")
            out.append(f"{t + 9}|{uid}|{queue}|{agent}|COMPLETECALLER|3|6|1")
        if n % 10 == 5:
            out.append(f"{t + 9}|NONE|{queue}|{agent}|PAUSE|break")
            out.append(f"{t + 9}|NONE|{queue}|{agent}|UNPAUSE|")
    return ("\n".join(out) + "\n").encode()


def _position(path: Path) -> dict[str, Any] | None:
    try:
        return orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None


def _caught_up(position_file: Path, log: Path) -> bool:
    """The saved position is the end of the current file: everything in it is acknowledged."""
    saved = _position(position_file)
    stat = log.stat()
    return saved is not None and (saved["inode"], saved["offset"]) == (stat.st_ino, stat.st_size)


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


async def test_follow_loses_and_doubles_nothing_across_kill_and_rotations(
        tmp_path: Path, kafka_bootstrap: str, unique_topic: Any) -> None:
    topics = {key: unique_topic.name(f"src-{key}") for key in TOPIC_KEYS}
    env = {**os.environ, "CXPULSE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap, "CXPULSE_KAFKA__PARTITIONS": "2",
           "CXPULSE_SOURCES__POLL_SECONDS": "0.05",
           **{f"CXPULSE_KAFKA__TOPICS__{key.upper()}": name for key, name in topics.items()}}
    env.pop("CXPULSE_CONFIG", None)
    log, position = tmp_path / "queue_log", tmp_path / "state" / "queue_log.position"
    stderr_path = tmp_path / "source.stderr"
    parts = [_calls(0, 60) + b"not a queue_log line\n", _calls(60, 70), _calls(70, 200), _calls(200, 230), _calls(230, 260), _calls(260, 300),
             _calls(300, 360)]

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [CXPULSE, "source", "asterisk-queue-log", str(log), "--follow", "--position", str(position),
             "--loglevel", "info"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr_path.open("ab"))

    log.write_bytes(parts[0])
    source = start()
    try:
        await until(lambda: _caught_up(position, log), "the first part acknowledged", timeout=30)
        _append(log, parts[1])
        end_of_second = log.stat().st_size
        await until(lambda: (_position(position) or {}).get("offset") == end_of_second, "the second part", timeout=20)
        _append(log, parts[2])  # the source is reading this part when it is killed
        source.send_signal(signal.SIGKILL)
        assert source.wait(timeout=10) == -signal.SIGKILL
        # while it is dead: Asterisk writes on, logrotate renames the file, Asterisk writes to a new one
        _append(log, parts[3])
        log.rename(tmp_path / "queue_log.1")
        log.write_bytes(parts[4])
        assert (_position(position) or {"offset": 0})["offset"] < (tmp_path / "queue_log.1").stat().st_size
        source = start()
        await until(lambda: _caught_up(position, log), "the rotated file finished, then the new one", timeout=30)
        # while it runs: another rotation
        _append(log, parts[5])
        log.rename(tmp_path / "queue_log.2")
        log.write_bytes(parts[6])
        await until(lambda: _caught_up(position, log), "the file after a rotation while running", timeout=30)
        source.send_signal(signal.SIGTERM)
        out, _ = source.communicate(timeout=20)
        assert source.returncode == 0, stderr_path.read_text()
    finally:
        if source.poll() is None:
            source.kill()
            source.wait()

    expected: dict[str, bytes] = {}
    converter = QueueLogConverter()
    for line in b"".join(parts).splitlines(keepends=True):
        if line != b"not a queue_log line\n":
            for produced in converter.convert(line).events:
                expected[produced.event_id] = produced.value
    records = await consume_all(kafka_bootstrap, [topics["contact_events"], topics["agent_events"]])
    seen: dict[str, set[bytes]] = defaultdict(set)
    for record in records:
        seen[orjson.loads(record.value)["event_id"]].add(record.value)
    assert set(seen) == set(expected)
    assert all(values == {expected[event_id]} for event_id, values in seen.items())
    assert len(expected) > 1000
    dead = await consume_all(kafka_bootstrap, [topics["contact_events_dlq"]])
    assert {(d.value, d.headers["cxpulse-kind"], d.headers["cxpulse-source-offset"]) for d in dead} == {
        (b"not a queue_log line", b"bad_line", str(len(parts[0]) - len(b"not a queue_log line\n")).encode())}
    assert dead[0].headers["cxpulse-source-topic"] == f"file:{log}".encode()
    assert "read" in out.decode()
    logged = stderr_path.read_text()
    assert "was rotated while the source was stopped: finishing queue_log.1 first" in logged
    assert "queue_log was rotated: reading the new file from its start" in logged
    assert "+1555" not in logged and "Alice" not in logged
