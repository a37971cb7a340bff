"""Issue "Prometheus metrics, alert rules, Alertmanager, Grafana", end to end: a real ``cxpulse worker`` on the
real broker, scraped by a real Prometheus that evaluates the project's rules and sends to a real Alertmanager,
which calls a local webhook receiver.

What is changed from the deployed configuration, and nothing else:

* ``deploy/prometheus/prometheus.yml``: the scrape target is the test worker, scrape and evaluation interval
  1 s, the Alertmanager target is the test Alertmanager (see ``prom_harness.start_prometheus``);
* ``deploy/prometheus/rules/*.yml``: every alert's ``for:`` is shortened to 3 s (``for: 0m`` stays); that is
  the only change to the rules (``prom_harness.shortened_rules`` checks it). So the recording groups
  ``cxpulse-kpi-6h`` and ``cxpulse-kpi-24h`` keep their own ``interval: 1m``: the 24 h series appear up to a
  minute after Prometheus starts;
* ``deploy/alertmanager/alertmanager.yml``: rendered by ``render.sh`` with the receiver's URL, ``group_wait``
  1 s and ``group_interval`` 2 s, the PagerDuty and Slack receivers swapped for webhooks (``/pager``, ``/chat``)
  to the local receiver; the routes and inhibition are the shipped ones.
* the worker: queue ``fast`` (voice) has ``sl_threshold_seconds: 3`` and the FCR window is 20 s (so that
  first contacts get *closed* while the test runs and the FCR-confirmed panel has data).

The scenario (``fast``: breaching, ``steady``: healthy), in wall-clock time:

* prime 1: one contact queued in each queue, one event that is not JSON; prime 2 (after Prometheus scraped
  prime 1): both answered, ended, surveyed. Why: ``increase()`` cannot see a counter's first value, so every
  series (counters, both histograms) must exist before the counts that the rules and panels look at arrive.
* main, t0: 30 contacts queued in ``fast``, 25 in ``steady``.
* t0 + 1 s: ``steady``: 24 answered (wait 1 s <= 30 s), 1 abandoned, 24 ended, 12 surveys (mostly promoters), and
  a duplicate of a queued event.
* t0 + 6 s: ``fast``: 24 answered late (wait 6 s > 3 s), 4 abandoned (6 s >= S = 5 s: long), 24 ended, 12 surveys
  (detractors), an invalid event (missing fields); 2 contacts stay waiting.

Alerts that can fire within a minute with ``for: 3s`` (volume guards: >= 20 contacts for the service-level
alerts, >= 10 breaches for the burst): for ``fast``/voice ``CxServiceLevelBelowTarget`` (15 min SL 0 < 0.8 with
28 eligible), ``CxServiceLevelBurnRateFast`` (burn 5 > 4 over 1h and 5m), ``CxSlaBreachBurst`` (30 breaches in
5 min, all of the hour's), ``CxLongestWaitFarAboveThreshold`` (2 contacts waiting > 9 s). ``steady`` has
the same volume and must fire nothing.
"""

from __future__ import annotations

import asyncio
import math
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import pytest

from prom_harness import (
    ROOT,
    Service,
    WebhookReceiver,
    diagnostics,
    fetch_text,
    get_json,
    ids_in_events,
    label_values,
    prom_query,
    prom_value,
    runbook_anchors,
    start_alertmanager,
    start_prometheus,
)
from worker_harness import Producer, WorkerProcess, delete_topics_with_prefix, iso, new_worker, now_us

sys.path.insert(0, str(ROOT / "grafana"))
import queries  # noqa: E402  (grafana/queries.py: no package, loaded by path)

pytestmark = pytest.mark.integration

S = 1_000_000
FAST, STEADY = ("fast", "voice"), ("steady", "chat")
# costs (contract v2) configured for both queues, so the cost panels have data
KPI = {"queues": {"fast": {"sl_threshold_seconds": 3, "cost_per_hour": 30}, "steady": {"cost_per_hour": 24}},
       "fcr_window": "20s"}
