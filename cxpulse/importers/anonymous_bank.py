"""Convert the "Anonymous Bank" call-centre day (``shared/data/anonymous-bank/calls_one_day.csv``) to contract events.

The CSV has one row per call with wall-clock times of day only (no date, no zone). This module turns each
call into the ``contact-events`` of ``shared/spec/events.md``: ``queued`` then ``answered`` + ``ended``
(outcome AGENT) or ``abandoned`` (outcome HANG). Everything here is pure: rows in, event dicts out, no I/O
except :func:`read_csv`; the CLI lives in :mod:`cxpulse.commands.import_anonymous_bank`.

Rules (the why is in ``docs/anonymous-bank.md``):

- PHANTOM rows are dropped (virtual calls); a HANG with ``q_start`` 0:00:00 never reached a queue and is
  not a contact (dropped).
- ``q_start`` 0:00:00 on an AGENT row means "served at once": queued and answered both at ``vru_exit``.
- A time more than an hour earlier than the call's ``vru_entry`` is on the next day (a call crossing
  midnight); a time up to an hour earlier stays on the same day (three rows have ``vru_exit`` about a
  minute before ``vru_entry``: noise in the source).
- Local times are on ``date`` in ``tz`` (default ``Asia/Jerusalem``, DST-aware) and written in UTC.
- Within one contact the timestamps never go backwards: ``ended`` is clamped to ``answered`` when
  ``ser_exit`` is earlier than ``q_exit`` (the source has 1-second noise), and every clamp is reported in
  :attr:`Conversion.notes`.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date as Date
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cxpulse.models.events import format_ts, to_us

DEFAULT_TZ = "Asia/Jerusalem"
CHANNEL = "voice"
COLUMNS = (
    "vru+line", "call_id", "type", "vru_entry", "vru_exit", "vru_time", "q_start", "q_exit", "q_time",
    "outcome", "ser_start", "ser_exit", "ser_time", "server", "server_abv",
)
OUTCOMES = ("AGENT", "HANG", "PHANTOM")
NEVER = 0  # 0:00:00 is the source's "no such moment" (never queued, no service)
ROLLOVER_SECONDS = 3600  # a time more than this before vru_entry belongs to the next day
_DAY = 86400
_TIME = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})$")
# order of events with the same ts: a contact's lifecycle order, so a reader never sees answered before queued
_RANK = {"contact.queued": 0, "contact.answered": 1, "contact.abandoned": 1, "contact.ended": 2}


class SourceError(ValueError):
    """A row that the converter cannot read; the message names the line and the column."""


@dataclass
class Stats:
    rows: int = 0
    phantom_dropped: int = 0
    hang_never_queued_dropped: int = 0
    contacts: int = 0
    events: int = 0
    answered: int = 0
    abandoned: int = 0
    served_never_queued: int = 0
    crossed_midnight: int = 0
    ended_clamped: int = 0
    service_missing: int = 0

    def lines(self) -> list[str]:
        return [
            f"rows read: {self.rows}",
            f"phantom dropped: {self.phantom_dropped}",
            f"never-queued hangs dropped: {self.hang_never_queued_dropped}",
            f"contacts: {self.contacts} (answered {self.answered}, abandoned {self.abandoned};"
            f" served without queueing {self.served_never_queued}; crossing midnight {self.crossed_midnight})",
            f"events: {self.events}",
            f"ended clamped to answered: {self.ended_clamped}; service times missing: {self.service_missing}",
        ]


@dataclass
class Conversion:
    events: list[dict[str, Any]] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    notes: list[str] = field(default_factory=list)


def parse_clock(text: str, *, line: int | None = None, column: str = "") -> int:
    """``"H:MM:SS"`` -> seconds after midnight."""
    match = _TIME.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise SourceError(f"line {line}: {column} is not a time H:MM:SS: {text!r}")
    hours, minutes, seconds = (int(g) for g in match.groups())
    if hours > 23 or minutes > 59 or seconds > 59:
        raise SourceError(f"line {line}: {column} is not a time of day: {text!r}")
    return hours * 3600 + minutes * 60 + seconds


def on_call_day(seconds: int, entry: int) -> int:
    """Seconds after midnight of the call's day: a time more than an hour before ``vru_entry`` is the next day."""
    return seconds + _DAY if seconds < entry - ROLLOVER_SECONDS else seconds


def contact_id_of(row: Mapping[str, str]) -> str:
    return f"{row['vru+line'].strip()}-{row['call_id'].strip()}"


def _int(row: Mapping[str, str], column: str, line: int) -> int:
    try:
        return int(row[column])
    except (TypeError, ValueError):
        raise SourceError(f"line {line}: {column} is not a whole number: {row[column]!r}") from None


class _Clock:
    """Local seconds after midnight of ``day`` in ``tz`` -> exact UTC microseconds (DST-aware, one fold rule)."""

    def __init__(self, day: Date, tz: ZoneInfo) -> None:
        self._midnight = datetime(day.year, day.month, day.day)
        self._tz = tz

    def us(self, seconds: int) -> int:
        # wall-clock time on the day (or the next); fold=0: an ambiguous time is its first occurrence,
        # a time in a spring-forward gap uses the offset in force before the gap
        local = (self._midnight + timedelta(seconds=seconds)).replace(tzinfo=self._tz)
        return to_us(local)


def _event(kind: str, suffix: str, us: int, cid: str, customer: str, queue: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"ab-{cid}-{suffix}",
        "type": kind,
        "ts": format_ts(us),
        "contact_id": cid,
        "customer_id": customer,
        "channel": CHANNEL,
        "queue": queue,
        **extra,
    }


