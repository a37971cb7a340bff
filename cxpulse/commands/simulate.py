"""``cxpulse simulate``: a simulated contact centre writing contract events to Kafka or a JSON Lines file."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Iterable

    from cxpulse.settings import KafkaSettings
    from cxpulse.simulator.writers import RunSummary, WireRecord


def _parse_start(text: str) -> int:
    """``now`` or an RFC 3339 time with offset -> epoch milliseconds."""
    from cxpulse.simulator.clock import now_ms, to_ms

    if text.strip().lower() == "now":
        return now_ms()
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise typer.BadParameter(f"not an RFC 3339 time: {text!r} (e.g. 2026-11-22T08:00:00Z)") from None
    if moment.tzinfo is None:
        raise typer.BadParameter(f"the start time needs an offset (Z or +hh:mm): {text!r}")
    return to_ms(moment)


def _parse_duration(text: str | None) -> int | None:
    from cxpulse.settings import parse_duration

    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if seconds <= 0:
        raise typer.BadParameter(f"the duration must be positive: {text!r}")
    return seconds


def _print_summary(summary: "RunSummary", title: str, scale: float | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=True, header_style="bold")
    table.add_column("topic")
    table.add_column("events", justify="right")
    for topic, count in sorted(summary.by_topic.items()):
        table.add_row(topic, f"{count:,}")
    if summary.invalid:
        table.add_row("[dim]of which invalid (on purpose)[/dim]", f"[dim]{summary.invalid:,}[/dim]")
    table.add_row("[bold]total[/bold]", f"[bold]{summary.total:,}[/bold]")
    console = Console()
    console.print(title, highlight=False, soft_wrap=True)
    console.print(table)
    extra = f", centre scaled x{scale:,.1f}" if scale is not None else ""
    stopped = " (stopped early)" if summary.interrupted else ""
    steady = summary.second_half_events_per_second
    later = f" ({steady:,.0f} events/s over the second half)" if steady is not None else ""
    console.print(
        f"{summary.simulated_seconds:,.0f} s simulated in {summary.wall_seconds:,.2f} s wall{stopped}: "
        f"[bold]{summary.events_per_second:,.0f} events/s[/bold]{later}{extra}",
        soft_wrap=True,
    )


async def _produce(
    chunks: "AsyncIterable[list[WireRecord]]",
    *,
    kafka: "KafkaSettings",
    bootstrap: str,
    topics: dict[str, str],
    create_topics: bool,
    speed: float,
    start_ms: int,
    anchor_ms: int | None = None,
) -> "RunSummary":
    from cxpulse.kafka_io import BatchSender, producer_for
    from cxpulse.simulator.writers import Pacer, write_kafka

    producer = await producer_for(kafka, bootstrap, topics.values(), create_topics=create_topics, role="simulator")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        sender = BatchSender(producer)
        await sender.prepare(topics.values())
        return await write_kafka(chunks, sender, topics, Pacer(speed, start_ms, anchor_ms), stop=stop, progress=_progress)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await producer.stop()


def _progress(summary: "RunSummary") -> None:
    import sys

    sys.stderr.write(f"\r{summary.total:,} events, {summary.events_per_second:,.0f}/s   ")
    sys.stderr.flush()


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate(
        centre: Optional[Path] = typer.Option(None, "--centre", help="centre YAML file (default: the shipped bank centre)"),
        speed: Optional[float] = typer.Option(
            None, "--speed", help="simulated seconds per real second: 1 = real time (default), 60 = a minute per second, 0 = flat out"
        ),
        fast: bool = typer.Option(False, "--fast", help="as fast as possible (same as --speed 0)"),
        duration: Optional[str] = typer.Option(
            None, "--duration", help="simulated time to run, e.g. 60s, 15m, 1h, 1d (default: until Ctrl-C; 1h with --fast)"
        ),
        start: str = typer.Option("now", "--start", help="simulated start time, RFC 3339 with offset, or 'now'"),
        history: Optional[str] = typer.Option(
            None, "--history", help="start this far in the past (e.g. 1h), write that history at once, then go on "
            "at --speed from now: a live demo whose windows are already full"
        ),
        seed: Optional[int] = typer.Option(None, "--seed", help="same seed and --start -> byte-identical output"),
        rate: Optional[float] = typer.Option(
            None, "--rate", help="load mode: scale the centre so about this many events/s are written (default speed 60)"
        ),
        out: Optional[Path] = typer.Option(None, "--out", help="write JSON Lines to this file instead of Kafka"),
        invalid_rate: float = typer.Option(0.0, "--invalid-rate", min=0.0, max=1.0, help="fraction of bad events mixed in"),
        demo: bool = typer.Option(
            False, "--demo", help="a centre under pressure at any hour: the busy hours of the day profile, staff "
            "drifting around the Erlang C need, an in-app queue, follow-ups of detractors, agent events (make run "
            "and the compose demo use it)"
        ),
        agents: Optional[bool] = typer.Option(
            None, "--agents/--no-agents", help="also write the agents' agent.state events, breaks and lunch included "
            "(default: on with --demo, else off)"
        ),
        kafka: Optional[str] = typer.Option(None, "--kafka", help="bootstrap servers (default from settings)"),
        contact_topic: Optional[str] = typer.Option(None, "--contact-topic", help="default from settings"),
        survey_topic: Optional[str] = typer.Option(None, "--survey-topic", help="default from settings"),
        agent_topic: Optional[str] = typer.Option(None, "--agent-topic", help="default from settings (kafka.topics.agent_events)"),
        create_topics: bool = typer.Option(True, "--create-topics/--no-create-topics", help="create missing topics"),
        processes: Optional[int] = typer.Option(
            None, "--processes", min=1, max=64, help="load mode: simulate the centre as this many sites, one process each (default: cores)"
        ),
        config: Optional[Path] = typer.Option(
            None, "--config", help="settings YAML for Kafka and topic names (default $CXPULSE_CONFIG)"
        ),
    ) -> None:
        """Simulate a contact centre and write its contract events (Kafka by default, or --out FILE)."""
        from cxpulse.kafka_io import KafkaUnavailable
        from cxpulse.settings import ConfigError, load_settings
        from cxpulse.simulator.centre import CentreError, load_centre
        from cxpulse.simulator.engine import Simulation
        from cxpulse.simulator.events import AGENT_TOPIC, CONTACT_TOPIC, SURVEY_TOPIC
        from cxpulse.simulator.feed import ProcessFeed
        from cxpulse.simulator.load import scale_for_rate, sharded_simulations, slice_ms_for
        from cxpulse.simulator.writers import local_chunks, wire_chunks

        try:
            the_centre = load_centre(centre)
        except CentreError as exc:
            raise typer.BadParameter(str(exc), param_hint="--centre") from None
        if fast:
            if speed not in (None, 0):
                raise typer.BadParameter("--fast and --speed contradict each other", param_hint="--fast")
            speed = 0.0
        if speed is None:
            speed = 60.0 if rate is not None else 1.0
        if speed < 0:
            raise typer.BadParameter("must be >= 0", param_hint="--speed")
        if rate is not None and speed == 0:
            raise typer.BadParameter("load mode needs a pace: drop --fast / --speed 0", param_hint="--rate")
        if rate is not None and rate <= 0:
            raise typer.BadParameter("must be > 0", param_hint="--rate")
        if rate is not None and demo:
            raise typer.BadParameter("not with --rate (load mode is flat)", param_hint="--demo")
        if agents is None:
            agents = demo
        if agents and rate is not None:
            raise typer.BadParameter("not with --rate (the sites of load mode share agent ids)", param_hint="--agents")
        seconds = _parse_duration(duration)
        if seconds is None and speed == 0:
            seconds = 3600
        start_ms = _parse_start(start)
        anchor_ms: int | None = None
        if history is not None:
            back = _parse_duration(history)
            if back is None or start != "now":
                raise typer.BadParameter("give a duration such as 1h, and no --start", param_hint="--history")
            anchor_ms = start_ms
            start_ms -= back * 1000
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
            typer.echo(f"seed {seed} (pass --seed {seed} --start ... to repeat this run)", err=True)
        elif start.strip().lower() == "now":
            typer.echo("note: --start defaults to now; pass --start too for byte-identical output", err=True)

        scale: float | None = None
        if rate is not None:
            scale = scale_for_rate(the_centre, rate, speed, seed)
            shards = processes or (os.cpu_count() or 1)
            sims = sharded_simulations(
                the_centre, scale=scale, shards=shards, seed=seed, start_ms=start_ms, invalid_rate=invalid_rate
            )
        else:
            sims = [Simulation(the_centre, start_ms=start_ms, seed=seed, invalid_rate=invalid_rate, demo=demo,
                               agents=agents)]
        until = start_ms + seconds * 1000 if seconds is not None else None
        span = f"{seconds:,} s" if seconds is not None else "until stopped"
        sites = f", {len(sims)} sites" if len(sims) > 1 else ""
        mode = ", demo (busy hours, drifting staff)" if demo else ""
        mode += ", with agent events" if agents else ""
        title = f"{the_centre.name}: {span} from {_iso(start_ms)}, seed {seed}{sites}{mode}"

        settings = None
        if out is None or config is not None:  # a --config given is checked even when the file output needs none
            try:
                settings = load_settings(config)
            except ConfigError as exc:
                typer.echo(str(exc), err=True)
                raise typer.Exit(2) from None

        # Simulate and encode in child processes when that buys a core: always for several sites, and for
        # Kafka (whose producer then keeps this process's core) when the machine has more than one.
        feed = None
        if len(sims) > 1 or (out is None and (os.cpu_count() or 1) > 1):
            sources = [lambda sim=sim: sim.events(until) for sim in sims]
            slice_ms = slice_ms_for(rate or 1.0, speed or 1.0, len(sims)) if len(sims) > 1 else None
            feed = ProcessFeed(sources, slice_ms=slice_ms, start_ms=start_ms).start()
        try:
            if out is not None:
                summary = _write_file(feed.sync_chunks() if feed else wire_chunks(sims[0].events(until)), out, speed, start_ms, anchor_ms)
                destination = str(out)
            else:
                assert settings is not None
                names = settings.kafka.topics
                topics = {
                    CONTACT_TOPIC: contact_topic or names.contact_events,
                    SURVEY_TOPIC: survey_topic or names.survey_responses,
                }
                if agents:  # only then: a run without agents neither needs nor creates the topic
                    topics[AGENT_TOPIC] = agent_topic or names.agent_events
                bootstrap = kafka or settings.kafka.bootstrap_servers
                chunks = feed.chunks() if feed is not None else local_chunks(sims[0].events(until))
                summary = asyncio.run(
                    _produce(
                        chunks,
                        kafka=settings.kafka,
                        bootstrap=bootstrap,
                        topics=topics,
                        create_topics=create_topics,
                        speed=speed,
                        start_ms=start_ms,
                        anchor_ms=anchor_ms,
                    )
                )
                destination = f"Kafka {bootstrap}"
        except KafkaUnavailable as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        finally:
            if feed is not None:
                feed.close()
        typer.echo("", err=True)
        _print_summary(summary, f"{title} -> {destination}", scale)


def _write_file(
    chunks: "Iterable[list[WireRecord]]", out: Path, speed: float, start_ms: int, anchor_ms: int | None = None
) -> "RunSummary":
    """The JSON Lines writer, stopping cleanly on SIGTERM as on Ctrl-C."""
    from cxpulse.simulator.writers import Pacer, write_jsonl

    stopped = {"flag": False}
    previous = signal.signal(signal.SIGTERM, lambda *_: stopped.__setitem__("flag", True))
    try:
        return write_jsonl(chunks, out, Pacer(speed, start_ms, anchor_ms), should_stop=lambda: stopped["flag"], progress=_progress)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _iso(ms: int) -> str:
    from cxpulse.models.events import format_ts

    return format_ts(ms * 1000)
