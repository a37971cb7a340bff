"""The Anonymous Bank importer against the real CSV (``../shared/data/anonymous-bank/calls_one_day.csv``).

Expectations are computed here straight from the CSV with the ``csv`` module and plain arithmetic on the
``q_time`` / ``ser_time`` columns, independently of the importer, and compared with what the events say.
The "independent cross-check" table of ``docs/anonymous-bank.md`` is rendered by :func:`render_crosscheck`
and checked against the doc, so the table cannot drift from the data.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from cxpulse.importers.anonymous_bank import SourceError, convert, convert_rows, read_csv
from cxpulse.models.events import parse_contact_event

REPO = Path(__file__).resolve().parents[2]
CSV_PATH = REPO.parent / "shared" / "data" / "anonymous-bank" / "calls_one_day.csv"
DOC_PATH = REPO / "docs" / "anonymous-bank.md"
JERUSALEM = ZoneInfo("Asia/Jerusalem")
WINTER = date(1999, 1, 4)  # Israel: UTC+2
SUMMER = date(1999, 7, 5)  # Israel: UTC+3 (DST 1999-04-02 .. 1999-09-03)
QUEUES = ("ps", "nw", "ne", "in", "tt", "pe")
T_SECONDS = 20  # voice sl_threshold_seconds
S_SECONDS = 5  # voice short_abandon_seconds
_SUFFIX = {"contact.queued": "q", "contact.answered": "a", "contact.abandoned": "x", "contact.ended": "e"}


# ---------------------------------------------------------------------------------------- the CSV, read plainly


def _csv_rows() -> list[dict[str, str]]:
    if not CSV_PATH.is_file():
        pytest.fail(f"the shared data set is missing: {CSV_PATH}")
    with open(CSV_PATH, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return _csv_rows()


@pytest.fixture(scope="module")
def result(rows):
    return convert(rows, WINTER)


@pytest.fixture(scope="module")
def events(result) -> list[dict]:
    return result.events


def _secs(text: str) -> int:
    h, m, s = text.split(":")
    return int(h) * 3600 + int(m) * 60 + int(s)


def _is_contact(row: dict[str, str]) -> bool:
    return row["outcome"] != "PHANTOM" and not (row["outcome"] == "HANG" and row["q_start"] == "0:00:00")


def _cid(row: dict[str, str]) -> str:
    return f"{row['vru+line']}-{row['call_id']}"


def _by_contact(events: list[dict]) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    for event in events:
        out[event["contact_id"]][event["type"]] = event
    return out


def _utc(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _local(ts: str) -> datetime:
    return _utc(ts).astimezone(JERUSALEM)


def _row(**overrides: str) -> dict[str, str]:
    """A synthetic AGENT row that queued; override any column."""
    base = {
        "vru+line": "AA0999", "call_id": "1", "type": "PS", "vru_entry": "10:00:00", "vru_exit": "10:00:10",
        "vru_time": "10", "q_start": "10:00:10", "q_exit": "10:00:30", "q_time": "20", "outcome": "AGENT",
        "ser_start": "10:00:30", "ser_exit": "10:02:30", "ser_time": "120", "server": "DANA", "server_abv": "DAN",
    }
    base.update(overrides)
    return base


# ---------------------------------------------------------------------------------------- counts and validity


def test_contacts_are_rows_minus_phantoms_minus_never_queued_hangs(rows, result):
    phantom = sum(1 for r in rows if r["outcome"] == "PHANTOM")
    hang_unqueued = sum(1 for r in rows if r["outcome"] == "HANG" and r["q_start"] == "0:00:00")
    expected = len(rows) - phantom - hang_unqueued
    stats = result.stats
    assert (stats.rows, stats.phantom_dropped, stats.hang_never_queued_dropped) == (len(rows), phantom, hang_unqueued)
    assert stats.contacts == expected
    assert len({e["contact_id"] for e in result.events}) == expected
    agents = sum(1 for r in rows if r["outcome"] == "AGENT")
    hangs = expected - agents
    # a queued each, + answered & ended per AGENT, + abandoned per queued HANG
    assert stats.events == len(result.events) == expected + 2 * agents + hangs
    assert (stats.answered, stats.abandoned) == (agents, hangs)
    # the file as documented in shared/data/anonymous-bank/README.md
    assert (len(rows), phantom, hang_unqueued, expected) == (2375, 18, 118, 2239)


def test_contact_ids_and_event_ids_are_unique(rows, events):
    cids = [_cid(r) for r in rows if _is_contact(r)]
    assert len(cids) == len(set(cids))
    shared_call_ids = [k for k, n in Counter(r["call_id"] for r in rows if _is_contact(r)).items() if n > 1]
    assert len(shared_call_ids) == 77  # why call_id alone cannot be the contact id (and is a weak customer id)
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids))
    queued = [e["contact_id"] for e in events if e["type"] == "contact.queued"]
    assert sorted(queued) == sorted(cids)


def test_every_event_validates_as_dict_and_as_json_line(events):
    for event in events:
        model = parse_contact_event(event)
        assert model.event_id == event["event_id"]
        again = parse_contact_event(orjson.dumps(event))
        assert again == model


def test_events_sorted_by_time_then_lifecycle(events):
    rank = {"contact.queued": 0, "contact.answered": 1, "contact.abandoned": 1, "contact.ended": 2}
    keys = [(_utc(e["ts"]), rank[e["type"]]) for e in events]
    assert keys == sorted(keys)


def test_lifecycle_of_every_contact(rows, events):
    outcome = {_cid(r): r["outcome"] for r in rows if _is_contact(r)}
    for cid, by_type in _by_contact(events).items():
        if outcome[cid] == "AGENT":
            assert set(by_type) == {"contact.queued", "contact.answered", "contact.ended"}
            q, a, x = (_utc(by_type[t]["ts"]) for t in ("contact.queued", "contact.answered", "contact.ended"))
            assert q <= a <= x, cid
        else:
            assert set(by_type) == {"contact.queued", "contact.abandoned"}
            assert _utc(by_type["contact.queued"]["ts"]) <= _utc(by_type["contact.abandoned"]["ts"]), cid
        for event in by_type.values():
            assert event["event_id"] == f"ab-{cid}-{_SUFFIX[event['type']]}"
            assert event["channel"] == "voice" and event["customer_id"] == cid.split("-", 1)[1]


def test_conversion_is_deterministic(rows, events):
    assert convert_rows(list(reversed(rows)), WINTER) == events


# ---------------------------------------------------------------------------------------- hand-computed rows


def test_hand_computed_served_row_with_negative_vru_time(events):
    # AA0207,7039,PS,12:04:42,12:03:15,-87,12:03:15,12:04:56,101,AGENT,12:04:55,12:05:56,61,VICKY,VIC
    # 1999-01-04 in Israel is UTC+2: 12:03:15 local -> 10:03:15Z
    common = {"contact_id": "AA0207-7039", "customer_id": "7039", "channel": "voice", "queue": "ps"}
    assert _by_contact(events)["AA0207-7039"] == {
        "contact.queued": {"event_id": "ab-AA0207-7039-q", "type": "contact.queued",
                           "ts": "1999-01-04T10:03:15.000Z", **common, "reason": None},
        "contact.answered": {"event_id": "ab-AA0207-7039-a", "type": "contact.answered",
                             "ts": "1999-01-04T10:04:56.000Z", **common, "agent_id": "VICKY", "team": None},
        "contact.ended": {"event_id": "ab-AA0207-7039-e", "type": "contact.ended",
                          "ts": "1999-01-04T10:05:56.000Z", **common, "agent_id": "VICKY", "talk_seconds": 61,
                          "hold_seconds": 0, "wrap_seconds": 0, "resolved": False, "transferred": False,
                          "disposition": None},
    }


def test_hand_computed_abandoned_row(events):
    # AA0116,6636,IN,10:01:10,10:01:20,10,10:01:20,10:01:28,8,HANG,0:00:00,0:00:00,0,NO_SERVER,NO_
    common = {"contact_id": "AA0116-6636", "customer_id": "6636", "channel": "voice", "queue": "in"}
    assert _by_contact(events)["AA0116-6636"] == {
        "contact.queued": {"event_id": "ab-AA0116-6636-q", "type": "contact.queued",
                           "ts": "1999-01-04T08:01:20.000Z", **common, "reason": None},
        "contact.abandoned": {"event_id": "ab-AA0116-6636-x", "type": "contact.abandoned",
                              "ts": "1999-01-04T08:01:28.000Z", **common},
    }


def test_served_never_queued_is_queued_and_answered_at_vru_exit(rows, events):
    # AA0104,31129,PS,10:00:21,10:00:31,10,0:00:00,0:00:00,0,AGENT,10:00:30,10:02:09,99,NAAMA,NAA
    c = _by_contact(events)["AA0104-31129"]
    assert c["contact.queued"]["ts"] == c["contact.answered"]["ts"] == "1999-01-04T08:00:31.000Z"
    assert c["contact.ended"]["ts"] == "1999-01-04T08:02:09.000Z" and c["contact.ended"]["talk_seconds"] == 99
    assert c["contact.answered"]["agent_id"] == "NAAMA"
    # and every such row: queued == answered == vru_exit (local, day D)
    by_contact = _by_contact(events)
    served_unqueued = [r for r in rows if r["outcome"] == "AGENT" and r["q_start"] == "0:00:00"]
    assert len(served_unqueued) == 268
    for r in served_unqueued:
        c = by_contact[_cid(r)]
        local = _local(c["contact.queued"]["ts"])
        assert c["contact.answered"]["ts"] == c["contact.queued"]["ts"]
        assert (local.date(), local.hour * 3600 + local.minute * 60 + local.second) == (WINTER, _secs(r["vru_exit"]))


def test_ended_before_answered_is_clamped_and_noted(result):
    # AA0216,7926,IN,...,q_exit 13:04:21,...,ser_start 13:04:19,ser_exit 13:04:20,ser_time 1,ANAT
    c = _by_contact(result.events)["AA0216-7926"]
    assert c["contact.answered"]["ts"] == c["contact.ended"]["ts"] == "1999-01-04T11:04:21.000Z"
    assert c["contact.ended"]["talk_seconds"] == 1
    assert result.stats.ended_clamped == 1
    assert any(n.startswith("AA0216-7926:") for n in result.notes)


def test_served_row_without_service_times_ends_at_the_answer(result):
    # AA0110,37823,NW,8:48:53,8:49:02,9,8:49:02,8:53:47,285,AGENT,0:00:00,0:00:00,0,STEREN,STE
    # ser_exit 0:00:00 is "missing", not the next midnight
    c = _by_contact(result.events)["AA0110-37823"]
    assert c["contact.answered"]["ts"] == c["contact.ended"]["ts"] == "1999-01-04T06:53:47.000Z"
    assert c["contact.ended"]["talk_seconds"] == 0
    assert result.stats.service_missing == 1


# ---------------------------------------------------------------------------------------- day and time zone


def _crosses_midnight(row: dict[str, str]) -> bool:
    """Independent of the importer: some real time (not the 0:00:00 placeholder) is > 1 h before vru_entry."""
    entry = _secs(row["vru_entry"])
    used = ["vru_exit", "q_start", "q_exit", "ser_exit"]
    return any(row[c] != "0:00:00" and _secs(row[c]) < entry - 3600 for c in used)


def test_midnight_crossing_calls_land_on_next_day(rows, events):
    expected = {_cid(r) for r in rows if _is_contact(r) and _crosses_midnight(r)}
    on_next_day = {e["contact_id"] for e in events if _local(e["ts"]).date() == WINTER + timedelta(days=1)}
    assert on_next_day == expected
    assert {_local(e["ts"]).date() for e in events} <= {WINTER, WINTER + timedelta(days=1)}
    # this extract has no call crossing midnight (last ser_exit 23:59:57): the rule is checked on synthetic rows
    assert expected == set()


def test_midnight_crossing_synthetic_rows():
    served = _row(call_id="1", vru_entry="23:59:20", vru_exit="23:59:30", q_start="23:59:30", q_exit="0:00:15",
                  q_time="45", ser_start="0:00:15", ser_exit="0:03:15", ser_time="180")
    hung = _row(call_id="2", vru_entry="23:58:00", vru_exit="23:58:10", q_start="23:58:10", q_exit="0:01:10",
                q_time="180", outcome="HANG", ser_start="0:00:00", ser_exit="0:00:00", ser_time="0")
    result = convert([served, hung], WINTER)
    c = _by_contact(result.events)
    assert c["AA0999-1"]["contact.queued"]["ts"] == "1999-01-04T21:59:30.000Z"  # 23:59:30 +02:00 on D
    assert c["AA0999-1"]["contact.answered"]["ts"] == "1999-01-04T22:00:15.000Z"  # 00:00:15 +02:00 on D+1
    assert c["AA0999-1"]["contact.ended"]["ts"] == "1999-01-04T22:03:15.000Z"
    assert _local(c["AA0999-1"]["contact.answered"]["ts"]).date() == date(1999, 1, 5)
    assert c["AA0999-2"]["contact.abandoned"]["ts"] == "1999-01-04T22:01:10.000Z"
    assert _utc(c["AA0999-2"]["contact.abandoned"]["ts"]) - _utc(c["AA0999-2"]["contact.queued"]["ts"]) == timedelta(seconds=180)
    assert result.stats.crossed_midnight == 2
    # a call entering just after midnight stays on D
    early = convert([_row(call_id="3", vru_entry="0:10:00", vru_exit="0:10:10", q_start="0:10:10",
                          q_exit="0:10:20", ser_start="0:10:20", ser_exit="0:11:00")], WINTER).events
    assert {_local(e["ts"]).date() for e in early} == {WINTER}


def test_negative_vru_time_rows_stay_on_day_d(rows, events):
    negative = [r for r in rows if int(r["vru_time"]) < 0]
    assert [_cid(r) for r in negative] == ["AA0207-7039", "AA0208-7389", "AA0109-38287"]
    by_contact = _by_contact(events)
    for r in negative:
        c = by_contact[_cid(r)]
        assert {_local(e["ts"]).date() for e in c.values()} == {WINTER}
        wait = _utc(c["contact.answered"]["ts"]) - _utc(c["contact.queued"]["ts"])
        assert wait == timedelta(seconds=int(r["q_time"]))
        assert _local(c["contact.queued"]["ts"]).strftime("%-H:%M:%S") == r["q_start"]


@pytest.mark.parametrize(("day", "hours"), [(WINTER, 2), (SUMMER, 3)])
def test_israel_offset_winter_and_summer(rows, day, hours):
    events = convert_rows(rows, day)
    c = _by_contact(events)["AA0104-31129"]  # queued 10:00:31 local
    assert c["contact.queued"]["ts"] == f"{day.isoformat()}T{10 - hours:02d}:00:31.000Z"
    for e in events:
        assert _local(e["ts"]).utcoffset() == timedelta(hours=hours)
        local = _local(e["ts"])
        assert local.date() == day  # no midnight crossers in this extract


def test_dst_change_days_keep_every_lifecycle_ordered():
    # 1999-04-02 02:00 -> 03:00 (a gap); 1999-09-03 02:00 -> 01:00 (a repeated hour)
    in_gap = _row(call_id="1", vru_entry="2:59:40", vru_exit="2:59:50", q_start="2:59:50", q_exit="3:00:10",
                  ser_start="3:00:10", ser_exit="3:01:00", ser_time="50")
    for day in (date(1999, 4, 2), date(1999, 9, 3)):
        result = convert([in_gap, _row(call_id="2", vru_entry="1:30:00", vru_exit="1:30:10", q_start="1:30:10",
                                       q_exit="2:30:00", ser_start="2:30:00", ser_exit="2:31:00", ser_time="60")], day)
        for c in _by_contact(result.events).values():
            ts = [_utc(c[t]["ts"]) for t in ("contact.queued", "contact.answered", "contact.ended")]
            assert ts == sorted(ts)
        for e in result.events:
            parse_contact_event(e)
    # in the gap, 2:59:50 uses the winter offset (+02:00) and 3:00:10 the summer one (+03:00): clamped, noted
    gap = convert([in_gap], date(1999, 4, 2))
    assert any("DST" in n for n in gap.notes)


# ---------------------------------------------------------------------------------------- per-queue KPIs


def crosscheck_from_csv(rows: list[dict[str, str]]) -> dict[str, dict[str, float | int | None]]:
    """The day's KPIs per queue and total, from the CSV columns only (q_time, ser_time), per shared/spec/kpis.md."""
    acc: dict[str, dict[str, list[int]]] = defaultdict(lambda: {"answered": [], "abandoned": [], "talk": []})
    for r in rows:
        if not _is_contact(r):
            continue
        wait = 0 if r["q_start"] == "0:00:00" else int(r["q_time"])
        for key in (r["type"].lower(), "total"):
            if r["outcome"] == "AGENT":
                acc[key]["answered"].append(wait)
                acc[key]["talk"].append(int(r["ser_time"]))
            else:
                acc[key]["abandoned"].append(wait)
    return {key: _kpis(acc[key]["answered"], acc[key]["abandoned"], acc[key]["talk"]) for key in (*QUEUES, "total")}


