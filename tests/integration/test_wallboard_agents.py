"""Agents on the wallboard (issue 11) in a real browser: ``cxpulse wallboard`` processes on the real Redis,
headless Chromium. The read model is written here as the worker's Redis sink writes it (SET + PUBLISH of the
document with its ``agents`` section), like tests/integration/test_wallboard_board.py does.

1. each queue tile shows available / on contact / wrap / away and "staffed N / needed M" equal to the
   document the API serves (the Redis read model); a short queue says SHORT and is coloured, a queue with
   enough agents is neither; a queue without an Erlang C figure shows "needed -";
2. the agents panel appears only on a wallboard with ``wallboard.show_agents``: agents by state with their
   time in state, a name when the source gave one, else nothing that identifies the agent (no id, no team).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, AsyncIterator

import orjson
import pytest

from browser_harness import browser  # noqa: F401 - the fixture
from browser_harness import Wallboard, fed_redis, open_page, wait_for, wallboard_env

pytestmark = pytest.mark.integration

SECRET_ID = "agent-id-90210"
EN_DASH = "\u2013"


def _live(available: int, on_contact: int, wrap_up: int, away: int, reasons: dict[str, int]) -> dict[str, Any]:
    return {"logged_in": available + on_contact + wrap_up + away, "available": available, "on_contact": on_contact,
            "wrap_up": wrap_up, "away": away, "away_by_reason": reasons}


def _staffing(required: int | None, staffed: int) -> dict[str, Any]:
    return {"offered_rate_per_hour": 240.0, "aht_seconds": 180.0, "traffic_erlangs": 12.0,
            "sl_threshold_seconds": 20.0, "sl_target": 0.8, "agents_required": required, "agents_staffed": staffed,
            "gap": None if required is None else required - staffed}


def _entry(queue: str, channel: str) -> dict[str, Any]:
    return {"queue": queue, "channel": channel, "live": {"waiting": 1, "longest_wait_seconds": 4.0},
            "windows": {"15m": {"offered": 40, "service_level": 0.85, "asa_seconds": 5.0, "abandon_rate": 0.01,
                                "nps": 30.0, "csat": 80.0, "fcr": 0.7}}}


def document() -> dict[str, Any]:
    now = datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    listed = [
        {"agent_name": "Dana Example", "state": "available", "reason": None, "team": "red", "queues": ["billing"],
         "since": now, "seconds_in_state": 125.0},
        {"agent_name": None, "state": "away", "reason": "lunch", "team": "red", "queues": ["billing"],
         "since": now, "seconds_in_state": 600.0},
        {"agent_name": None, "state": "on_contact", "reason": None, "team": "blue", "queues": ["sales"],
         "since": now, "seconds_in_state": 30.0},
    ]
    return {
        "generated_at": now,
        "queues": [_entry("billing", "voice"), _entry("sales", "voice"), _entry("email-care", "email")],
        "totals": {"live": {"waiting": 3, "longest_wait_seconds": 4.0}, "windows": {"15m": {"offered": 120}}},
        "agents": {
            "live": _live(4, 3, 1, 2, {"lunch": 1, "break": 1}), "windows": {}, "teams": [],
            "queues": [
                {"queue": "billing", "live": _live(2, 1, 1, 2, {"lunch": 1, "break": 1}), "staffing": _staffing(7, 4)},
                {"queue": "sales", "live": _live(2, 2, 0, 0, {}), "staffing": _staffing(3, 4)},
                {"queue": "email-care", "live": _live(0, 0, 0, 0, {}), "staffing": _staffing(None, 0)},
            ],
            "listed": listed,
        },
    }


@pytest.fixture(scope="module")
async def boards(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> AsyncIterator[dict[str, Any]]:
    """Two wallboards on one Redis prefix: ``plain`` (defaults: no agents panel) and ``listing``
    (wallboard.show_agents: true); a task writes the current document every 0.5 s, as the worker does."""
    tmp = tmp_path_factory.mktemp("board-agents")
    prefix = f"t-wba-{uuid.uuid4().hex[:10]}"
    started: dict[str, Wallboard] = {}
    async with fed_redis(redis_url, prefix, document) as (client, keys):
        try:
            for name, show in (("plain", False), ("listing", True)):
                config = {"redis": {"url": redis_url, "key_prefix": prefix}, "wallboard": {"show_agents": show},
                          "kpi": {"queues": {"email-care": {"sl_threshold_seconds": 14400}}}}
                started[name] = Wallboard(wallboard_env(tmp / f"{name}.yaml", config), tmp / f"{name}.log")
                await started[name].start()
            yield {"boards": started, "redis": client, "keys": keys}
        finally:
            for board in started.values():
                board.stop()


TEXTS = """() => Object.fromEntries([...document.querySelectorAll('[data-testid]')]
    .filter(e => /-agents-|-staffing$/.test(e.dataset.testid))
    .map(e => [e.dataset.testid, e.textContent]))"""


async def test_tiles_show_agent_counts_and_staffing_equal_to_the_document(boards: dict[str, Any], browser: Any) -> None:
    page = await open_page(browser, boards["boards"]["plain"].url + "/")
    served = orjson.loads(await boards["redis"].get(boards["keys"].kpis))  # what GET /api/v1/kpis serves
    expected: dict[str, str] = {}
    for item in served["agents"]["queues"]:
        channel = {"billing": "voice", "sales": "voice", "email-care": "email"}[item["queue"]]
        base = f"tile-{item['queue']}-{channel}"
        for state in ("available", "on_contact", "wrap_up", "away"):
            expected[f"{base}-agents-{state}"] = str(item["live"][state])
        required = item["staffing"]["agents_required"]
        staffed = item["staffing"]["agents_staffed"]
        short = required is not None and staffed < required
        expected[f"{base}-staffing"] = (f"staffed {staffed} / needed {EN_DASH if required is None else required}"
                                        + (" \u25a0 SHORT" if short else ""))
    got = await wait_for(page, TEXTS, lambda g: all(g.get(k) == v for k, v in expected.items()), "agent figures")
    assert got["tile-billing-voice-staffing"] == "staffed 4 / needed 7 \u25a0 SHORT"
    assert got["tile-sales-voice-staffing"] == "staffed 4 / needed 3"
    short = await page.evaluate("""() => [...document.querySelectorAll('.agents-staffing')]
        .map(e => [e.dataset.testid, e.dataset.short, getComputedStyle(e).color])""")
    colours = {testid: (flag, colour) for testid, flag, colour in short}
    assert colours["tile-billing-voice-staffing"][0] == "true" and colours["tile-sales-voice-staffing"][0] == "false"
    assert colours["tile-billing-voice-staffing"][1] != colours["tile-sales-voice-staffing"][1]  # coloured too
    # the panel is off by default: not shown, and no name reached the page
    assert await page.evaluate("() => document.getElementById('agents-panel').hidden") is True
    html = await page.content()
    assert "Dana" not in html and SECRET_ID not in html
    await page.close()


async def test_the_agents_panel_appears_only_when_enabled(boards: dict[str, Any], browser: Any) -> None:
    page = await open_page(browser, boards["boards"]["listing"].url + "/")
    await page.wait_for_function("() => !document.getElementById('agents-panel').hidden", timeout=10_000)
    rows = await wait_for(page, """() => [...document.querySelectorAll('[data-testid=agent]')]
        .map(li => [li.dataset.state, li.querySelector('.agent-name').textContent,
                    (li.querySelector('.agent-reason') || {}).textContent || null,
                    li.querySelector('.agent-time').textContent])""", lambda r: len(r) == 3, "three agents listed")
    by_state = {state: (name, reason, shown) for state, name, reason, shown in rows}
    assert by_state["available"][:2] == ("Dana Example", None)
    assert by_state["away"][:2] == (EN_DASH, "lunch")  # no name given: nothing that identifies the agent
    assert by_state["on_contact"][:2] == (EN_DASH, None)
    # time in state: the document's seconds plus the document's age (under a few seconds here)
    minutes, seconds = (int(x) for x in by_state["away"][2].split(":"))
    assert 600 <= minutes * 60 + seconds < 615, by_state["away"]
    groups = await page.evaluate("""() => [...document.querySelectorAll('.agents-group-title')].map(e => e.textContent)""")
    assert groups == ["Available (1)", "On contact (1)", "Wrap-up (0)", "Away (1)"]
    panel_text = await page.evaluate("() => document.getElementById('agents-panel').textContent")
    assert "red" not in panel_text and "blue" not in panel_text  # no team either
    await page.close()
