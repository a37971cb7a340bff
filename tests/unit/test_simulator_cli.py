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


def test_paced_run_writes_what_a_fast_run_writes(tmp_path: Path) -> None:
    """Pacing changes when records are written, never which: 10 simulated minutes at 600x (about 1 s of real
    pacing, the scenario itself) give the very file ``--fast`` gives. How long it waits is checked exactly, with a
    fake clock, in :func:`test_jsonl_writer_waits_simulated_time_divided_by_speed`."""
    paced, fast = tmp_path / "paced.jsonl", tmp_path / "fast.jsonl"
    code, output = _simulate("--speed", "600", "--duration", "10m", "--seed", "1", "--start", START, "--out", str(paced))
    assert code == 0, output
    code, output = _simulate("--fast", "--duration", "10m", "--seed", "1", "--start", START, "--out", str(fast))
    assert code == 0, output
    assert paced.read_bytes() == fast.read_bytes()
    assert len(paced.read_bytes().splitlines()) > 50


class FakeMonotonic:
    """A monotonic clock that moves only when the writer sleeps: pacing checked without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_jsonl_writer_waits_simulated_time_divided_by_speed(tmp_path: Path) -> None:
    """Records at 0, 60, 60.5 and 600 simulated seconds at speed 600: due at 0, 0.1, ~0.1008 and 1.0 s of wall
    time. The writer sleeps 0.1 s, then 0.9 s (the 60.5 s record is due 0.8 ms later: under the 1 ms it does not
    sleep for), and writes every record in order."""
    from cxpulse.simulator.writers import Pacer, write_jsonl

    clock = FakeMonotonic()
    start = 1_795_420_800_000  # 2026-11-23T08:00:00Z in ms
    chunk = [(start + offset, "contact-events", None, f'{{"n":{n}}}'.encode(), False)
             for n, offset in enumerate((0, 60_000, 60_500, 600_000))]
    out = tmp_path / "paced.jsonl"
    summary = write_jsonl([chunk], out, Pacer(600.0, start, clock=clock), sleep=clock.sleep)
    assert clock.sleeps == pytest.approx([0.1, 0.9])
    assert clock.now - 1000.0 == pytest.approx(1.0)  # 600 simulated seconds / 600
    assert out.read_bytes().splitlines() == [b'{"n":0}', b'{"n":1}', b'{"n":2}', b'{"n":3}']
    assert summary.by_topic["contact-events"] == 4 and (summary.first_ms, summary.last_ms) == (start, start + 600_000)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fast", "--rate", "1000"], "load mode needs a pace"),
        (["--fast", "--speed", "5"], "contradict"),
        (["--duration", "soon"], "not a duration"),
        (["--start", "2026-11-23T08:00:00"], "needs an offset"),
        (["--invalid-rate", "2"], "invalid-rate"),
        (["--demo", "--rate", "1000"], "Invalid value for --demo: not with --rate (load mode is flat)"),
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

    clock = FakeMonotonic()
    start, anchor = 1_000_000, 1_000_000 + 3_600_000  # an hour of history
    pacer = Pacer(1.0, start, anchor, clock=clock)
    assert pacer.delay(start) == -3600.0  # the first record of the history: long overdue
    assert pacer.delay(anchor - 1) == pytest.approx(-0.001)
    assert pacer.delay(anchor + 10_000) == 10.0  # 10 s after now: in 10 s at real time
    clock.sleep(4.0)
    assert pacer.delay(anchor + 10_000) == 6.0  # 4 s later: 6 s to go
    assert Pacer(60.0, start, clock=clock).delay(start + 60_000) == 1.0  # no anchor: from the start
    assert Pacer(0.0, start, clock=clock).delay(start + 60_000) == 0.0  # flat out: never waits
