"""The ``simulate`` and ``produce`` commands: options, determinism of the file output, routing of lines."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from cxpulse.cli import app
from cxpulse.commands.produce import route_line
from cxpulse.models.events import parse_any_event
from cxpulse.simulator.events import CONTACT_TOPIC, SURVEY_TOPIC

runner = CliRunner()
START = "2026-11-23T08:00:00Z"


def _simulate(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["simulate", *args])
    return result.exit_code, result.output


def test_same_seed_and_start_give_byte_identical_files(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    for out, seed in ((a, "4"), (b, "4"), (c, "5")):
        code, output = _simulate("--fast", "--duration", "20m", "--seed", seed, "--start", START, "--out", str(out))
        assert code == 0, output
        assert "events/s" in output and "contact-events" in output
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    lines = a.read_bytes().splitlines()
    assert len(lines) > 200
    kinds = {parse_any_event(line).type for line in lines}
    assert "contact.queued" in kinds and "contact.ended" in kinds


def test_fast_run_defaults_to_one_hour(tmp_path: Path) -> None:
    out = tmp_path / "hour.jsonl"
    code, output = _simulate("--fast", "--seed", "1", "--start", START, "--out", str(out))
    assert code == 0, output
    last = orjson.loads(out.read_bytes().splitlines()[-1])
    assert "2026-11-23T08:" in last["ts"] and "3,600 s" in output


def test_paced_run_takes_simulated_time_divided_by_speed(tmp_path: Path) -> None:
    import time

    out = tmp_path / "paced.jsonl"
    began = time.monotonic()
    code, output = _simulate("--speed", "600", "--duration", "10m", "--seed", "1", "--start", START, "--out", str(out))
    took = time.monotonic() - began
    assert code == 0, output
    assert 0.9 <= took < 5, took  # 600 simulated seconds at 600x = 1 s of wall time


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fast", "--rate", "1000"], "load mode needs a pace"),
        (["--fast", "--speed", "5"], "contradict"),
        (["--duration", "soon"], "not a duration"),
        (["--start", "2026-11-23T08:00:00"], "needs an offset"),
        (["--invalid-rate", "2"], "invalid-rate"),
    ],
)
def test_bad_options_are_refused(args: list[str], message: str, tmp_path: Path) -> None:
    code, output = _simulate(*args, "--out", str(tmp_path / "x.jsonl"))
    assert code != 0
    assert message in output


def test_bad_centre_file_names_key_and_value(tmp_path: Path) -> None:
    centre = tmp_path / "centre.yaml"
    centre.write_text(
        "queues:\n  billing:\n    channel: voice\n    arrivals_per_hour: 10\n    agents: -2\n"
        "    talk: {dist: exponential, mean: 100}\n",
        encoding="utf-8",
    )
    code, output = _simulate("--fast", "--centre", str(centre), "--out", str(tmp_path / "x.jsonl"))
    assert code != 0
    assert "queues.billing.agents" in output and "-2" in output


def test_invalid_rate_marks_bad_lines(tmp_path: Path) -> None:
    out = tmp_path / "mixed.jsonl"
    code, output = _simulate("--fast", "--duration", "30m", "--seed", "2", "--start", START,
                             "--invalid-rate", "0.1", "--out", str(out))
    assert code == 0, output
    assert "invalid" in output
    lines = out.read_bytes().splitlines()
    marked = [line for line in lines if b'"_sim_invalid"' in line or not line.startswith(b"{")]
    assert 0.05 < len(marked) / len(lines) < 0.15


def test_route_line() -> None:
    survey = b'{"type":"survey.response","contact_id":"ct-1","nps":9}'
    queued = b'{"type":"contact.queued","contact_id":"ct-2"}'
    assert route_line(survey) == (SURVEY_TOPIC, b"ct-1")
    assert route_line(queued) == (CONTACT_TOPIC, b"ct-2")
    assert route_line(b'{"type":"contact.parked","contact_id":""}') == (CONTACT_TOPIC, None)
    assert route_line(b'{"type":"survey.response","contact_id":42}') == (SURVEY_TOPIC, None)
    assert route_line(b"<html>oops</html>") == (CONTACT_TOPIC, None)
    assert route_line(b"[1, 2]") == (CONTACT_TOPIC, None)


def test_pacer_anchor_writes_history_at_once_then_paces_from_now() -> None:
    """``--history``: records before the anchor (the wall clock's now) are due at once, later ones at speed."""
    from cxpulse.simulator.writers import Pacer

    start, anchor = 1_000_000, 1_000_000 + 3_600_000  # an hour of history
    pacer = Pacer(1.0, start, anchor)
    assert pacer.delay(start) < -3599  # the first record of the history: long overdue
    assert pacer.delay(anchor - 1) <= 0
    assert 9.5 < pacer.delay(anchor + 10_000) <= 10.0  # 10 s after now: in 10 s at real time
    assert Pacer(60.0, start).delay(start + 60_000) == pytest.approx(1.0, abs=0.05)  # no anchor: from the start
