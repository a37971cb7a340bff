"""``cxpulse schema``: write the JSON Schema of each topic, generated from the event models."""

from __future__ import annotations

from pathlib import Path

import typer

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "models" / "schemas"
DOCUMENT_SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "kpi-document.schema.json"


def render_schemas() -> dict[str, str]:
    """File name -> JSON text, stable (sorted keys, trailing newline) so a diff shows real changes only."""
    import json

    from cxpulse.models.events import json_schemas

    return {
        f"{topic}.schema.json": json.dumps(schema, indent=2, sort_keys=True) + "\n"
        for topic, schema in json_schemas().items()
    }


def render_document_schema() -> str:
    """JSON Schema of the KPI document (docs/kpi-document.schema.json), from cxpulse.models.kpis."""
    import json

    from cxpulse.models.kpis import KpiDocument

    return json.dumps(KpiDocument.model_json_schema(), indent=2, sort_keys=True) + "\n"


def register(app: typer.Typer) -> None:
    @app.command("schema")
    def schema(
        out: Path = typer.Option(DEFAULT_DIR, "--out", help="folder to write <topic>.schema.json into"),
    ) -> None:
        """Write the JSON Schema of each topic (contact-events, survey-responses)."""
        out.mkdir(parents=True, exist_ok=True)
        for name, text in render_schemas().items():
            (out / name).write_text(text, encoding="utf-8")
            typer.echo(f"wrote {out / name}")
        if DOCUMENT_SCHEMA.parent.is_dir():  # in a source checkout: the document's schema in docs/
            DOCUMENT_SCHEMA.write_text(render_document_schema(), encoding="utf-8")
            typer.echo(f"wrote {DOCUMENT_SCHEMA}")
