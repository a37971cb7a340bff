"""The KPI core in one process: validation, both processors, one set of aggregates, and the document.

Used by ``cxpulse replay``, by tests, and as the reference the live engine must agree with. It imports no
Faust, Kafka or Redis: the live engine runs the same processors, partition by partition.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from cxpulse.units import US_PER_SECOND
from cxpulse.core.aggregates import Aggregates
from cxpulse.core.agent_report import figures as agent_figures, section as agent_section
from cxpulse.core.agents import AgentProcessor
from cxpulse.core.contact import Summary
from cxpulse.core.measures import CUSTOMERS, FEEDBACK_BREACHES, SLA_BREACHES, zero_counts
from cxpulse.core.processors import Breach, ContactProcessor, CustomerProcessor, FeedbackBreach, Rejection
from cxpulse.core.report import add_counts, window_kpis
from cxpulse.core.windows import history_us, window_bounds
from cxpulse.models.agent_events import AGENT_EVENT_TYPE, AGENT_TOPIC, parse_agent_event
from cxpulse.models.events import (
    InvalidEvent, format_ts, parse_any_event, parse_contact_event, parse_survey_response,
)
from cxpulse.models.wire import decode_any_event, decode_contact_event, decode_survey_response
from cxpulse.settings import KpiSettings

EVICT_EVERY = 4096  # events between moves of settled contacts out of memory (packed): cheap, and rare enough
# settled contacts that stay objects (the most recent): the next event of most settled contacts (the end a few
# minutes after the answer, the survey) comes within a few thousand contacts; moved out, each came back from the
# spill store (a RocksDB get and delete, a decode, an encode and a put again): 31k of the 121k contacts moved out
# of a simulated day's 300k events, 396 with 2,048 kept (docs/performance.md, session 17)
RECENT_CONTACTS = 2048
# customers that stay objects (the most recently changed): a replay holds every customer in one process, and its
# repeat contacts within hours came back from the spill store: 16k of a simulated day's 94k customers moved out,
# 1.6k with 8,192 kept (334 with 16,384, but each process of a split replay keeps as many: the week's --jobs 2
# then peaked at 491 MiB for its three processes, against the 500 MB target)
RECENT_CUSTOMERS = 8192


@dataclass(slots=True)
class Health:
    """The pipeline's own counts: processed, duplicates, invalid by kind (metric-safe words)."""

    processed: int = 0
    duplicates: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)


