"""The two stateful halves of the KPI core, each keyed the way Kafka partitions its input.

- :class:`ContactProcessor` owns contacts (key ``contact_id``): visits, waits, handling, surveys, live waiting,
  SLA breaches, and the lifecycle checks that send impossible events to the dead-letter topic.
- :class:`CustomerProcessor` owns customers (key ``customer_id``): repeats and first contact resolution.

Why two: in the live engine they run on differently keyed partitions (contacts on the source topic, customers
on a repartition topic); the single-process :class:`~cxpulse.core.engine.KpiEngine` wires them directly.
Both add their facts to an :class:`~cxpulse.core.aggregates.Aggregates`, and both can rebuild those facts
from their stored state alone (:meth:`restore`), which is what makes a restart lose and double nothing.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass
from typing import Any

from cxpulse.core.aggregates import Aggregates
from cxpulse.core.contact import (
    ANSWERED,
    SURVEY,
    KIND_TYPE,
    ContactState,
    Record,
    Summary,
    Walk,
    contact_facts,
    record_of,
    summary_of,
    walk,
)
from cxpulse.core.customer import CustomerState, customer_facts
from cxpulse.core.measures import Fact
from cxpulse.settings import KpiSettings, QueueSettings


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event refused by the lifecycle rules, ready for the dead-letter topic."""

    kind: str  # metric-safe: "lifecycle"
    reason: str
    event_type: str
    event_id: str
    raw: bytes | None
    source: tuple[str, int, int] | None
    key: bytes | None = None  # the original Kafka key


@dataclass(frozen=True, slots=True)
class Breach:
    """A queue visit whose wait exceeded its threshold: what goes to topic ``sla-breaches``."""

    queue: str
    channel: str
    contact_id: str
    queued_event_id: str
    queued_ts_us: int
    threshold_seconds: float
    breached_at_us: int  # queued + T: the moment of the crossing

    def to_dict(self) -> dict[str, Any]:
        from cxpulse.models.events import format_ts

        return {
            "queue": self.queue,
            "channel": self.channel,
            "contact_id": self.contact_id,
            "visit_id": self.queued_event_id,
            "queued_ts": format_ts(self.queued_ts_us),
            "threshold_seconds": self.threshold_seconds,
            "breached_at": format_ts(self.breached_at_us),
        }


def _diff(aggregates: Aggregates, old: list[Fact], new: list[Fact]) -> None:
    """Apply only what changed between two fact lists (usually a few facts)."""
    if old == new:
        return
    if not old:
        aggregates.apply(new, 1)
        return
    before, after = set(old), set(new)
    if len(before) == len(old) and len(after) == len(new):  # no repeated fact: sets are exact and fast
        gone_set, came_set = before - after, after - before
        if gone_set:
            aggregates.apply(gone_set, -1)
        if came_set:
            aggregates.apply(came_set, 1)
        return
    counted_before, counted_after = Counter(old), Counter(new)
    gone, came = counted_before - counted_after, counted_after - counted_before
    if gone:
        aggregates.apply(gone.elements(), -1)
    if came:
        aggregates.apply(came.elements(), 1)


