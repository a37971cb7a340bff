"""A checkpoint of the live state (cxpulse.core.checkpoint, LiveKpis.checkpoint) is the state itself.

A worker that stops cleanly writes every partition's processor; the next start reads it back instead of
rebuilding from the tables (issue 9: restart). These pin, without Kafka, that what is read back is the very same
state: the same document, partials, totals, waiting and histograms at once, the same breaches handed out later,
and, fed the same further events, the same figures as the worker that never stopped and as a rebuild from the
stored values.
"""

from __future__ import annotations

from typing import Any

import pytest

from cxpulse.core import checkpoint
from cxpulse.core import processors
from cxpulse.core.customer import CustomerState
from cxpulse.core.live import LiveKpis
from cxpulse.models.agent_events import parse_agent_event
from cxpulse.models.events import InvalidEvent, parse_any_event
from cxpulse.settings import KpiSettings
from cxpulse.simulator.centre import load_centre
from cxpulse.simulator.engine import Simulation
from cxpulse.simulator.events import AGENT_TOPIC, SURVEY_TOPIC
from cxpulse.simulator.writers import encode
from cxpulse.sinks.prometheus import Histograms
from cxpulse.streams import codec

START_MS = 1_795_338_000_000  # 2026-11-22T08:20:00Z
PARTITIONS = 4
HOURS = 1.5


def simulated() -> list[tuple[str, bytes]]:
    sim = Simulation(load_centre(), start_ms=START_MS, seed=5, agents=True, invalid_rate=0.02)
    return [(r.topic, encode(r)) for r in sim.events(START_MS + int(HOURS * 3_600_000))]


EVENTS = simulated()


class Worker:
    """What the Faust agents do with LiveKpis, over a dict per partition as the table: handle a batch, settle,
    save the changed contacts, move the settled ones out, hand the FCR summaries to the customer side."""

    def __init__(self, clock: list[int], histograms: Histograms | None = None, *, customer_table: bool = False) -> None:
        self.tables: dict[int, dict[str, bytes]] = {p: {} for p in range(PARTITIONS)}
        self.customer_tables: dict[int, dict[str, bytes]] = {p: {} for p in range(PARTITIONS)}
        self.clock = clock
        self.live = LiveKpis(KpiSettings(), observer=histograms, clock=lambda: clock[0], loader_for=self.loader,
                             customer_loader_for=self.customer_loader if customer_table else None)
        self.breaches: list[tuple[str, str]] = []

    def customer_loader(self, partition: int) -> Any:
        def load(customer_id: str) -> Any:
            value = self.customer_tables[partition].get(customer_id)
            return CustomerState.from_dict(codec.decode(value)) if value is not None else None
        return load

    def loader(self, partition: int) -> Any:
        def load(contact_id: str) -> Any:
            value = self.tables[partition].get(contact_id)
            return codec.decode_contact(value)[1] if value is not None else None
        return load

    def feed(self, events: list[tuple[str, bytes]], first_offset: int) -> None:
        live = self.live
        for offset, (topic, raw) in enumerate(events, start=first_offset):
            if topic == AGENT_TOPIC:
                event = parse_agent_event(raw)
                live.handle_agent(topic, hash(event.agent_id) % PARTITIONS, event, offset)
                continue
            try:
                event = parse_any_event(raw)
            except InvalidEvent:
                continue
            partition = codec.customer_partition(event.contact_id, PARTITIONS)
            live.handle("contact-events" if topic != SURVEY_TOPIC else topic, partition, event, raw, offset)
            self.clock[0] = max(self.clock[0], event.ts_us)
            if offset % 500 == 0:
                self.batch_end()
        self.batch_end()

    def batch_end(self) -> None:
        live = self.live
        for partition, proc in live.contact_parts.items():
            live.settle(partition)
            for contact_id in list(proc.dirty):
                state = proc.contacts.get(contact_id)
                if state is not None:
                    self.tables[partition][contact_id] = codec.encode_contact(state, partition)
            proc.dirty.clear()
            proc.evict(keep_packed=False)
            for summary in proc.drain_summaries():
                live.customers(codec.customer_partition(summary.customer_id, PARTITIONS)).update(summary)
        for partition, customers in live.customer_parts.items():  # as the customers agent saves them
            for customer_id in list(customers.dirty):
                state = customers.customers.get(customer_id)
                if state is not None:
                    self.customer_tables[partition][customer_id] = codec.encode_customer(state, partition)
            customers.dirty.clear()
        for breach in live.due_breaches(self.clock[0]):
            self.breaches.append((breach.contact_id, breach.queued_event_id))


def figures(live: LiveKpis, now: int) -> Any:
    return (live.document(now, include_all=True), live.partial("w", now), live.totals(), live.waiting(now),
            live.awaiting(now))


