"""The KPI core split by Kafka partition, as one live worker holds it.

Why per partition: a worker owns some partitions of the contact topic (and of the customer repartition topic)
and their stored state. Keeping one processor and one set of aggregates per partition means a rebalance only
adds or drops whole partitions, every partition's counts can be rebuilt from its stored state alone, and the
figures of several workers add up to the whole. Still no Faust, Kafka or Redis import: the Faust agents in
:mod:`cxpulse.streams` call this, and unit tests can too.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, ClassVar, Iterable

from cxpulse.units import US_PER_SECOND
from cxpulse.core import checkpoint
from cxpulse.core.aggregates import Aggregates
from cxpulse.core.agent_report import AgentFigures, figures as agent_figures, section as agent_section
from cxpulse.core.agents import AgentProcessor, AgentTimeline
from cxpulse.core.contact import ContactState
from cxpulse.core.customer import CustomerState
from cxpulse.core.engine import build_document, merge_live
from cxpulse.core.measures import FEEDBACK_BREACHES, N_MEASURES, SLA_BREACHES
from cxpulse.core.processors import Breach, ContactProcessor, CustomerProcessor, FeedbackBreach, Rejection
from cxpulse.core.windows import history_us
from cxpulse.models.events import InvalidEvent, format_ts
from cxpulse.settings import KpiSettings


RESTORE_EVICT_EVERY = 8192  # restored contacts between moves of the settled ones out of memory
IDLE_US = 500_000  # a caught-up partition this long without a contact event judges breaches by the wall clock


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class TopicHealth:
    """Pipeline health per source topic: the worker's own counters (never reset while it runs)."""

    processed: int = 0
    duplicates: int = 0
    invalid: Counter[str] = field(default_factory=Counter)  # by kind (metric-safe)


