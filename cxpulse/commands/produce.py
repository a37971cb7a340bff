"""``cxpulse produce FILE``: send a JSON Lines event file to Kafka, each line to its contract topic.

Why lines that do not parse are still sent (to the contact topic, unchanged): the file may be a recording
of what a real platform wrote, bad records included, and the pipeline's dead-letter handling should see
exactly those bytes.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import orjson
import typer

if TYPE_CHECKING:
    from cxpulse.settings import KafkaSettings

from cxpulse.simulator.events import CONTACT_TOPIC, SURVEY_TOPIC


def route_line(line: bytes) -> tuple[str, bytes | None]:
    """Logical topic and Kafka key of one line: surveys by ``type``, everything else to contact events.

    The key is the ``contact_id`` when the line is a JSON object with a non-empty string there, so one
    contact's events stay in order on one partition; otherwise there is no key.
    """
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return CONTACT_TOPIC, None
    if not isinstance(obj, dict):
        return CONTACT_TOPIC, None
    topic = SURVEY_TOPIC if obj.get("type") in ("survey.response", "survey.followed_up") else CONTACT_TOPIC
    contact_id = obj.get("contact_id")
    key = contact_id.encode() if isinstance(contact_id, str) and contact_id else None
    return topic, key


async def _send_file(
    path: Path, *, kafka: "KafkaSettings", bootstrap: str, topics: dict[str, str], create_topics: bool,
) -> tuple[dict[str, int], int, int, float]:
    """Returns (events by topic name, lines without a key, blank lines skipped, wall seconds)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from cxpulse.kafka_io import BatchSender, producer_for

    producer = await producer_for(kafka, bootstrap, topics.values(), create_topics=create_topics, role="produce")
    counts = {name: 0 for name in topics.values()}
    keyless = blank = 0
    started = time.monotonic()
    try:
        sender = BatchSender(producer)
        await sender.prepare(topics.values())
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
        with Progress(*columns, transient=False) as progress, path.open("rb") as file:
            task = progress.add_task(f"producing {path.name}", total=path.stat().st_size)
            done_bytes = 0
            for number, raw in enumerate(file, 1):
                done_bytes += len(raw)
                line = raw.rstrip(b"\r\n")
                if not line.strip():
                    blank += 1
                    continue
                logical, key = route_line(line)
                name = topics[logical]
                await sender.send(name, key, line)
                counts[name] += 1
                keyless += key is None
                if number % 8192 == 0:
                    progress.update(task, completed=done_bytes)
                    await asyncio.sleep(0)
            await sender.flush()
            progress.update(task, completed=done_bytes)
    finally:
        await producer.stop()
    return counts, keyless, blank, time.monotonic() - started


def register(app: typer.Typer) -> None:
    @app.command("produce")
    def produce(
        file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="JSON Lines event file"),
        kafka: Optional[str] = typer.Option(None, "--kafka", help="bootstrap servers (default from settings)"),
        contact_topic: Optional[str] = typer.Option(None, "--contact-topic", help="default from settings"),
        survey_topic: Optional[str] = typer.Option(None, "--survey-topic", help="default from settings"),
        create_topics: bool = typer.Option(True, "--create-topics/--no-create-topics", help="create missing topics"),
        config: Optional[Path] = typer.Option(
            None, "--config", help="settings YAML for Kafka and topic names (default $CXPULSE_CONFIG)"
        ),
    ) -> None:
        """Send a JSON Lines file to Kafka: survey.response and survey.followed_up lines to the survey topic, the rest to contact events."""
        from cxpulse.kafka_io import KafkaUnavailable
        from cxpulse.settings import ConfigError, load_settings

        try:
            settings = load_settings(config)
        except ConfigError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        names = settings.kafka.topics
        topics = {
            CONTACT_TOPIC: contact_topic or names.contact_events,
            SURVEY_TOPIC: survey_topic or names.survey_responses,
        }
        bootstrap = kafka or settings.kafka.bootstrap_servers
        try:
            counts, keyless, blank, wall = asyncio.run(
                _send_file(
                    file,
                    kafka=settings.kafka,
                    bootstrap=bootstrap,
                    topics=topics,
                    create_topics=create_topics,
                )
            )
        except KafkaUnavailable as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        total = sum(counts.values())
        for name, count in counts.items():
            typer.echo(f"{name:<28} {count:>12,}")
        typer.echo(f"{'total':<28} {total:>12,}")
        if keyless:
            typer.echo(f"{keyless:,} lines had no usable contact_id (sent without a key)")
        if blank:
            typer.echo(f"{blank:,} blank lines skipped")
        rate = total / wall if wall > 0 else 0.0
        typer.echo(f"{total:,} events in {wall:,.2f} s: {rate:,.0f} events/s -> Kafka {bootstrap}")