def restarted(worker: Worker, histograms: Histograms | None = None) -> Worker:
    """A new process: the same tables, the state read back from the old one's checkpoint of every side."""
    fresh = Worker([worker.clock[0]], histograms)  # its own clock: the two go on side by side
    fresh.tables = {p: dict(table) for p, table in worker.tables.items()}  # the same values, its own dicts
    for side in LiveKpis.SIDES:
        assert fresh.live.load_checkpoint(side, worker.live.checkpoint(side)) == len(worker.live._side(side))
    return fresh


def test_the_checkpoint_reads_back_the_same_figures_and_goes_on_like_the_worker_that_never_stopped() -> None:
    half = len(EVENTS) // 2
    clock = [START_MS * 1000]
    steady = Worker(clock, Histograms((10.0, 20.0, 60.0)))
    steady.feed(EVENTS[:half], 0)
    assert steady.live.contact_parts and steady.live.customer_parts and steady.live.agent_parts
    assert any(proc.waiting for proc in steady.live.contact_parts.values()), "a checkpoint with no waiting visit"
    now = clock[0]
    before = figures(steady.live, now)

    histograms = Histograms((10.0, 20.0, 60.0))
    back = restarted(steady, histograms)
    assert figures(back.live, now) == before
    assert histograms.state() == steady.live.observer.state()

    # the same further events into both: the same breaches, the same figures, the same histograms
    steady.breaches.clear()
    steady.feed(EVENTS[half:], half)
    back.feed(EVENTS[half:], half)
    later = clock[0] + 30 * 60 * 1_000_000
    assert figures(back.live, later) == figures(steady.live, later)
    assert back.breaches == steady.breaches and back.breaches, "breaches of the second half"
    assert histograms.state() == steady.live.observer.state()


def test_the_checkpoint_equals_a_rebuild_from_the_stored_values() -> None:
    """What a restart without a checkpoint does (the tables walked) and what the checkpoint gives agree."""
    clock = [START_MS * 1000]
    worker = Worker(clock)
    worker.feed(EVENTS, 0)
    now = clock[0]
    back = restarted(worker)
    rebuilt = Worker(clock)
    stored = [(cid, *codec.decode_contact(value, sync=False))
              for table in worker.tables.values() for cid, value in table.items()]
    rebuilt.live.rebuild_contacts(stored, set(range(PARTITIONS)))
    customers = [(cid, codec.decode(codec.encode_customer(state, p)))
                 for p, proc in worker.live.customer_parts.items() for cid, state in proc.items()]
    rebuilt.live.rebuild_customers(customers, set(range(PARTITIONS)))
    agents = [(aid, p, timeline) for p, proc in worker.live.agent_parts.items() for aid, timeline in proc.agents.items()]
    rebuilt.live.rebuild_agents(agents, set(range(PARTITIONS)))
    assert back.live.document(now, include_all=True) == rebuilt.live.document(now, include_all=True)
    assert back.live.document(now) == worker.live.document(now)


def test_what_the_new_process_supplies_is_not_saved() -> None:
    """Settings, the loader of evicted contacts and the observer come from the new process: a checkpoint holds
    only state (a closure cannot be pickled anyway, and old settings must not come back)."""
    clock = [START_MS * 1000]
    worker = Worker(clock, Histograms((10.0,)))
    worker.feed(EVENTS[:2000], 0)
    saved, extra = checkpoint.loads(worker.live.checkpoint("contacts"))
    state = next(iter(saved.values()))
    assert not {"kpi", "loader", "queue_settings", "intern"} & set(state)
    assert "observer" not in state["aggregates"]
    assert extra == worker.live.observer.state()
    back = restarted(worker, Histograms((10.0,)))
    proc = next(iter(back.live.contact_parts.values()))
    assert proc.loader is not None and proc.aggregates.observer is back.live.observer
    assert proc.open_breaches is proc.aggregates.open  # shared objects stay shared


def test_another_format_is_refused() -> None:
    import pickle

    with pytest.raises(ValueError, match="checkpoint format 0"):
        checkpoint.loads(pickle.dumps((0, {}, None)))
    with pytest.raises(ValueError, match="no side 'queues'"):
        LiveKpis(KpiSettings()).checkpoint("queues")


def test_customers_moved_out_to_their_table_count_as_customers_kept_packed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker keeps only recently changed customers in memory and reads the others back from the customers
    table (``customer_loader_for``), where a replay keeps them packed: the same figures either way."""
    monkeypatch.setattr(processors, "RECENT_CUSTOMERS", 8)  # move out early and often
    packed, tabled = Worker([START_MS * 1000]), Worker([START_MS * 1000], customer_table=True)
    packed.feed(EVENTS, 0)
    tabled.feed(EVENTS, 0)
    now = max(packed.clock[0], tabled.clock[0])
    assert figures(tabled.live, now) == figures(packed.live, now)
    assert sum(len(p.packed) for p in packed.live.customer_parts.values()) > 100  # evicted: kept packed
    assert all(not p.packed for p in tabled.live.customer_parts.values())
    held = sum(len(p.customers) for p in tabled.live.customer_parts.values())
    stored = sum(len(t) for t in tabled.customer_tables.values())
    assert stored > 3 * held, (stored, held)  # the table holds them; memory only the recent ones of each batch