def convert(rows: Iterable[Mapping[str, str]], day: Date, tz: str | ZoneInfo = DEFAULT_TZ) -> Conversion:
    """Convert CSV rows (as from :class:`csv.DictReader`) of one day to sorted contract events, with counts.

    ``rows`` line numbers in error messages assume a header line first (row 1 is line 2).
    Raises :class:`SourceError` on a row it cannot read (bad time, unknown outcome, duplicate contact id).
    """
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    clock = _Clock(day, zone)
    out = Conversion()
    stats = out.stats
    keyed: list[tuple[int, int, str, dict[str, Any]]] = []  # (ts us, lifecycle rank, contact id, event)
    seen: set[str] = set()
    for index, row in enumerate(rows):
        line = index + 2
        stats.rows += 1
        missing = [c for c in COLUMNS if c not in row or row[c] is None]
        if missing:
            raise SourceError(f"line {line}: missing column(s) {', '.join(missing)}")
        outcome = row["outcome"].strip()
        if outcome not in OUTCOMES:
            raise SourceError(f"line {line}: unknown outcome {outcome!r} (expected one of {', '.join(OUTCOMES)})")
        if outcome == "PHANTOM":
            stats.phantom_dropped += 1
            continue
        never_queued = parse_clock(row["q_start"], line=line, column="q_start") == NEVER
        if outcome == "HANG" and never_queued:
            stats.hang_never_queued_dropped += 1
            continue

        cid = contact_id_of(row)
        if cid in seen:
            raise SourceError(f"line {line}: contact id {cid} occurs twice (vru+line with call_id must be unique)")
        seen.add(cid)
        customer = row["call_id"].strip()
        queue = row["type"].strip().lower()
        if not queue:
            raise SourceError(f"line {line}: type is empty")

        entry = parse_clock(row["vru_entry"], line=line, column="vru_entry")

        def at(column: str) -> int:
            return on_call_day(parse_clock(row[column], line=line, column=column), entry)

        vru_exit = at("vru_exit")
        if never_queued:  # AGENT served straight from the voice-response unit
            queued_s = outcome_s = vru_exit
            stats.served_never_queued += 1
        else:
            queued_s, outcome_s = at("q_start"), at("q_exit")
        queued_us = clock.us(queued_s)
        outcome_us = clock.us(outcome_s)
        if outcome_us < queued_us:  # only possible on a DST change day
            out.notes.append(f"{cid}: outcome before queued in UTC (DST change): outcome clamped to queued")
            outcome_us = queued_us
        crossed = queued_s >= _DAY or outcome_s >= _DAY

        timed = [(queued_us, _event("contact.queued", "q", queued_us, cid, customer, queue, reason=None))]
        if outcome == "HANG":
            timed.append((outcome_us, _event("contact.abandoned", "x", outcome_us, cid, customer, queue)))
            stats.abandoned += 1
        else:
            agent = row["server"].strip()
            if not agent:
                raise SourceError(f"line {line}: server is empty on an AGENT row")
            talk = _int(row, "ser_time", line)
            if talk < 0:
                raise SourceError(f"line {line}: ser_time is negative: {talk}")
            ser_start_s = parse_clock(row["ser_start"], line=line, column="ser_start")
            ser_exit_s = parse_clock(row["ser_exit"], line=line, column="ser_exit")
            if ser_start_s == NEVER and ser_exit_s == NEVER and talk == 0:
                # served (AGENT, with an agent) but no service times recorded: end at the answer, talk 0
                ended_us = outcome_us
                stats.service_missing += 1
                out.notes.append(f"{cid}: AGENT without service times (ser_start/ser_exit 0:00:00): ended at answered, talk 0")
            else:
                ser_exit = at("ser_exit")
                crossed = crossed or ser_exit >= _DAY
                ended_us = clock.us(ser_exit)
                if ended_us < outcome_us:
                    stats.ended_clamped += 1
                    answer_column = "vru_exit" if never_queued else "q_exit"
                    out.notes.append(
                        f"{cid}: ser_exit {row['ser_exit'].strip()} before {answer_column}"
                        f" {row[answer_column].strip()}: ended clamped to answered"
                    )
                    ended_us = outcome_us
            answered = _event("contact.answered", "a", outcome_us, cid, customer, queue, agent_id=agent, team=None)
            ended = _event(
                "contact.ended", "e", ended_us, cid, customer, queue,
                agent_id=agent, talk_seconds=talk, hold_seconds=0, wrap_seconds=0,
                resolved=False, transferred=False, disposition=None,
            )
            timed += [(outcome_us, answered), (ended_us, ended)]
            stats.answered += 1
        if crossed:
            stats.crossed_midnight += 1
        stats.contacts += 1
        keyed.extend((us, _RANK[ev["type"]], cid, ev) for us, ev in timed)

    keyed.sort(key=lambda item: item[:3])
    out.events = [ev for *_, ev in keyed]
    stats.events = len(out.events)
    return out


def convert_rows(rows: Iterable[Mapping[str, str]], day: Date, tz: str | ZoneInfo = DEFAULT_TZ) -> list[dict[str, Any]]:
    """The events only (sorted by time, then queued < answered/abandoned < ended, then contact id)."""
    return convert(rows, day, tz).events


def read_csv(path: str | Path) -> Iterator[dict[str, str]]:
    """Rows of the CSV as dicts; checks the header first so a wrong file fails with a clear message."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise SourceError(f"{path}: not the Anonymous Bank extract, missing column(s): {', '.join(missing)}")
        yield from reader
