"""The wallboard's share of the agents section (contract v2): each queue entry carries its queue's agent
counts and staffing; the agents panel comes only with ``wallboard.show_agents``, only for agents serving a
queue the board shows, and with nothing but name, state, away reason and time in state."""

from __future__ import annotations

from typing import Any

from cxpulse.wallboard.server import AGENT_PANEL_FIELDS, trim_document


def _live(available: int, on_contact: int, wrap_up: int, away: int) -> dict[str, Any]:
    return {"logged_in": available + on_contact + wrap_up + away, "available": available, "on_contact": on_contact,
            "wrap_up": wrap_up, "away": away, "away_by_reason": {"break": away} if away else {}}


def _staffing(required: int | None, staffed: int) -> dict[str, Any]:
    return {"offered_rate_per_hour": 120.0, "aht_seconds": 180.0, "traffic_erlangs": 6.0, "sl_threshold_seconds": 20.0,
            "sl_target": 0.8, "agents_required": required, "agents_staffed": staffed,
            "gap": None if required is None else required - staffed}


def _listed(name: str | None, state: str, queues: list[str], reason: str | None = None) -> dict[str, Any]:
    return {"agent_name": name, "state": state, "reason": reason, "team": "red", "queues": queues,
            "since": "2026-05-04T09:00:00.000Z", "seconds_in_state": 75.0}


DOC: dict[str, Any] = {
    "generated_at": "2026-05-04T09:20:00.000Z",
    "queues": [{"queue": "billing", "channel": "voice", "live": {"waiting": 1, "longest_wait_seconds": 3.0},
                "windows": {"15m": {"offered": 12}}},
               {"queue": "sales", "channel": "chat", "live": {"waiting": 0, "longest_wait_seconds": 0.0},
                "windows": {"15m": {"offered": 3}}}],
    "totals": {"live": {"waiting": 1, "longest_wait_seconds": 3.0}, "windows": {"15m": {"offered": 15}}},
    "agents": {
        "live": _live(3, 1, 0, 1), "windows": {}, "teams": [],
        "queues": [{"queue": "billing", "live": _live(2, 1, 0, 1), "staffing": _staffing(5, 3)},
                   {"queue": "sales", "live": _live(1, 0, 0, 0), "staffing": _staffing(None, 1)}],
        "listed": [_listed("Dana", "available", ["billing"]), _listed(None, "away", ["billing"], "break"),
                   _listed("Sam", "available", ["sales"])],
    },
}


def test_each_queue_entry_carries_its_agents_and_staffing() -> None:
    out = trim_document(DOC, None, "15m")
    billing, sales = out["queues"]
    assert billing["agents"] == {"live": _live(2, 1, 0, 1), "staffing": _staffing(5, 3)}
    assert sales["agents"]["staffing"]["agents_required"] is None
    assert "agents_panel" not in out  # off by default


def test_no_agents_section_no_agent_fields() -> None:
    doc = {key: value for key, value in DOC.items() if key != "agents"}
    out = trim_document(doc, None, "15m", show_agents=True)
    assert "agents_panel" not in out and all("agents" not in q for q in out["queues"])


def test_the_panel_lists_only_name_state_reason_and_time_when_enabled() -> None:
    out = trim_document(DOC, None, "15m", show_agents=True)
    assert out["agents_panel"] == [
        {"agent_name": "Dana", "state": "available", "reason": None, "seconds_in_state": 75.0},
        {"agent_name": None, "state": "away", "reason": "break", "seconds_in_state": 75.0},
        {"agent_name": "Sam", "state": "available", "reason": None, "seconds_in_state": 75.0},
    ]
    assert set(AGENT_PANEL_FIELDS) == {"agent_name", "state", "reason", "seconds_in_state"}


def test_a_board_of_some_queues_lists_only_their_agents() -> None:
    out = trim_document(DOC, ["sales"], "15m", show_agents=True)
    assert [q["queue"] for q in out["queues"]] == ["sales"]
    assert [a["agent_name"] for a in out["agents_panel"]] == ["Sam"]
