"""The live engine's pure half (cxpulse.core.live, partials, the Prometheus collector), without Kafka.

These pin the properties the Faust adapter relies on: state rebuilt from stored per-key values gives the very
same document (crash recovery), a breach is handed out once (also after a rebuild that knows what was already
published), partials of several workers merge into the single-worker document, and /metrics carries counts
that match the document and never an id.
"""

from __future__ import annotations

import orjson

from cxpulse.core.engine import KpiEngine
from cxpulse.core.live import LiveKpis
from cxpulse.core.partials import merge
from cxpulse.models.events import format_ts, parse_any_event
from cxpulse.settings import KpiSettings, QueueOverride, Settings
from cxpulse.sinks.prometheus import Histograms, KpiCollector, registry_for, exposition, wait_buckets
from cxpulse.streams import codec

T0 = 1_795_338_000_000_000  # 2026-11-22T08:20:00Z


def ts(seconds: float) -> str:
    return format_ts(T0 + int(seconds * 1_000_000))


def contact(cid: str, cust: str, queue: str, queued: float, outcome: str | None, at: float | None,
            ended: float | None = None, resolved: bool = True, channel: str = "voice") -> list[dict]:
    base = {"contact_id": cid, "customer_id": cust, "queue": queue, "channel": channel}
    out = [{"event_id": f"{cid}-q", "type": "contact.queued", "ts": ts(queued), "reason": "billing", **base}]
    if outcome == "answered":
        out.append({"event_id": f"{cid}-a", "type": "contact.answered", "ts": ts(at), "agent_id": "agent-7", **base})
        if ended is not None:
            out.append({"event_id": f"{cid}-e", "type": "contact.ended", "ts": ts(ended), "agent_id": "agent-7",
                        "talk_seconds": 100, "hold_seconds": 10, "wrap_seconds": 20, "resolved": resolved, **base})
    elif outcome == "abandoned":
        out.append({"event_id": f"{cid}-x", "type": "contact.abandoned", "ts": ts(at), **base})
    return out


def scenario() -> list[dict]:
    events = []
    events += contact("c1", "u1", "billing", 0, "answered", 10, 200)
    events += contact("c2", "u1", "billing", 600, "answered", 650, 900, resolved=False)  # repeat of c1
    events += contact("c3", "u2", "sales", 100, "abandoned", 103)  # short abandon
    events += contact("c4", "u3", "sales", 150, "abandoned", 400)
    events += contact("c5", "u4", "billing", 1000, None, None)  # still waiting
    events += contact("c6", "u5", "web-chat", 50, "answered", 70, 500, channel="chat")
    events.append({"event_id": "s1", "type": "survey.response", "ts": ts(400), "contact_id": "c1",
                   "customer_id": "u1", "nps": 9, "csat": 5, "comment": "very kind agent, call me on 555"})
    events.sort(key=lambda e: e["ts"])
    return events


def partition_of(contact_id: str) -> int:
    return int(contact_id[1:]) % 3


def fill(live: LiveKpis) -> None:
    """Feed the scenario as the agents would, contact side then the FCR summaries to the customer side."""
    for offset, event in enumerate(scenario()):
        p = partition_of(event["contact_id"])
        live.handle("contact-events", p, parse_any_event(event), orjson.dumps(event), offset)
        live.settle(p)
        for summary in live.contacts(p).drain_summaries():
            live.customers(int(summary.customer_id[1:]) % 2).update(summary)


NOW = T0 + 3_600_000_000  # one hour after T0


def at_now() -> int:
    """The live state's wall clock: NOW. A partition's aggregates are pruned where the maintenance timer would
    prune, from the moment they are made (``LiveKpis._aggregates``): with the real clock, days after T0, every
    fact of the scenario would be past every window of a document read at NOW."""
    return NOW


def test_live_document_equals_single_process_engine() -> None:
    kpi = KpiSettings()
    live = LiveKpis(kpi, clock=at_now)
    fill(live)
    engine = KpiEngine(kpi)
    for event in scenario():
        engine.process(event)
    assert live.document(NOW) == engine.snapshot(NOW)
    sales = next(q for q in live.document(NOW)["queues"] if q["queue"] == "sales")["windows"]["1h"]
    assert (sales["abandoned"], sales["abandoned_short"], sales["abandon_rate"]) == (2, 1, 1.0)


