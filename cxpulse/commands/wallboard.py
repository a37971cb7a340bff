"""``cxpulse wallboard``: serve the live wallboard page; ``cxpulse wallboard message``: its message line."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Optional

import typer

from cxpulse.commands import settings_or_exit, setup_logging


def register(app: typer.Typer) -> None:
    # one command with an optional action (not a sub-group): cli.COMMAND_ORDER keeps it second in --help,
    # which a typer sub-group would not be
    @app.command("wallboard")
    def wallboard(
        action: Optional[str] = typer.Argument(None, metavar="[message]", help="'message': set the message line"),
        text: Optional[str] = typer.Argument(None, help="the message (at most 280 characters)"),
        config: Optional[Path] = typer.Option(None, "--config", help="settings YAML (default $CXPULSE_CONFIG)"),
        host: Optional[str] = typer.Option(None, "--host", help="address to bind (default wallboard.host)"),
        port: Optional[int] = typer.Option(None, "--port", help="port (default wallboard.port, 8088)"),
        loglevel: str = typer.Option("info", "--loglevel"),
        queues: Optional[str] = typer.Option(None, "--queues", help="message: only boards showing these queues (a,b)"),
        until: Optional[str] = typer.Option(None, "--until", help="message: 14:00 (kpi.timezone), 30m or an ISO "
                                            "time; default wallboard.message_default_seconds"),
        remove: Optional[str] = typer.Option(None, "--remove", help="message: remove the message with this id"),
        clear: bool = typer.Option(False, "--clear", help="message: remove every message"),
        show: bool = typer.Option(False, "--list", help="message: list the live messages"),
    ) -> None:
        """Serve the wallboard (page, Server-Sent Events, /api/...) from the Redis read model, or, with
        ``message "TEXT" [--queues a,b] [--until 14:00]``, show a message on every open board within a second.

        Works with any number of workers (they merge their counts in Redis) and can run on its own host.
        Open http://HOST:PORT/?board=NAME&window=15m (default: every queue, 15m); ?rotate=30s switches
        between the boards of wallboard.boards. Without a wallboard.token it binds to loopback only."""
        settings = settings_or_exit(config)
        if action is None:
            setup_logging(loglevel)

            from cxpulse.wallboard.server import run

            run(settings, host, port)
            return
        if action != "message":
            typer.echo(f"wallboard: unknown action {action!r} (the only one is 'message')", err=True)
            raise typer.Exit(2)
        chosen = sum(1 for x in (text is not None, remove is not None, clear, show) if x)
        if chosen != 1:
            typer.echo("wallboard message: give one of TEXT, --remove ID, --clear, --list", err=True)
            raise typer.Exit(2)
        try:
            out = asyncio.run(_message(settings, text, queues, until, remove, clear))
        except Exception as exc:  # noqa: BLE001 - one line, no traceback (a MessageError or Redis being away)
            from cxpulse.wallboard.messages import MessageError

            why = str(exc) if isinstance(exc, MessageError) else f"Redis is unreachable ({type(exc).__name__})"
            typer.echo(f"wallboard message: {why}", err=True)
            raise typer.Exit(1) from None
        typer.echo(out)


async def _message(settings: Any, text: str | None, queues: str | None, until: str | None, remove: str | None,
                   clear: bool) -> str:
    from datetime import datetime, timezone

    from cxpulse.sinks.redis_sink import Keys, new_client
    from cxpulse.wallboard import messages as msg

    keys = Keys(settings.redis.key_prefix)
    client = new_client(settings.redis)
    now = datetime.now(timezone.utc)
    try:
        if text is not None:
            at = msg.parse_until(until, now, settings.kpi.timezone, settings.wallboard.message_default_seconds)
            names = [q for q in (queues or "").split(",") if q.strip()]
            added = await msg.add_message(client, keys, text, names, at, now)
            return f"message {added['id']} until {added['until']}" + (
                f" on {', '.join(added['queues'])}" if added["queues"] else " on every board")
        if remove is not None or clear:
            removed = await msg.remove_message(client, keys, remove)
            if remove is not None and not removed:
                raise msg.MessageError(f"no message {remove!r}")
            return f"removed {removed}"
        live = await msg.list_messages(client, keys, now)
        return "\n".join(f"{m['id']}  until {m['until']}  {','.join(m['queues']) or '*'}  {m['text']}"
                         for m in live) or "no message"
    finally:
        await client.aclose()
