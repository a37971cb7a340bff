"""``cxpulse replay --jobs N`` (``cxpulse/parallel_replay.py``) gives the one-process replay's document and counts.

- :func:`part_of` sends every spelling of a contact id to the same process (its fast road and orjson agree);
- on the property tests' random histories (disorder within the allowance, duplicates and altered re-sends, late
  copies, impossible lifecycles, junk lines, surveys and follow-ups, repeat customers) and on agent histories, the
  document of 2 and 3 processes equals the one-process engine's, byte for byte, and so do the health counts;
- a simulated day with invalid events, through the CLI: the same JSON document and the same summary line;
- a failing process is reported (not a hang), bad ``--jobs`` is one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxpulse.core.engine import KpiEngine
from cxpulse.parallel_replay import customer_part, part_of, replay_parallel
from cxpulse.settings import KpiSettings
from test_kpi_properties import agent_scenarios, scenarios

ROOT = Path(__file__).resolve().parents[2]
CLI = [str(Path(sys.executable).parent / "cxpulse")]  # the installed entry point, as a user runs it
SPLIT = settings(max_examples=int(os.environ.get("CXPULSE_SPLIT_EXAMPLES", "40")), deadline=None,
                 derandomize=not os.environ.get("CXPULSE_PROPERTY_RANDOM"), database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.function_scoped_fixture])


def _write(stream: list[Any], path: Path) -> Path:
    with path.open("wb") as handle:
        for raw in stream:
            handle.write((raw if isinstance(raw, bytes) else orjson.dumps(raw)) + b"\n")
    return path


def _one_process(kpi: KpiSettings, path: Path, until_us: int | None = None) -> tuple[dict[str, Any], KpiEngine]:
    engine = KpiEngine(kpi, keep_raw=False, until_us=until_us)
    for line in path.read_bytes().splitlines():
        if line.strip():
            engine.process(line.strip())
    engine.finish()
    return engine.snapshot(until_us, include_all=True), engine


def _assert_same_replay(kpi: KpiSettings, path: Path, jobs: int, until_us: int | None = None) -> None:
    document, engine = _one_process(kpi, path, until_us)
    split = replay_parallel(path, kpi, jobs, spill=False, until_us=until_us)
    assert orjson.dumps(split.document) == orjson.dumps(document)
    assert (split.health.processed, split.health.duplicates) == (engine.health.processed, engine.health.duplicates)
    assert split.health.invalid == engine.health.invalid and split.health.reasons == engine.health.reasons
    assert sorted((r.kind, r.event_id) for r in split.rejections) == sorted(
        (r.kind, r.event_id) for r in engine.rejections)


@pytest.mark.parametrize("contact_id", ["ct-1", "ct-ünï", "c\"q", "a\\b", "x\u2028y", "tab\there", "🙂", ""])
def test_every_spelling_of_a_contact_id_goes_to_one_process(contact_id: str) -> None:
    """The same event written compactly, with spaces, with every non-ASCII escaped, with the key escaped, with a
    nested decoy and with a comment that says contact_id: one process for all of them, the one orjson names."""
    event = {"event_id": "e1", "type": "contact.queued", "ts": "2026-03-02T10:00:00Z", "contact_id": contact_id,
             "queue": "billing", "channel": "voice"}
    spellings = [
        orjson.dumps(event),
        json.dumps(event).encode(),  # ", " and ": "
        json.dumps(event, ensure_ascii=True, separators=(",", ":")).encode(),
        json.dumps(event, ensure_ascii=True, separators=(",", ":")).encode().replace(b'"contact_id"',
                                                                                     b'"contact\\u005fid"'),
        orjson.dumps({"meta": {"contact_id": "decoy"}, **event}),
        orjson.dumps({"comment": "contact_id", **event}),
    ]
    for parts in (2, 3, 8):
        expected = customer_part(contact_id, parts)  # the same CRC-32 of the id's UTF-8
        assert {part_of(line, parts) for line in spellings} == {expected}, parts


def test_lines_without_a_contact_id_go_to_the_first_process() -> None:
    for line in (b"{not json", b"[1,2]", b'{"type":"agent.state","agent_id":"a"}', b'{"contact_id":7}', b'"x"'):
        assert part_of(line, 4) == 0


def test_the_fast_road_spreads_contacts_over_every_process() -> None:
    lines = [orjson.dumps({"contact_id": f"ct-{n}", "type": "contact.queued"}) for n in range(400)]
    counts = [sum(part_of(line, 3) == k for line in lines) for k in range(3)]
    assert min(counts) > 90, counts


@SPLIT
@given(scenarios(), st.sampled_from([2, 3]))
def test_split_replay_equals_one_process_on_random_histories(
    tmp_path_factory: pytest.TempPathFactory, scenario: tuple[KpiSettings, list[Any], set[str], int, list[int]],
    jobs: int,
) -> None:
    kpi, stream, _, later, _ = scenario
    path = _write(stream, tmp_path_factory.mktemp("split") / "events.jsonl")
    _assert_same_replay(kpi, path, jobs)
    # ``--now``: an instant inside the file (later events stay due) and one after it
    stream_time = _one_process(kpi, path)[1].stream_time
    for until in (stream_time - 20 * 60 * 1_000_000, stream_time + later):
        _assert_same_replay(kpi, path, jobs, until)


@settings(max_examples=15, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(agent_scenarios())
def test_split_replay_equals_one_process_with_agent_events(
    tmp_path_factory: pytest.TempPathFactory, scenario: tuple[KpiSettings, list[Any], list[Any], int],
) -> None:
    kpi, stream, _, _ = scenario
    path = _write(stream, tmp_path_factory.mktemp("agents") / "events.jsonl")
    _assert_same_replay(kpi, path, 2)
    assert "agents" in replay_parallel(path, kpi, 2, spill=False).document


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXPULSE_")}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)


def test_cli_split_replay_of_a_simulated_day_prints_the_same_document_and_counts(tmp_path: Path) -> None:
    """Four simulated hours with invalid events (bad lines, impossible lifecycles), spilled to disk as the CLI
    does by default: ``--jobs 2`` and ``--jobs auto`` print the document and the summary of ``--jobs 1``."""
    events = tmp_path / "events.jsonl"
    done = _cli("simulate", "--fast", "--duration", "4h", "--seed", "11", "--start", "2026-03-02T06:00:00Z",
                "--invalid-rate", "0.02", "--out", str(events))
    assert done.returncode == 0, done.stderr
    outputs = [_cli("replay", str(events), "--json", "--jobs", jobs) for jobs in ("1", "2", "auto")]
    for out in outputs:
        assert out.returncode == 0, out.stderr
    one = outputs[0]
    assert json.loads(one.stdout)["totals"]["windows"]["all"]["contacts"] > 500
    assert "invalid x" in one.stderr  # the file does hold invalid events
    for out in outputs[1:]:
        assert out.stdout == one.stdout
        # "N events in S s (R events/s in the core); D duplicates; I invalid", then the reasons: all but the times
        assert _counts(out.stderr) == _counts(one.stderr)


def _counts(stderr: str) -> list[str]:
    lines = [line for line in stderr.splitlines() if "events in" in line or "invalid x" in line]
    return [line.split(" events in ")[0] + line.split(";", 1)[1] if " events in " in line else line for line in lines]


def test_a_failing_process_is_reported_not_waited_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that raises hands its traceback to the parent, which raises it (the others are stopped)."""
    path = _write([{"event_id": "e1", "type": "contact.queued", "ts": "2026-03-02T10:00:00Z", "contact_id": f"c{n}",
                    "queue": "billing", "channel": "voice"} for n in range(20)], tmp_path / "events.jsonl")

    def broken(self: KpiEngine) -> None:
        raise ZeroDivisionError("the finish broke")

    monkeypatch.setattr(KpiEngine, "finish", broken)  # the forked processes inherit it
    with pytest.raises(RuntimeError, match="ZeroDivisionError: the finish broke"):
        replay_parallel(path, KpiSettings(), 2, spill=False)