EXPECTED_FAST_ALERTS = {
    "CxServiceLevelBelowTarget", "CxServiceLevelBurnRateFast", "CxSlaBreachBurst", "CxLongestWaitFarAboveThreshold",
}
RUNBOOK_URL = re.compile(r"^https://github\.com/cxpulse/cxpulse/blob/main/docs/runbooks\.md#([a-z0-9-]+)$")

# Panels that legitimately have no data in a test of a few minutes, with the reason: none. Every panel of the
# three dashboards gets data from the scenario above (FCR confirmed thanks to the 20 s FCR window).
NO_DATA_EXPECTED: dict[tuple[str, str], str] = {}


# ------------------------------------------------------------------------------------------------ events
class Events:
    """Contract events with ids unique to this run (``tag``)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.n = 0
        self.all: list[dict[str, Any]] = []

    def _base(self, kind: str, ts: int, contact: str) -> dict[str, Any]:
        self.n += 1
        event = {"event_id": f"{self.tag}-ev-{self.n:04d}", "type": kind, "ts": iso(ts),
                 "contact_id": f"{self.tag}-ct-{contact}", "customer_id": f"{self.tag}-cu-{contact}"}
        self.all.append(event)
        return event

    def contact(self, kind: str, ts: int, contact: str, where: tuple[str, str], **extra: Any) -> dict[str, Any]:
        event = self._base(kind, ts, contact)
        event.update(queue=where[0], channel=where[1], **extra)
        return event

    def agent(self, ts: int, n: int, state: str, queue: str, team: str, reason: str | None = None) -> dict[str, Any]:
        """An ``agent.state`` event (contract v2) of agent ``n``; its id carries the tag like every other id."""
        self.n += 1
        event = {"event_id": f"{self.tag}-ev-{self.n:04d}", "type": "agent.state", "ts": iso(ts),
                 "agent_id": f"{self.tag}-agent-{n}", "state": state, "reason": reason, "queues": [queue],
                 "team": team, "agent_name": None}
        self.all.append(event)
        return event

    def queued(self, ts: int, contact: str, where: tuple[str, str]) -> dict[str, Any]:
        return self.contact("contact.queued", ts, contact, where, reason="billing", priority=1)

    def answered(self, ts: int, contact: str, where: tuple[str, str], agent: int) -> dict[str, Any]:
        return self.contact("contact.answered", ts, contact, where, agent_id=f"{self.tag}-ag-{agent}", team="team-a")

    def abandoned(self, ts: int, contact: str, where: tuple[str, str]) -> dict[str, Any]:
        return self.contact("contact.abandoned", ts, contact, where)

    def ended(self, ts: int, contact: str, where: tuple[str, str], agent: int, resolved: bool) -> dict[str, Any]:
        return self.contact("contact.ended", ts, contact, where, agent_id=f"{self.tag}-ag-{agent}", talk_seconds=120.0,
                            hold_seconds=10.0, wrap_seconds=30.0, resolved=resolved, transferred=False,
                            disposition="done")

    def survey(self, ts: int, contact: str, nps: int | None, csat: int | None) -> dict[str, Any]:
        event = self._base("survey.response", ts, contact)
        event.update(nps=nps, csat=csat, comment="free text")
        return event

    def followed_up(self, ts: int, contact: str, survey: dict[str, Any]) -> dict[str, Any]:
        event = self._base("survey.followed_up", ts, contact)
        event.update(survey_event_id=survey["event_id"], agent_id=None)
        return event


@dataclass
class Stack:
    worker: WorkerProcess
    prometheus: Service
    alertmanager: Service
    receiver: WebhookReceiver
    events: Events
    sent: int = 0
    t0: float = 0.0  # monotonic time of the main phase
    timeline: dict[str, float] = field(default_factory=dict)

    def diagnostics(self) -> str:
        return diagnostics(self.prometheus, self.alertmanager, f"{self.worker.url}/metrics")


async def sleep_until(wall_us: int) -> None:
    """Pace the scenario: events of second t are sent once the wall clock has reached t (they happen then).
    This drives the scenario's time line; it is not a wait for the system, which ``wait_prom`` does."""
    delay = (wall_us - now_us()) / S
    if delay > 0:
        await asyncio.sleep(delay)


