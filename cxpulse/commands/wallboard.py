"""``cxpulse wallboard``: serve the live wallboard page, fed from the Redis read model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("wallboard")
    def wallboard(
        config: Optional[Path] = typer.Option(None, "--config", help="settings YAML (default $CXPULSE_CONFIG)"),
        host: Optional[str] = typer.Option(None, "--host", help="address to bind (default wallboard.host)"),
        port: Optional[int] = typer.Option(None, "--port", help="port (default wallboard.port, 8088)"),
        loglevel: str = typer.Option("info", "--loglevel"),
    ) -> None:
        """Serve the wallboard (page, Server-Sent Events, /api/config, /healthz) from the Redis read model.

        Works with any number of workers (they merge their counts in Redis) and can run on its own host.
        Open http://HOST:PORT/?queues=billing,tech-support&window=15m (default: all queues, 15m)."""
        from cxpulse.settings import ConfigError, load_settings

        try:
            settings = load_settings(config)
        except ConfigError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

        from cxpulse.wallboard.server import run

        run(settings, host, port)
