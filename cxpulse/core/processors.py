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
import itertools
from collections import Counter, OrderedDict
from collections.abc import MutableMapping
from typing import Any, Callable, Final

import msgspec

from cxpulse.core.aggregates import Aggregates, Key
from cxpulse.core.contact import (
    ANSWERED,
    CHANNEL,
    FOLLOWED,
    ID,
    KIND,
    KIND_TYPE,
    QUEUE,
    QUEUED,
    SURVEY,
    ENDED,
    FEEDBACK_RANK,
    TS,
    A,
    B,
    C,
    US,
    RANK,
    ContactState,
    QueueLookup,
    Record,
    Summary,
    Walk,
    contact_facts,
    ended_facts,
    feedback_of,
    followed_up_facts,
    is_detractor,
    outcome_facts,
    record_of,
    resolution_facts,
    survey_attribution,
    survey_facts,
    walk,
)
from cxpulse.core.distinct import DistinctCustomers
from cxpulse.core.due_queue import DueQueue
from cxpulse.core import measures as m
from cxpulse.core.customer import CustomerState, customer_facts
from cxpulse.core.measures import Fact
from cxpulse.core.outcomes import Breach, FeedbackBreach, Rejection
from cxpulse.core.windows import history_us
from cxpulse.settings import KpiSettings, QueueSettings

