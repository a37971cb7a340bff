"""The KPI document the core produces matches its models (cxpulse.models.kpis) and the checked-in schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from cxpulse.commands.schema import DOCUMENT_SCHEMA, render_document_schema
from cxpulse.core.engine import KpiEngine
from cxpulse.models.events import format_ts
from cxpulse.models.kpis import KpiDocument
from cxpulse.settings import KpiSettings

T0 = 1_795_338_000_000_000


def test_checked_in_document_schema_is_current() -> None:
    assert DOCUMENT_SCHEMA.read_text(encoding="utf-8") == render_document_schema(), "run `cxpulse schema kpi-document > docs/kpi-document.schema.json`"


def test_replay_document_validates_with_every_field_and_no_other() -> None:
    engine = KpiEngine(KpiSettings())
    base = {"contact_id": "c1", "customer_id": "u1", "queue": "billing", "channel": "voice"}
    engine.process({"event_id": "1", "type": "contact.queued", "ts": format_ts(T0), "reason": None, **base})
    engine.process({"event_id": "2", "type": "contact.answered", "ts": format_ts(T0 + 5_000_000), "agent_id": "a", **base})
    engine.process({"event_id": "3", "type": "survey.response", "ts": format_ts(T0 + 9_000_000),
                    "contact_id": "c2", "customer_id": "u2", "nps": 3})
    document = json.loads(json.dumps(engine.snapshot(include_all=True)))
    parsed = KpiDocument.model_validate(document)  # strict, extra="forbid": no missing and no unknown field
    assert [(q.queue, q.channel) for q in parsed.queues] == [("billing", "voice"), ("unknown", "unknown")]
    assert set(parsed.totals.windows) == {"15m", "1h", "24h", "today", "all"}
    unknown = parsed.queues[1].windows["all"]
    assert (unknown.detractors, unknown.nps, unknown.service_level) == (1, -100.0, None)


def test_schema_lists_every_window_field() -> None:
    schema = json.loads(Path(DOCUMENT_SCHEMA).read_text(encoding="utf-8"))
    fields = set(schema["$defs"]["Window"]["properties"])
    from cxpulse.core.report import WINDOW_FIELDS

    assert fields == {"start", "end", *WINDOW_FIELDS}


def test_the_document_models_are_strict() -> None:
    """A count written as ``"3"``, ``3.0`` or ``true``, or a ratio as ``"0.5"``, is refused, not coerced: the
    models check what a producer (ours or a second implementation) wrote, and lax parsing would hide a count
    that became a string or a float on the way."""
    engine = KpiEngine(KpiSettings())
    base = {"contact_id": "c1", "customer_id": "u1", "queue": "billing", "channel": "voice"}
    engine.process({"event_id": "1", "type": "contact.queued", "ts": format_ts(T0), **base})
    engine.process({"event_id": "2", "type": "contact.answered", "ts": format_ts(T0 + 5_000_000), "agent_id": "a", **base})
    document = json.loads(json.dumps(engine.snapshot()))
    KpiDocument.model_validate(document)
    for value in ("3", 3.0, True):
        broken = json.loads(json.dumps(document))
        broken["totals"]["live"]["waiting"] = value
        with pytest.raises(ValidationError) as caught:
            KpiDocument.model_validate(broken)
        assert [(e["type"], e["loc"], e["input"]) for e in caught.value.errors()] == [
            ("int_type", ("totals", "live", "waiting"), value)
        ]
    broken = json.loads(json.dumps(document))
    broken["totals"]["windows"]["15m"]["service_level"] = "0.5"
    with pytest.raises(ValidationError) as caught:
        KpiDocument.model_validate(broken)
    assert [(e["type"], e["loc"]) for e in caught.value.errors()] == [
        ("float_type", ("totals", "windows", "15m", "service_level"))
    ]