def test_rebuild_from_stored_state_gives_the_same_document() -> None:
    """What recovery does after a crash: only the stored per-key values survive."""
    kpi = KpiSettings()
    live = LiveKpis(kpi, clock=at_now)
    fill(live)
    before = live.document(NOW)
    stored_contacts = [
        (cid, *codec.decode_contact(codec.encode_contact(state, p)))
        for p, proc in live.contact_parts.items() for cid, state in proc.contacts.items()
    ]
    stored_customers = [
        (cid, codec.decode(codec.encode_customer(state, p)))
        for p, proc in live.customer_parts.items() for cid, state in proc.customers.items()
    ]
    fresh = LiveKpis(kpi, clock=at_now)
    assert fresh.rebuild_contacts(stored_contacts, {0, 1, 2}) == 6
    assert fresh.rebuild_customers(stored_customers, {0, 1}) == 5
    assert fresh.document(NOW) == before
    # a partition not assigned to this worker is left out
    partial_worker = LiveKpis(kpi, clock=at_now)
    partial_worker.rebuild_contacts(stored_contacts, {0})
    offered = partial_worker.document(NOW)["totals"]["windows"]["1h"]["offered"]
    assert offered == sum(1 for e in scenario() if e["type"] == "contact.queued" and partition_of(e["contact_id"]) == 0)


def test_breach_of_a_waiting_contact_is_handed_out_once_and_not_after_a_rebuild() -> None:
    kpi = KpiSettings()
    live = LiveKpis(kpi, clock=at_now)
    fill(live)
    # c5 waits on billing (voice, T = 20 s) since T0 + 1000 s; c2 was answered after 50 s (late breach)
    first = live.due_breaches(T0 + 1_019_000_000)
    assert sorted(b.contact_id for b in first) == ["c2", "c4"]  # late answers/abandons, published at once
    assert live.due_breaches(T0 + 1_020_000_000) == []  # wait == T: not a breach yet
    crossed = live.due_breaches(T0 + 1_020_000_001)
    assert [(b.contact_id, b.breached_at_us) for b in crossed] == [("c5", T0 + 1_020_000_000)]
    assert live.due_breaches(T0 + 2_000_000_000) == []
    # after a crash the worker reads the published visit ids back from sla-breaches
    restarted = LiveKpis(kpi, clock=at_now)
    restarted.published_visits.update((b.contact_id, b.queued_event_id) for b in first + crossed)
    stored = [(cid, *codec.decode_contact(codec.encode_contact(s, p))) for p, pr in live.contact_parts.items() for cid, s in pr.contacts.items()]
    restarted.rebuild_contacts(stored, {0, 1, 2})
    assert restarted.due_breaches(T0 + 3_000_000_000) == []


def test_partials_of_two_workers_merge_into_the_whole() -> None:
    kpi = KpiSettings()
    whole = LiveKpis(kpi, clock=at_now)
    fill(whole)
    workers = []
    for owned, owned_customers in (({0, 1}, {0}), ({2}, {1})):
        worker = LiveKpis(kpi, clock=at_now)
        worker.contact_parts = {p: proc for p, proc in whole.contact_parts.items() if p in owned}
        worker.customer_parts = {p: proc for p, proc in whole.customer_parts.items() if p in owned_customers}
        workers.append(worker)
    partials = [orjson.loads(orjson.dumps(w.partial(f"w{i}", NOW))) for i, w in enumerate(workers)]
    assert merge(kpi, partials) == whole.document(NOW)
    assert merge(kpi, [whole.partial("solo", NOW)]) == whole.document(NOW)


def test_metrics_match_the_document_and_carry_no_ids() -> None:
    settings = Settings(kpi=KpiSettings(queues={"sales": QueueOverride(sl_threshold_seconds=25)}))
    histograms = Histograms(wait_buckets(settings))
    live = LiveKpis(settings.kpi, observer=histograms)
    fill(live)
    text = exposition(registry_for(KpiCollector(settings, live, histograms, {("contact-events", 0): 3}))).decode()
    assert 'contactcenter_contacts_offered_total{channel="voice",queue="billing"} 3.0' in text
    assert 'contactcenter_contacts_abandoned_total{channel="voice",kind="short",queue="sales"} 1.0' in text
    assert 'contactcenter_contacts_abandoned_total{channel="voice",kind="long",queue="sales"} 1.0' in text
    assert 'contactcenter_wait_time_seconds_count{channel="voice",outcome="answered",queue="billing"} 2.0' in text
    # a bucket boundary at the per-queue threshold (25 s) and at the voice threshold (20 s)
    assert 'le="25"' in text and 'le="20"' in text
    assert 'contactcenter_wait_time_seconds_bucket{channel="voice",le="20",outcome="answered",queue="billing"} 1.0' in text
    assert 'contactcenter_survey_nps_responses_total{category="promoter",channel="voice",queue="billing"} 1.0' in text
    assert 'contactcenter_contacts_waiting{channel="voice",queue="billing"} 1.0' in text
    assert 'cxpulse_consumer_lag{partition="0",topic="contact-events"} 3.0' in text
    import re

    label_values = set(re.findall(r'[a-z_]+="([^"]*)"', text))
    for secret in ("c1", "c5", "u1", "u4", "agent-7", "555", "kind agent"):
        assert not any(secret in value for value in label_values), (secret, sorted(label_values))