_FRACTION = re.compile(r"\.(\d{6})\d*")


def _unix(rfc3339: str) -> float:
    """Prometheus' RFC 3339 timestamps (nanoseconds, ``Z``) as Unix seconds."""
    from datetime import datetime

    return datetime.fromisoformat(_FRACTION.sub(r".\1", rfc3339).replace("Z", "+00:00")).timestamp()


async def wait_rules_evaluated_after(stack: Stack, wall_s: float, what: str, timeout: float = 30.0) -> None:
    """Wait until Prometheus has evaluated every fast rule group (interval <= 5 s: all but the slow-burn ones,
    which no few-second wait could cover either) at or after ``wall_s`` (Unix seconds).

    Why: to show that an alert does *not* fire, the test needs proof that Prometheus looked after the moment it
    could have; its own rule evaluations are that proof, where a fixed sleep would only be a guess."""
    deadline = time.monotonic() + timeout
    last: list[float] = []
    while True:
        groups = get_json(f"{stack.prometheus.url}/api/v1/rules")["data"]["groups"]
        last = [_unix(group["lastEvaluation"]) for group in groups if group["interval"] <= 5]
        if last and min(last) >= wall_s:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: rule groups last evaluated at {last}, not after {wall_s}\n{stack.diagnostics()}",
                        pytrace=False)
        await asyncio.sleep(0.25)


async def wait_prom(stack: Stack, expr: str, check: Any, what: str, timeout: float = 30.0) -> list[tuple[dict, float]]:
    """Poll an instant query until ``check(result)``; fail with diagnostics."""
    deadline = time.monotonic() + timeout
    result: list[tuple[dict, float]] = []
    while time.monotonic() < deadline:
        result = prom_value(stack.prometheus.url, expr)
        if check(result):
            return result
        await asyncio.sleep(0.25)
    pytest.fail(f"{what}: not reached within {timeout:.0f}s; {expr} = {result}\n{stack.diagnostics()}", pytrace=False)


