"""Rules of ``cxpulse/models`` that no other unit test pinned, each as a hand-written case (issue 16).

Why this file: a mutation run over ``cxpulse/models`` (``bench/mutants.py --only cxpulse/models/...``) found
rules of the contract (``shared/spec/events.md``) and of the KPI document (``shared/spec/kpis.md``) that the
unit tests let change unnoticed, mostly in what contract v2 added: the ``agent.state`` model
(``models/agent_events.py``: the 1..64 and 1..128 bounds of ``reason``, ``team`` and ``agent_name``, its
strictness, a missing ``type``) and the ``agents`` section of the KPI document (``models/agent_kpis.py``: zero
counts and seconds are valid, a count written as text or a float is not). Each test names the mutant it
kills; every expected verdict and figure is read off the spec, not off what the code prints.

The file's name matches the mutation tool's ``tests/unit/test_kpi_*.py`` glob, so every run selects it.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from cxpulse.models import wire
from cxpulse.models.agent_events import parse_agent_event
from cxpulse.models.agent_kpis import AgentsSection
from cxpulse.models.events import InvalidEvent, SurveyFollowedUp, parse_any_event, parse_survey_response, topic_of

# -- agent.state (events.md, topic agent-events) ------------------------------------------------------------------------
AWAY: dict[str, Any] = {"event_id": "e-1", "type": "agent.state", "ts": "2026-11-23T08:00:00Z", "agent_id": "ag-7",
                        "state": "away", "reason": "lunch", "queues": ["sales"], "team": "Team A",
                        "agent_name": "Alice"}


def refusal(event: dict[str, Any]) -> tuple[str, str]:
    """The (kind, reason) of an agent event the contract refuses."""
    with pytest.raises(InvalidEvent, match=r".") as caught:
        parse_agent_event(event)
    return caught.value.kind, caught.value.reason


@pytest.mark.parametrize(("field", "limit"), [("reason", 64), ("team", 64), ("agent_name", 128)])
def test_agent_names_are_bounded_inclusively(field: str, limit: int) -> None:
    """events.md: ``reason`` and ``team`` are strings 1..64, ``agent_name`` 1..128 (inclusive). So a name of
    exactly the limit is kept as given, one character more is refused as out_of_range, and the empty string
    is refused too (a name is never empty; null is how an event says "none").

    Kills: ``models/agent_events.py::<stmt>`` ``min_length=1 -> 0`` and ``max_length 64 -> 63`` / ``128 -> 127``
    of AwayReason (7ba14eb8), TeamName (b4abf053) and AgentName (568498db)."""
    at_limit = parse_agent_event({**AWAY, field: "n" * limit})
    assert getattr(at_limit, field) == "n" * limit
    assert refusal({**AWAY, field: "n" * (limit + 1)}) == (
        "out_of_range", f"{field}: String should have at most {limit} characters")
    assert refusal({**AWAY, field: ""}) == ("out_of_range", f"{field}: String should have at least 1 character")


def test_an_agent_event_without_type_is_told_missing() -> None:
    """events.md lists ``type`` as a field of every event: an agent event without one misses a required
    field (kind missing_field, as for a contact event), while one of another type is an unknown type.

    Kills: ``models/agent_events.py::parse_agent_event`` ``"type" not in obj`` -> ``in`` (e2ddc231#1), which
    reports the missing type as the unknown type None."""
    assert refusal({k: v for k, v in AWAY.items() if k != "type"}) == ("missing_field", "type: field required")
    assert refusal({**AWAY, "type": None}) == ("unknown_type", "type: unknown event type None on the agent topic")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"agent_id": b"ag-7"}, "agent_id: Input should be a valid string"),
        ({"queues": ("sales",)}, "queues: Input should be a valid list"),
    ],
)
def test_the_agent_model_is_strict_for_python_callers(change: dict[str, Any], reason: str) -> None:
    """``parse_agent_event`` also takes a Python dict (the sources build events as dicts). Strict, like the
    contact models: ``bytes`` are not a string and a tuple is not a list, whatever lax pydantic would
    coerce; what passes is exactly what JSON could carry.

    Kills: ``models/agent_events.py::AgentState.<stmt>`` ``strict=True -> False`` (762668d6#0), under which
    both are coerced and accepted."""
    assert refusal({**AWAY, **change}) == ("wrong_type", reason)


def test_an_agent_event_is_frozen() -> None:
    """Events are facts: a parsed ``agent.state`` cannot be changed afterwards (the engine keeps references to
    them; a later assignment would rewrite an agent's history).

    Kills: ``models/agent_events.py::AgentState.<stmt>`` ``frozen=True -> False`` (762668d6#1)."""
    event = parse_agent_event(AWAY)
    with pytest.raises(ValidationError, match="Instance is frozen"):
        event.state = "available"  # type: ignore[misc]
    assert event.state == "away"


# -- the survey topic (events.md, topic survey-responses; survey.followed_up is contract v2) ----------------------------
FOLLOW_UP: dict[str, Any] = {"event_id": "f-1", "type": "survey.followed_up", "ts": "2026-11-23T08:00:00Z",
                             "contact_id": "c-1", "customer_id": "u-1", "survey_event_id": "s-1"}


def test_a_survey_topic_event_without_type_is_told_missing() -> None:
    """On the survey topic as on the others, an event without ``type`` misses a required field; one whose
    type belongs to the contact topic is an unknown type *on this topic*.

    Kills: ``models/events.py::parse_survey_response`` ``"type" not in obj`` -> ``in`` (6af4f695#3)."""
    with pytest.raises(InvalidEvent, match="^type: field required$") as caught:
        parse_survey_response({k: v for k, v in FOLLOW_UP.items() if k != "type"})
    assert caught.value.kind == "missing_field"
    with pytest.raises(InvalidEvent, match="^type: unknown event type 'contact.queued' on the survey topic$") as caught:
        parse_survey_response({**FOLLOW_UP, "type": "contact.queued"})
    assert caught.value.kind == "unknown_type"


def test_a_follow_up_in_a_mixed_file_is_a_survey_topic_event() -> None:
    """A JSON Lines file mixes both topics (``parse_any_event``): a ``survey.followed_up`` is read as the
    follow-up it is (``agent_id`` left out: null) and belongs on ``survey-responses``, never on contact-events.

    Kills: ``models/events.py::parse_any_event`` ``in SURVEY_EVENT_TYPES`` -> ``not in`` (cea248a7#0) and its
    early return removed (cea248a7#1), which send it to the contact parser."""
    event = parse_any_event(FOLLOW_UP)
    assert isinstance(event, SurveyFollowedUp)
    assert (event.survey_event_id, event.agent_id, topic_of(event)) == ("s-1", None, "survey-responses")


# -- the msgspec decoder (models/wire.py) judges text as it judges bytes -----------------------------------------------
ESCAPED_NEWLINE = ('{"event_id":"e","type":"contact.queued","ts":"2026-11-23T06:00:02Z","contact_id":"c",'
                   '"customer_id":"u","channel":"voice","queue":"care\\nteam"}')
RAW_DEL = ESCAPED_NEWLINE.replace("\\n", "\x7f")


@pytest.mark.parametrize(
    "raw", [ESCAPED_NEWLINE, ESCAPED_NEWLINE.encode(), RAW_DEL, RAW_DEL.encode()],
    ids=["escape-str", "escape-bytes", "del-str", "del-bytes"],
)
def test_a_control_character_in_a_name_is_refused_from_text_and_bytes(raw: str | bytes) -> None:
    """events.md "Plausibility": a queue name holds no control character (U+0000-U+001F, U+007F). In JSON such
    a character can only arrive escaped (``\\n`` here, decoded to U+000A) or, for DEL, raw; so the fast road
    checks the names exactly when the message holds a backslash or a DEL. ``decode_contact_event`` takes
    ``str`` as well as ``bytes``: all four messages are refused alike, kind control_character, worded as the
    pydantic path words it.

    Kills: ``models/wire.py::_may_hide_control`` ``"\\\\" in raw`` -> ``not in`` for text (c6f65271#8), under
    which a ``str`` with a backslash skips the check and the newline reaches the wallboard; also the DEL
    checks (#5, #6, #9), which test_wire's generator kills too."""
    assert "\n" not in raw if isinstance(raw, str) else b"\n" not in raw  # the JSON escape, not a raw newline
    with pytest.raises(InvalidEvent, match=r"^queue: contains a control character \(U\+0000-U\+001F or U\+007F\)$") as caught:
        wire.decode_contact_event(raw)
    assert caught.value.kind == "control_character"


# -- the agents section of the KPI document (kpis.md "Agents (v2)", "Staffing (v2)") ----------------------------------
def idle_section() -> dict[str, Any]:
    """A centre with one queue and one team whose single agent is logged out, worked out from kpis.md: no
    agent logged in, so every live count is 0; no second in any logged-in state, so every window's seconds are
    0 and occupancy is 0 / 0: null; nobody offered, so the offered rate is 0 per hour, AHT and traffic are
    unknown (null), agents_required and the gap are null, agents_staffed is 0."""
    live = {"logged_in": 0, "available": 0, "on_contact": 0, "wrap_up": 0, "away": 0, "away_by_reason": {}}
    window = {"start": "2026-11-23T08:00:00.000Z", "end": "2026-11-23T08:15:00.000Z", "available_seconds": 0.0,
              "on_contact_seconds": 0.0, "wrap_up_seconds": 0.0, "away_seconds": 0.0, "occupancy": None}
    staffing = {"offered_rate_per_hour": 0.0, "aht_seconds": None, "traffic_erlangs": None,
                "sl_threshold_seconds": 20.0, "sl_target": 0.8, "agents_required": None, "agents_staffed": 0,
                "gap": None}
    return {"live": live, "windows": {"15m": window},
            "queues": [{"queue": "sales", "live": copy.deepcopy(live), "staffing": staffing}],
            "teams": [{"team": None, "live": copy.deepcopy(live), "windows": {"15m": copy.deepcopy(window)}}]}


def test_an_idle_agents_section_is_valid() -> None:
    """Zero is a count and zero seconds is a duration (kpis.md: counts and seconds are >= 0): the idle centre
    of :func:`idle_section` validates, with its zeros kept.

    Kills: ``models/agent_kpis.py::<stmt>`` ``Count ge=0 -> 1`` (cfc8c608#0) and ``Seconds ge=0 -> 1``
    (ba3a03c1#0), which refuse the zeros."""
    section = AgentsSection.model_validate(idle_section())
    assert (section.live.logged_in, section.queues[0].staffing.agents_staffed) == (0, 0)
    assert (section.windows["15m"].available_seconds, section.queues[0].staffing.offered_rate_per_hour) == (0.0, 0.0)


@pytest.mark.parametrize("value", ["0", 0.0, False])
def test_the_agents_section_is_strict(value: object) -> None:
    """As the rest of the document (test_kpi_document.test_the_document_models_are_strict): a count written as
    ``"0"``, ``0.0`` or ``false`` is refused, not coerced, and so is a number of seconds written as text.

    Kills: ``models/agent_kpis.py::_Doc.<stmt>`` ``strict=True -> False`` (1ea5e0b7#0)."""
    broken = idle_section()
    broken["queues"][0]["staffing"]["agents_staffed"] = value
    with pytest.raises(ValidationError, match="agents_staffed") as caught:
        AgentsSection.model_validate(broken)
    assert [(e["type"], e["loc"]) for e in caught.value.errors()] == [
        ("int_type", ("queues", 0, "staffing", "agents_staffed"))]
    broken = idle_section()
    broken["teams"][0]["windows"]["15m"]["away_seconds"] = "0"
    with pytest.raises(ValidationError, match="away_seconds") as caught:
        AgentsSection.model_validate(broken)
    assert [(e["type"], e["loc"]) for e in caught.value.errors()] == [
        ("float_type", ("teams", 0, "windows", "15m", "away_seconds"))]
