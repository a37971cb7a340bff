"""``cxpulse schema``: the JSON Schema of each topic and of the KPI document, generated from the models.

Why stdout by default: an installed cxpulse lives in a site-packages folder that is not the user's to write
(and a write there would silently change what the next ``pip install`` verifies). The schemas go to stdout,
or into the folder ``--out`` names. The copies checked into the repository (``cxpulse/models/schemas/`` and
``docs/kpi-document.schema.json``) are refreshed by a maintainer with ``--out`` like any other folder; the
unit tests fail while they are stale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "models" / "schemas"
DOCUMENT_SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "kpi-document.schema.json"
DOCUMENT = "kpi-document"


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


def all_schemas() -> dict[str, str]:
    """Schema name (a topic, or ``kpi-document``) -> JSON text."""
    named = {name.removesuffix(".schema.json"): text for name, text in render_schemas().items()}
    named[DOCUMENT] = render_document_schema()
    return named


def register(app: typer.Typer) -> None:
    @app.command("schema")
    def schema(
        name: Optional[str] = typer.Argument(
            None, metavar="[NAME]", help="contact-events, survey-responses or kpi-document (default: all)"
        ),
        out: Optional[Path] = typer.Option(
            None, "--out", file_okay=False, help="write <NAME>.schema.json into this folder instead of printing"
        ),
    ) -> None:
        """Print the JSON Schema of a topic or of the KPI document (--out DIR: write files there)."""
        import json

        schemas = all_schemas()
        if name is not None:
            if name not in schemas:
                typer.echo(f"error: no schema named {name!r} (one of {', '.join(sorted(schemas))})", err=True)
                raise typer.Exit(2)
            schemas = {name: schemas[name]}
        if out is None:
            if len(schemas) == 1:
                typer.echo(next(iter(schemas.values())), nl=False)
            else:  # one JSON object, so the output still parses: {"contact-events": {...}, ...}
                merged = {key: json.loads(text) for key, text in schemas.items()}
                typer.echo(json.dumps(merged, indent=2, sort_keys=True))
            return
        try:
            out.mkdir(parents=True, exist_ok=True)
            for key, text in schemas.items():
                (out / f"{key}.schema.json").write_text(text, encoding="utf-8")
                typer.echo(f"wrote {out / f'{key}.schema.json'}", err=True)
        except OSError as exc:
            typer.echo(f"error: cannot write into {str(out)!r}: {exc.strerror or exc}", err=True)
            raise typer.Exit(2) from None
