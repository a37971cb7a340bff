"""``cxpulse worker``: run the live engine (Faust worker with the HTTP API)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("worker")
    def worker(
        config: Optional[Path] = typer.Option(None, "--config", help="settings YAML (default $CXPULSE_CONFIG)"),
        loglevel: str = typer.Option("info", "--loglevel"),
    ) -> None:
        """Consume contact-events and survey-responses, keep every KPI live, serve /api/v1/kpis."""
        from cxpulse.settings import ConfigError, load_settings

        try:
            settings = load_settings(config)
        except ConfigError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None

        from cxpulse.gc_policy import tune_for_long_runs
        from cxpulse.heap import fix_mmap_threshold
        from cxpulse.kafka_io import KafkaUnavailable
        from cxpulse.streams.partition_check import PartitionMismatch
        from cxpulse.streams.runner import run_worker

        tune_for_long_runs()
        fix_mmap_threshold()  # large buffers in mappings of their own (cxpulse/heap.py)
        try:
            run_worker(settings, loglevel)
        except (KafkaUnavailable, PartitionMismatch) as exc:  # before Faust starts: nothing to clean up
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