async def run_scenario(stack: Stack, producer: Producer) -> None:
    ev = stack.events

    async def send(events: list[dict[str, Any] | bytes], key: bytes | None = None) -> None:
        await producer.send(events, key=key)
        stack.sent += len(events)

    # prime 1: every queue's counters exist (offered 1, the rest 0), plus the invalid-events series
    tp = now_us()
    await send([ev.queued(tp, "fast-0", FAST), ev.queued(tp, "steady-0", STEADY)])
    await send([b"{this is not json"], key=b"garbage")
    # agents (contract v2): steady well staffed (12 agents: 10 available, 1 on a contact, 1 on a break), so
    # no agent alert may touch it; fast has one available and one at lunch (short of agents: a warning)
    staff = [(n, "available", "steady", "team-b", None) for n in range(10)]
    staff += [(10, "on_contact", "steady", "team-b", None), (11, "away", "steady", "team-b", "break"),
              (12, "available", "fast", "team-a", None), (13, "away", "fast", "team-a", "lunch")]
    for n, state, queue, team, reason in staff:
        agent_event = ev.agent(tp, n, state, queue, team, reason)
        await producer.send([agent_event], topic=stack.worker.topics.agent_events, key=agent_event["agent_id"].encode())
        stack.sent += 1
    await stack.worker.wait_processed(stack.sent, timeout=30)
    await wait_prom(stack, 'contactcenter_contacts_offered_total{queue=~"fast|steady"}',
                    lambda r: len(r) == 2 and all(v == 1 for _, v in r), "prime 1 scraped")
    # prime 2: answered counters move (0 -> 1) under Prometheus' eyes; histograms and survey series appear
    tp = now_us()
    prime = []
    for name, where in (("fast-0", FAST), ("steady-0", STEADY)):
        prime += [ev.answered(tp, name, where, 0), ev.ended(tp, name, where, 0, resolved=True),
                  ev.survey(tp, name, nps=8, csat=4)]
    await send(prime)
    await stack.worker.wait_processed(stack.sent, timeout=30)
    await wait_prom(stack, 'contactcenter_handle_time_seconds_count{queue=~"fast|steady"}',
                    lambda r: len(r) == 2 and all(v == 1 for _, v in r), "prime 2 scraped")
    await wait_prom(stack, 'contactcenter_contacts_answered_total{queue=~"fast|steady"}',
                    lambda r: len(r) == 2 and all(v == 1 for _, v in r), "prime 2 answers scraped")

    # main phase
    stack.t0 = time.monotonic()
    t0 = now_us()
    stack.timeline["main"] = t0 / S
    fast = [f"fast-{i}" for i in range(1, 31)]
    steady = [f"steady-{i}" for i in range(1, 26)]
    queued = [ev.queued(t0, c, FAST) for c in fast] + [ev.queued(t0, c, STEADY) for c in steady]
    await send(queued)

    t1 = t0 + 1 * S
    await sleep_until(t1 + 200_000)
    batch: list[dict[str, Any]] = []
    for i, c in enumerate(steady[:24]):
        batch.append(ev.answered(t1, c, STEADY, 1 + i % 5))
    batch.append(ev.abandoned(t1, steady[24], STEADY))
    batch.append(dict(queued[len(fast)]))  # a duplicate: same event_id as steady-1's queued
    for i, c in enumerate(steady[:24]):
        batch.append(ev.ended(t1, c, STEADY, 1 + i % 5, resolved=i % 4 != 0))
    for i, c in enumerate(steady[:12]):
        batch.append(ev.survey(t1, c, nps=(10, 9, 8)[i % 3], csat=(5, 4, 3)[i % 3]))
    # one detractor in steady, followed up at once (the feedback panels of contract v2 have data in both queues)
    unhappy = ev.survey(t1, steady[12], nps=2, csat=2)
    batch += [unhappy, ev.followed_up(t1, steady[12], unhappy)]
    await send(batch)

    t6 = t0 + 6 * S
    await sleep_until(t6 + 200_000)
    batch = []
    for i, c in enumerate(fast[:24]):
        batch.append(ev.answered(t6, c, FAST, 6 + i % 5))
    for c in fast[24:28]:
        batch.append(ev.abandoned(t6, c, FAST))
    for i, c in enumerate(fast[:24]):
        batch.append(ev.ended(t6, c, FAST, 6 + i % 5, resolved=i % 2 == 0))
    for i, c in enumerate(fast[:12]):
        batch.append(ev.survey(t6, c, nps=i % 7, csat=1 + i % 2))
    batch.append(ev.followed_up(t6, fast[0], batch[-12]))  # fast[0]'s survey (a detractor: nps 0), answered
    missing = {"event_id": f"{ev.tag}-ev-bad", "type": "contact.queued", "ts": iso(t6),
               "contact_id": f"{ev.tag}-ct-bad", "customer_id": f"{ev.tag}-cu-bad"}  # no queue, no channel
    ev.all.append(missing)
    batch.append(missing)
    await send(batch)
    await stack.worker.wait_processed(stack.sent, timeout=30)
    stack.timeline["sent"] = time.monotonic() - stack.t0