class LiveKpis:
    """Processors and aggregates per partition, and the document over all partitions this worker owns."""

    def __init__(self, kpi: KpiSettings, observer: Any = None, clock: Callable[[], int] = now_us,
                 loader_for: Callable[[int], Callable[[str], ContactState | None]] | None = None,
                 customer_loader_for: Callable[[int], Callable[[str], CustomerState | None]] | None = None) -> None:
        """``observer(facts, sign)`` sees every contact-side fact (e.g. Prometheus histograms); if it has a
        ``reset()``, that is called before a rebuild re-observes everything. ``clock`` is the wall clock in
        microseconds: injectable, so unit tests drive the breach clock and idle timers without sleeping."""
        self.kpi = kpi
        self.clock = clock
        # where a partition's evicted contacts are read back from (the worker's table); None: kept packed
        self.loader_for = loader_for
        self.customer_loader_for = customer_loader_for  # the same for customers (the worker's customers table)
        self.observer = observer
        self.offsets: dict[tuple[str, int], int] = {}  # last offset processed per source partition
        self.last_contact_wall_us: dict[int, int] = {}  # wall clock of each partition's last contact event
        self.bucket_us = kpi.bucket_seconds * US_PER_SECOND
        self.contact_parts: dict[int, ContactProcessor] = {}
        self.customer_parts: dict[int, CustomerProcessor] = {}
        self.health: dict[str, TopicHealth] = {}
        # breaches already on the sla-breaches topic, as (contact_id, visit_id): a visit id is unique per contact
        self.published_visits: set[tuple[str, str]] = set()
        self.breaches_published_total = 0
        # contract v2: feedback breaches already published, as (contact_id, survey event id)
        self.published_feedback: set[tuple[str, str]] = set()
        self.feedback_breaches_published_total = 0
        self.last_event_ts_us = 0  # event time of the newest event processed
        self.last_processed_wall_us = 0
        # the agent side (topic agent-events, key agent_id): one processor per partition, like the contacts
        self.agent_parts: dict[int, AgentProcessor] = {}
        self.agent_listing = False  # the document lists agents by name (wallboard.show_agents)

    # -- partitions ------------------------------------------------------------------------------------
    def _aggregates(self, observer: Any = None) -> Aggregates:
        """A partition's new aggregates, pruned at once where the maintenance timer's :meth:`prune` will prune.

        Why at once: a fact before that limit then makes no bucket (:meth:`Aggregates._fold_pruned`) from the
        first batch on. A worker that starts behind a backlog of days (a new deployment reading its topics from
        the start, a restart after an outage) otherwise made every bucket of its first minute's days before the
        first prune deleted them unread: a simulated week, ~110 MB of Python's heap that stayed the process's
        (docs/performance.md, session 19)."""
        now = self.clock()
        aggregates = Aggregates(self.bucket_us, now, observer)
        aggregates.prune(now - history_us(self.kpi))
        return aggregates

    def contacts(self, partition: int) -> ContactProcessor:
        proc = self.contact_parts.get(partition)
        if proc is None:
            proc = self.contact_parts[partition] = ContactProcessor(
                self.kpi, self._aggregates(self.observer), publish_breaches=True,
                loader=self.loader_for(partition) if self.loader_for is not None else None,
            )
        return proc

    def customers(self, partition: int) -> CustomerProcessor:
        proc = self.customer_parts.get(partition)
        if proc is None:
            proc = self.customer_parts[partition] = CustomerProcessor(
                self.kpi, self._aggregates(),
                # the all window counts every customer once, as a replay does: pruned contacts stay as customer
                # ids (distinct.py); a set entry per customer, the price of an exact figure
                keep_all_customers=True,
                loader=self.customer_loader_for(partition) if self.customer_loader_for is not None else None,
            )
        return proc

    def rebuild_contacts(self, stored: Iterable[tuple[str, int, ContactState]], assigned: set[int]) -> int:
        """Replace the contact side by what the recovered table holds for the ``assigned`` partitions:
        ``(contact_id, partition, state)`` for each stored contact."""
        self.contact_parts = {}
        if hasattr(self.observer, "reset"):
            self.observer.reset()
        count = 0
        for contact_id, partition, state in stored:
            if partition not in assigned:
                continue
            # published marks in the table are not trusted: a mark may have been saved before Kafka acknowledged
            # the record. The sla-breaches topic, read before the timer starts, decides (published_visits).
            self.contacts(partition).restore(contact_id, state)
            count += 1
            if self.loader_for is not None and count % RESTORE_EVICT_EVERY == 0:
                # a week is ~470k contacts: evicting the settled ones only at the end held them all as objects
                # at once (a worker restarted after a simulated week peaked at 2.6 GiB, measured); their facts are
                # counted already, and the table holds them for a late event
                for proc in self.contact_parts.values():
                    proc.evict_settled(keep_packed=False)
                self._prune_restored(self.contact_parts.values())
        restored_at = self.clock()
        if self.loader_for is not None:  # the table holds every contact: keep only the unsettled ones
            for proc in self.contact_parts.values():
                proc.evict_settled(keep_packed=False)
        for partition in assigned:
            self.contacts(partition)
            self.last_contact_wall_us[partition] = restored_at  # its backlog, if any, is read from now on
        return count

    def _prune_restored(self, procs: Iterable[ContactProcessor] | Iterable[CustomerProcessor]) -> None:
        """During a rebuild: forget the buckets and distinct-customer entries no window can reach any more, as the
        maintenance timer's :meth:`prune` does seconds after the worker is ready (the same wall-clock limit, or
        an earlier one: never a bucket a document could read). Why now: a rebuild restores every stored contact
        and customer, so it filled buckets and the index back to the start of the table, and the memory they
        pinned stayed with the process after the first prune (14 simulated days: ready at 1,383 MiB, measured)."""
        limit = self.clock() - history_us(self.kpi)
        for proc in procs:
            proc.aggregates.prune(limit)

    def agents(self, partition: int) -> AgentProcessor:
        proc = self.agent_parts.get(partition)
        if proc is None:
            proc = self.agent_parts[partition] = AgentProcessor(self.kpi)
        return proc

    def rebuild_agents(self, stored: Iterable[tuple[str, int, AgentTimeline]], assigned: set[int]) -> int:
        """Replace the agent side by what the recovered table holds for the ``assigned`` partitions:
        ``(agent_id, partition, timeline)`` for each stored agent (every figure is derived from the timelines)."""
        self.agent_parts = {}
        count = 0
        for agent_id, partition, timeline in stored:
            if partition in assigned:
                self.agents(partition).restore(agent_id, timeline)
                count += 1
        for partition in assigned:
            self.agents(partition)
        return count

    def handle_agent(self, topic: str, partition: int, event: Any, offset: int) -> bool:
        """One validated ``agent.state`` event from ``topic``/``partition``; False for a duplicate."""
        health = self.topic_health(topic)
        self.offsets[(topic, partition)] = offset
        proc = self.agents(partition)
        accepted = proc.handle(event)
        if accepted:
            health.processed += 1
            if proc.stream_time > self.last_event_ts_us:
                self.last_event_ts_us = proc.stream_time
        else:
            health.duplicates += 1
        self.last_processed_wall_us = self.clock()
        return accepted

    def agent_figures(self, now: int) -> AgentFigures | None:
        """This worker's raw agent figures at ``now`` (None: no agent event seen by any of its partitions)."""
        if not any(proc.first_ts is not None for proc in self.agent_parts.values()):
            return None
        contact_aggregates = [p.aggregates for p in self.contact_parts.values()]
        return agent_figures(self.kpi, self.agent_parts.values(), contact_aggregates, now, listing=self.agent_listing)

    def rebuild_customers(self, stored: Iterable[tuple[str, dict[str, Any]]], assigned: set[int]) -> int:
        """Replace the customer side by what the recovered table holds for the ``assigned`` partitions."""
        self.customer_parts = {}
        count = 0
        for customer_id, value in stored:
            partition = value["p"]
            if partition in assigned:
                self.customers(partition).restore(customer_id, CustomerState.from_dict(value))
                count += 1
                if count % RESTORE_EVICT_EVERY == 0:
                    self._prune_restored(self.customer_parts.values())
        for partition in assigned:
            self.customers(partition)
        return count

    # -- checkpoints (a clean stop and the next start) -----------------------------------------------------
    SIDES: ClassVar[tuple[str, ...]] = ("contacts", "customers", "agents")

    def _side(self, side: str) -> dict[int, Any]:
        if side == "contacts":
            return self.contact_parts
        if side == "customers":
            return self.customer_parts
        if side == "agents":
            return self.agent_parts
        raise ValueError(f"no side {side!r}: one of {', '.join(self.SIDES)}")

    def checkpoint(self, side: str) -> bytes:
        """Every partition of one side as bytes (:mod:`cxpulse.core.checkpoint`), for :meth:`load_checkpoint`
        in the next process. The contact side carries the observer's sums too (if it has ``state()``): they
        are over all its partitions, which is why a checkpoint is only taken whole."""
        return checkpoint.dumps(self._side(side), self._checkpoint_extra(side))

    def write_checkpoint(self, side: str, file: BinaryIO) -> None:
        """:meth:`checkpoint` written to ``file`` as it is made (:func:`cxpulse.core.checkpoint.dump`)."""
        checkpoint.dump(self._side(side), self._checkpoint_extra(side), file)

    def _checkpoint_extra(self, side: str) -> Any:
        if side == "contacts" and hasattr(self.observer, "state"):
            return self.observer.state()
        return None

    def load_checkpoint(self, side: str, data: bytes) -> int:
        """Replace one side by a checkpoint of it (instead of ``rebuild_*`` from the tables); returns the number
        of partitions. The caller has checked that the checkpoint is the state of the tables as they are."""
        saved, extra = checkpoint.loads(data)
        return self.load_saved(side, saved, extra)

    def load_saved(self, side: str, saved: dict[int, dict[str, Any]], extra: Any) -> int:
        """:meth:`load_checkpoint` of a checkpoint already read (:func:`cxpulse.core.checkpoint.loads`)."""
        parts = self._side(side)
        parts.clear()
        make = {"contacts": self.contacts, "customers": self.customers, "agents": self.agents}[side]
        for partition, state in saved.items():
            checkpoint.load_processor(make(partition), state)
        if side == "contacts":
            if hasattr(self.observer, "load_state"):
                self.observer.load_state(extra)
            elif hasattr(self.observer, "reset"):
                self.observer.reset()
            restored_at = self.clock()
            for partition in saved:
                self.last_contact_wall_us[partition] = restored_at  # its backlog, if any, is read from now on
        return len(saved)

    # -- events ----------------------------------------------------------------------------------------
    def topic_health(self, topic: str) -> TopicHealth:
        found = self.health.get(topic)
        if found is None:
            found = self.health[topic] = TopicHealth()
        return found

    def note_invalid(self, topic: str, kind: str) -> None:
        self.topic_health(topic).invalid[kind] += 1

    def admit(self, event: Any) -> None:
        """Live plausibility (events.md): an event more than ``max_clock_skew`` ahead of the wall clock is
        invalid. Why here and not in the models: a replay has no wall clock and accepts it; live, one such
        event would move its partition's stream time years ahead and make every later event look late."""
        limit = self.clock() + self.kpi.max_clock_skew * US_PER_SECOND
        if event.ts_us > limit:
            raise InvalidEvent(
                "in_the_future",
                f"ts: {format_ts(event.ts_us)} is more than {self.kpi.max_clock_skew} s ahead of the pipeline's "
                f"clock ({format_ts(self.clock())})",
            )

    def handle(self, topic: str, partition: int, event: Any, raw: bytes, offset: int, key: bytes | None = None) -> bool:
        """One validated event from ``topic``/``partition`` (``key``: its Kafka key); False for a duplicate."""
        health = self.topic_health(topic)
        self.offsets[(topic, partition)] = offset
        proc = self.contacts(partition)
        if not event.type.startswith("survey."):
            self.last_contact_wall_us[partition] = self.clock()
        accepted = proc.handle(event, raw, (topic, partition, offset), key)
        if accepted:
            health.processed += 1
            ts = proc.latest_ts
            if ts > self.last_event_ts_us:
                self.last_event_ts_us = ts
        else:
            health.duplicates += 1
            # a duplicate may be a re-delivery after a crash: send the contact's summary again (idempotent), and
            # store the contact again. Why: the table writer puts a batch into the local RocksDB before its
            # changelog records are sent, so after a kill -9 the restarted worker's own store may hold a state
            # that never reached the changelog; its events, delivered again, look like duplicates, and unless the
            # state is stored again the commit moves past them while the changelog (what any other worker that
            # takes the partition reads) never had them. Storing an unchanged state again is idempotent.
            summary = proc.summary(event.contact_id)
            if summary is not None:
                proc.summaries[event.contact_id] = summary
            proc.dirty.add(event.contact_id)  # handle() read it back into memory to tell it was a duplicate
        self.last_processed_wall_us = self.clock()
        return accepted

    def settle(self, partition: int) -> list[Rejection]:
        rejections = self.contacts(partition).settle()
        for rejection in rejections:
            source_topic = rejection.source[0] if rejection.source else "contact-events"
            self.note_invalid(source_topic, rejection.kind)
        return rejections

    def due_breaches(self, now: int, caught_up: Callable[[int], bool] | None = None) -> list[Breach]:
        """Breaches to publish now, over all partitions, never one already published.

        The clock a partition judges its still-waiting visits by is :meth:`breach_clock`; breaches found by a
        late answer or abandon go out at once either way."""
        out: list[Breach] = []
        for partition, proc in self.contact_parts.items():
            clock = self.breach_clock(partition, now, caught_up)
            for breach in proc.due_breaches(clock):
                visit = (breach.contact_id, breach.queued_event_id)
                if visit not in self.published_visits:
                    self.published_visits.add(visit)
                    out.append(breach)
        self.breaches_published_total += len(out)
        return out

    def due_feedback_breaches(self, now: int, caught_up: Callable[[int], bool] | None = None) -> list[FeedbackBreach]:
        """Detractor feedback whose target passed without a follow-up (contract v2), over all partitions, each
        once: never one in :attr:`published_feedback` (after a restart, the caller fills it from what was
        published). Judged by the same clock as SLA breaches (:meth:`breach_clock`)."""
        out: list[FeedbackBreach] = []
        for partition, proc in self.contact_parts.items():
            for breach in proc.due_feedback_breaches(self.breach_clock(partition, now, caught_up)):
                key = (breach.contact_id, breach.survey_event_id)
                if key not in self.published_feedback:
                    self.published_feedback.add(key)
                    out.append(breach)
        self.feedback_breaches_published_total += len(out)
        return out

    def breach_clock(self, partition: int, now: int, caught_up: Callable[[int], bool] | None) -> int:
        """When has a still-waiting contact of ``partition`` waited past its threshold?

        Event time moved on by arrivals: the partition's stream time plus the real time since its last contact
        event. In live operation that is the wall clock. While a backlog or a burst of historical events is read,
        it advances at the pace of event time, so an answer still in the next batch is never overtaken (a
        false breach). Once the partition has no unread event and has been idle for ``IDLE_US``, it is the wall
        clock, so a contact left waiting is published within a second of its crossing.
        """
        if caught_up is None:  # no Kafka to ask (tests, tools): take ``now`` as given
            return now
        proc = self.contact_parts[partition]
        idle = now - self.last_contact_wall_us.get(partition, now)
        if idle >= IDLE_US and caught_up(partition):
            return now
        return min(now, proc.stream_time + max(idle, 0))

    def prune(self, now: int | None = None) -> None:
        """Forget the buckets and distinct-customer entries no window can reach any more (``history_us``), as a
        document read does. The maintenance timer calls it: the Redis read model's partials do not prune, so a
        worker whose document nobody read kept every bucket and index entry since its start (a simulated week:
        316 MiB of buckets and 235 MiB of index, measured from its checkpoint)."""
        at = self.clock() if now is None else now
        history = history_us(self.kpi)
        for part in self.parts():
            part.advance(at)
            part.prune(at - history)

    # -- reading ---------------------------------------------------------------------------------------
    def stream_time(self) -> int:
        return max((proc.latest_ts for proc in self.contact_parts.values()), default=0)

    def parts(self) -> list[Aggregates]:
        return [p.aggregates for p in self.contact_parts.values()] + [p.aggregates for p in self.customer_parts.values()]

    def waiting(self, now: int) -> dict[tuple[str, str], tuple[int, float]]:
        merged: dict[tuple[str, str], tuple[int, float]] = {}
        for proc in self.contact_parts.values():
            for key, (count, longest) in proc.waiting_by_queue(now).items():
                c0, l0 = merged.get(key, (0, 0.0))
                merged[key] = (c0 + count, max(l0, longest))
        return merged

    def document(self, now: int | None = None, *, include_all: bool = False) -> dict[str, Any]:
        """The KPI document over this worker's partitions; ``now`` defaults to the wall clock."""
        at = self.clock() if now is None else now
        first = min((p.first_ts for p in self.contact_parts.values() if p.first_ts is not None), default=None)
        figures = self.agent_figures(at)
        document = build_document(
            self.kpi, self.parts(), self.waiting(at), at,
            all_window=(first, at + 1) if include_all and first is not None else None,
            awaiting=self.awaiting(at),
        )
        if figures is not None:
            document["agents"] = agent_section(self.kpi, figures)
        return document

    def awaiting(self, now: int) -> dict[tuple[str, str], tuple[int, float]]:
        """Detractor feedback awaiting a follow-up per (queue, channel), with the oldest's age (contract v2)."""
        merged: dict[tuple[str, str], tuple[int, float]] = {}
        for proc in self.contact_parts.values():
            merge_live(merged, proc.awaiting_by_queue(now))
        return merged

    def totals(self) -> dict[tuple[str, str], list[int]]:
        """Every count since start per (queue, channel), for Prometheus counters (facts up to now)."""
        out: dict[tuple[str, str], list[int]] = {}
        for part in self.parts():
            for key, counts in part.totals.items():
                into = out.setdefault(key, [0] * len(counts))
                for index, value in enumerate(counts):
                    into[index] += value
            for key, breaches in part.open_breaches_before(part.now).items():  # visits waiting past T
                out.setdefault(key, [0] * N_MEASURES)[SLA_BREACHES] += breaches
            for key, breaches in part.awaiting_breaches_before(part.now).items():  # feedback past its target
                out.setdefault(key, [0] * N_MEASURES)[FEEDBACK_BREACHES] += breaches
        return out

    def partial(self, worker_id: str, now: int | None = None) -> dict[str, Any]:
        """This worker's raw counts per window (see :mod:`cxpulse.core.partials`), for merging with others."""
        from cxpulse.core.partials import partial

        at = self.clock() if now is None else now
        figures = self.agent_figures(at)
        out = partial(self.kpi, self.parts(), self.waiting(at), at, worker_id, self.awaiting(at))
        if figures is not None:
            out["agents"] = figures.to_json()
        return out
