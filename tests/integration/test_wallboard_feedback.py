"""Issue 12 in a real browser: the wallboard's feedback tile (contract v2), ``cxpulse wallboard`` (its own
process) on the real Redis, driven by Debian's headless Chromium. The documents are written into Redis the way
the worker's sink writes them (SET + PUBLISH), with the v2 live figures ``awaiting_follow_up`` and
``oldest_awaiting_seconds`` in each entry.

The tile shows the detractor feedback awaiting a follow-up on the board's queues and the oldest one's age; each
queue is judged against its own ``feedback_response_target`` (warn from half of it, OVERDUE from it), with a mark
and a word beside the colour. A board of some queues counts only those; a version-1 document has no tile.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, AsyncIterator

import pytest

from browser_harness import browser  # noqa: F401 - the fixture
from browser_harness import Wallboard, fed_redis, open_page, wait_for, wallboard_env

pytestmark = pytest.mark.integration

# voice: feedback_response_target 1 h; queue vip: 10 min; email (not set): the default 48 h
KPI = {"channels": {"voice": {"feedback_response_target": "1h"}},
       "queues": {"vip": {"feedback_response_target": "10m"}}}


def entry(queue: str, channel: str, awaiting: int | None, oldest: float) -> dict[str, Any]:
    live: dict[str, Any] = {"waiting": 0, "longest_wait_seconds": 0.0}
    if awaiting is not None:  # a version-1 document has neither field
        live.update(awaiting_follow_up=awaiting, oldest_awaiting_seconds=oldest)
    return {"queue": queue, "channel": channel, "live": live,
            "windows": {"15m": {"offered": 10, "service_level": 0.9, "asa_seconds": 5.0, "abandon_rate": 0.0}}}


def document(entries: list[dict[str, Any]]) -> dict[str, Any]:
    now = datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return {"generated_at": now, "queues": entries,
            "totals": {"live": {"waiting": 0, "longest_wait_seconds": 0.0}, "windows": {"15m": {"offered": 30}}}}


# billing: 3 awaiting, the oldest 20 min (target 1 h: fine); vip: 1 for 6 min (target 10 min: past half);
# email-care: none awaiting
CENTRE = [entry("billing", "voice", 3, 1200.0), entry("vip", "voice", 1, 360.0), entry("email-care", "email", 0, 0.0)]


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> AsyncIterator[dict[str, Any]]:
    """``cxpulse wallboard`` under a Redis prefix of its own; a task writes the current document every 0.5 s."""
    tmp = tmp_path_factory.mktemp("feedback-board")
    prefix = f"t-wbf-{uuid.uuid4().hex[:10]}"
    config = {"redis": {"url": redis_url, "key_prefix": prefix}, "kpi": KPI,
              "wallboard": {"boards": {"billing-only": {"queues": ["billing"], "title": "Billing"}}}}
    wallboard = Wallboard(wallboard_env(tmp / "cxpulse.yaml", config), tmp / "wallboard.log")
    state: dict[str, Any] = {"entries": list(CENTRE)}
    async with fed_redis(redis_url, prefix, lambda: document(state["entries"])):
        try:
            await wallboard.start()
            yield {"wallboard": wallboard, "state": state}
        finally:
            wallboard.stop()


TILE = """() => {
  const t = document.querySelector('[data-testid=feedback]');
  if (!t) return null;
  const q = id => t.querySelector(`[data-testid="${id}"]`);
  return {
    state: t.dataset.state, flag: q('feedback-flag').textContent,
    awaiting: q('feedback-awaiting').textContent, awaiting_state: q('feedback-awaiting').dataset.state,
    awaiting_mark: q('feedback-awaiting-mark').textContent,
    oldest: q('feedback-oldest').textContent, oldest_state: q('feedback-oldest').dataset.state,
    caption: q('feedback-oldest-caption').textContent,
    rows: [...t.querySelectorAll('[data-testid=feedback-queue]')].map(r => [r.dataset.queue, r.dataset.state, r.textContent]),
  };
}"""


async def wait_tile(page: Any, want: dict[str, Any] | None, timeout: float = 10.0) -> dict[str, Any] | None:
    """Poll the tile until every field of ``want`` matches (None: until there is no tile)."""
    def matches(got: dict[str, Any] | None) -> bool:
        return (want is None and got is None) or (want is not None and got is not None
                                                  and all(got.get(k) == v for k, v in want.items()))

    got: dict[str, Any] | None = await wait_for(page, TILE, matches, lambda got: f"feedback tile: got {got}, want {want}",
                                                timeout)
    return got


async def test_feedback_tile_awaiting_and_oldest_coloured_against_each_queues_target(
        stack: dict[str, Any], browser: Any) -> None:  # noqa: F811
    page = await open_page(browser, stack["wallboard"].url + "/")
    # vip's one feedback is 6 min old against 10 min: warn (the tile's worst); billing's 20 min against 1 h is
    # fine, and it is the oldest; email-care awaits nothing, so it is not listed
    await wait_tile(page, {
        "state": "warn", "flag": "WARNING", "awaiting": "4", "awaiting_state": "warn", "awaiting_mark": "\u25b2",
        "oldest": "20:00", "oldest_state": "good", "caption": "oldest \u00b7 target 1h",
        "rows": [["vip", "warn", "vip (voice)1 \u00b7 06:00 / 10m\u25b2"],
                 ["billing", "good", "billing (voice)3 \u00b7 20:00 / 1h"]],
    })

    # vip's feedback passes its 10 min target: OVERDUE, by word and mark as well as by colour
    stack["state"]["entries"] = [CENTRE[0], entry("vip", "voice", 1, 660.0), CENTRE[2]]
    await wait_tile(page, {
        "state": "critical", "flag": "OVERDUE", "awaiting_state": "critical", "awaiting_mark": "\u25a0",
        "rows": [["vip", "critical", "vip (voice)1 \u00b7 11:00 / 10m\u25a0 OVERDUE"],
                 ["billing", "good", "billing (voice)3 \u00b7 20:00 / 1h"]],
    })

    # everyone followed up: 0 awaiting, no oldest, nothing listed, no flag
    stack["state"]["entries"] = [entry("billing", "voice", 0, 0.0), entry("vip", "voice", 0, 0.0), CENTRE[2]]
    await wait_tile(page, {"state": "none", "flag": "", "awaiting": "0", "oldest": "\u2013", "rows": []})

    # a version-1 document (no feedback figures): no tile
    stack["state"]["entries"] = [entry("billing", "voice", None, 0.0), entry("vip", "voice", None, 0.0)]
    await wait_tile(page, None)
    stack["state"]["entries"] = list(CENTRE)
    await page.close()


async def test_a_board_of_some_queues_counts_only_their_feedback(stack: dict[str, Any], browser: Any) -> None:  # noqa: F811
    page = await open_page(browser, stack["wallboard"].url + "/?board=billing-only")
    got = await wait_tile(page, {"awaiting": "3", "oldest": "20:00", "state": "good", "flag": ""})
    assert got is not None and [row[0] for row in got["rows"]] == ["billing"]
    await page.close()