class ContactProcessor:
    """Contacts of one partition (or of everything, in replay)."""

    def __init__(self, kpi: KpiSettings, aggregates: Aggregates, *, publish_breaches: bool = False) -> None:
        self.kpi = kpi
        cache: dict[tuple[str, str], QueueSettings] = {}

        def queue_settings(queue: str, channel: str) -> QueueSettings:
            found = cache.get((queue, channel))
            if found is None:
                found = cache[(queue, channel)] = kpi.for_queue(queue, channel)
            return found

        self.queue_settings = queue_settings
        self.aggregates = aggregates
        self.publish_breaches = publish_breaches
        self.disorder_us = kpi.allowed_disorder * 1_000_000
        self.contacts: dict[str, ContactState] = {}
        self._facts: dict[str, list[Fact]] = {}
        self.waiting: dict[str, Record] = {}  # contact_id -> queued record of its open visit
        # largest contact-event time seen: the clock of lifecycle checks and of breaches while catching up.
        # Surveys do not move it: their topic is read independently and may run ahead of the contact events.
        self.stream_time = 0
        self.latest_ts = 0  # largest time of any event (contacts and surveys): "now" of a replay
        self.first_ts: int | None = None
        self.dirty: set[str] = set()  # contacts whose stored state changed since the caller last saved
        self.summaries: dict[str, Summary] = {}  # changed FCR summaries for the customer side, by contact
        self._sent_summary: dict[str, Summary] = {}
        self._settle_heap: list[tuple[int, str]] = []
        self._breach_heap: list[tuple[int, str, str]] = []
        self._scheduled: set[str] = set()
        self._has_unfit: set[str] = set()  # contacts holding events that cannot happen (yet)
        self.late_breaches: list[Breach] = []

    # -- events ---------------------------------------------------------------------------------------
    def handle(self, event: Any, raw: bytes | None = None, source: tuple[str, int, int] | None = None,
               key: bytes | None = None) -> bool:
        """Add one validated event; False when it is a duplicate (same ``event_id`` seen before)."""
        rec = record_of(event, raw, source, key)
        contact_id = event.contact_id
        state = self.contacts.get(contact_id)
        if state is None:
            state = self.contacts[contact_id] = ContactState()
        if not state.add(rec):
            return False
        self._note_time(rec)
        heapq.heappush(self._settle_heap, (rec.ts, contact_id))
        self._refresh(contact_id, state)
        return True

    def _note_time(self, rec: Record) -> None:
        """Move the clocks: any event moves ``latest_ts``; only contact events move ``stream_time``."""
        ts = rec.ts
        if ts > self.latest_ts:
            self.latest_ts = ts
        if ts > self.stream_time and rec.kind != SURVEY:
            self.stream_time = ts
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts

    def _refresh(self, contact_id: str, state: ContactState) -> Walk:
        lifecycle = walk(state.records)
        facts = contact_facts(lifecycle, self.queue_settings)
        _diff(self.aggregates, self._facts.get(contact_id, []), facts)
        self._facts[contact_id] = facts
        self.dirty.add(contact_id)
        if lifecycle.unfit:
            self._has_unfit.add(contact_id)
        else:
            self._has_unfit.discard(contact_id)
        waiting = lifecycle.waiting
        if waiting is None:
            self.waiting.pop(contact_id, None)
        else:
            queued = waiting[0]
            self.waiting[contact_id] = queued
            self.aggregates.ensure_key((queued.queue, queued.channel))
            if self.publish_breaches and queued.event_id not in self._scheduled:
                self._scheduled.add(queued.event_id)
                deadline = queued.ts + self.queue_settings(queued.queue, queued.channel).threshold_us
                heapq.heappush(self._breach_heap, (deadline, contact_id, queued.event_id))
        summary = summary_of(contact_id, lifecycle)
        if summary is not None and self._sent_summary.get(contact_id) != summary:
            self._sent_summary[contact_id] = summary
            self.summaries[contact_id] = summary
        if self.publish_breaches:
            self._late_breaches(contact_id, state, lifecycle)
        return lifecycle

    def _late_breaches(self, contact_id: str, state: ContactState, lifecycle: Walk) -> None:
        """A visit answered or abandoned after its threshold, whose breach no timer published: publish it now."""
        for queued, outcome in lifecycle.visits:
            if outcome is None or queued.event_id in state.breaches_published:
                continue
            qs = self.queue_settings(queued.queue, queued.channel)
            if outcome.ts - queued.ts > qs.threshold_us:
                state.breaches_published.add(queued.event_id)
                self.late_breaches.append(self._breach(contact_id, queued))

    def _breach(self, contact_id: str, queued: Record) -> Breach:
        qs = self.queue_settings(queued.queue, queued.channel)
        return Breach(
            queued.queue, queued.channel, contact_id, queued.event_id, queued.ts,
            qs.sl_threshold_seconds, queued.ts + qs.threshold_us,
        )

    # -- time ------------------------------------------------------------------------------------------
    def settle(self) -> list[Rejection]:
        """Reject impossible events once the allowed disorder has passed (stream time minus the allowance)."""
        horizon = self.stream_time - self.disorder_us
        heap = self._settle_heap
        touched: set[str] = set()
        while heap and heap[0][0] < horizon:
            touched.add(heapq.heappop(heap)[1])
        rejections: list[Rejection] = []
        for contact_id in touched:
            state = self.contacts.get(contact_id)
            if state is None:
                continue
            if contact_id in self._has_unfit:
                lifecycle = walk(state.records)
                for rec, why in state.settle(horizon, lifecycle):
                    rejections.append(Rejection("lifecycle", why, KIND_TYPE[rec.kind], rec.event_id, rec.raw, rec.source, rec.key))
                if not walk(state.records).unfit:
                    self._has_unfit.discard(contact_id)
            else:
                state.forget_bytes(horizon)
            self.dirty.add(contact_id)
        return rejections

    def due_breaches(self, now_us: int) -> list[Breach]:
        """Visits still waiting whose wait now exceeds the threshold, each returned once (and marked)."""
        out = self.late_breaches
        self.late_breaches = []
        heap = self._breach_heap
        while heap and heap[0][0] < now_us:
            _, contact_id, queued_id = heapq.heappop(heap)
            queued = self.waiting.get(contact_id)
            state = self.contacts.get(contact_id)
            if queued is None or state is None or queued.event_id != queued_id:
                continue  # answered or abandoned in time (or a late answer will report it)
            if queued_id in state.breaches_published:
                continue
            state.breaches_published.add(queued_id)
            self.dirty.add(contact_id)
            out.append(self._breach(contact_id, queued))
        return out

    def forget(self, now_us: int) -> list[str]:
        """Drop contacts untouched for longer than the retention; their counts stay in the buckets."""
        limit = now_us - self.kpi.contact_retention * 1_000_000
        gone = [cid for cid, st in self.contacts.items() if st.last_ts < limit and cid not in self.waiting]
        for contact_id in gone:
            del self.contacts[contact_id]
            self._facts.pop(contact_id, None)
            self._sent_summary.pop(contact_id, None)
        return gone

    # -- state -----------------------------------------------------------------------------------------
    def restore(self, contact_id: str, state: ContactState) -> None:
        """Load a stored contact (recovery): its facts are recomputed and added, its breaches offered again."""
        self.contacts[contact_id] = state
        for rec in state.records:
            self._note_time(rec)
            if rec.raw is not None or rec.source is not None:
                heapq.heappush(self._settle_heap, (rec.ts, contact_id))
        # every breach of the contact is offered again; the caller filters out those already on the
        # sla-breaches topic (marks stored in the table may predate Kafka's acknowledgement)
        state.breaches_published.clear()
        self._refresh(contact_id, state)
        self.dirty.discard(contact_id)

    def replace(self, contact_id: str, state: ContactState | None) -> None:
        """Put a contact back to ``state`` (its last stored value) or forget it (None).

        Why: when the worker cannot store a contact's new state (a failure of our own), the events of the batch
        that changed it go to the dead-letter topic and the contact must count exactly as its stored state says,
        so the counts in memory never run ahead of what a restart would rebuild."""
        old = self._facts.pop(contact_id, None)
        if old:
            self.aggregates.apply(old, -1)
        self.waiting.pop(contact_id, None)
        self._has_unfit.discard(contact_id)
        self._sent_summary.pop(contact_id, None)
        self.summaries.pop(contact_id, None)
        self.contacts.pop(contact_id, None)
        self.dirty.discard(contact_id)
        if state is not None:
            self.restore(contact_id, state)

    def drain_summaries(self) -> list[Summary]:
        out = list(self.summaries.values())
        self.summaries.clear()
        return out

    def waiting_by_queue(self, now_us: int) -> dict[tuple[str, str], tuple[int, float]]:
        """Live queue state: (queue, channel) -> (waiting, longest_wait_seconds) at ``now_us``."""
        out: dict[tuple[str, str], tuple[int, float]] = {}
        for queued in self.waiting.values():
            key = (queued.queue, queued.channel)
            count, longest = out.get(key, (0, 0.0))
            wait = max(0.0, (now_us - queued.ts) / 1_000_000)
            out[key] = (count + 1, max(longest, wait))
        return out