class KpiEngine:
    """Feed events with :meth:`process`; read the KPI document with :meth:`snapshot`."""

    def __init__(self, kpi: KpiSettings | None = None, *, publish_breaches: bool = False,
                 until_us: int | None = None, keep_raw: bool = True,
                 spill: Callable[[str], MutableMapping[str, bytes]] | None = None,
                 summaries_to: Callable[[list[Summary]], None] | None = None) -> None:
        """``until_us``: the instant the document will be evaluated at, when it is not the stream time. Facts
        after it stay due instead of joining their buckets, so a file holding events after that instant (a live
        worker accepts events up to ``max_clock_skew`` ahead of its clock) replays to the live document.
        ``keep_raw`` False: refused events carry no original bytes (:attr:`rejections`), for a caller that only
        counts them (``cxpulse replay``): the bytes of every event inside the allowed disorder are then not
        kept, a few microseconds per event. No count depends on it. ``spill``: where settled contacts and
        customers go, packed, by name (``"contacts"``, ``"customers"``); None: dicts in memory. ``cxpulse replay``
        passes a store on disk (``cxpulse/spill.py``), so its memory does not grow with the days replayed.
        ``summaries_to``: where changed FCR summaries go instead of this engine's own customer side (a replay split
        over processes sends each to the process of its customer, ``cxpulse/parallel_replay.py``)."""
        self.kpi = kpi or KpiSettings()
        self.keep_raw = keep_raw
        self.until_us = until_us
        self.bucket_us = self.kpi.bucket_seconds * US_PER_SECOND
        self.history_us = history_us(self.kpi)
        self.aggregates = Aggregates(self.bucket_us)
        self.contacts = ContactProcessor(self.kpi, self.aggregates, publish_breaches=publish_breaches)
        self.contacts.moves_now = True  # "now" is the stream time: see ContactProcessor.moves_now
        self.contacts.now_until = until_us
        self.customers = CustomerProcessor(self.kpi, self.aggregates, keep_all_customers=True,
                                           recent=RECENT_CUSTOMERS)
        if spill is not None:
            self.contacts.settled = spill("contacts")
            self.customers.packed = spill("customers")
        self.summaries_to = summaries_to
        self.health = Health()
        self.rejections: list[Rejection] = []
        self._since_evict = 0
        # the agent side (topic agent-events): its own processor, read into the document's "agents" section
        self.agents = AgentProcessor(self.kpi)
        self.agent_listing = False  # the document lists agents by name (a wallboard that shows them)
        self._agent_events = 0

    @property
    def stream_time(self) -> int:
        """The largest event time seen (kpis.md: "now" of a replay)."""
        return max(self.contacts.latest_ts, self.agents.stream_time)

    def process(self, raw: bytes | str | dict[str, Any], topic: str | None = None,
                source: tuple[str, int, int] | None = None) -> bool:
        """Validate and apply one event (``topic`` picks the parser; None: told apart by ``type``).

        Returns True when accepted. Invalid events are recorded in :attr:`rejections` with their reason,
        never raised: bad input must not stop the pipeline. A ``dict`` (a test's or a tool's event, already
        parsed) is judged by the reference models (``models/events.py``): msgspec's decoders read JSON only.
        """
        event: Any
        try:
            if topic == "survey-responses":
                event = parse_survey_response(raw) if isinstance(raw, dict) else decode_survey_response(raw)
            elif topic == "contact-events":
                event = parse_contact_event(raw) if isinstance(raw, dict) else decode_contact_event(raw)
            elif topic == AGENT_TOPIC:
                return self.process_agent_event(parse_agent_event(raw))
            else:
                try:
                    event = parse_any_event(raw) if isinstance(raw, dict) else decode_any_event(raw)
                except InvalidEvent as exc:
                    # one JSONL holds every topic: an agent event is told apart by its type
                    if exc.kind != "unknown_type" or AGENT_EVENT_TYPE not in exc.reason:
                        raise
                    return self.process_agent_event(parse_agent_event(raw))
        except InvalidEvent as exc:
            self._reject(Rejection(exc.kind, exc.reason, "", "", _as_bytes(raw), source))
            return False
        return self.process_event(event, _as_bytes(raw) if self.keep_raw else None, source)

    def process_event(self, event: Any, raw: bytes | None = None, source: tuple[str, int, int] | None = None) -> bool:
        """Apply one already validated event."""
        if not self.contacts.handle(event, raw, source):
            self.health.duplicates += 1
            return False
        self.health.processed += 1
        # "now" of a replay is the stream time: facts before it go straight to their buckets
        self.aggregates.advance(self._now())
        if self.contacts.summaries:
            self._drain_summaries()
        if self.contacts.settle_due():
            for rejection in self.contacts.settle():
                self._reject(rejection)
        self._since_evict += 1
        if self._since_evict >= EVICT_EVERY:
            self._since_evict = 0
            # a replay stores nothing: what a worker would save is simply not dirty any more
            self.contacts.dirty.clear()
            self.customers.dirty.clear()
            self.contacts.evict(keep=RECENT_CONTACTS)
            self.customers.evict()
            # what no window of the document can reach any more (it prunes the same at the end): buckets, and
            # the distinct-customer index, whose old contacts a replay keeps only as customer ids (distinct.py)
            self.aggregates.prune(self._now() - self.history_us)
        return True

    def _now(self) -> int:
        """The replay's now: the newest event time, but not past ``until_us`` (the contacts' ``now_until``, the
        same instant: their in-order step moves the aggregates there too)."""
        latest = self.contacts.latest_ts
        until = self.until_us
        return latest if until is None or latest < until else until

    def apply_summaries(self, summaries: Iterable[Summary]) -> None:
        """FCR summaries of this engine's customers computed by another engine (a split replay's other processes,
        ``cxpulse/parallel_replay.py``), with the memory cadence of :meth:`process_event`: every ``EVICT_EVERY``
        the customers not changed lately leave memory and the buckets no window reaches are pruned."""
        for summary in summaries:
            self.customers.update(summary)
            self._since_evict += 1
            if self._since_evict >= EVICT_EVERY:
                self._since_evict = 0
                self.customers.dirty.clear()
                self.customers.evict()
                self.aggregates.prune(self.aggregates.now - self.history_us)

    def _drain_summaries(self) -> None:
        summaries = self.contacts.drain_summaries()
        if self.summaries_to is not None:
            self.summaries_to(summaries)
        else:
            for summary in summaries:
                self.customers.update(summary)

    def process_agent_event(self, event: Any) -> bool:
        """Apply one validated ``agent.state`` event; False for a duplicate (same id for the same agent)."""
        if not self.agents.handle(event):
            self.health.duplicates += 1
            return False
        self.health.processed += 1
        self._agent_events += 1
        if self._agent_events >= EVICT_EVERY:  # memory stays bounded: old intervals go (by stream time)
            self._agent_events = 0
            self.agents.prune()
            self.agents.dirty.clear()
        return True

    def _reject(self, rejection: Rejection) -> None:
        self.health.invalid[rejection.kind] += 1
        self.health.reasons[rejection.reason] += 1
        self.rejections.append(rejection)

    def finish(self) -> None:
        """End of a replay: every event is in, so pending impossible events are rejected now."""
        # past every event, surveys and follow-ups included (they do not move the contacts' stream time)
        held = self.contacts.stream_time
        self.contacts.stream_time = max(held, self.contacts.latest_ts) + self.contacts.disorder_us + 1
        try:
            for rejection in self.contacts.settle():
                self._reject(rejection)
        finally:
            self.contacts.stream_time = held
        if self.contacts.summaries:  # what settling changed, like after any event
            self._drain_summaries()

    def due_breaches(self, now_us: int) -> list[Breach]:
        return self.contacts.due_breaches(now_us)

    def due_feedback_breaches(self, now_us: int) -> list[FeedbackBreach]:
        """Detractor feedback whose target passed without a follow-up, each once (contract v2)."""
        return self.contacts.due_feedback_breaches(now_us)

    # -- the document -----------------------------------------------------------------------------------
    def snapshot(self, now_us: int | None = None, *, include_all: bool = False) -> dict[str, Any]:
        """The KPI document at ``now_us`` (default: stream time, as kpis.md asks of a replay)."""
        now = self.stream_time if now_us is None else now_us
        if now < self.aggregates.now:
            raise ValueError(
                f"cannot evaluate at {format_ts(now)}: before the newest event time {format_ts(self.aggregates.now)}"
            )
        return replay_document(
            self.kpi, [self.aggregates], self.contacts.waiting_by_queue(now), self.contacts.awaiting_by_queue(now),
            now, first_ts=self.contacts.first_ts if include_all else None, agents=[self.agents],
            listing=self.agent_listing,
        )