# ------------------------------------------------------------------------------------------------ fixture
@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("prom-e2e")
    receiver = WebhookReceiver().__enter__()
    worker = new_worker(tmp, kafka_bootstrap, kpi=KPI, name="prom")
    worker.env["CXPULSE_REDIS__ENABLED"] = "false"  # not under test here; keeps the shared Redis untouched
    services: list[Service] = []
    try:
        worker.start()
        am = start_alertmanager(tmp / "alertmanager", receiver.url("/pager"), receiver.url("/chat"),
                                receiver.url("/webhook"))
        services.append(am)
        prom = start_prometheus(tmp / "prometheus", [f"127.0.0.1:{worker.port}"], am.url.removeprefix("http://"))
        services.append(prom)
        await worker.wait_ready()
        st = Stack(worker, prom, am, receiver, Events(f"pe2e{uuid.uuid4().hex[:8]}"))
        await wait_prom(st, 'up{job="cxpulse"}', lambda r: [v for _, v in r] == [1.0], "worker scraped")
        async with Producer(kafka_bootstrap, worker.topics) as producer:
            await run_scenario(st, producer)
        yield st
    finally:
        worker.stop()
        for service in reversed(services):
            service.stop()
        receiver.__exit__(None, None, None)
        await delete_topics_with_prefix(kafka_bootstrap, worker.app_id)


# ------------------------------------------------------------------------------------------------ 1. alerts
async def test_sla_alerts_page_for_the_breaching_queue_only(stack: Stack) -> None:
    deadline = stack.t0 + 90
    got: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        got = {a["labels"]["alertname"]: a for path, a in stack.receiver.alerts("/pager")
               if a["labels"].get("queue") == "fast" and a["status"] == "firing"}
        if EXPECTED_FAST_ALERTS <= set(got):
            break
        await asyncio.sleep(0.5)
    else:
        pytest.fail(f"pages for queue fast: got {sorted(got)}, expected {sorted(EXPECTED_FAST_ALERTS)} within 90 s "
                    f"of the main phase\n{stack.diagnostics()}", pytrace=False)
    arrived = time.monotonic() - stack.t0

    anchors = runbook_anchors()
    for name, alert in got.items():
        labels, annotations = alert["labels"], alert["annotations"]
        assert labels["queue"] == "fast" and labels["channel"] == "voice", alert
        assert labels["severity"] == "critical", alert
        assert annotations.get("summary") and annotations.get("description"), alert
        match = RUNBOOK_URL.match(annotations.get("runbook_url", ""))
        assert match, f"{name}: runbook_url {annotations.get('runbook_url')!r} does not point at docs/runbooks.md#..."
        assert match.group(1) == name.lower() and match.group(1) in anchors, (name, match.group(1), sorted(anchors))
    sla = got["CxServiceLevelBelowTarget"]
    assert "below target" in sla["annotations"]["summary"] and "fast/voice" in sla["annotations"]["summary"]

    # the healthy queue, with the same volume (so its volume guards pass), fires nothing: once its volume passes
    # the guard, Prometheus must have evaluated every rule group for longer than `for: 3s` plus two 1 s intervals
    # (an alert would be pending or firing by then), and Alertmanager's group_wait (1 s) must have passed too
    steady_volume = await wait_prom(stack, 'queue_channel:contactcenter_sl_eligible_contacts:increase15m{queue="steady"}',
                                    lambda r: bool(r) and r[0][1] >= 20, "steady passes the volume guard")
    guard_passed = time.time()
    await wait_rules_evaluated_after(stack, guard_passed + 3 + 2, "rules evaluated past steady's `for`")
    assert steady_volume and steady_volume[0][1] >= 20, f"steady must pass the volume guard: {steady_volume}"
    steady_sl = prom_value(stack.prometheus.url, 'queue_channel:contactcenter_service_level:ratio_increase15m{queue="steady"}')
    assert steady_sl and steady_sl[0][1] >= 0.8, steady_sl
    rules_alerts = get_json(f"{stack.prometheus.url}/api/v1/alerts")["data"]["alerts"]
    steady_in_prom = [a for a in rules_alerts if a["labels"].get("queue") == "steady"]
    assert steady_in_prom == [], f"alerts (pending or firing) for the healthy queue: {steady_in_prom}"
    steady_sent = [a for _, a in stack.receiver.alerts() if a["labels"].get("queue") == "steady"]
    assert steady_sent == [], f"notifications for the healthy queue: {steady_sent}"

    # routing: critical pages (PagerDuty), everything else goes to chat (Slack), every alert to the webhook
    routed = [(path, alert) for path, alert in stack.receiver.alerts() if path != "/webhook"]
    for path, alert in routed:
        severity = alert["labels"].get("severity")
        assert (path == "/pager") == (severity == "critical"), (path, alert["labels"])
    hooked = {(a["labels"]["alertname"], a["labels"].get("queue")) for _, a in stack.receiver.alerts("/webhook")}
    assert {(a["labels"]["alertname"], a["labels"].get("queue")) for _, a in routed} <= hooked
    # the same alerts are active in Alertmanager
    am_alerts = get_json(f"{stack.alertmanager.url}/api/v2/alerts")
    am_fast = {a["labels"]["alertname"] for a in am_alerts if a["labels"].get("queue") == "fast"}
    assert EXPECTED_FAST_ALERTS <= am_fast, am_fast

    all_names = sorted({(path, a["labels"]["alertname"], a["labels"].get("queue", "-"), a["status"])
                        for path, a in stack.receiver.alerts()})
    print(f"\npages for fast arrived {arrived:.1f} s after the main phase began; notifications: {all_names}")