def crosscheck_from_events(events: list[dict]) -> dict[str, dict[str, float | int | None]]:
    """The same KPIs from the events' timestamps (wait = outcome ts - queued ts) and talk_seconds."""
    acc: dict[str, dict[str, list[int]]] = defaultdict(lambda: {"answered": [], "abandoned": [], "talk": []})
    for cid, c in _by_contact(events).items():
        queue = c["contact.queued"]["queue"]
        queued = _utc(c["contact.queued"]["ts"])
        for key in (queue, "total"):
            if "contact.answered" in c:
                acc[key]["answered"].append(int((_utc(c["contact.answered"]["ts"]) - queued).total_seconds()))
                acc[key]["talk"].append(c["contact.ended"]["talk_seconds"])
            else:
                acc[key]["abandoned"].append(int((_utc(c["contact.abandoned"]["ts"]) - queued).total_seconds()))
    return {key: _kpis(acc[key]["answered"], acc[key]["abandoned"], acc[key]["talk"]) for key in (*QUEUES, "total")}


def _kpis(answered: list[int], abandoned: list[int], talk: list[int]) -> dict[str, float | int | None]:
    n_ans, n_ab = len(answered), len(abandoned)
    short = sum(1 for w in abandoned if w < S_SECONDS)
    in_time = sum(1 for w in answered if w <= T_SECONDS)
    sl_den = n_ans + n_ab - short
    return {
        "offered": n_ans + n_ab,
        "answered": n_ans,
        "abandoned": n_ab,
        "abandoned_short": short,
        "answered_within_threshold": in_time,
        "asa": sum(answered) / n_ans if n_ans else None,
        "aht": sum(talk) / len(talk) if talk else None,
        "service_level": in_time / sl_den if sl_den else None,
        "abandon_rate": (n_ab - short) / sl_den if sl_den else None,
    }