class CustomerProcessor:
    """Customers of one partition (or of everything, in replay): repeats and FCR."""

    def __init__(self, kpi: KpiSettings, aggregates: Aggregates) -> None:
        self.kpi = kpi
        self.aggregates = aggregates
        self.window_us = kpi.fcr_window * 1_000_000
        self.customers: dict[str, CustomerState] = {}
        self._facts: dict[str, list[Fact]] = {}
        self.dirty: set[str] = set()

    def update(self, summary: Summary) -> None:
        """A contact's FCR summary changed: recompute that customer's facts."""
        state = self.customers.get(summary.customer_id)
        if state is None:
            state = self.customers[summary.customer_id] = CustomerState()
        if state.put(summary):
            self._refresh(summary.customer_id, state)

    def _refresh(self, customer_id: str, state: CustomerState) -> None:
        facts = customer_facts(state, self.window_us)
        _diff(self.aggregates, self._facts.get(customer_id, []), facts)
        self._facts[customer_id] = facts
        self.dirty.add(customer_id)

    def restore(self, customer_id: str, state: CustomerState) -> None:
        self.customers[customer_id] = state
        self._refresh(customer_id, state)
        self.dirty.discard(customer_id)

    def forget(self, now_us: int) -> list[str]:
        """Drop contacts older than twice the FCR window plus the allowance: they can change no count."""
        limit = now_us - 2 * self.window_us - self.kpi.allowed_disorder * 1_000_000
        gone: list[str] = []
        for customer_id, state in list(self.customers.items()):
            before = len(state.contacts)
            state.forget_before(limit)
            if not state.contacts:
                del self.customers[customer_id]
                self._facts.pop(customer_id, None)
                gone.append(customer_id)
            elif len(state.contacts) != before:
                # the dropped contacts' facts lie in pruned buckets; keep the remembered list in step
                self._facts[customer_id] = customer_facts(state, self.window_us)
                self.dirty.add(customer_id)
        return gone


__all__ = ["ANSWERED", "Breach", "ContactProcessor", "CustomerProcessor", "Rejection"]
