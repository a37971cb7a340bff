"""Issue "Wallboard": worker + our own redis-server + ``cxpulse wallboard`` + headless Debian Chromium.

1. the numbers on the page equal the API's: every tile (queue + channel, and the totals) for the chosen
   window, formatted as the page formats them (``cxpulse.wallboard.format``, whose JavaScript twin is checked
   on the page itself), the colour of each service level against its queue's target, a queue filter from the
   URL, and no scrolling at 1920x1080;
2. a new SLA breach (a contact left waiting on a 2 s queue) makes the banner appear without a reload, with the
   queue and the threshold and never the contact or customer id;
3. the wallboard server restarts: the page's EventSource reconnects by itself;
4. killing the worker turns the page stale within ``stale_after_seconds`` + 2 s.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, AsyncIterator

import orjson
import pytest

from cxpulse.settings import load_settings
from cxpulse.wallboard import format as fmt
from cxpulse.wallboard import thresholds
from browser_harness import browser  # noqa: F401 - the fixture
from browser_harness import STALE_AFTER, Wallboard, open_page
from test_redis_sink import RedisServer, contact_events, synthetic_centre, with_redis
from worker_harness import (
    Producer,
    WorkerProcess,
    config_path,
    delete_topics_with_prefix,
    new_worker,
    now_us,
)

pytestmark = pytest.mark.integration

S = 1_000_000
ALARM_QUEUE = "alarm"  # sl_threshold_seconds 2
WINDOW = "15m"

COLLECT = """() => {
  const out = {};
  for (const el of document.querySelectorAll('[data-testid]')) out[el.dataset.testid] = el.textContent;
  const states = {};
  for (const el of document.querySelectorAll('[data-testid$="-service_level"]')) states[el.dataset.testid] = el.dataset.state;
  return {texts: out, states, generated_at: document.body.dataset.generatedAt || null,
          stale: document.body.dataset.stale};
}"""


@pytest.fixture(scope="module")
async def board(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> AsyncIterator[dict[str, Any]]:
    """redis-server, worker (with an ``alarm`` queue of T = 2 s) and wallboard, fed with a synthetic centre."""
    import redis.asyncio as aioredis

    tmp = tmp_path_factory.mktemp("wallboard")
    server = RedisServer(tmp / "redis").start()
    worker = new_worker(tmp, kafka_bootstrap, kpi={"queues": {ALARM_QUEUE: {"sl_threshold_seconds": 2}}}, name="wb")
    prefix = with_redis(worker, server.url)
    wallboard = Wallboard(worker.env, tmp / "wallboard.log")
    client = aioredis.Redis.from_url(server.url)
    try:
        worker.start()
        await worker.wait_ready()
        await wallboard.start()
        stream = synthetic_centre(now_us(), seed=11, minutes=12, per_queue=30, tag="wb")
        async with Producer(kafka_bootstrap, worker.topics) as producer:
            await producer.send(stream)
        await worker.wait_processed(len(stream), timeout=60)
        yield {"worker": worker, "wallboard": wallboard, "prefix": prefix, "client": client, "server": server,
               "settings": load_settings(config_path(worker)), "tmp": tmp}
    finally:
        wallboard.stop()
        worker.stop()
        await client.aclose()
        server.stop()
        await delete_topics_with_prefix(kafka_bootstrap, worker.app_id)


def expected_texts(doc: dict[str, Any], window: str, queues: set[str] | None = None) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in doc["queues"]:
        if queues is not None and entry["queue"] not in queues:
            continue
        for field, text in fmt.tile_texts(entry, window).items():
            out[fmt.testid_of(entry["queue"], entry["channel"], field)] = text
    for field, text in fmt.tile_texts(doc["totals"], window).items():
        out[fmt.testid_of(None, None, field)] = text
    return out


def number_texts(texts: dict[str, str]) -> dict[str, str]:
    fields = tuple(f"-{f}" for f in fmt.TILE_FIELDS)
    return {k: v for k, v in texts.items() if k.endswith(fields)}


async def page_equals(page: Any, fetch_doc: Any, window: str, *, skip: tuple[str, ...] = (), timeout: float = 15.0,
                      queues: set[str] | None = None) -> dict[str, Any]:
    """Retry until the page's numbers equal the document's (formatted); return the last page state."""
    deadline = time.monotonic() + timeout
    while True:
        state = await page.evaluate(COLLECT)
        doc = await fetch_doc(state["generated_at"])
        if doc is not None:
            want = {k: v for k, v in expected_texts(doc, window, queues).items() if not k.endswith(skip)}
            got = {k: v for k, v in number_texts(state["texts"]).items() if not k.endswith(skip)}
            if got == want:
                return {**state, "doc": doc}
        if time.monotonic() > deadline:
            diff = {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)} if doc else None
            pytest.fail(f"page != document after {timeout}s; (page, expected): {diff}", pytrace=False)
        await asyncio.sleep(0.3)


async def test_page_shows_the_api_numbers_and_reacts_to_breaches_and_staleness(board: dict[str, Any], browser: Any,
                                                                              kafka_bootstrap: str) -> None:
    worker: WorkerProcess = board["worker"]
    client, prefix, settings = board["client"], board["prefix"], board["settings"]
    page = await open_page(browser, board["wallboard"].url + f"/?window={WINDOW}")

    # -- the page's formatting is the Python twin's (same IEEE arithmetic, half-up rounding)
    samples = [None, 0, 0.0, 0.004999, 0.005, 0.0349, 0.03449, 0.125, 0.5, 0.8049999, 0.805, 0.999, 1.0, 2 / 3,
               0.8, 0.7, 0.70001, 0.69999]
    js = await page.evaluate("""(xs) => { const f = window.cxpulseWallboard.format; return xs.map(x => [
        f.percent(x), f.percent1(x), f.score(x === null ? null : x * 100), f.nps(x === null ? null : x * 200 - 100),
        f.duration(x === null ? null : x * 7300), f.count(x === null ? null : Math.trunc(x * 40)),
        f.state(x, {direction: "below", warn: 0.8, critical: 0.7}), f.threshold(x === null ? null : x * 14400)]); }""",
        samples)
    py = [[fmt.fmt_percent(x), fmt.fmt_percent1(x), fmt.fmt_score(None if x is None else x * 100),
           fmt.fmt_nps(None if x is None else x * 200 - 100), fmt.fmt_duration(None if x is None else x * 7300),
           fmt.fmt_count(None if x is None else int(x * 40)),
           thresholds.state(x, {"direction": "below", "warn": 0.8, "critical": 0.7}),
           fmt.fmt_threshold(None if x is None else x * 14400)] for x in samples]
    assert js == py

    # -- every tile equals the read model of the same instant (live waiting and longest wait included) ...
    async def model_at(generated_at: str | None) -> dict[str, Any] | None:
        raw = await client.get(f"{prefix}:kpis")
        doc = orjson.loads(raw) if raw else None
        return doc if doc and doc["generated_at"] == generated_at else None

    state = await page_equals(page, model_at, WINDOW)
    queues_on_page = {k for k in state["texts"] if k.startswith("tile-") and k.endswith("-service_level")}
    assert len(queues_on_page) == len(state["doc"]["queues"]) >= 4, queues_on_page

    # -- ... and the worker's API (counts and ratios of the window, live waiting; the longest wait grows by
    # the time between the two reads, so it is compared with the read model above only)
    async def api(_: str | None) -> dict[str, Any]:
        return await worker.kpis()

    state = await page_equals(page, api, WINDOW, skip=("-longest_wait",))
    doc = state["doc"]

    # -- colours: green >= target, amber within 10 points, red below; the target is the queue's own
    seen_states = set()
    for entry in doc["queues"]:
        band = thresholds.resolve(settings, entry["queue"], entry["channel"])["service_level"]
        want = thresholds.state(entry["windows"][WINDOW]["service_level"], band)
        got = state["states"][fmt.testid_of(entry["queue"], entry["channel"], "service_level")]
        assert got == want, (entry["queue"], entry["windows"][WINDOW]["service_level"], got, want)
        seen_states.add(got)
    assert {"good", "critical"} <= seen_states, [(q["queue"], q["windows"][WINDOW]) for q in doc["queues"]]

    # -- a 1920x1080 screen holds every tile without scrolling
    fits = await page.evaluate("""() => {
        const vh = window.innerHeight, vw = window.innerWidth;
        const tiles = [...document.querySelectorAll('.tile')].map(t => t.getBoundingClientRect());
        return {scroll: document.documentElement.scrollHeight > vh || document.documentElement.scrollWidth > vw,
                inside: tiles.every(r => r.top >= 0 && r.left >= 0 && r.bottom <= vh + 0.5 && r.right <= vw + 0.5),
                tiles: tiles.length, minHeight: Math.min(...tiles.map(r => r.height))};
    }""")
    assert not fits["scroll"] and fits["inside"], fits
    assert fits["minHeight"] > 200, fits  # readable from a distance
    await page.screenshot(path=str(board["tmp"] / "wallboard-test.png"))

    # -- queues and window from the URL
    filtered = await open_page(browser, board["wallboard"].url + "/?queues=billing,web-chat&window=1h")
    state = await page_equals(filtered, api, "1h", skip=("-longest_wait",), queues={"billing", "web-chat"})
    tiles = await filtered.evaluate("() => [...document.querySelectorAll('.tile')].map(t => t.dataset.testid)")
    # the two queues, the totals and the feedback tile (a contract-v2 document; it counts those queues only)
    assert sorted(tiles) == ["feedback", "tile-billing-voice", "tile-web-chat-chat", "totals"], tiles
    await filtered.close()

    # -- a new breach: the banner appears without a reload, naming the queue, never the contact or customer
    # (a fresh page: breaches before it opened are not replayed; the synthetic centre's waiting contacts may
    # breach too, the newest breach is the one shown)
    await page.close()
    before = await client.xrevrange(f"{prefix}:breaches:stream", "+", "-", count=1)
    head = tuple(int(p) for p in before[0][0].decode().split("-")) if before else (0, 0)
    page = await open_page(browser, board["wallboard"].url + f"/?window={WINDOW}")
    replayed = [i for i in await page.evaluate("() => window.cxpulseWallboard.hooks.breaches")
                if tuple(int(p) for p in i.split("-")) <= head]
    assert replayed == []  # a fresh page starts at the stream's head: older breaches are not shown
    tag = uuid.uuid4().hex[:8]
    contact = f"wb-alarm-{tag}"
    async with Producer(kafka_bootstrap, worker.topics) as producer:
        queued_at = time.monotonic()
        await producer.send(contact_events(contact, ALARM_QUEUE, "chat", now_us(), answer_after=None))
    # the banner shows the newest breach: a synthetic contact still waiting (web-chat, T = 30 s) may breach right
    # after the alarm and replace its text (a fast machine reaches this step in time for that), so the texts the
    # page showed are read from its hooks, in order
    await page.wait_for_function(
        "(q) => !document.getElementById('breach-banner').hidden"
        " && window.cxpulseWallboard.hooks.banners.some(t => t.startsWith(q + ' '))", arg=ALARM_QUEUE, timeout=10_000)
    shown_after = time.monotonic() - queued_at
    shown = await page.evaluate("() => window.cxpulseWallboard.hooks.banners")
    text = next(t for t in shown if t.startswith(ALARM_QUEUE + " "))
    assert text == f"{ALARM_QUEUE} (chat) waited over 2s", text
    assert await page.get_by_test_id("breach-text").text_content() in shown  # the banner holds one of them
    html = await page.content()
    assert contact not in html and f"cu-{contact}" not in html
    assert shown_after < 2 + 0.2 + 3.0, shown_after  # threshold + breach timer + publishing and delivery
    await page.screenshot(path=str(board["tmp"] / "wallboard-breach.png"))

    # -- the wallboard server restarts: EventSource reconnects by itself, the page goes on without a reload
    wallboard: Wallboard = board["wallboard"]
    before = await page.evaluate("() => document.body.dataset.generatedAt")
    wallboard.stop()
    await page.wait_for_function("() => document.getElementById('conn').textContent === 'reconnecting'",
                                 timeout=10_000)
    await wallboard.start()
    await page.wait_for_function(
        "(t) => document.getElementById('conn').textContent === 'live' && document.body.dataset.generatedAt > t"
        " && document.body.dataset.stale === 'false'", arg=before, timeout=15_000)

    # -- the worker dies: the page says so within stale_after_seconds + 2 s
    assert await page.get_by_test_id("stale-banner").is_hidden()
    worker.kill()
    killed_at = time.monotonic()
    await page.get_by_test_id("stale-banner").wait_for(state="visible", timeout=(STALE_AFTER + 2) * 1000)
    went_stale = time.monotonic() - killed_at
    assert await page.evaluate("() => document.body.classList.contains('stale')")
    assert "DATA IS STALE" in (await page.get_by_test_id("stale-banner").text_content())
    await page.screenshot(path=str(board["tmp"] / "wallboard-stale.png"))
    await page.close()
    print(f"breach banner {shown_after:.2f}s after the contact was queued; stale {went_stale:.2f}s after the kill")
