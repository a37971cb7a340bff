"""``cxpulse ingest``: serve ``POST /api/v1/events`` (JSON or NDJSON contract events, bearer tokens) into Kafka."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cxpulse.commands import settings_or_exit, setup_logging


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest(
        config: Optional[Path] = typer.Option(None, "--config", help="settings YAML (default $CXPULSE_CONFIG)"),
        host: Optional[str] = typer.Option(None, "--host", help="address to bind (default ingest.host)"),
        port: Optional[int] = typer.Option(None, "--port", help="port (default ingest.port, 8090)"),
        kafka: Optional[str] = typer.Option(None, "--kafka", help="bootstrap servers (default from settings)"),
        loglevel: str = typer.Option("info", "--loglevel"),
    ) -> None:
        """Receive contract events over HTTP (webhooks): validated, written to Kafka, acknowledged before 200.

        POST /api/v1/events with a JSON event, a JSON array, or NDJSON (Content-Type: application/x-ndjson);
        the answer has a result per event. Tokens: ingest.tokens or ingest.token_file (Authorization: Bearer);
        without one it binds to loopback only."""
        from cxpulse.ingest.server import RefusedToStart, run

        settings = settings_or_exit(config)
        setup_logging(loglevel)
        try:
            run(settings, host, port, kafka)
        except RefusedToStart as exc:
            typer.echo(f"ingest: {exc}", err=True)
            raise typer.Exit(2) from None
        except OSError as exc:
            typer.echo(f"ingest: cannot listen: {exc.strerror or exc}", err=True)
            raise typer.Exit(2) from None