def test_per_queue_counts_match_the_csv(rows, events):
    expected: Counter = Counter()
    for r in rows:
        if _is_contact(r):
            q = r["type"].lower()
            expected[(q, "offered")] += 1
            expected[(q, "answered" if r["outcome"] == "AGENT" else "abandoned")] += 1
    got: Counter = Counter()
    for e in events:
        name = {"contact.queued": "offered", "contact.answered": "answered", "contact.abandoned": "abandoned"}.get(e["type"])
        if name:
            got[(e["queue"], name)] += 1
    assert got == expected
    assert {e["queue"] for e in events} == set(QUEUES)


def test_kpis_from_events_equal_kpis_from_csv(rows, events):
    assert crosscheck_from_events(events) == crosscheck_from_csv(rows)


def _fmt(value: float | int | None, kind: str) -> str:
    if value is None:
        return "null"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "s":
        return f"{value:.1f}"
    return str(value)


_COLUMNS = (
    ("offered", "offered", "n"), ("answered", "answered", "n"), ("abandoned", "abandoned", "n"),
    ("abandoned < 5 s", "abandoned_short", "n"), ("answered <= 20 s", "answered_within_threshold", "n"),
    ("ASA s", "asa", "s"), ("AHT s", "aht", "s"), ("SL", "service_level", "pct"), ("abandon rate", "abandon_rate", "pct"),
)


