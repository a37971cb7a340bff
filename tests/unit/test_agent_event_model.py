"""The ``agent.state`` model (contract v2, topic agent-events): what it accepts and how it words a refusal."""

from __future__ import annotations

from typing import Any

import pytest

from cxpulse.models.agent_events import AGENT_STATES, agent_json_schema, parse_agent_event
from cxpulse.models.events import InvalidEvent

GOOD: dict[str, Any] = {"event_id": "e-1", "type": "agent.state", "ts": "2026-11-23T08:00:00.250+01:00",
                        "agent_id": "ag-7", "state": "away", "reason": "lunch", "queues": ["sales", "support"],
                        "team": "Team A", "agent_name": "Alice", "extra": "ignored"}


def test_a_full_event_and_a_minimal_one() -> None:
    event = parse_agent_event(GOOD)
    assert (event.state, event.reason, event.queues, event.ts_us) == ("away", "lunch", ["sales", "support"],
                                                                      1795417200250000)
    minimal = parse_agent_event(b'{"event_id":"e","type":"agent.state","ts":"2026-11-23T08:00:00Z",'
                                b'"agent_id":"a","state":"logged_out"}')
    assert (minimal.reason, minimal.queues, minimal.team, minimal.agent_name) == (None, [], None, None)
    assert set(agent_json_schema()["properties"]["state"]["enum"]) == set(AGENT_STATES)


@pytest.mark.parametrize(
    ("change", "kind", "reason"),
    [
        ({"state": "busy"}, "invalid_value",
         "state: Input should be 'logged_out', 'available', 'on_contact', 'wrap_up' or 'away'"),
        ({"state": "available"}, "invalid_value",
         "reason: reason is only allowed when state is 'away' (got state 'available')"),
        ({"ts": "2026-11-23T08:00:00"}, "timestamp_without_offset",
         "ts: timestamp has no UTC offset (add Z or +hh:mm): 2026-11-23T08:00:00"),
        ({"ts": "1969-12-31T23:59:59Z"}, "invalid_timestamp",
         "ts: timestamp outside 1970-01-01..9999-12-31 UTC: '1969-12-31T23:59:59Z'"),
        ({"agent_id": "a\x07b"}, "control_character", "agent_id: contains a control character (U+0000-U+001F or U+007F)"),
        ({"queues": ["x" * 65]}, "out_of_range", "queues.0: String should have at most 64 characters"),
        ({"reason": ""}, "out_of_range", "reason: String should have at least 1 character"),
        ({"agent_id": 7}, "wrong_type", "agent_id: Input should be a valid string"),
        ({"type": "agent.login"}, "unknown_type", "type: unknown event type 'agent.login' on the agent topic"),
    ],
)
def test_refusals_name_the_field(change: dict[str, Any], kind: str, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_agent_event({**GOOD, **change})
    assert (caught.value.kind, caught.value.reason) == (kind, reason)


def test_missing_agent_id_and_not_json() -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_agent_event({k: v for k, v in GOOD.items() if k != "agent_id"})
    assert (caught.value.kind, caught.value.reason) == ("missing_field", "agent_id: field required")
    with pytest.raises(InvalidEvent) as caught:
        parse_agent_event(b"[1]")
    assert (caught.value.kind, caught.value.reason) == ("not_json", "not a JSON object but list")