@pytest.mark.parametrize("jobs", ["0", "-1", "two", "1.5"])
def test_bad_jobs_is_one_line(tmp_path: Path, jobs: str) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("", encoding="utf-8")
    out = _cli("replay", str(events), "--jobs", jobs)
    assert out.returncode == 2
    assert "--jobs" in out.stderr and "Traceback" not in out.stderr


def test_cli_lists_reasons_of_equal_counts_in_one_order(tmp_path: Path) -> None:
    """Two invalid lines of different reasons, once each: the same two lines, in the same order (count, then
    reason), whichever process met which first."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(b'{"event_id":"e1","type":"contact.queued","ts":"2026-03-02T10:00:00Z","contact_id":"c1",'
                       b'"queue":"billing","channel":"voice"}\nnot json\n')
    reasons = []
    for jobs in ("1", "3"):
        out = _cli("replay", str(events), "--jobs", jobs)
        assert out.returncode == 0, out.stderr
        reasons.append([line for line in out.stderr.splitlines() if "invalid x" in line])
    assert len(reasons[0]) == 2 and reasons[0] == sorted(reasons[0]) and reasons[1] == reasons[0]


@pytest.mark.parametrize("content", [b"", b"not json\n"])
def test_cli_table_of_a_file_without_a_valid_event_says_so(tmp_path: Path, content: bytes) -> None:
    """No accepted event, so no ``all`` window: one line instead of a table (it was a KeyError traceback)."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(content)
    for jobs in ("1", "2"):
        out = _cli("replay", str(events), "--no-progress", "--jobs", jobs)
        assert out.returncode == 0, out.stderr
        assert "no valid contact event in the file" in out.stdout and "Traceback" not in out.stderr
