"""``cxpulse source amazon-connect-ctr``: contact trace records for voice and chat, answered, abandoned and
transferred, convert to events whose replay gives the KPIs worked out here by hand.

``tests/fixtures/sources/connect_ctr.jsonl`` (all on 2026-11-23 08:mm:ssZ; one record pretty-printed, two
concatenated without a separator, as a Firehose delivery writes them):

=====  =====================================================================================================
a1     voice billing, queued 00:00, agent jdoe at 00:12 (wait 12, in time), talk 180 + hold 30 + wrap 45
a2     voice billing, queued 01:00, dequeued 01:40 without agent (abandoned, wait 40: a breach)
a3     voice billing, queued 02:00, dequeued 02:03 (abandoned, wait 3 < 5 s: short)
a4     voice billing, queued 05:00, jdoe at 05:25 (wait 25: breach), talk 100 + wrap 20, transferred
a5     the transfer of a4 (InitialContactId a4): retention, queued 07:06, mlee at 07:16 (wait 10), 60 + 10
c1     chat webchat (T = 30 s, S = 0), queued 00:30, asmith at 01:30 (wait 60: breach), talk 300 + wrap 30
c2     chat webchat, queued 03:00, dequeued 03:20 (abandoned, wait 20)
a6     voice without a queue (self-service): ignored;  t1: TASK (no contract channel), a7: a queue without
       EnqueueTimestamp, ``42``, a record cut off at the end of the file: rejected
=====  =====================================================================================================

billing: offered 4, answered 2 (1 in time), abandoned 2 (1 short): SL 1/3, abandon rate 1/3, ASA 18.5,
handled 2, AHT (255 + 120) / 2 = 187.5, breaches 2. retention: 1 offered, 1 in time, AHT 70.
webchat: offered 2, answered 1 (late), abandoned 1: SL 0, abandon rate 1/2, ASA 60, AHT 330, breaches 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from cxpulse.cli import app
from cxpulse.models.events import parse_contact_event
from cxpulse.sources.amazon_connect import JsonError, convert_record, iter_json_values
from cxpulse.sources.records import Rejection

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sources" / "connect_ctr.jsonl"


def _convert(out: Path, source: str = str(FIXTURE), stdin: bytes | None = None) -> str:
    result = CliRunner().invoke(app, ["source", "amazon-connect-ctr", source, "--out", str(out)], input=stdin)
    assert result.exit_code == 0, result.output
    return result.output


def _windows(out: Path) -> dict[str, dict]:
    result = CliRunner().invoke(app, ["replay", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return {(q["queue"], q["channel"]): q["windows"]["all"] for q in json.loads(result.stdout)["queues"]}


def test_replay_of_the_records_gives_the_kpis_worked_out_by_hand(tmp_path: Path) -> None:
    out = tmp_path / "ctr.jsonl"
    assert _convert(out).splitlines() == [
        "read 12",
        "contact-events               18",
        "rejected 4: not_json 2, unsupported_channel 1, missing_field 1",
        "ignored 1: no queue 1",
    ]
    windows = _windows(out)
    assert set(windows) == {("billing", "voice"), ("retention", "voice"), ("webchat", "chat")}
    billing, retention, chat = windows["billing", "voice"], windows["retention", "voice"], windows["webchat", "chat"]
    assert (billing["offered"], billing["answered"], billing["answered_within_threshold"]) == (4, 2, 1)
    assert (billing["abandoned"], billing["abandoned_short"], billing["sla_breaches"]) == (2, 1, 2)
    assert billing["service_level"] == pytest.approx(1 / 3) and billing["abandon_rate"] == pytest.approx(1 / 3)
    assert (billing["asa_seconds"], billing["handled"], billing["aht_seconds"]) == (18.5, 2, 187.5)
    assert (retention["offered"], retention["answered_within_threshold"], retention["aht_seconds"]) == (1, 1, 70.0)
    assert (chat["offered"], chat["answered"], chat["answered_within_threshold"], chat["abandoned"]) == (2, 1, 0, 1)
    assert (chat["service_level"], chat["abandon_rate"], chat["asa_seconds"]) == (0.0, 0.5, 60.0)
    assert (chat["aht_seconds"], chat["sla_breaches"]) == (330.0, 1)


def test_the_transfer_chain_is_one_contact_and_fields_map(tmp_path: Path) -> None:
    out = tmp_path / "ctr.jsonl"
    _convert(out)
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    for event in events:
        parse_contact_event(event)
    chain = [(e["type"], e["queue"], e.get("transferred")) for e in events if e["contact_id"] == "a4"]
    assert chain == [
        ("contact.queued", "billing", None), ("contact.answered", "billing", None), ("contact.ended", "billing", True),
        ("contact.queued", "retention", None), ("contact.answered", "retention", None),
        ("contact.ended", "retention", False),
    ]
    a1 = {e["type"]: e for e in events if e["contact_id"] == "a1"}
    assert a1["contact.answered"]["team"] == "Billing team A" and a1["contact.answered"]["agent_id"] == "jdoe"
    assert (a1["contact.ended"]["ts"], a1["contact.ended"]["talk_seconds"], a1["contact.ended"]["hold_seconds"],
            a1["contact.ended"]["wrap_seconds"]) == ("2026-11-23T08:04:27Z", 180.0, 30.0, 45.0)
    assert a1["contact.queued"]["customer_id"] == "+15557770001"
    assert {e["customer_id"] for e in events if e["contact_id"] == "c1"} == {"connect-contact-c1"}
    assert len({e["event_id"] for e in events}) == len(events) == 18


def test_standard_input_gives_the_same_events(tmp_path: Path) -> None:
    from_file, from_stdin = tmp_path / "file.jsonl", tmp_path / "stdin.jsonl"
    _convert(from_file)
    _convert(from_stdin, "-", FIXTURE.read_bytes())
    assert from_stdin.read_bytes() == from_file.read_bytes()
    rejected = [orjson.loads(line) for line in (tmp_path / "stdin.jsonl.rejected").read_bytes().splitlines()]
    assert [r["source"] for r in rejected] == ["stdin"] * 4
    assert [r["position"] for r in rejected] == [8, 9, 10, 11]


def test_a_json_array_and_concatenated_records_are_read_one_by_one() -> None:
    values = list(iter_json_values(['[{"a": "}{"}, {"b": [1, 2]}', ',\n {"c": "\\"x"}]{"d": 1}']))
    assert [v for _, v in values] == [{"a": "}{"}, {"b": [1, 2]}, {"c": '"x'}, {"d": 1}]
    broken = list(iter_json_values(['{"a": 1}\nnot json\n{"b": 2}']))
    assert broken[0][1] == {"a": 1} and isinstance(broken[1][1], JsonError) and broken[2][1] == {"b": 2}


def test_an_agent_connected_without_a_name_is_rejected() -> None:
    record = {"ContactId": "x", "Channel": "VOICE", "Queue": {"Name": "q", "EnqueueTimestamp": "2026-11-23T08:00:00Z"},
              "Agent": {"ConnectedToAgentTimestamp": "2026-11-23T08:00:05Z"}, "DisconnectTimestamp": "2026-11-23T08:01:00Z"}
    with pytest.raises(Rejection) as caught:
        convert_record(record)
    assert (caught.value.kind, caught.value.reason) == (
        "missing_field", "Agent.Username: missing (and no Agent.ARN) for a contact an agent took")
    record["Queue"]["EnqueueTimestamp"] = "2026-11-23 08:00:00"
    with pytest.raises(Rejection) as caught:
        convert_record(record)
    assert caught.value.reason == ("Queue.EnqueueTimestamp is not an RFC 3339 time with offset: "
                                   "'2026-11-23 08:00:00'")


def test_dead_letter_headers_are_the_workers() -> None:
    """A dead letter of a source reads like one of the worker (same header names, order and encoding)."""
    from cxpulse.sources.outputs import dead_letter_headers
    from cxpulse.sources.records import Rejected
    from cxpulse.streams.dead_letters import DeadLetter

    ours = dead_letter_headers(Rejected("contact-events", b"line", "why", "bad_line", "file:/q", 42))
    theirs = DeadLetter(b"line", None, "why", "bad_line", "file:/q", -1, 42).headers()
    assert ours == theirs
