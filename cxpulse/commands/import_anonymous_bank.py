"""``cxpulse import-anonymous-bank``: the Anonymous Bank call-centre day as contract events (JSON Lines).

The conversion itself is :func:`cxpulse.importers.anonymous_bank.convert`; this module only reads the file,
validates every event against the contract, writes the lines and reports counts on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("import-anonymous-bank")
    def import_anonymous_bank(
        csv_path: Path = typer.Argument(
            ..., metavar="CSV", exists=True, dir_okay=False, readable=True,
            help="the extract, e.g. ../shared/data/anonymous-bank/calls_one_day.csv",
        ),
        day: str = typer.Option(
            ..., "--date", metavar="YYYY-MM-DD",
            help="the calendar day of the calls (the extract has no date column; the data is from 1999, e.g. 1999-01-04)",
        ),
        out: Optional[Path] = typer.Option(None, "--out", help="JSON Lines file to write (default: stdout)"),
        tz: str = typer.Option("Asia/Jerusalem", "--tz", help="IANA time zone of the times in the file (DST-aware)"),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="also list every adjusted row on stderr"),
    ) -> None:
        """Convert the Anonymous Bank call-centre day to contact events, sorted by event time."""
        from datetime import date
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        import orjson

        from cxpulse.importers.anonymous_bank import SourceError, convert, read_csv
        from cxpulse.models.events import InvalidEvent, parse_contact_event

        try:
            when = date.fromisoformat(day)
        except ValueError:
            raise typer.BadParameter(f"not a date YYYY-MM-DD: {day!r}", param_hint="--date") from None
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise typer.BadParameter(f"unknown time zone: {tz!r}", param_hint="--tz") from None

        def err(text: str) -> None:
            typer.echo(text, err=True)

        try:
            result = convert(read_csv(csv_path), when, zone)
        except (SourceError, UnicodeDecodeError) as exc:
            err(f"error: {exc}")
            raise typer.Exit(2) from None

        # the contract is the promise: refuse to write anything if one event would be rejected downstream
        for event in result.events:
            try:
                parse_contact_event(event)
            except InvalidEvent as exc:  # a bug in the converter, not in the data
                err(f"error: produced an invalid event {event.get('event_id')}: {exc.reason}")
                raise typer.Exit(3) from None

        payload = b"".join(orjson.dumps(event) + b"\n" for event in result.events)
        if out is None:
            sys.stdout.buffer.write(payload)
            sys.stdout.buffer.flush()
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(payload)

        for text in result.stats.lines():
            err(text)
        if verbose:
            for note in result.notes:
                err(f"  {note}")
        elif result.notes:
            err(f"adjusted rows: {len(result.notes)} (--verbose lists them)")
        if out is not None:
            err(f"wrote {out}")
