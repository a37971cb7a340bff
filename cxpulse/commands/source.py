"""``cxpulse source KIND FILE``: convert what a contact-centre platform writes into contract events.

Kinds: ``asterisk-queue-log`` (Asterisk / FreePBX / Issabel / Wazo ``queue_log``; ``--follow`` tails it like
``tail -F`` and remembers its position) and ``amazon-connect-ctr`` (contact trace records, a file or ``-``
for standard input). Events go to Kafka (batched, acknowledged), or with ``--out FILE`` to JSON Lines that
``cxpulse replay`` reads. One command with a KIND argument rather than a typer sub-group, so ``--help`` keeps
the order of :data:`cxpulse.cli.COMMAND_ORDER`.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from cxpulse.commands import settings_or_exit, setup_logging

if TYPE_CHECKING:
    from cxpulse.settings import Settings
    from cxpulse.sources.outputs import Output
    from cxpulse.sources.records import Tally

KINDS = ("asterisk-queue-log", "amazon-connect-ctr")


def _fail(message: str) -> "typer.Exit":
    typer.echo(message, err=True)
    return typer.Exit(2)


async def _output(settings: "Settings", out: Path | None, bootstrap: str | None, create_topics: bool,
                  append: bool) -> "Output":
    from cxpulse.sources.outputs import FileOutput, KafkaOutput

    if out is not None:
        return FileOutput(out, append=append)
    return await KafkaOutput.start(settings.kafka, bootstrap=bootstrap, create_topics=create_topics)


async def _queue_log(settings: "Settings", file: Path, *, follow: bool, out: Path | None, position: Path | None,
                     bootstrap: str | None, create_topics: bool) -> "Tally":
    from cxpulse.sources.asterisk_queue_log import QueueLogConverter
    from cxpulse.sources.position import PositionStore, default_position_path
    from cxpulse.sources.pump import pump_lines
    from cxpulse.sources.tail import LineReader

    store = None
    start = state = None
    if follow:
        store = PositionStore(position or default_position_path(settings.sources.state_dir, "asterisk-queue-log", file))
        saved = store.load()
        if saved is not None:
            start, state = saved
    reader = LineReader(file, start, follow=follow)
    output = await _output(settings, out, bootstrap, create_topics, append=start is not None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await pump_lines(reader, QueueLogConverter(state), output, source=f"file:{file}", store=store,
                                poll_seconds=settings.sources.poll_seconds, stop=stop)
    finally:
        reader.close()
        await output.close()


async def _ctr(settings: "Settings", file: str, *, out: Path | None, bootstrap: str | None,
               create_topics: bool) -> "Tally":
    from cxpulse.sources.amazon_connect import JsonError, convert_record, iter_json_values
    from cxpulse.sources.records import Rejected, Rejection

    output = await _output(settings, out, bootstrap, create_topics, append=False)
    tally = output.tally
    handle = sys.stdin if file == "-" else open(file, encoding="utf-8", errors="replace")  # noqa: SIM115
    source = "stdin" if file == "-" else f"file:{file}"
    try:
        chunks = iter(lambda: handle.read(65536), "")
        for index, (text, value) in enumerate(iter_json_values(chunks)):
            tally.read += 1
            try:
                if isinstance(value, JsonError):
                    raise Rejection("not_json", value.reason)
                events, ignored = convert_record(value)
            except Rejection as exc:
                await output.reject(Rejected(exc.topic, text.encode("utf-8"), exc.reason, exc.kind, source, index))
                continue
            if ignored is not None:
                tally.ignored[ignored] += 1
            for produced in events:
                await output.put(produced)
            if index % 1000 == 999:
                await output.commit()  # one record at a time for a stream (stdin): acknowledged as it goes
        await output.commit()
    finally:
        if handle is not sys.stdin:
            handle.close()
        await output.close()
    return tally


def register(app: typer.Typer) -> None:
    @app.command("source")
    def source(
        kind: str = typer.Argument(..., metavar="KIND", help="asterisk-queue-log or amazon-connect-ctr"),
        file: str = typer.Argument(..., metavar="FILE", help="the queue_log / the CTR file ('-': standard input, CTR only)"),
        follow: bool = typer.Option(False, "--follow", "-f", help="queue_log: keep reading like tail -F, remember the position"),
        out: Optional[Path] = typer.Option(None, "--out", dir_okay=False,
                                           help="write JSON Lines here (+ FILE.agents, FILE.rejected) instead of Kafka"),
        position: Optional[Path] = typer.Option(None, "--position", dir_okay=False,
                                                help="--follow: the position file (default under sources.state_dir)"),
        kafka: Optional[str] = typer.Option(None, "--kafka", help="bootstrap servers (default from settings)"),
        create_topics: bool = typer.Option(True, "--create-topics/--no-create-topics", help="create missing topics"),
        config: Optional[Path] = typer.Option(None, "--config", help="settings YAML (default $CXPULSE_CONFIG)"),
        loglevel: str = typer.Option("warning", "--loglevel", help="info: a line per acknowledged batch (counts only)"),
    ) -> None:
        """Convert a platform's records to contract events: Asterisk queue_log or Amazon Connect CTRs.

        Lines or records that map to no valid event go to the dead-letter topic (or FILE.rejected) with the
        reason; nothing is dropped uncounted. Event ids are deterministic: converting twice sends duplicates
        that the pipeline drops."""
        from aiokafka.errors import KafkaError

        from cxpulse.kafka_io import KafkaUnavailable
        from cxpulse.sources.position import PositionError

        if kind not in KINDS:
            raise _fail(f"source: unknown kind {kind!r} (one of {', '.join(KINDS)})")
        if kind == "amazon-connect-ctr" and (follow or position):
            raise _fail("source amazon-connect-ctr: --follow and --position are for asterisk-queue-log "
                        "(pipe a stream of records into FILE '-')")
        if file == "-" and kind == "asterisk-queue-log":
            raise _fail("source asterisk-queue-log: FILE must be a file (its position is a byte offset)")
        if file != "-" and not follow and not Path(file).is_file():
            raise _fail(f"source: {file}: no such file")
        settings = settings_or_exit(config)
        setup_logging(loglevel)
        try:
            if kind == "asterisk-queue-log":
                tally = asyncio.run(_queue_log(settings, Path(file), follow=follow, out=out, position=position,
                                               bootstrap=kafka, create_topics=create_topics))
            else:
                tally = asyncio.run(_ctr(settings, file, out=out, bootstrap=kafka, create_topics=create_topics))
        except KafkaUnavailable as exc:
            raise _fail(f"error: {exc}") from None
        except KafkaError as exc:  # a delivery failed: nothing after the last acknowledged batch counts as read
            raise _fail(f"error: Kafka did not acknowledge a batch ({type(exc).__name__}: {exc}); the saved "
                        "position stays after the last acknowledged one") from None
        except PositionError as exc:
            raise _fail(f"error: {exc}") from None
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            raise _fail(f"error: {exc.filename}: {exc.strerror}") from None
        for line in tally.lines():
            typer.echo(line)