async def test_no_id_is_a_label_value(stack: Stack) -> None:
    text = fetch_text(f"{stack.worker.url}/metrics")
    ids = ids_in_events(stack.events.all)
    assert len(ids) > 150
    values = label_values(text)
    assert {"fast", "steady", "voice", "chat"} <= values  # the scan sees the labels at all
    leaked = sorted(v for v in values if any(i in v for i in ids))
    assert leaked == [], f"ids in /metrics label values: {leaked[:10]}"
    assert stack.events.tag not in text, "an id (or part of one) appears in /metrics"


async def test_agent_gauges_and_occupancy_say_what_the_scenario_did(stack: Stack) -> None:
    """steady: 10 available + 1 on a contact staffed, 1 on a break; fast: 1 staffed, 1 at lunch. Occupancy of
    team-b over 15 minutes: 1 agent on a contact of 11 working = 1/11 (the seconds grow alike for each)."""
    staffed = await wait_prom(stack, 'sum by (queue) (contactcenter_agents_staffed{queue=~"fast|steady"})',
                              lambda r: len(r) == 2, "agents_staffed scraped")
    assert sorted((labels["queue"], value) for labels, value in staffed) == [("fast", 1.0), ("steady", 11.0)]
    away = prom_value(stack.prometheus.url, "sum by (team, reason) (contactcenter_team_agents_away)")
    assert sorted((l["team"], l["reason"], v) for l, v in away) == [("team-a", "lunch", 1.0), ("team-b", "break", 1.0)]
    required = await wait_prom(stack, 'max by (queue) (contactcenter_agents_required{queue="steady"})',
                               lambda r: len(r) == 1, "agents_required for steady")
    assert 1 <= required[0][1] <= 11, required  # steady is staffed enough: no alert may fire for it
    occupancy = await wait_prom(stack, 'team:contactcenter_agent_occupancy:ratio_increase15m{team="team-b"}',
                                lambda r: len(r) == 1, "team-b occupancy recorded")
    assert occupancy[0][1] == pytest.approx(1 / 11, rel=0.05), occupancy


# ------------------------------------------------------------------------------------------------ 2. panels
def _has_data(answer: dict[str, Any]) -> bool:
    if answer.get("status") != "success":
        return False
    data = answer["data"]
    if data["resultType"] == "scalar":
        return not math.isnan(float(data["result"][1]))
    return any(not math.isnan(float(r["value"][1])) for r in data["result"])