def replay_document(
    kpi: KpiSettings, parts: list[Aggregates], waiting: dict[tuple[str, str], tuple[int, float]],
    awaiting: dict[tuple[str, str], tuple[int, float]], now_us: int, *, first_ts: int | None,
    agents: list[AgentProcessor], listing: bool,
) -> dict[str, Any]:
    """The document of a replay over its parts (one, or one per process of a split replay): the windows at
    ``now_us``, the ``all`` window from ``first_ts`` (None: no ``all`` window), and the agents section when any
    part saw an agent event."""
    document = build_document(
        kpi, parts, waiting, now_us,
        all_window=(first_ts, now_us + 1) if first_ts is not None else None, awaiting=awaiting,
    )
    if any(part.first_ts is not None for part in agents):  # agent events seen: the document has an agents section
        document["agents"] = agent_section(kpi, agent_figures(kpi, agents, parts, now_us, listing=listing))
    return document


def _as_bytes(raw: bytes | str | dict[str, Any]) -> bytes | None:
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return None


def build_document(
    kpi: KpiSettings,
    parts: list[Aggregates],
    waiting: dict[tuple[str, str], tuple[int, float]],
    now_us: int,
    *,
    all_window: tuple[int, int] | None = None,
    awaiting: dict[tuple[str, str], tuple[int, float]] | None = None,
) -> dict[str, Any]:
    """The KPI document over one or more aggregates (one per partition in the live engine).

    ``all_window`` = [first event, stream time] for a replay's ``all`` window (it also counts facts due at
    exactly the last moment, which [start, now) windows leave out). ``awaiting``: (queue, channel) ->
    (detractor feedback awaiting a follow-up, the oldest's age in seconds), contract v2.
    """
    awaiting = awaiting or {}
    bucket_us = kpi.bucket_seconds * US_PER_SECOND
    history = history_us(kpi)
    for part in parts:
        part.advance(now_us)
        part.prune(now_us - history)
    keys = sorted({key for part in parts for key in part.active_keys()} | set(waiting) | set(awaiting))
    all_per_key, all_total = _sums_all(parts, all_window[1], keys) if all_window is not None else ({}, [])
    queues: list[dict[str, Any]] = []
    for queue, channel in keys:
        qs = kpi.for_queue(queue, channel)
        windows: dict[str, Any] = {}
        for name in kpi.windows:
            start, end = window_bounds(name, now_us, qs.timezone, bucket_us)
            counts = _sum(parts, start, end, (queue, channel))
            windows[name] = window_kpis(counts, qs.sl_formula, start, end)
        if all_window is not None:
            windows["all"] = window_kpis(all_per_key[(queue, channel)], qs.sl_formula, all_window[0], all_window[1])
        count, longest = waiting.get((queue, channel), (0, 0.0))
        queues.append({
            "queue": queue,
            "channel": channel,
            "live": {"waiting": count, "longest_wait_seconds": longest,
                     **live_feedback(*awaiting.get((queue, channel), (0, 0.0)))},
            "windows": windows,
        })
    totals: dict[str, Any] = {}
    for name in kpi.windows:
        start, end = window_bounds(name, now_us, kpi.timezone, bucket_us)
        counts = _sum(parts, start, end, None)
        totals[name] = window_kpis(counts, kpi.sl_formula, start, end)
    if all_window is not None:
        totals["all"] = window_kpis(all_total, kpi.sl_formula, *all_window)
    live_total = (sum(c for c, _ in waiting.values()), max((w for _, w in waiting.values()), default=0.0))
    feedback_total = live_feedback(sum(c for c, _ in awaiting.values()),
                                   max((w for _, w in awaiting.values()), default=0.0))
    return {
        "generated_at": format_ts(now_us),
        "queues": queues,
        "totals": {"live": {"waiting": live_total[0], "longest_wait_seconds": live_total[1], **feedback_total},
                   "windows": totals},
    }


