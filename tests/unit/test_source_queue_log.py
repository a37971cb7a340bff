"""``cxpulse source asterisk-queue-log``: a hand-written queue_log converts to events whose replay gives the KPIs
worked out below by hand; the agent lines give the expected ``agent.state`` sequence; the field variants,
rejections, deterministic ids and the privacy of caller ids.

The fixture ``tests/fixtures/sources/queue_log.realistic`` (08:00:00Z = 1795420800, offsets in seconds):

=====  ==================================================================================================
call   what happens (voice: T = 20 s, S = 5 s, exclude_short_abandons)
=====  ==================================================================================================
c1     sales +10, CONNECT Alice at +20 (wait 10, in time), COMPLETECALLER talk 120
c2     sales +15, ABANDON at +45 (wait 30: breach)
c3     support +30 (7-field ENTERQUEUE, no position), EXITWITHTIMEOUT at +90 (wait 60: breach)
c4     sales +50 (caller of c1: a repeat), CONNECT Agent/1003 at +75 (wait 25: breach), BLINDTRANSFER
       talk 200 at +275 -> support +276, CONNECT Alice +281 (wait 5), COMPLETEAGENT talk 60 (10-field lines)
c5     support +100 (anonymous), EXITEMPTY at +102 (wait 2: a short abandon)
c6     sales +110, EXITWITHKEY at +118 (wait 8)
c7     support +130, CONNECT Bob at +145 (wait 15), ATTENDEDTRANSFER out of the queues, talk 100
=====  ==================================================================================================

sales: offered 4, answered 2 (1 in time), abandoned 2 (0 short) -> SL 1/4, abandon rate 2/4, ASA (10+25)/2,
handled 2 (c1 120, c4 200) -> AHT 160, breaches 2 (c2, c4), repeats 1 (c4), first contacts 1 resolved 1.
support: offered 4, answered 2 (2 in time), abandoned 2 (1 short) -> SL 2/3, abandon rate 1/3, ASA 10,
handled 2 (c4 60, c7 100) -> AHT 80, breaches 1 (c3).
Rejected: a line that is not a queue_log line, a CONNECT without ENTERQUEUE, an unknown event; ignored: a
RINGNOANSWER.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from cxpulse.cli import app
from cxpulse.models.agent_events import parse_agent_event
from cxpulse.models.events import parse_contact_event
from cxpulse.sources.asterisk_queue_log import QueueLogConverter, parse_line
from cxpulse.sources.records import Rejection

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sources" / "queue_log.realistic"
CALLER_NUMBERS = ("+15551230001", "+15551230002", "+15551230003", "+15551230006", "+15551230007")
AGENTS = ("Alice", "Bob", "Agent/1003")


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("ql") / "events.jsonl"
    result = CliRunner().invoke(app, ["source", "asterisk-queue-log", str(FIXTURE), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _replay(path: Path) -> dict:
    result = CliRunner().invoke(app, ["replay", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_summary_counts_every_line(converted: tuple[Path, str]) -> None:
    _, output = converted
    assert output.splitlines() == [
        "read 34",
        "agent-events                 18",
        "contact-events               20",
        "rejected 3: bad_line 1, lifecycle 1, unknown_event 1",
        "ignored 1: RINGNOANSWER 1",
    ]


def test_replay_of_the_conversion_gives_the_kpis_worked_out_by_hand(converted: tuple[Path, str]) -> None:
    out, _ = converted
    document = _replay(out)
    by_queue = {q["queue"]: q["windows"]["all"] for q in document["queues"]}
    assert {q["channel"] for q in document["queues"]} == {"voice"}
    sales, support = by_queue["sales"], by_queue["support"]
    assert (sales["offered"], sales["answered"], sales["answered_within_threshold"]) == (4, 2, 1)
    assert (sales["abandoned"], sales["abandoned_short"], sales["sla_breaches"]) == (2, 0, 2)
    assert sales["service_level"] == 0.25 and sales["abandon_rate"] == 0.5 and sales["asa_seconds"] == 17.5
    assert (sales["handled"], sales["aht_seconds"]) == (2, 160.0)
    assert (sales["repeat_contacts"], sales["first_contacts"], sales["first_contacts_resolved"]) == (1, 1, 1)
    assert (support["offered"], support["answered"], support["answered_within_threshold"]) == (4, 2, 2)
    assert (support["abandoned"], support["abandoned_short"], support["sla_breaches"]) == (2, 1, 1)
    assert support["service_level"] == pytest.approx(2 / 3) and support["abandon_rate"] == pytest.approx(1 / 3)
    assert (support["asa_seconds"], support["handled"], support["aht_seconds"]) == (10.0, 2, 80.0)
    assert support["repeat_contacts"] == 0


def test_every_event_is_valid_and_ids_are_unique(converted: tuple[Path, str]) -> None:
    out, _ = converted
    contact = _lines(out)
    agents = _lines(out.with_name(out.name + ".agents"))
    for event in contact:
        parse_contact_event(event)
    for event in agents:
        parse_agent_event(event)
    ids = [e["event_id"] for e in contact + agents]
    assert len(ids) == len(set(ids)) == 38


def test_the_transferred_call_continues_as_the_same_contact(converted: tuple[Path, str]) -> None:
    out, _ = converted
    c4 = [(e["type"], e["queue"], e.get("transferred")) for e in _lines(out) if e["contact_id"] == "1795420850.5"]
    assert c4 == [
        ("contact.queued", "sales", None), ("contact.answered", "sales", None), ("contact.ended", "sales", True),
        ("contact.queued", "support", None), ("contact.answered", "support", None),
        ("contact.ended", "support", False),
    ]
    customers = {e["customer_id"] for e in _lines(out) if e["contact_id"] in ("1795420850.5", "1795420810.1")}
    assert customers == {"+15551230001"}
    anonymous = {e["customer_id"] for e in _lines(out) if e["contact_id"] == "1795420900.7"}
    assert anonymous == {"unknown-caller-1795420900.7"}


def test_agent_lines_give_the_agent_states_in_order(converted: tuple[Path, str]) -> None:
    out, _ = converted
    states: dict[str, list[tuple]] = {}
    for event in _lines(out.with_name(out.name + ".agents")):
        states.setdefault(event["agent_id"], []).append((event["state"], event["reason"], tuple(event["queues"])))
    both = ("sales", "support")
    assert states["Alice"] == [
        ("available", None, ("sales",)), ("available", None, both), ("on_contact", None, both),
        ("available", None, both), ("on_contact", None, both), ("available", None, both),
    ]
    assert states["Bob"] == [
        ("available", None, ("support",)), ("away", "lunch", ("support",)), ("available", None, ("support",)),
        ("on_contact", None, ("support",)), ("available", None, ("support",)), ("away", None, ("support",)),
    ]
    assert states["Agent/1003"] == [
        ("available", None, ()), ("available", None, ("sales",)), ("on_contact", None, ("sales",)),
        ("available", None, ("sales",)), ("available", None, ()), ("logged_out", None, ()),
    ]


def test_rejections_keep_the_line_and_a_reason(converted: tuple[Path, str]) -> None:
    out, _ = converted
    rejected = _lines(out.with_name(out.name + ".rejected"))
    assert [(r["kind"], r["line"]) for r in rejected] == [
        ("bad_line", "this is not a queue_log line"),
        ("lifecycle", "1795420950|1795420950.11|sales|Alice|CONNECT|3|1795420950.12|1"),
        ("unknown_event", "1795420951|1795420951.13|sales|NONE|FOOBAR|1"),
    ]
    assert rejected[1]["reason"] == "CONNECT for uniqueid '1795420950.11', whose ENTERQUEUE was not read"
    text = FIXTURE.read_bytes()
    assert all(text[r["position"]:].startswith(r["line"].encode()) for r in rejected)


def test_converting_twice_gives_the_same_ids() -> None:
    def ids() -> list[str]:
        converter = QueueLogConverter()
        found = []
        for raw in FIXTURE.read_bytes().splitlines(keepends=True):
            try:
                found += [p.event_id for p in converter.convert(raw).events]
            except Rejection:
                pass
        return found

    first = ids()
    assert first == ids() and len(first) == 38


def test_state_round_trip_continues_like_one_run() -> None:
    """Stopping after any line and going on from the saved state gives the same events as one run."""
    lines = FIXTURE.read_bytes().splitlines(keepends=True)

    def run(converter: QueueLogConverter, chunk: list[bytes]) -> list[bytes]:
        values = []
        for raw in chunk:
            try:
                values += [p.value for p in converter.convert(raw).events]
            except Rejection:
                pass
        return values

    whole = run(QueueLogConverter(), lines)
    for cut in range(len(lines) + 1):
        first = QueueLogConverter()
        head = run(first, lines[:cut])
        state = json.loads(json.dumps(first.state()))
        assert head + run(QueueLogConverter(state), lines[cut:]) == whole, cut


@pytest.mark.parametrize(
    ("line", "data"),
    [
        (b"1795420800|1.1|q|NONE|ENTERQUEUE||+1555|1\n", ("", "+1555", "1")),
        (b"1795420800|1.1|q|NONE|ENTERQUEUE||+1555\n", ("", "+1555")),
        (b"1795420800|1.1|q|Alice|CONNECT|10|1.2|4||\n", ("10", "1.2", "4")),
        (b"1795420800.250|1.1|q|Alice|COMPLETECALLER|10|120|1\r\n", ("10", "120", "1")),
    ],
)
def test_field_variants(line: bytes, data: tuple[str, ...]) -> None:
    parsed = parse_line(line)
    assert parsed.data == data
    assert parsed.ts_us % 1_000_000 == (250_000 if b".250|" in line else 0)


def test_a_line_whose_event_breaks_the_contract_is_rejected_and_changes_nothing() -> None:
    converter = QueueLogConverter()
    too_long = "q" * 65
    with pytest.raises(Rejection) as caught:
        converter.convert(f"1795420800|1.1|{too_long}|NONE|ENTERQUEUE||+1555|1\n".encode())
    assert caught.value.kind == "out_of_range"
    assert caught.value.reason == ("the contact.queued event it maps to is invalid: "
                                   "queue: String should have at most 64 characters")
    assert converter.state() == {"calls": {}, "agents": {}}


def test_no_caller_number_agent_or_customer_in_info_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """queue_log carries caller ids: the whole follow path at INFO (read, convert, write, save) logs none."""
    import asyncio

    from cxpulse.sources.outputs import FileOutput
    from cxpulse.sources.position import PositionStore
    from cxpulse.sources.pump import pump_lines
    from cxpulse.sources.tail import LineReader

    log_file = tmp_path / "queue_log"
    log_file.write_bytes(FIXTURE.read_bytes())

    async def run() -> None:
        output = FileOutput(tmp_path / "out.jsonl")
        reader = LineReader(log_file, None, follow=True)
        stop = asyncio.Event()
        task = asyncio.create_task(pump_lines(reader, QueueLogConverter(), output, source="file:q",
                                              store=PositionStore(tmp_path / "pos.json"), poll_seconds=0.01,
                                              stop=stop))
        while output.tally.read < 34:
            await asyncio.sleep(0.01)
        log_file.rename(tmp_path / "queue_log.1")  # a rotation is logged too
        log_file.write_bytes(b"1795421000|2.1|sales|NONE|ENTERQUEUE||+15551239999|1\n")
        while output.tally.read < 35:
            await asyncio.sleep(0.01)
        stop.set()
        await task
        reader.close()
        await output.close()

    with caplog.at_level(logging.INFO):
        asyncio.run(asyncio.wait_for(run(), timeout=20))
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "was rotated" in text and "lines done" in text
    for secret in (*CALLER_NUMBERS, "+15551239999", *AGENTS, "unknown-caller"):
        assert secret not in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["source", "genesys", "x"], "source: unknown kind 'genesys' (one of asterisk-queue-log, amazon-connect-ctr)"),
        (["source", "amazon-connect-ctr", "-", "--follow"],
         "source amazon-connect-ctr: --follow and --position are for asterisk-queue-log (pipe a stream of records "
         "into FILE '-')"),
        (["source", "asterisk-queue-log", "-"],
         "source asterisk-queue-log: FILE must be a file (its position is a byte offset)"),
        (["source", "asterisk-queue-log", "/nonexistent/queue_log"], "source: /nonexistent/queue_log: no such file"),
        (["source", "asterisk-queue-log", str(FIXTURE), "--kafka", "127.0.0.1:1"],
         "error: Kafka is not reachable at 127.0.0.1:1: "),
    ],
)
def test_bad_input_is_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith(message) if message.endswith(": ") else lines[0] == message