async def test_every_dashboard_panel_has_data(stack: Stack) -> None:
    rows = queries.all_panel_queries()
    assert len(rows) >= 30 and {d for d, _, _ in rows} == {"wallboard", "supervisor", "pipeline"}
    unknown = set(NO_DATA_EXPECTED) - {(d, p) for d, p, _ in rows}
    assert not unknown, f"NO_DATA_EXPECTED names panels that do not exist: {unknown}"
    cases = [(dashboard, title, expr, values) for dashboard, title, expr in rows
             for values in ({"queue": FAST[0], "channel": FAST[1]}, {"queue": STEADY[0], "channel": STEADY[1]})]
    # recording groups cxpulse-kpi-6h and -24h keep their `interval: 1m` (unchanged): their first evaluation
    # comes up to a minute after Prometheus starts, so the 24 h panels (NPS, CSAT, FCR) may need that long
    deadline = time.monotonic() + 90
    first_pass: list[str] | None = None
    while True:
        failures, empty = [], []
        for dashboard, title, expr, values in cases:
            promql = queries.substitute(expr, **values)
            answer = prom_query(stack.prometheus.url, promql)
            if answer.get("status") != "success":
                failures.append(f"{dashboard}/{title} [{values['queue']}]: {answer.get('error')} in {promql}")
            elif not _has_data(answer) and (dashboard, title) not in NO_DATA_EXPECTED:
                empty.append(f"{dashboard}/{title} [{values['queue']}]: {promql}")
        assert failures == [], "\n".join(failures)
        if first_pass is None:
            first_pass = [e.split(":")[0] for e in empty]
        if not empty or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    assert empty == [], "panels without data:\n" + "\n".join(empty) + "\n" + stack.diagnostics()
    print(f"\n{len(cases)} panel queries with data {time.monotonic() - stack.t0:.0f} s after the main phase; "
          f"without data at the first pass: {first_pass}")

    # and the data says what the scenario did
    def one(expr: str, **values: str) -> float:
        [(_, value)] = prom_value(stack.prometheus.url, queries.substitute(expr, **values))
        return value

    wall: dict[str, str] = {}
    for d, title, expr in rows:
        if d == "wallboard":
            wall.setdefault(title, expr)  # the KPI (ref A); a tile's later targets are its per-queue thresholds
    assert one(wall["Service level (15 min)"], queue="fast", channel="voice") < 0.1
    # each queue's tile is coloured by its own settings: fast has T = 3 s (KPI above), steady the chat T = 30 s
    thresholds = {title: [t["expr"] for t in panel.get("targets", [])[1:]]
                  for panel in queries.dashboards()["wallboard"]["panels"] for title in [panel.get("title")]}
    for queue, channel, t in (("fast", "voice", 3.0), ("steady", "chat", 30.0)):
        base, yellow, red = (one(e, queue=queue, channel=channel) for e in thresholds["Longest wait"])
        assert (base, yellow, red) == (0.0, t, 3 * t), queue
        assert [one(e, queue=queue, channel=channel) for e in thresholds["Service level (15 min)"]] == [0.0, 0.8]
    assert one(wall["Service level (15 min)"], queue="steady", channel="chat") > 0.9
    # today (since midnight; $__range = 1 h here, which holds the whole scenario): each queue by its formula
    assert one(wall["Service level today"], queue="fast", channel="voice") < 0.1
    assert one(wall["Service level today"], queue="steady", channel="chat") > 0.9
    # the row repeated per queue: $queue is one queue there, and its figures are the tiles' figures (the
    # service level within a point: the two queries may straddle a rule evaluation)
    for queue, channel in (FAST, STEADY):
        assert one(wall["$queue waiting"], queue=queue, channel=channel) == \
            one(wall["Contacts waiting"], queue=queue, channel=channel)
        assert abs(one(wall["$queue service level (15 min)"], queue=queue, channel=channel)
                   - one(wall["Service level (15 min)"], queue=queue, channel=channel)) < 0.01
    assert one(wall["$queue longest wait"], queue="fast", channel="voice") > 9
    assert one(wall["Contacts waiting"], queue="fast", channel="voice") == 2
    assert one(wall["Contacts waiting"], queue="steady", channel="chat") == 0
    assert one(wall["Longest wait"], queue="fast", channel="voice") > 9
    pipeline = {title: expr for d, title, expr in rows if d == "pipeline"}
    assert one(pipeline["Workers up"]) == 1