def live_feedback(count: int, oldest_seconds: float) -> dict[str, Any]:
    """The live closed-loop figures (kpis.md v2): awaiting follow-up, and the oldest one's age (0 when none)."""
    return {"awaiting_follow_up": count, "oldest_awaiting_seconds": oldest_seconds}


def merge_live(into: dict[tuple[str, str], tuple[int, float]],
               more: dict[tuple[str, str], tuple[int, float]]) -> dict[tuple[str, str], tuple[int, float]]:
    """Add per-key (count, oldest age) figures of several parts: counts add, the oldest is the largest age."""
    for key, (count, oldest) in more.items():
        held = into.get(key, (0, 0.0))
        into[key] = (held[0] + count, max(held[1], oldest))
    return into


def _sum(parts: list[Aggregates], start: int, end: int, key: tuple[str, str] | None) -> list[int]:
    """Counts in [start, end) for one (queue, channel), or for all of them (key None). Distinct customers do
    not add over keys (a customer of two queues counts once in total): the total asks the index itself."""
    out = zero_counts()
    for part in parts:
        for counts in part.window(start, end, None if key is None else [key]).values():
            add_counts(out, counts)
    if key is None:
        out[CUSTOMERS] = sum(part.customers_total(start, end) for part in parts)
    return out


def _sums_all(parts: list[Aggregates], end: int,
              keys: list[tuple[str, str]]) -> tuple[dict[tuple[str, str], list[int]], list[int]]:
    """The ``all`` window's counts (every count since the first event, up to ``end`` exclusive) of each of
    ``keys`` and in total. Why in one pass over each part: the facts still due (a week's FCR closes, ~400k) were
    read once per key (the week's final snapshot: 0.65 s, 0.21 s in one pass, measured). Distinct customers do not
    add over keys (a customer of two queues counts once in total): the total asks the index itself."""
    per_key = {key: zero_counts() for key in keys}
    total = zero_counts()
    for part in parts:
        for held in (part.totals, part.future_until(end)):
            for k, counts in held.items():
                add_counts(total, counts)
                if k in per_key:
                    add_counts(per_key[k], counts)
        for measure, live in ((SLA_BREACHES, part.open_breaches_before(end)),
                              (FEEDBACK_BREACHES, part.awaiting_breaches_before(end))):
            for k, breaches in live.items():
                total[measure] += breaches
                if k in per_key:
                    per_key[k][measure] += breaches
    for key, out in per_key.items():
        out[CUSTOMERS] = sum(part.customers_until(end, key) for part in parts)
    total[CUSTOMERS] = sum(part.customers_until(end, None) for part in parts)
    return per_key, total