# customers kept as objects with their facts, per processor (a worker: per partition): a contact's summary changes
# twice within minutes (queued, then ended); a 66k-contact day changes ~60 customers per partition in 10 minutes
RECENT_CUSTOMERS = 1024
_PACK: Final = msgspec.msgpack.Encoder().encode
_UNPACK: Final = msgspec.msgpack.Decoder().decode





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
    """Contacts of one partition (or of everything, in replay).

    Memory (Engine v2): only contacts that can still change cheaply live in :attr:`contacts` as objects: those
    waiting, holding an event that may still be refused, or with a contact event within the allowed disorder
    (feedback alone keeps none: see :meth:`_leaves`). Once a contact
    is settled, :meth:`evict` moves it out: into :attr:`settled` as packed bytes (replay), or nowhere (the live
    worker, whose table on disk holds every contact and is read back through ``loader`` when an event for an
    evicted contact arrives). Counts never need the contact again unless one of its events arrives.
    """

    def __init__(self, kpi: KpiSettings, aggregates: Aggregates, *, publish_breaches: bool = False,
                 loader: Callable[[str], ContactState | None] | None = None) -> None:
        self.kpi = kpi
        # the settings of each (queue, channel), resolved once; ``_settings`` reads them in this class (a native
        # call), ``queue_settings`` is the same lookup as a function for the walk's facts (contact.contact_facts)
        self._settings_cache: dict[tuple[str, str], QueueSettings] = {}
        self.queue_settings: QueueLookup = self._settings
        # queue and channel names shared by every record (record_of)
        self.names: dict[str, str] = {}
        self.aggregates = aggregates
        self.publish_breaches = publish_breaches
        self.disorder_us = kpi.allowed_disorder * US
        self.contacts: dict[str, ContactState] = {}
        self.settled: MutableMapping[str, bytes] = {}  # evicted contacts, packed (when no ``loader`` holds them)
        self.loader = loader
        self.waiting: dict[str, Record] = {}  # contact_id -> queued record of its open visit
        self.open_breaches = aggregates.open  # (queue, channel) -> contact_id -> queued + T of its open visit
        # largest contact-event time seen: the clock of lifecycle checks and of breaches while catching up.
        # Surveys do not move it: their topic is read independently and may run ahead of the contact events.
        self.stream_time = 0
        self.latest_ts = 0  # largest time of any event (contacts and surveys): "now" of a replay
        self.first_ts: int | None = None
        # a replay (KpiEngine) sets these: its "now" is the newest event time, so an event that moves it moves
        # the aggregates to it (but not past ``now_until``, the instant a document will be read at) before its own
        # facts are applied. Why: applied first, each fact of the usual in-order event lay after the aggregates'
        # now and took the future road (a code, a heap entry, a pop and a decode at the next event): 2.7 facts per
        # event of a simulated day. At now, they join their buckets at the next advance, without a heap. The live
        # engine moves its aggregates by the clock instead (LiveKpis), and leaves ``moves_now`` False.
        self.moves_now = False
        self.now_until: int | None = None
        self.dirty: set[str] = set()  # contacts whose stored state changed since the caller last saved
        self.summaries: dict[str, Summary] = {}  # changed FCR summaries for the customer side, by contact
        self._settle = DueQueue()  # (event time, contact id) of every event, taken once the disorder passed it
        self._breach_heap: list[tuple[int, str, str]] = []
        self._scheduled: set[tuple[str, str]] = set()  # (contact_id, queued id): ids are unique per contact only
        self.evictable: set[str] = set()
        # settled and saved, yet kept as objects, oldest first, up to ``evict``'s ``keep``: the worker's contacts
        # that are likely to see another event soon (an end ~5 minutes after the answer, a survey), which would
        # otherwise be read back from RocksDB and decoded (see :meth:`evict`)
        self.lingering: dict[str, None] = {}
        self.late_breaches: list[Breach] = []
        # contract v2, closed-loop feedback: detractor feedback awaiting a follow-up, by contact then survey id
        # (its key, for Aggregates.awaiting); the breach timer's heap; what was published (once per survey)
        self.awaiting = aggregates.awaiting
        self.awaiting_by_contact: dict[str, dict[str, tuple[str, str]]] = {}
        self._feedback_heap: list[tuple[int, str, str]] = []
        self.feedback_published: set[tuple[str, str]] = set()
        self.late_feedback_breaches: list[FeedbackBreach] = []
        # feedback that stopped awaiting because it passed the retention (_forget_awaiting), by contact then
        # survey id: its breach is a fact of its own in the buckets, which a follow-up arriving after all must
        # take back (the contact's own facts then hold the outcome), and a recompute must not make it await again
        self.expired_feedback: dict[str, dict[str, tuple[Key, int]]] = {}

    def _settings(self, queue: str, channel: str) -> QueueSettings:
        """The settings of ``queue`` on ``channel`` (resolved once)."""
        found = self._settings_cache.get((queue, channel))
        if found is None:
            found = self._settings_cache[(queue, channel)] = self.kpi.for_queue(queue, channel)
        return found

    # -- events ---------------------------------------------------------------------------------------
    def handle(self, event: Any, raw: bytes | None = None, source: tuple[str, int, int] | None = None,
               key: bytes | None = None) -> bool:
        """Add one validated event; False when it is a duplicate (same ``event_id`` seen for this contact)."""
        rec = record_of(event, self.names)
        contact_id = event.contact_id
        state = self.contacts.get(contact_id)
        if state is None:
            state = self._load(contact_id)
            if state is None:
                state = ContactState()
            self.contacts[contact_id] = state
        if state.has(rec[ID]):
            # a settled contact read back for a duplicate (a re-delivery after a crash) goes out again; no event
            # of it reaches settle() to say so
            if contact_id not in self.dirty and self._leaves(state, self.stream_time - self.disorder_us):
                self.evictable.add(contact_id)
            return False
        ts = rec[TS]
        if ts > self.latest_ts:  # _note_time inlined for the usual event: it moves the clocks forward
            self.latest_ts = ts
            if rec[RANK] < FEEDBACK_RANK:  # a contact event (surveys and follow-ups come on their own topic)
                self.stream_time = ts
            if self.first_ts is None:
                self.first_ts = ts
            if self.moves_now:
                until = self.now_until
                self.aggregates.advance(ts if until is None or ts < until else until)
        else:
            self._note_time(ts, rec[KIND])
        if raw is not None or source is not None:
            state.remember(rec[ID], raw, source, key)
        self._settle.push(ts, contact_id)
        if contact_id in self.evictable:
            self.evictable.discard(contact_id)
        if contact_id in self.lingering:  # settle() may have filed it as evictable again meanwhile: both
            del self.lingering[contact_id]
        records = state.records
        kind = rec[KIND]
        last = not records or rec > records[-1]
        if not state.unfit and (last or _before_feedback_only(records, rec)) and state.fits(kind) and (
            kind != FOLLOWED or _has_survey(records, rec[A])
        ):
            if last:
                records.append(rec)
            else:
                state.insert(rec)
            if ts > state.last_ts:
                state.last_ts = ts
            self._step(contact_id, state, rec)
        else:
            self._recompute(contact_id, state, rec)
        self.dirty.add(contact_id)
        if kind == SURVEY or kind == FOLLOWED:
            # feedback of a contact whose contact events are settled (or not read yet: a worker catching up a
            # backlog may read the survey topic hours ahead of them): nothing keeps it in memory (see _leaves)
            if self._leaves(state, self.stream_time - self.disorder_us):
                self.evictable.add(contact_id)
        return True

    @staticmethod
    def _leaves(state: ContactState, horizon: int) -> bool:
        """May ``state`` leave memory (once saved): nothing waiting, nothing that may still be refused, and its
        newest contact event older than the allowed disorder (``horizon``).

        Why not its newest event of any kind: surveys and follow-ups are read from their own topic, which a worker
        catching up a backlog reads far ahead of the contact events (round-robin over topics, and there are ~13x
        fewer surveys). Held until the stream time reached them, up to ~26k contacts of two simulated days were
        objects at once (most with no contact event yet; a few hundred with this rule, ``bench/days.py``, session
        9; the worker's RSS after the simulated week: 467 MiB against 532, see docs/performance.md). Nothing at the
        horizon needs a fit contact: its feedback's original bytes stay in the stored state, which an event that
        makes it unfit loads again (with them) for the dead-letter topic."""
        return state.waiting is None and not state.unfit and state.last_contact_ts() < horizon

    def _note_time(self, ts: int, kind: str) -> None:
        """Move the clocks: any event moves ``latest_ts``; only contact events move ``stream_time`` (not surveys
        nor follow-ups: their topic is read independently)."""
        if ts > self.latest_ts:
            self.latest_ts = ts
        if ts > self.stream_time and kind != SURVEY and kind != FOLLOWED:
            self.stream_time = ts
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts

    def _load(self, contact_id: str) -> ContactState | None:
        packed = self.settled.pop(contact_id, None)
        if packed is not None:
            return unpack_contact(packed)
        if self.loader is not None:
            return self.loader(contact_id)
        return None

    def _step(self, contact_id: str, state: ContactState, rec: Record) -> None:
        """One in-order event: the lifecycle moves one step; only that step's facts change (see contact.py)."""
        kind = rec[KIND]
        facts: list[Fact] = []
        add = facts.append
        if kind == QUEUED:
            queue, channel = rec[QUEUE], rec[CHANNEL]
            qs = self._settings(queue, channel)
            add((m.OFFERED, rec[TS], queue, channel, 1))
            state.waiting = state.last_queued = rec
            self._now_waiting(contact_id, rec, qs)
            if state.first_queued is None:
                state.first_queued = rec
                add((m.CONTACTS, rec[TS], queue, channel, 1))
                self._summary_changed(contact_id, state)
        elif kind == SURVEY:
            last = state.last_queued
            queue, channel = (m.UNKNOWN, m.UNKNOWN) if last is None else (last[QUEUE], last[CHANNEL])
            survey_facts(rec, queue, channel, add)
            if is_detractor(rec):
                add((m.DETRACTOR_FEEDBACK, rec[TS], queue, channel, 1))
                self._now_awaiting(contact_id, rec, queue, channel)
        elif kind == ENDED:
            state.in_service -= 1
            ended_facts(rec, self._settings(rec[QUEUE], rec[CHANNEL]), add)
            if not rec[C]:
                first = state.first_queued
                assert first is not None  # an end follows an answer, which follows a queued event
                previous = state.final
                if previous is not None and previous[1]:  # a later final end replaces the earlier one
                    retract: list[Fact] = []
                    resolution_facts((previous[0], 0, "", "", previous[2], previous[3], None, True, False), first[TS],
                                     retract.append)
                    self.aggregates.apply(retract, -1)
                resolution_facts(rec, first[TS], add)
                state.final = (rec[TS], rec[B], rec[QUEUE], rec[CHANNEL])
                self._summary_changed(contact_id, state)
        elif kind == FOLLOWED:
            self._followed_up(contact_id, state, rec, add)
        else:  # answered or abandoned: the open visit closes
            queued = state.waiting
            assert queued is not None  # fits() said so
            qs = self._settings(queued[QUEUE], queued[CHANNEL])
            if outcome_facts(queued, rec, qs, add) > qs.threshold_us:
                add((m.SLA_BREACHES, queued[TS] + qs.threshold_us, queued[QUEUE], queued[CHANNEL], 1))
                if self.publish_breaches and queued[ID] not in state.breaches_published:
                    state.mark(queued[ID])
                    self.late_breaches.append(self._breach(contact_id, queued))
            if kind == ANSWERED:
                state.in_service += 1
            state.waiting = None
            self._not_waiting(contact_id)
        self.aggregates.apply(facts, 1)

    def _followed_up(self, contact_id: str, state: ContactState, rec: Record, add: Callable[[Fact], None]) -> None:
        """An in-order follow-up (its survey is among the records, ``handle`` checked): the first one of a
        detractor feedback closes the loop; any other changes nothing (kpis.md)."""
        survey_id = rec[A]
        survey: Record | None = None
        queued: list[Record] = []
        for other in state.records:
            kind = other[KIND]
            if kind == QUEUED:
                queued.append(other)
            elif other[ID] == survey_id and kind == SURVEY:
                survey = other
            elif kind == FOLLOWED and other[A] == survey_id and other is not rec:
                return  # followed up before: this one changes nothing
        if survey is None or not is_detractor(survey):
            return
        queue, channel = survey_attribution(queued, survey[TS])
        target = self._settings(queue, channel).feedback_target_us
        followed_up_facts(survey, rec, queue, channel, target, add)
        self._not_awaiting(contact_id, survey_id)
        self._unexpire(contact_id, survey_id)
        if self.publish_breaches and rec[TS] > survey[TS] + target:
            self._late_feedback(contact_id, survey, queue, channel, target)

    def _now_awaiting(self, contact_id: str, survey: Record, queue: str, channel: str) -> None:
        """A detractor feedback without a follow-up: live, until one comes (its breach at survey ts + target)."""
        key = (queue, channel)
        deadline = survey[TS] + self._settings(queue, channel).feedback_target_us
        self.aggregates.ensure_key(key)
        self.awaiting.setdefault(key, {})[(contact_id, survey[ID])] = (survey[TS], deadline)
        self.awaiting_by_contact.setdefault(contact_id, {})[survey[ID]] = key
        if self.publish_breaches and (contact_id, survey[ID]) not in self.feedback_published:
            heapq.heappush(self._feedback_heap, (deadline, contact_id, survey[ID]))

    def _not_awaiting(self, contact_id: str, survey_id: str) -> None:
        mine = self.awaiting_by_contact.get(contact_id)
        if mine is None:
            return
        key = mine.pop(survey_id, None)
        if not mine:
            del self.awaiting_by_contact[contact_id]
        if key is not None:
            entries = self.awaiting.get(key)
            if entries is not None:
                entries.pop((contact_id, survey_id), None)
                if not entries:
                    del self.awaiting[key]

    def _sync_awaiting(self, contact_id: str, lifecycle: Walk) -> None:
        """Adopt a full walk's detractor feedback: which surveys await a follow-up, under which key."""
        for survey_id in list(self.awaiting_by_contact.get(contact_id, ())):
            self._not_awaiting(contact_id, survey_id)
        if not lifecycle.surveys:
            return
        expired = self.expired_feedback.get(contact_id, {})
        for survey, queue, channel, first in feedback_of(lifecycle):
            if first is None:
                if survey[ID] not in expired:  # past the retention: its breach stands as a fact already
                    self._now_awaiting(contact_id, survey, queue, channel)
                continue
            self._unexpire(contact_id, survey[ID])
            if self.publish_breaches:
                target = self._settings(queue, channel).feedback_target_us
                if first[TS] > survey[TS] + target:
                    self._late_feedback(contact_id, survey, queue, channel, target)

    def _late_feedback(self, contact_id: str, survey: Record, queue: str, channel: str, target_us: int) -> None:
        """A follow-up after the target, whose breach no timer published: publish it now (once)."""
        if (contact_id, survey[ID]) in self.feedback_published:
            return
        self.feedback_published.add((contact_id, survey[ID]))
        self.late_feedback_breaches.append(FeedbackBreach(
            queue, channel, contact_id, survey[ID], survey[TS], target_us // US, survey[TS] + target_us))

    def due_feedback_breaches(self, now_us: int) -> list[FeedbackBreach]:
        """Detractor feedback still awaiting a follow-up whose target passed before ``now_us``, each once."""
        out = self.late_feedback_breaches
        self.late_feedback_breaches = []
        heap = self._feedback_heap
        while heap and heap[0][0] < now_us:
            deadline, contact_id, survey_id = heapq.heappop(heap)
            key = self.awaiting_by_contact.get(contact_id, {}).get(survey_id)
            if key is None or (contact_id, survey_id) in self.feedback_published:
                continue  # followed up in time (or a late follow-up reported it)
            survey_ts, at = self.awaiting[key][(contact_id, survey_id)]
            if at != deadline:
                continue  # re-attributed since: its own heap entry stands
            self.feedback_published.add((contact_id, survey_id))
            out.append(FeedbackBreach(key[0], key[1], contact_id, survey_id, survey_ts, (at - survey_ts) // US, at))
        return out

    def awaiting_by_queue(self, now_us: int) -> dict[tuple[str, str], tuple[int, float]]:
        """Live feedback (v2): (queue, channel) -> (awaiting follow-up, oldest awaiting in seconds) at ``now_us``."""
        out: dict[tuple[str, str], tuple[int, float]] = {}
        for key, entries in self.awaiting.items():
            if entries:
                oldest = min(survey_ts for survey_ts, _ in entries.values())
                out[key] = (len(entries), max(0.0, (now_us - oldest) / US))
        return out

    def _now_waiting(self, contact_id: str, queued: Record, qs: QueueSettings) -> None:
        self._not_waiting(contact_id)
        self.waiting[contact_id] = queued
        key = (queued[QUEUE], queued[CHANNEL])
        self.aggregates.ensure_key(key)
        self.open_breaches.setdefault(key, {})[contact_id] = queued[TS] + qs.threshold_us
        if self.publish_breaches and (contact_id, queued[ID]) not in self._scheduled:
            self._scheduled.add((contact_id, queued[ID]))
            heapq.heappush(self._breach_heap, (queued[TS] + qs.threshold_us, contact_id, queued[ID]))

    def _not_waiting(self, contact_id: str) -> None:
        queued = self.waiting.pop(contact_id, None)
        if queued is not None:
            deadlines = self.open_breaches.get((queued[QUEUE], queued[CHANNEL]))
            if deadlines is not None:
                deadlines.pop(contact_id, None)

    def _summary_changed(self, contact_id: str, state: ContactState) -> None:
        summary = state.summary(contact_id)
        if summary is not None:
            self.summaries[contact_id] = summary

    def _recompute(self, contact_id: str, state: ContactState, rec: Record | None = None) -> Walk:
        """An event out of order (or one that cannot happen yet): derive the contact's facts from all of its
        events anew and apply only the difference."""
        before = walk(state.records)
        old_facts = contact_facts(before, self.queue_settings) if state.records else []
        old_summary = state.summary(contact_id)
        if rec is not None:
            state.insert(rec)
        lifecycle = walk(state.records)
        _diff(self.aggregates, old_facts, contact_facts(lifecycle, self.queue_settings))
        self._take(contact_id, state, lifecycle)
        if state.summary(contact_id) != old_summary:
            self._summary_changed(contact_id, state)
        return lifecycle

    def _take(self, contact_id: str, state: ContactState, lifecycle: Walk) -> None:
        """Adopt a full walk's position: waiting index, breach timer, late breaches."""
        state.sync(lifecycle)
        waiting = lifecycle.waiting
        if waiting is None:
            self._not_waiting(contact_id)
        else:
            queued = waiting[0]
            self._now_waiting(contact_id, queued, self._settings(queued[QUEUE], queued[CHANNEL]))
        if self.publish_breaches:
            self._late_breaches(contact_id, state, lifecycle)
        if lifecycle.surveys or contact_id in self.awaiting_by_contact:
            self._sync_awaiting(contact_id, lifecycle)

    def _late_breaches(self, contact_id: str, state: ContactState, lifecycle: Walk) -> None:
        """A visit answered or abandoned after its threshold, whose breach no timer published: publish it now."""
        for queued, outcome in lifecycle.visits:
            if outcome is None or queued[ID] in state.breaches_published:
                continue
            qs = self._settings(queued[QUEUE], queued[CHANNEL])
            if outcome[TS] - queued[TS] > qs.threshold_us:
                state.mark(queued[ID])
                self.late_breaches.append(self._breach(contact_id, queued))

    def _breach(self, contact_id: str, queued: Record) -> Breach:
        qs = self._settings(queued[QUEUE], queued[CHANNEL])
        return Breach(
            queued[QUEUE], queued[CHANNEL], contact_id, queued[ID], queued[TS],
            qs.sl_threshold_seconds, queued[TS] + qs.threshold_us,
        )

    # -- time ------------------------------------------------------------------------------------------
    def settle_due(self) -> bool:
        """Has an event passed the allowed disorder since the last :meth:`settle` (is there work for it)?"""
        first = self._settle.first_at()
        return first is not None and first < self.stream_time - self.disorder_us

    def settle(self) -> list[Rejection]:
        """Reject impossible events once the allowed disorder has passed (stream time minus the allowance),
        drop the original bytes of settled events, and mark settled contacts as evictable."""
        horizon = self.stream_time - self.disorder_us
        touched = set(self._settle.take_before(horizon))
        rejections: list[Rejection] = []
        for contact_id in touched:
            state = self.contacts.get(contact_id)
            if state is None:
                continue
            if state.unfit:
                lifecycle = walk(state.records)
                refused = state.settle(horizon, lifecycle)
                for rec, why, (raw, source, key) in refused:
                    rejections.append(Rejection("lifecycle", why, KIND_TYPE[rec[KIND]], rec[ID], raw, source, key))
                if refused:
                    state.sync(walk(state.records))
                    self.dirty.add(contact_id)
            else:
                state.forget_bytes(horizon)
            if self._leaves(state, horizon):
                self.evictable.add(contact_id)
        return rejections

    def evict(self, *, keep_packed: bool = True, keep: int = 0) -> int:
        """Move settled contacts out of memory (see the class docstring). Call after their state was saved:
        a contact still dirty stays. ``keep_packed`` False: the caller's store holds them (``loader``).

        ``keep``: how many of the settled and saved contacts stay objects (:attr:`lingering`), the most recently
        settled; the oldest beyond it go. Why: the worker's table holds every settled contact, and the next event
        of one (its end a few minutes after its answer, its survey) read it back: a RocksDB get and a decode,
        then an encode again, for a contact that had just left memory. A bounded number of them kept saves that
        for most, at a fixed memory cost (``worker.recent_contacts``). Counts are the same either way: a contact
        left in memory or read back holds the same records."""
        lingering = self.lingering
        contacts, dirty = self.contacts, self.dirty
        saved = [(contacts[cid].last_ts, cid) for cid in self.evictable if cid not in dirty and cid in contacts]
        saved.sort()  # the newest last: evicted last (a set has no order)
        for _, contact_id in saved:
            lingering[contact_id] = None
        self.evictable = {cid for cid in self.evictable if cid in dirty and cid in contacts}
        excess = max(0, len(lingering) - keep)
        # the oldest first; a lingering contact stored again (a duplicate's) goes only once it is saved
        oldest = [cid for cid in itertools.islice(lingering, excess + len(dirty)) if cid not in dirty][:excess]
        for contact_id in oldest:
            del lingering[contact_id]
            state = contacts.pop(contact_id)  # lingering holds contacts in memory only (forget, replace drop both)
            if keep_packed:
                self.settled[contact_id] = pack_contact(state)
        return len(oldest)

    def evict_settled(self, *, keep_packed: bool = True) -> int:
        """After a restore: move out every contact that is already settled (nothing waiting, nothing that may
        still be refused, older than the allowed disorder), so recovery does not keep the month in memory."""
        horizon = self.stream_time - self.disorder_us
        for contact_id, state in self.contacts.items():
            if state.pending and not state.unfit:
                # what settle() does for a fit contact: its stored value may still hold the bytes of events that
                # were pending when it was saved (settling drops them in memory only); kept, they held almost
                # every contact of a week in memory after a restart (2.4 GB, measured) until the first batch
                state.forget_bytes(horizon)
            if self._leaves(state, horizon):
                self.evictable.add(contact_id)
        moved = self.evict(keep_packed=keep_packed)
        if len(self._settle) > 2 * len(self.contacts) + 1024:
            # restore() files every contact for settling; settle() skips those no longer in memory, but until the
            # clock passed them a rebuild of 14 simulated days held 930k entries, and the memory they pinned
            self._settle.retain(self.contacts)
        return moved

    def due_breaches(self, now_us: int) -> list[Breach]:
        """Visits still waiting whose wait now exceeds the threshold, each returned once (and marked)."""
        out = self.late_breaches
        self.late_breaches = []
        heap = self._breach_heap
        while heap and heap[0][0] < now_us:
            _, contact_id, queued_id = heapq.heappop(heap)
            self._scheduled.discard((contact_id, queued_id))
            queued = self.waiting.get(contact_id)
            state = self.contacts.get(contact_id)
            if queued is None or state is None or queued[ID] != queued_id:
                continue  # answered or abandoned in time (or a late answer will report it)
            if queued_id in state.breaches_published:
                continue
            state.mark(queued_id)
            self.dirty.add(contact_id)
            out.append(self._breach(contact_id, queued))
        return out

    def forget(self, now_us: int) -> list[str]:
        """Drop contacts untouched for longer than the retention; their counts stay in the buckets."""
        limit = now_us - self.kpi.contact_retention * US
        gone = [cid for cid, st in self.contacts.items() if st.last_ts < limit and cid not in self.waiting]
        for contact_id in gone:
            del self.contacts[contact_id]
            self.evictable.discard(contact_id)
            self.lingering.pop(contact_id, None)
        old = [cid for cid, packed in self.settled.items() if packed_last_ts(packed) < limit]
        for contact_id in old:
            del self.settled[contact_id]
        self._forget_awaiting(limit)
        for contact_id in gone + old:  # no event can reach their expired feedback any more
            self.expired_feedback.pop(contact_id, None)
        return gone + old

    def _forget_awaiting(self, limit: int) -> None:
        """Detractor feedback older than the retention stops awaiting (that of every forgotten contact among it:
        no survey is newer than its contact's last event). Its breach is past by then: it becomes a fact, so no
        count changes (the contact's other counts stay too). Newer feedback of the same contact still awaits:
        it may yet be followed up in time."""
        facts: list[Fact] = []
        for key, entries in list(self.awaiting.items()):
            for (contact_id, survey_id), (survey_ts, deadline) in list(entries.items()):
                if survey_ts < limit:
                    facts.append((m.FEEDBACK_BREACHES, deadline, key[0], key[1], 1))
                    self._not_awaiting(contact_id, survey_id)
                    self.expired_feedback.setdefault(contact_id, {})[survey_id] = (key, deadline)
        if facts:
            self.aggregates.apply(facts, 1)

    def _unexpire(self, contact_id: str, survey_id: str) -> None:
        """A follow-up of feedback that expired (see ``expired_feedback``): take its breach fact back, the
        contact's own facts count the outcome from now on (a breach if late, none if in time)."""
        mine = self.expired_feedback.get(contact_id)
        if mine is None or survey_id not in mine:
            return
        key, deadline = mine.pop(survey_id)
        if not mine:
            del self.expired_feedback[contact_id]
        self.aggregates.apply([(m.FEEDBACK_BREACHES, deadline, key[0], key[1], 1)], -1)

    # -- state -----------------------------------------------------------------------------------------
    def restore(self, contact_id: str, state: ContactState) -> None:
        """Load a stored contact (recovery): its facts are recomputed and added, its breaches offered again."""
        self.contacts[contact_id] = state
        for rec in state.records:
            self._note_time(rec[TS], rec[KIND])
        self._settle.push(state.last_ts, contact_id)
        # every breach of the contact is offered again; the caller filters out those already on the
        # sla-breaches topic (marks stored in the table may predate Kafka's acknowledgement)
        state.clear_marks()
        lifecycle = walk(state.records)
        if state.records:
            self.aggregates.apply(contact_facts(lifecycle, self.queue_settings), 1)
        self._take(contact_id, state, lifecycle)
        # no summary is sent: the customer side recovers its own table, and an event re-delivered after a
        # crash (a duplicate) sends its contact's summary again (LiveKpis.handle)
        self.dirty.discard(contact_id)

    def replace(self, contact_id: str, state: ContactState | None) -> None:
        """Put a contact back to ``state`` (its last stored value) or forget it (None).

        Why: when the worker cannot store a contact's new state (a failure of our own), the events of the batch
        that changed it go to the dead-letter topic and the contact must count exactly as its stored state says,
        so the counts in memory never run ahead of what a restart would rebuild."""
        current = self.contacts.pop(contact_id, None)
        if current is None:
            packed = self.settled.pop(contact_id, None)
            current = unpack_contact(packed) if packed is not None else None
        if current is not None and current.records:
            self.aggregates.apply(contact_facts(walk(current.records), self.queue_settings), -1)
        self._not_waiting(contact_id)
        for survey_id in list(self.awaiting_by_contact.get(contact_id, ())):
            self._not_awaiting(contact_id, survey_id)
        self.summaries.pop(contact_id, None)
        self.dirty.discard(contact_id)
        self.evictable.discard(contact_id)
        self.lingering.pop(contact_id, None)
        if state is not None:
            self.restore(contact_id, state)

    def catch_up(self, contact_id: str, was: ContactState | None, state: ContactState | None) -> None:
        """A start from a checkpoint older than the table: this contact was stored again since the checkpoint.

        If the checkpoint held it in memory, it is :meth:`replace`\\ d by ``state`` (its stored value now). If not
        (settled, it was only on disk), its stored value at the checkpoint, ``was`` (None: none, or one whose
        counts stay, as a contact forgotten past the retention keeps them), is what the checkpoint's counts hold of
        it: those facts are taken out, then ``state`` is restored like any stored contact. Either way the counts
        are those of the checkpoint with this contact's contribution moved to its stored value now."""
        if contact_id not in self.contacts and contact_id not in self.settled and was is not None and was.records:
            self.aggregates.apply(contact_facts(walk(was.records), self.queue_settings), -1)
        self.replace(contact_id, state)

    def summary(self, contact_id: str) -> Summary | None:
        """The contact's current FCR summary (None when unknown or without a queued event)."""
        state = self.contacts.get(contact_id)
        return state.summary(contact_id) if state is not None else None

    def drain_summaries(self) -> list[Summary]:
        out = list(self.summaries.values())
        self.summaries.clear()
        return out

    def waiting_by_queue(self, now_us: int) -> dict[tuple[str, str], tuple[int, float]]:
        """Live queue state: (queue, channel) -> (waiting, longest_wait_seconds) at ``now_us``."""
        out: dict[tuple[str, str], tuple[int, float]] = {}
        for queued in self.waiting.values():
            key = (queued[QUEUE], queued[CHANNEL])
            count, longest = out.get(key, (0, 0.0))
            wait = max(0.0, (now_us - queued[TS]) / US)
            out[key] = (count + 1, max(longest, wait))
        return out


def _before_feedback_only(records: list[Record], rec: Record) -> bool:
    """Does ``rec``, an answer, an abandon or an end, sort after every contact event of its contact, with only
    feedback (surveys, follow-ups) after it? Then it is one step of the lifecycle like an event that sorts last.

    Why: a worker catching up a backlog reads the survey topic ahead of the contact events (it has ~13x fewer
    records), so a survey often comes before its contact's answer or end; each of those then walked the whole
    contact (``_recompute``: 2.5% of a catching-up worker's main thread, py-spy, session 16). Exact: what a step
    of these kinds adds depends on the contact events only (:func:`~cxpulse.core.contact.walk` skips feedback for
    the lifecycle), and what the feedback after it counts does not depend on them: a survey is attributed to the
    latest ``contact.queued`` not after it, which is why a queued event is left out here (it may move that)."""
    if rec[KIND] == QUEUED or rec[RANK] >= FEEDBACK_RANK:
        return False
    for other in reversed(records):
        if other[RANK] < FEEDBACK_RANK:  # the newest contact event: every record after it is feedback
            return other < rec
    return False  # feedback only: no answer, abandon or end can happen yet (fits() says no either)


def _has_survey(records: list[Record], survey_id: str) -> bool:
    """Is ``survey_id`` a ``survey.response`` of this contact (the rule a follow-up must meet, events.md v2)?"""
    for rec in records:
        if rec[ID] == survey_id and rec[KIND] == SURVEY:
            return True
    return False


def pack_contact(state: ContactState) -> bytes:
    """A settled contact as bytes: a fraction of the objects' size (an 8-byte newest-event-time prefix, so
    forgetting needs no unpacking, then msgpack of :meth:`ContactState.to_row`)."""
    return state.last_ts.to_bytes(8, "big", signed=True) + _PACK(state.to_row())


def unpack_contact(packed: bytes) -> ContactState:
    return ContactState.from_row(_UNPACK(packed[8:]))


def packed_last_ts(packed: bytes) -> int:
    return _prefix(packed)


class CustomerProcessor:
    """Customers of one partition (or of everything, in replay): repeats and FCR.

    A customer's facts are not kept: when one of its contacts changes, the facts before are derived from the
    state before (a customer has a handful of contacts). Memory (Engine v2): the most recently changed
    customers (``RECENT_CUSTOMERS``) stay objects, with their facts; the others are kept packed (msgpack
    bytes after an 8-byte newest-t0 prefix, so forgetting needs no unpacking) and unpacked when a summary of
    theirs arrives."""

    def __init__(self, kpi: KpiSettings, aggregates: Aggregates, *, keep_all_customers: bool = False,
                 loader: Callable[[str], CustomerState | None] | None = None, recent: int | None = None) -> None:
        """``keep_all_customers``: never prune the index of distinct customers (a replay's ``all`` window).
        ``loader``: where customers moved out of memory are read back from (the worker's table); None: they are
        kept packed in :attr:`packed` (replay). ``recent``: how many recently changed customers stay objects
        (None: ``RECENT_CUSTOMERS``, a worker's partition; a replay, one process for every customer, keeps more)."""
        self.kpi = kpi
        self.loader = loader
        self.recent = RECENT_CUSTOMERS if recent is None else recent
        self.aggregates = aggregates
        if aggregates.distinct is None:
            # forget() drops contacts customer_memory_us after their t0: with a short F, before the index does
            forgets_first = customer_memory_us(kpi) < history_us(kpi)
            aggregates.distinct = DistinctCustomers(keep_all=keep_all_customers, track_contacts=forgets_first)
        self.distinct = aggregates.distinct
        self.window_us = kpi.fcr_window * US
        self.customers: OrderedDict[str, CustomerState] = OrderedDict()  # recently changed, oldest first
        self.packed: MutableMapping[str, bytes] = {}  # a dict, or a replay's store on disk
        self.dirty: set[str] = set()
        # the facts of recently changed customers: a contact's summary changes twice within minutes (queued,
        # then ended), so the second change finds its "before" here instead of deriving it again
        self._recent: dict[str, list[Fact]] = {}

    def _state(self, customer_id: str) -> CustomerState | None:
        state = self.customers.get(customer_id)
        if state is not None:
            self.customers.move_to_end(customer_id)
            return state
        packed = self.packed.pop(customer_id, None)
        if packed is not None:
            state = self.customers[customer_id] = unpack_customer(customer_id, packed)
            return state
        if self.loader is None:
            return None
        loaded = self.loader(customer_id)
        if loaded is not None:
            self.customers[customer_id] = loaded
        return loaded

    def update(self, summary: Summary) -> None:
        """A contact's FCR summary changed: apply the difference it makes to that customer's facts."""
        customer_id = summary.customer_id
        state = self._state(customer_id)
        held = None if state is None else state.contacts.get(summary.contact_id)
        self.distinct.note(customer_id, summary.t0, summary.queue, summary.channel,
                           None if held is None else (held.t0, held.queue, held.channel), summary.contact_id)
        if state is None:
            state = self.customers[customer_id] = CustomerState()
            before: list[Fact] = []
        elif held == summary:
            return
        else:
            cached = self._recent.get(customer_id)
            before = cached if cached is not None else customer_facts(state, self.window_us)
        state.contacts[summary.contact_id] = summary
        after = customer_facts(state, self.window_us)
        _diff(self.aggregates, before, after)
        self._recent[customer_id] = after
        self.dirty.add(customer_id)
        # only saved customers can move out: counting the unsaved ones in, every update past twice ``recent``
        # customers changed since the last save made evict() pop and put back each of them (a fifth of a replay's
        # time when ``recent`` was 1,024)
        if len(self.customers) - len(self.dirty) > 2 * self.recent:
            self.evict()

    def evict(self) -> int:
        """Move the least recently changed customers beyond :attr:`recent` out of memory (never one not yet
        saved): packed, or, with a ``loader`` (the worker), nowhere: its table holds them (Engine v2; packed, a
        week's 400k customers held 80 MiB of bytes and keys in the worker)."""
        moved = 0
        customers = self.customers
        keep: list[tuple[str, CustomerState]] = []
        while len(customers) - len(keep) > self.recent and customers:
            customer_id, state = customers.popitem(last=False)
            if customer_id in self.dirty:
                keep.append((customer_id, state))
                continue
            self._recent.pop(customer_id, None)
            if self.loader is None:
                self.packed[customer_id] = pack_customer(state)
            moved += 1
        for customer_id, state in reversed(keep):
            customers[customer_id] = state
            customers.move_to_end(customer_id, last=False)
        return moved

    def get(self, customer_id: str) -> CustomerState | None:
        """The customer's state (unpacked if need be), or None."""
        return self._state(customer_id)

    def items(self) -> list[tuple[str, CustomerState]]:
        """Every customer with its state (packed ones unpacked: for saving all, tests and tools)."""
        out = list(self.customers.items())
        out += [(cid, unpack_customer(cid, packed)) for cid, packed in self.packed.items()]
        return out

    def restore(self, customer_id: str, state: CustomerState) -> None:
        self.customers[customer_id] = state
        for summary in state.contacts.values():
            self.distinct.note(customer_id, summary.t0, summary.queue, summary.channel, None, summary.contact_id)
        self._recent.pop(customer_id, None)
        self.aggregates.apply(customer_facts(state, self.window_us), 1)
        if len(self.customers) > 2 * self.recent:
            self.evict()

    def catch_up(self, customer_id: str, was: CustomerState | None, state: CustomerState) -> None:
        """A start from a checkpoint older than the table: this customer was stored again since the checkpoint.

        ``was`` is its stored value at the checkpoint (None: none), which is what the checkpoint held of it, in
        memory or (moved out) on disk: its facts and index entries are moved to ``state``, its stored value now,
        as the updates in between moved them one summary at a time. Exact because a customer's facts depend only
        on its set of summaries, and between two checkpoints a customer only gains or changes summaries: the
        worker forgets old contacts just before a checkpoint (the caller refuses a customer that lost one), so
        nothing counted was dropped from a state without its facts being taken out."""
        held = self.customers.get(customer_id)
        if held is not None:
            was = held
        before = customer_facts(was, self.window_us) if was is not None else []
        old = was.contacts if was is not None else {}
        for summary in state.contacts.values():
            previous = old.get(summary.contact_id)
            self.distinct.note(customer_id, summary.t0, summary.queue, summary.channel,
                               None if previous is None else (previous.t0, previous.queue, previous.channel),
                               summary.contact_id)
        _diff(self.aggregates, before, customer_facts(state, self.window_us))
        self._recent.pop(customer_id, None)
        self.dirty.discard(customer_id)
        self.packed.pop(customer_id, None)
        self.customers[customer_id] = state  # recently changed: as after its last update, evicted in turn

    def forget(self, now_us: int) -> list[str]:
        """Drop contacts older than twice the FCR window plus the allowance: they can change no count (see
        :meth:`CustomerState.forget_before`). A packed customer goes whole once its newest contact is that old;
        one with newer contacts keeps its old ones until it is next unpacked (only memory, never a count)."""
        limit = now_us - customer_memory_us(self.kpi)
        gone: list[str] = []
        for customer_id, state in list(self.customers.items()):
            before = len(state.contacts)
            state.forget_before(limit, self.window_us)
            self._recent.pop(customer_id, None)  # its facts are derived from what remains from now on
            if not state.contacts:
                del self.customers[customer_id]
                gone.append(customer_id)
            elif len(state.contacts) != before:
                self.dirty.add(customer_id)
        old = [cid for cid, packed in self.packed.items() if _prefix(packed) < limit]
        for customer_id in old:
            del self.packed[customer_id]
        return gone + old


def customer_memory_us(kpi: KpiSettings) -> int:
    """How long the customer side remembers a contact after its t0: twice the FCR window plus the allowed disorder
    (an older one can change no count, :meth:`CustomerState.forget_before`). One definition for
    :meth:`CustomerProcessor.forget`, the table sweeper (``cxpulse/streams/sweeper.py``) and the distinct index's
    choice of keeping its own contact map."""
    return (2 * kpi.fcr_window + kpi.allowed_disorder) * US


def pack_customer(state: CustomerState) -> bytes:
    return state.newest_t0().to_bytes(8, "big", signed=True) + _PACK(state.to_row())


def unpack_customer(customer_id: str, packed: bytes) -> CustomerState:
    return CustomerState.from_row(customer_id, _UNPACK(packed[8:]))


def _prefix(packed: bytes) -> int:
    return int.from_bytes(packed[:8], "big", signed=True)


__all__ = ["ANSWERED", "Breach", "ContactProcessor", "CustomerProcessor", "FeedbackBreach", "Rejection"]
