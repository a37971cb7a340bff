"""The checked-in JSON Schemas are the ones the event models generate (``cxpulse schema`` rewrites them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cxpulse.commands.schema import DEFAULT_DIR, render_schemas

RENDERED = render_schemas()


def test_one_schema_per_topic() -> None:
    assert sorted(RENDERED) == ["contact-events.schema.json", "survey-responses.schema.json"]
    assert sorted(p.name for p in Path(DEFAULT_DIR).glob("*.schema.json")) == sorted(RENDERED)


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_checked_in_schema_is_current(name: str) -> None:
    checked_in = (Path(DEFAULT_DIR) / name).read_text(encoding="utf-8")
    assert checked_in == RENDERED[name], f"{name} is stale: run `cxpulse schema --out cxpulse/models/schemas {name.removesuffix('.schema.json')}` and commit the result"


def test_schemas_describe_the_contract() -> None:
    contact = json.loads(RENDERED["contact-events.schema.json"])
    types = {d["properties"]["type"]["const"] for d in contact["$defs"].values()}
    assert types == {"contact.queued", "contact.answered", "contact.abandoned", "contact.ended"}
    ended = contact["$defs"]["ContactEnded"]
    assert {"talk_seconds", "hold_seconds", "wrap_seconds", "resolved"} <= set(ended["required"])
    survey = json.loads(RENDERED["survey-responses.schema.json"])
    types = {d["properties"]["type"]["const"] for d in survey["$defs"].values()}
    assert types == {"survey.response", "survey.followed_up"}  # contract v2 adds the follow-up
    assert {"survey_event_id"} <= set(survey["$defs"]["SurveyFollowedUp"]["required"])
    channels = contact["$defs"]["ContactQueued"]["properties"]["channel"]["enum"]
    assert "app" in channels  # contract v2

