"""Issue 15 in a real browser: ``cxpulse wallboard`` (its own process) on the real Redis, driven by Debian's
headless Chromium. The read model is written here as the worker's sink writes it (SET + PUBLISH of the
document; breaches through :class:`RedisSink`), so the page logic is tested without Kafka and quickly;
tests/integration/test_wallboard_browser.py checks the page against a real worker.

1. thresholds: each figure is coloured by its own queue's bands (an e-mail queue is not red at a 30 s
   wait, a voice queue is), with a mark beside the colour; a metric entering critical chimes (sound enabled
   with one click);
2. a breach published while the page's connection is cut (the server is down) is shown once it reconnects,
   once, and one published before the cut is not shown again;
3. a message set with ``cxpulse wallboard message`` appears within a second, and goes at its expiry;
4. ``?board=`` shows that board's queues, names and metrics; ``?rotate=`` switches boards in place; a
   40-queue board is compact, fits the screen and keeps its figures large;
5. a board with a token refuses a browser without it (a readable 401 page), takes it once (cookie) and
   shows no other queue.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from cxpulse.settings import Settings
from cxpulse.sinks.redis_sink import RedisSink
from cxpulse.wallboard import thresholds
from browser_harness import browser  # noqa: F401 - the fixture
from browser_harness import Wallboard, fed_redis, open_page, wait_for, wallboard_env
from worker_harness import CXPULSE

pytestmark = pytest.mark.integration

MANY = [f"q{n:02d}" for n in range(40)]
SHOTS = os.environ.get("CXPULSE_SCREENSHOTS")  # a directory: the docs' screenshots are saved there


def window(sl: float | None, asa: float = 5.0, abandon: float = 0.01) -> dict[str, Any]:
    return {"offered": 40, "service_level": sl, "asa_seconds": asa, "abandon_rate": abandon, "nps": 31.0,
            "csat": 84.0, "fcr": 0.72}


def entry(queue: str, channel: str, waiting: int, longest: float, sl: float | None, **kw: Any) -> dict[str, Any]:
    return {"queue": queue, "channel": channel, "live": {"waiting": waiting, "longest_wait_seconds": longest},
            "windows": {"15m": window(sl, **kw)}}


def document(entries: list[dict[str, Any]]) -> dict[str, Any]:
    now = datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return {"generated_at": now, "queues": entries,
            "totals": {"live": {"waiting": sum(e["live"]["waiting"] for e in entries), "longest_wait_seconds": 42.0},
                       "windows": {"15m": window(0.81)}}}


CENTRE = [entry("billing", "voice", 2, 12.0, 0.83), entry("sales", "voice", 0, 0.0, 0.91),
          entry("email-care", "email", 14, 30.0, 0.97, asa=900.0), entry("vip", "voice", 1, 4.0, 0.88)]


class _NoLive:
    def partial(self, worker_id: str) -> dict[str, Any]:
        raise AssertionError("not used")


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> AsyncIterator[dict[str, Any]]:
    """``cxpulse wallboard`` with boards and a token, under a Redis prefix of its own; a task that writes the
    current document every 0.5 s, as the worker does (so the page stays live)."""
    tmp = tmp_path_factory.mktemp("board")
    prefix = f"t-wbb-{uuid.uuid4().hex[:10]}"
    config = {
        "redis": {"url": redis_url, "key_prefix": prefix},
        "kpi": {"queues": {"email-care": {"sl_threshold_seconds": 14400}}},
        "wallboard": {"boards": {
            "ops": {"queues": ["sales", "billing"], "display_names": {"billing": "Billing (FR)"},
                    "metrics": ["service_level", "waiting", "longest_wait", "asa"], "title": "Ops"},
            "vip": {"queues": ["vip"], "token": "vip-t0ken", "title": "VIP desk"},
            "many": {"queues": MANY, "metrics": ["service_level", "waiting", "longest_wait"], "title": "All 40"},
        }},
    }
    env = wallboard_env(tmp / "cxpulse.yaml", config)
    wallboard = Wallboard(env, tmp / "wallboard.log")
    state: dict[str, Any] = {"entries": list(CENTRE)}
    async with fed_redis(redis_url, prefix, lambda: document(state["entries"])) as (client, keys):
        settings = Settings(**config)
        try:
            await wallboard.start()
            yield {"wallboard": wallboard, "redis": client, "keys": keys, "state": state, "env": env,
                   "sink": RedisSink(settings, _NoLive(), lambda: True, client=client, worker_id="w-test"),
                   "settings": settings}
        finally:
            wallboard.stop()


STATES = """() => Object.fromEntries([...document.querySelectorAll('.value[data-testid]')]
    .map(e => [e.dataset.testid, e.dataset.state]))"""


async def wait_states(page: Any, want: dict[str, str], timeout: float = 10.0) -> dict[str, str]:
    def differences(got: dict[str, str]) -> dict[str, tuple[str | None, str]]:
        return {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}

    got: dict[str, str] = await wait_for(page, STATES, lambda got: not differences(got), differences, timeout)
    return got


async def test_each_figure_is_coloured_by_its_queue_thresholds(stack: dict[str, Any], browser: Any) -> None:
    page = await open_page(browser, stack["wallboard"].url + "/")
    # the page's rule is the server's (same samples, both sides)
    bands = [{"direction": "below", "warn": 0.8, "critical": 0.7}, {"direction": "above", "warn": 10, "critical": 20},
             {"direction": "above", "warn": None, "critical": None}, None]
    samples = [None, 0, 0.6999, 0.7, 0.79, 0.7999999999, 0.8, 9.99, 10, 19.99, 20, 25]
    js = await page.evaluate("([xs, bs]) => bs.map(b => xs.map(x => window.cxpulseWallboard.format.state(x, b)))",
                             [samples, bands])
    assert js == [[thresholds.state(x, b) for x in samples] for b in bands]

    # billing (voice, T 20 s): 12 s longest wait is amber; email-care (T 4 h): 30 s and a 15 min ASA are fine
    await wait_states(page, {"tile-billing-voice-longest_wait": "warn", "tile-email-care-email-longest_wait": "good",
                                   "tile-email-care-email-asa": "good", "tile-billing-voice-service_level": "good",
                                   "tile-email-care-email-waiting": "none", "totals-service_level": "none"})
    assert await page.get_by_test_id("tile-billing-voice-longest_wait-mark").text_content() == "\u25b2"
    assert await page.get_by_test_id("tile-billing-voice-flag").text_content() == "WARNING"
    assert await page.get_by_test_id("tile-sales-voice-flag").text_content() == ""

    # one click enables sound; then billing's service level falls under 70%: critical, a chime; sales unchanged
    await page.get_by_test_id("sound-enable").click()
    await page.wait_for_function("() => window.cxpulseWallboard.sound.on()", timeout=5_000)
    if SHOTS:
        await page.screenshot(path=str(Path(SHOTS) / "wallboard-default.png"))
    stack["state"]["entries"] = [entry("billing", "voice", 2, 25.0, 0.65), *CENTRE[1:]]
    await wait_states(page, {"tile-billing-voice-service_level": "critical", "tile-billing-voice-longest_wait": "critical",
                             "tile-sales-voice-service_level": "good", "tile-email-care-email-longest_wait": "good"})
    assert await page.get_by_test_id("tile-billing-voice-flag").text_content() == "CRITICAL"
    assert await page.get_by_test_id("tile-billing-voice-service_level-mark").text_content() == "\u25a0"
    chimes = await page.evaluate("() => window.cxpulseWallboard.hooks.chimes")
    assert chimes == [{"why": "critical billing longest_wait,service_level", "played": True}], chimes
    # mute: the next one is recorded but not played
    await page.get_by_test_id("sound").click()
    stack["state"]["entries"] = [entry("billing", "voice", 2, 25.0, 0.65), entry("sales", "voice", 0, 0.0, 0.5),
                                 *CENTRE[2:]]
    await wait_states(page, {"tile-sales-voice-service_level": "critical"})
    chimes = await page.evaluate("() => window.cxpulseWallboard.hooks.chimes")
    assert chimes[1:] == [{"why": "critical sales service_level", "played": False}], chimes
    stack["state"]["entries"] = list(CENTRE)
    await page.close()


async def test_a_breach_published_while_the_connection_is_cut_is_shown_once(stack: dict[str, Any], browser: Any) -> None:
    sink: RedisSink = stack["sink"]

    async def breach(queue: str, second: int) -> None:
        sink.on_breach({"queue": queue, "channel": "voice", "contact_id": f"ct-secret-{second}", "visit_id": "ev-x",
                        "queued_ts": "2026-11-22T10:00:00Z", "threshold_seconds": 20.0,
                        "breached_at": f"2026-11-22T10:00:{second:02d}Z"})
        await sink.publish_breaches()

    await breach("billing", 1)  # before the page opens: never shown
    page = await open_page(browser, stack["wallboard"].url + "/")
    await breach("sales", 2)  # live
    await page.wait_for_function("() => window.cxpulseWallboard.hooks.breaches.length === 1", timeout=10_000)
    assert await page.get_by_test_id("breach-text").text_content() == "sales (voice) waited over 20s"

    wallboard: Wallboard = stack["wallboard"]
    wallboard.stop()
    await page.wait_for_function("() => document.getElementById('conn').textContent === 'reconnecting'", timeout=10_000)
    await breach("billing", 3)  # while the page cannot hear anything
    await breach("email-care", 4)
    await wallboard.start()
    await page.wait_for_function("() => window.cxpulseWallboard.hooks.breaches.length >= 3", timeout=15_000)
    await page.wait_for_function("() => document.getElementById('conn').textContent === 'live'", timeout=10_000)
    await breach("vip", 5)  # live again
    await page.wait_for_function("() => window.cxpulseWallboard.hooks.breaches.length >= 4", timeout=10_000)
    shown = await page.evaluate("() => window.cxpulseWallboard.hooks.breaches")
    stream = await stack["redis"].xrange(stack["keys"].breaches_stream)
    ids = [entry_id.decode() for entry_id, _ in stream]
    assert shown == ids[1:], (shown, ids)  # each once, in order; the one before the page opened not at all
    assert await page.get_by_test_id("breach-more").text_content() == "+3 more"
    assert await page.get_by_test_id("breach-text").text_content() == "vip (voice) waited over 20s"
    assert "ct-secret" not in await page.content()
    await page.close()


async def test_a_message_appears_within_a_second_and_expires(stack: dict[str, Any], browser: Any) -> None:
    page = await open_page(browser, stack["wallboard"].url + "/?board=ops")
    assert await page.get_by_test_id("messages").is_hidden()
    for text, queues in (("VIP line down", "vip"), ("Billing outage: callbacks from 14:00", "billing")):
        cli = subprocess.run([CXPULSE, "wallboard", "message", text, "--queues", queues, "--until", "6s"],
                             env=stack["env"], capture_output=True, text=True, timeout=30)
        assert cli.returncode == 0, cli.stderr
        assert cli.stdout.startswith("message ") and f"on {queues}" in cli.stdout
        if queues == "billing":
            set_at = time.monotonic()
    await page.get_by_test_id("message").first.wait_for(state="visible", timeout=5_000)
    appeared = time.monotonic() - set_at
    texts = await page.get_by_test_id("message").all_text_contents()
    assert texts == ["Billing outage: callbacks from 14:00"]  # the VIP message is not this board's
    if SHOTS:
        await page.locator("#sound-dismiss").click()
        await page.screenshot(path=str(Path(SHOTS) / "wallboard-message.png"))
    await page.get_by_test_id("messages").wait_for(state="hidden", timeout=10_000)
    gone = await page.evaluate("() => document.querySelectorAll('[data-testid=message]').length")
    assert gone == 0
    bad = subprocess.run([CXPULSE, "wallboard", "message", "x", "--until", "7pm"], env=stack["env"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and bad.stderr == ("wallboard message: --until '7pm': use a time of day (14:00), "
                                                  "a duration (30m, 2h) or an ISO time with offset\n")
    await page.close()
    print(f"message shown {appeared:.2f}s after the CLI returned")


async def test_boards_rotation_and_a_compact_board_of_40_queues(stack: dict[str, Any], browser: Any) -> None:
    url = stack["wallboard"].url
    page = await open_page(browser, url + "/?board=ops")
    tiles = await page.evaluate("() => [...document.querySelectorAll('.tile')].map(t => t.dataset.testid)")
    assert tiles == ["tile-sales-voice", "tile-billing-voice"]  # the board's order, no centre totals
    assert await page.locator("[data-testid=tile-billing-voice] .tile-name").text_content() == "Billing (FR)"
    shown = await page.evaluate("() => [...document.querySelectorAll('[data-testid=tile-sales-voice] .value')]"
                                ".map(v => v.dataset.testid)")
    assert shown == [f"tile-sales-voice-{m}" for m in ("service_level", "waiting", "longest_wait", "asa")]
    await page.close()

    rotating = await open_page(browser, url + "/?rotate=1s&boards=ops,many")
    await rotating.wait_for_function("() => document.body.dataset.board === 'many'", timeout=10_000)
    await rotating.wait_for_function("() => document.body.dataset.board === 'ops'"
                                     " && document.querySelectorAll('.tile').length === 2", timeout=10_000)
    boards = await rotating.evaluate("() => window.cxpulseWallboard.hooks.boards")
    assert boards[:2] == ["ops", "many"], boards
    await rotating.close()

    stack["state"]["entries"] = [*CENTRE, *(entry(q, "chat", n % 7, 3.0 * n, 0.6 + (n % 5) / 10) for n, q in enumerate(MANY))]
    page = await open_page(browser, url + "/?board=many")
    await page.wait_for_function("() => document.querySelectorAll('.tile').length === 40", timeout=10_000)
    await page.locator("#sound-dismiss").click()  # the one-click offer answered: it leaves the screen
    assert await page.get_by_test_id("sound-offer").is_hidden()
    fits = await page.evaluate("""() => {
        const vh = window.innerHeight, vw = window.innerWidth;
        const tiles = [...document.querySelectorAll('.tile')].map(t => t.getBoundingClientRect());
        const px = sel => Math.min(...[...document.querySelectorAll(sel)].map(e => parseFloat(getComputedStyle(e).fontSize)));
        return {compact: document.body.classList.contains('compact'),
                scroll: document.documentElement.scrollHeight > vh || document.documentElement.scrollWidth > vw,
                inside: tiles.every(r => r.top >= 0 && r.left >= 0 && r.bottom <= vh + 0.5 && r.right <= vw + 0.5),
                sl: px('.stat.big .value'), name: px('.tile-name'), side: px('.stat.side .value'),
                overflow: [...document.querySelectorAll('.value-line')].filter(l => {
                    const r = l.getBoundingClientRect(), box = l.parentElement.getBoundingClientRect();
                    return l.scrollWidth > l.clientWidth + 1 || r.right > box.right + 1;
                }).length};
    }""")
    # 1080 px on a 55" TV is about 0.63 mm per px: 60 px is 38 mm, 24 px 15 mm (legible from 3 m)
    if SHOTS:
        await page.screenshot(path=str(Path(SHOTS) / "wallboard-compact-40.png"))
    assert fits["compact"] and not fits["scroll"] and fits["inside"], fits
    assert fits["sl"] >= 60 and fits["name"] >= 24 and fits["side"] >= 30, fits
    stack["state"]["entries"] = list(CENTRE)
    await page.close()


async def test_a_board_with_a_token(stack: dict[str, Any], browser: Any) -> None:
    url = stack["wallboard"].url
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    page = await context.new_page()
    refused = await page.goto(url + "/?board=vip")
    assert refused is not None and refused.status == 401
    assert await page.locator("h1").text_content() == "This board needs a token"
    wrong = await page.goto(url + "/?board=vip&token=nope")
    assert wrong is not None and wrong.status == 403
    await page.goto(url + "/?board=vip&token=vip-t0ken")
    assert page.url == url + "/?board=vip"  # the token left the address bar
    await page.wait_for_function("() => document.body.dataset.stale === 'false'", timeout=15_000)
    tiles = await page.evaluate("() => [...document.querySelectorAll('.tile')].map(t => t.dataset.testid)")
    assert tiles == ["tile-vip-voice"]
    await page.goto(url + "/?board=vip")  # kept: no token in the address, still open
    await page.wait_for_function("() => document.body.dataset.stale === 'false'", timeout=15_000)
    assert await page.get_by_test_id("board-name").text_content() == "VIP desk"
    html = await page.content()
    seen = await page.evaluate("() => fetch('/api/config?board=vip').then(r => r.text())")
    for other in ("billing", "sales", "email-care"):
        assert other not in html and other not in seen
    await context.close()