def render_crosscheck(table: dict[str, dict[str, float | int | None]]) -> str:
    lines = ["| queue | " + " | ".join(title for title, _, _ in _COLUMNS) + " |",
             "|---|" + "---:|" * len(_COLUMNS)]
    for key in (*QUEUES, "total"):
        cells = [_fmt(table[key][field], kind) for _, field, kind in _COLUMNS]
        name = "**total**" if key == "total" else f"`{key}`"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def test_doc_crosscheck_table_matches_the_csv(rows):
    if not DOC_PATH.is_file():
        pytest.fail(f"missing {DOC_PATH}")
    assert render_crosscheck(crosscheck_from_csv(rows)) in DOC_PATH.read_text(encoding="utf-8"), (
        "docs/anonymous-bank.md: the cross-check table differs from the data; regenerate it with "
        "`.venv/bin/python tests/unit/test_anonymous_bank.py`"
    )


# ---------------------------------------------------------------------------------------- bad input and the CLI


def test_bad_rows_fail_with_the_line_number():
    with pytest.raises(SourceError, match="line 2: q_exit is not a time"):
        convert([_row(q_exit="10:61:00")], WINTER)
    with pytest.raises(SourceError, match="line 3: unknown outcome 'BUSY'"):
        convert([_row(), _row(call_id="2", outcome="BUSY")], WINTER)
    with pytest.raises(SourceError, match="occurs twice"):
        convert([_row(), _row()], WINTER)


def test_read_csv_rejects_another_file(tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(SourceError, match="missing column"):
        list(read_csv(other))


def test_cli_writes_json_lines_and_reports_counts(tmp_path):
    out = tmp_path / "day.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "cxpulse.cli", "import-anonymous-bank", str(CSV_PATH), "--date", "1999-01-04",
         "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for needle in ("rows read: 2375", "phantom dropped: 18", "never-queued hangs dropped: 118",
                   "contacts: 2239", "events: 5989"):
        assert needle in proc.stderr
    lines = out.read_bytes().splitlines()
    assert len(lines) == 5989
    assert [orjson.loads(line) for line in lines] == convert_rows(_csv_rows(), WINTER)
    bad = subprocess.run(
        [sys.executable, "-m", "cxpulse.cli", "import-anonymous-bank", str(CSV_PATH), "--date", "4/1/1999"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode != 0 and "--date" in bad.stderr


if __name__ == "__main__":  # print the cross-check table for docs/anonymous-bank.md
    print(render_crosscheck(crosscheck_from_csv(_csv_rows())), end="")
