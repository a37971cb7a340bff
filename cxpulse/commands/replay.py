"""``cxpulse replay FILE``: run the KPI core over a JSON Lines event file, without Kafka.

"now" is the stream time (the largest event time seen), as kpis.md asks of a replay of history. Invalid lines
are counted and summarised, never fatal.
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

if TYPE_CHECKING:
    from cxpulse.settings import KpiSettings


class WindowError(ValueError):
    """``--window`` names no window the replay can compute; the message is the one line the user sees."""


def with_window(kpi: "KpiSettings", window: str) -> "KpiSettings":
    """``kpi`` with ``window`` added to its windows when it is not one of them (``all`` always is).

    Why not only the configured windows: a replay is an offline question ("what was the 30-minute service
    level?"); any rolling window the bucket size allows (at least 15 buckets, see ``kpi.bucket_seconds``)
    is as exact as the configured ones, so the replay computes it instead of refusing it.
    Raises :class:`WindowError` naming the window and why it cannot be computed."""
    from pydantic import ValidationError

    from cxpulse.settings import KpiSettings

    if window == "all" or window in kpi.windows:
        return kpi
    try:
        return KpiSettings(**{**kpi.model_dump(), "windows": (*kpi.windows, window)})
    except ValidationError as exc:
        reason = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
        choices = ", ".join(("all", *kpi.windows))
        raise WindowError(f"--window {window!r}: {reason} (configured: {choices})") from None


def replay_file(
    path: Path, settings_path: Path | None = None, progress: bool = True, now_us: int | None = None,
    window: str = "all", spill: bool = True, jobs: int = 1,
) -> tuple[dict[str, Any], Any, float]:
    """Replay ``path``; returns (document with the ``all`` window, the pipeline's health, seconds in the core).

    ``now_us`` evaluates the windows at another instant than the stream time (e.g. a live API's
    ``generated_at``, to compare a live worker with the replay of the same file). ``window`` is computed
    too when the settings do not list it (:func:`with_window`). ``spill``: settled contacts and customers go
    to a temporary store on disk, removed before this returns (``cxpulse/spill.py``: memory then does not grow
    with the days replayed); False keeps them in memory. ``jobs`` above 1 splits the file over that many
    processes (``cxpulse/parallel_replay.py``)."""
    from cxpulse.core.engine import KpiEngine
    from cxpulse.gc_policy import paused, tune_for_long_runs
    from cxpulse.settings import load_settings
    from cxpulse.spill import SpillStore

    settings = load_settings(settings_path)
    kpi = with_window(settings.kpi, window)
    tune_for_long_runs()
    if jobs > 1:
        with paused():
            return _replay_jobs(path, kpi, jobs, progress, now_us, spill)
    with paused(), SpillStore() if spill else nullcontext() as store:  # type: ignore[attr-defined]
        engine = KpiEngine(kpi, until_us=now_us, keep_raw=False, spill=store.map if store is not None else None)
        started = time.perf_counter()
        _feed(engine, path, progress)
        engine.finish()
        elapsed = time.perf_counter() - started
        document = engine.snapshot(now_us, include_all=True)
        if store is not None:  # the engine no longer reads what went to disk; what it holds in memory stays
            engine.contacts.settled = {}
            engine.customers.packed = {}
    return document, engine.health, elapsed


def _replay_jobs(path: Path, kpi: "KpiSettings", jobs: int, progress: bool, now_us: int | None,
                 spill: bool) -> tuple[dict[str, Any], Any, float]:
    """:func:`replay_file` over ``jobs`` processes, with the same progress bar (bytes read by all of them)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from cxpulse.parallel_replay import replay_parallel

    size = path.stat().st_size * jobs  # every process reads the whole file
    with Progress(
        TextColumn(f"[bold]replay[/] ({jobs} processes)"), BarColumn(), TimeRemainingColumn(),
        disable=not progress, transient=False, console=None,
    ) as bar:
        task = bar.add_task("replay", total=size)
        outcome = replay_parallel(path, kpi, jobs, until_us=now_us, spill=spill,
                                  on_progress=(lambda done: bar.update(task, completed=done)) if progress else None)
        bar.update(task, completed=size)
    return outcome.document, outcome.health, outcome.elapsed


def _feed(engine: Any, path: Path, progress: bool) -> None:
    """Every line of ``path`` into ``engine``, with a progress bar on the terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from cxpulse.event_file import open_events

    size = path.stat().st_size
    with open_events(path) as handle, Progress(
        TextColumn("[bold]replay[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("bytes"), TimeRemainingColumn(),
        disable=not progress, transient=False, console=None,
    ) as bar:
        task = bar.add_task("replay", total=size)
        done = 0
        for line in handle:
            done += len(line)
            stripped = line.strip()
            if stripped:
                engine.process(stripped)
            if done & 0xFFFF < len(line):  # update the bar about every 64 KiB
                bar.update(task, completed=done)
        bar.update(task, completed=size)


def _jobs(text: str) -> int:
    """``--jobs``: a positive number, or ``auto`` (the CPUs this process may use)."""
    if text == "auto":
        from cxpulse.parallel_replay import default_jobs

        return default_jobs()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise typer.BadParameter(f"--jobs {text!r}: a number of processes from 1, or auto")
    return int(text)


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "-"
    if pct:
        return f"{100 * value:.1f}%"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def print_table(document: dict[str, Any], window: str) -> None:
    """One row per queue and a total row, for the chosen window."""
    from rich.console import Console
    from rich.table import Table

    if window not in document["totals"]["windows"]:  # "all" spans the accepted events: a file with none has none
        Console().print(f"KPIs, window {window!r}: no valid contact event in the file, nothing to count")
        return

    table = Table(title=f"KPIs, window {window!r} (generated at {document['generated_at']})")
    columns = [
        ("queue", "queue"), ("channel", "channel"), ("offered", "offered"), ("answered", "answered"),
        ("abandoned", "abandoned"), ("SL", "service_level"), ("breaches", "sla_breaches"), ("ASA s", "asa_seconds"),
        ("aband.", "abandon_rate"), ("AHT s", "aht_seconds"), ("FCR", "fcr"), ("repeats", "repeat_contacts"),
        ("NPS", "nps"), ("CSAT", "csat"), ("waiting", "waiting"),
    ]
    for title, _ in columns:
        table.add_column(title, justify="left" if title in ("queue", "channel") else "right")
    rows = [(q["queue"], q["channel"], q["windows"][window], q["live"]) for q in document["queues"]]
    rows.append(("TOTAL", "", document["totals"]["windows"][window], document["totals"].get("live", {})))
    for queue, channel, w, live in rows:
        cells = []
        for _, key in columns:
            if key == "queue":
                cells.append(queue)
            elif key == "channel":
                cells.append(channel)
            elif key == "waiting":
                cells.append(str(live.get("waiting", "")))
            else:
                cells.append(_fmt(w.get(key), pct=key in ("service_level", "abandon_rate", "fcr")))
        table.add_row(*cells)
    Console().print(table)


def register(app: typer.Typer) -> None:
    @app.command("replay")
    def replay(
        file: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSON Lines file of contract events"),
        json_out: bool = typer.Option(False, "--json", help="print the KPI document as JSON"),
        window: str = typer.Option(
            "all", "--window", help="window shown in the table: all, a configured one, or any rolling window such as 30m"
        ),
        config: Optional[Path] = typer.Option(None, "--config", help="settings YAML (default $CXPULSE_CONFIG)"),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
        spill: bool = typer.Option(
            True, "--spill/--no-spill",
            help="settled contacts and customers in a temporary RocksDB (memory flat over the days), or in memory",
        ),
        now: Optional[str] = typer.Option(None, "--now", help="evaluate at this RFC 3339 instant instead of stream time"),
        jobs: str = typer.Option(
            "1", "--jobs", "-j",
            help="processes to split the file over, by contact as the live engine's partitions (a number, or auto: "
                 "one per CPU)",
        ),
    ) -> None:
        """Compute every KPI over an event file, "now" being the stream time."""
        import orjson

        from cxpulse.settings import ConfigError

        now_us = None
        if now is not None:
            from cxpulse.models.events import parse_rfc3339, to_us

            try:
                now_us = to_us(parse_rfc3339(now))
            except Exception as exc:
                raise typer.BadParameter(f"--now {now!r}: {exc}") from None
        jobs_n = _jobs(jobs)
        try:
            document, health, elapsed = replay_file(
                file, config, progress=progress and not json_out, now_us=now_us, window=window, spill=spill,
                jobs=jobs_n,
            )
        except ConfigError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        except WindowError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except RuntimeError as exc:  # a process of --jobs failed: its traceback, for a bug report
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        invalid = sum(health.invalid.values())
        events = health.processed + health.duplicates + sum(c for k, c in health.invalid.items() if k != "lifecycle")
        summary = (
            f"{events} events in {elapsed:.2f} s ({events / elapsed if elapsed else 0:,.0f} events/s in the core); "
            f"{health.duplicates} duplicates; {invalid} invalid"
        )
        if json_out:
            sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
        else:
            print_table(document, window)
        typer.echo(summary, err=True)
        # the most frequent first, ties by reason: the same lines whatever the order the reasons were met in
        # (``--jobs`` merges the counts of several processes)
        for reason, count in sorted(health.reasons.items(), key=lambda item: (-item[1], item[0]))[:10]:
            typer.echo(f"  invalid x{count}: {reason}", err=True)
