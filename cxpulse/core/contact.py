"""One contact's ledger: its events, its queue visits, and the facts they imply.

Why recompute instead of update: events of a contact may arrive out of order (up to ``allowed_disorder``) and
twice. Keeping the contact's events sorted by event time and deriving the visits and facts from them anew
each time makes the result depend only on *which* events arrived, never on their order, so live processing
and an in-order replay agree by construction. A contact has a handful of events, so this is cheap.

The state is plain data (:meth:`ContactState.to_dict`) so the live engine can keep it in a Faust table.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

from cxpulse.core import measures as m
from cxpulse.core.measures import Fact
from cxpulse.models.events import (
    ContactAbandoned,
    ContactAnswered,
    ContactEnded,
    ContactQueued,
    SurveyResponse,
    to_us,
)
from cxpulse.settings import QueueSettings

# record kinds, in the order they sort at an equal timestamp (a visit opens before it closes)
QUEUED, ANSWERED, ABANDONED, ENDED, SURVEY = "q", "a", "x", "e", "s"
_RANK = {QUEUED: 0, ANSWERED: 1, ABANDONED: 1, ENDED: 2, SURVEY: 3}
KIND_TYPE = {
    QUEUED: "contact.queued",
    ANSWERED: "contact.answered",
    ABANDONED: "contact.abandoned",
    ENDED: "contact.ended",
    SURVEY: "survey.response",
}

QueueLookup = Callable[[str, str], QueueSettings]


@dataclass(slots=True)
class Record:
    """The part of an event the KPIs need. ``raw``/``source`` are kept only until the event is settled,
    so that an event found impossible later can still go to the dead-letter topic with its original bytes."""

    kind: str
    ts: int
    event_id: str
    queue: str = ""
    channel: str = ""
    # queued: customer_id, reason; ended: handle_us, resolved, transferred; survey: nps, csat
    customer_id: str = ""
    reason: str | None = None
    handle_us: int = 0
    resolved: bool = False
    transferred: bool = False
    nps: int | None = None
    csat: int | None = None
    raw: bytes | None = None
    source: tuple[str, int, int] | None = None  # topic, partition, offset
    key: bytes | None = None  # the original Kafka key, for the dead letter (events.md: "its original key")

    @property
    def sort_key(self) -> tuple[int, int, str]:
        return (self.ts, _RANK[self.kind], self.event_id)

    def to_list(self) -> list[Any]:
        raw = base64.b64encode(self.raw).decode("ascii") if self.raw is not None else None
        key = base64.b64encode(self.key).decode("ascii") if self.key is not None else None
        return [
            self.kind, self.ts, self.event_id, self.queue, self.channel, self.customer_id, self.reason,
            self.handle_us, self.resolved, self.transferred, self.nps, self.csat, raw,
            list(self.source) if self.source else None, key,
        ]

    @classmethod
    def from_list(cls, data: list[Any]) -> "Record":
        rec = cls(*data[:12])
        rec.raw = base64.b64decode(data[12]) if data[12] is not None else None
        rec.source = tuple(data[13]) if data[13] else None  # type: ignore[assignment]
        if len(data) > 14 and data[14] is not None:  # (stored before keys were kept: none)
            rec.key = base64.b64decode(data[14])
        return rec


def _queued(e: Any, raw: bytes | None, src: Any) -> Record:
    return Record(QUEUED, to_us(e.ts), e.event_id, e.queue, e.channel, e.customer_id, e.reason, raw=raw, source=src)


def _answered(e: Any, raw: bytes | None, src: Any) -> Record:
    return Record(ANSWERED, to_us(e.ts), e.event_id, e.queue, e.channel, e.customer_id, raw=raw, source=src)


def _abandoned(e: Any, raw: bytes | None, src: Any) -> Record:
    return Record(ABANDONED, to_us(e.ts), e.event_id, e.queue, e.channel, e.customer_id, raw=raw, source=src)


def _ended(e: Any, raw: bytes | None, src: Any) -> Record:
    handle = round((e.talk_seconds + e.hold_seconds + e.wrap_seconds) * 1_000_000)
    return Record(ENDED, to_us(e.ts), e.event_id, e.queue, e.channel, e.customer_id, handle_us=handle,
                  resolved=e.resolved, transferred=e.transferred, raw=raw, source=src)


def _survey(e: Any, raw: bytes | None, src: Any) -> Record:
    return Record(SURVEY, to_us(e.ts), e.event_id, customer_id=e.customer_id, nps=e.nps, csat=e.csat, raw=raw, source=src)


_BUILDERS: dict[type, Callable[[Any, bytes | None, Any], Record]] = {
    ContactQueued: _queued, ContactAnswered: _answered, ContactAbandoned: _abandoned,
    ContactEnded: _ended, SurveyResponse: _survey,
}


def record_of(event: Any, raw: bytes | None = None, source: tuple[str, int, int] | None = None,
              key: bytes | None = None) -> Record:
    """Keep only what the KPIs read from a validated event (and, until it is settled, where it came from)."""
    build = _BUILDERS.get(type(event))
    if build is None:
        raise TypeError(f"not an event: {type(event).__name__}")
    rec = build(event, raw, source)
    if raw is not None:
        rec.key = key
    return rec


Visit = tuple[Record, "Record | None"]
"""One pass through a queue: ``(queued, outcome)``, outcome answered/abandoned or None while still waiting.
A plain tuple: a walk makes one per visit on every event of the contact."""


class Summary(NamedTuple):
    """What first contact resolution needs of a contact (see :mod:`cxpulse.core.customer`)."""

    contact_id: str
    customer_id: str
    t0: int  # first queued ts
    reason: str | None
    queue: str  # of the first queued event
    channel: str
    final: tuple[int, bool, str, str] | None  # last non-transferred ended: ts, resolved, queue, channel


@dataclass(slots=True)
class Walk:
    """The contact's lifecycle as read from its sorted events."""

    visits: list[Visit] = field(default_factory=list)
    unfit: list[tuple[Record, str]] = field(default_factory=list)  # events that cannot happen (yet), with why
    ended: list[Record] = field(default_factory=list)
    queued: list[Record] = field(default_factory=list)
    surveys: list[Record] = field(default_factory=list)

    @property
    def waiting(self) -> Visit | None:
        last = self.visits[-1] if self.visits else None
        return last if last is not None and last[1] is None else None


def walk(records: list[Record]) -> Walk:
    """Read the lifecycle ``queued -> answered -> ended`` / ``queued -> abandoned`` from sorted events.

    Only what events.md calls impossible is refused: an answer or abandon with no open visit, an end with no
    answered contact in service, and a second open visit. Refused events count for nothing; the caller
    rejects them once the allowed disorder has passed (a missing earlier event may still arrive).
    """
    result = Walk()
    waiting: Record | None = None
    in_service = 0  # answers not ended yet: at an equal ts a transfer's new visit sorts before the old ``ended``
    for rec in records:
        kind = rec.kind
        if kind == QUEUED:
            if waiting is not None:
                result.unfit.append((rec, "contact.queued while the contact is already waiting in a queue (a contact has at most one open queue visit)"))
                continue
            waiting = rec
            result.queued.append(rec)
        elif kind == ANSWERED or kind == ABANDONED:
            if waiting is None:
                result.unfit.append((rec, f"{KIND_TYPE[kind]} for a contact with no open queue visit (no contact.queued waiting)"))
                continue
            result.visits.append((waiting, rec))
            waiting = None
            if kind == ANSWERED:
                in_service += 1  # (an abandon of that new visit must not end the earlier answer's service)
        elif kind == ENDED:
            if not in_service:
                result.unfit.append((rec, "contact.ended for a contact that was not answered (no contact.answered in service)"))
                continue
            in_service -= 1
            result.ended.append(rec)
        else:
            result.surveys.append(rec)
    if waiting is not None:
        result.visits.append((waiting, None))
    # keep visits in queued order (a still-open visit is always the last one)
    return result


def contact_facts(lifecycle: Walk, queue_settings: QueueLookup) -> list[Fact]:
    """Every fact this contact contributes, per kpis.md "Per queue visit", "Handling" and "Surveys"."""
    facts: list[Fact] = []
    add = facts.append
    for queued, outcome in lifecycle.visits:
        qs = queue_settings(queued.queue, queued.channel)
        threshold = qs.threshold_us
        add((m.OFFERED, queued.ts, queued.queue, queued.channel, 1))
        if outcome is None:
            # still waiting: the wait exceeds T from queued + T on (a future fact until then)
            add((m.SLA_BREACHES, queued.ts + threshold, queued.queue, queued.channel, 1))
            continue
        wait = outcome.ts - queued.ts
        at, q, ch = outcome.ts, outcome.queue, outcome.channel
        if outcome.kind == ANSWERED:
            add((m.ANSWERED, at, q, ch, 1))
            add((m.WAIT_ANSWERED, at, q, ch, wait))
            if wait <= threshold:
                add((m.ANSWERED_WITHIN, at, q, ch, 1))
        else:
            add((m.ABANDONED, at, q, ch, 1))
            add((m.WAIT_ABANDONED, at, q, ch, wait))
            if wait < qs.short_abandon_us:
                add((m.ABANDONED_SHORT, at, q, ch, 1))
            if wait <= threshold:
                add((m.ABANDONED_WITHIN, at, q, ch, 1))
        if wait > threshold:
            add((m.SLA_BREACHES, queued.ts + threshold, queued.queue, queued.channel, 1))
    for ended in lifecycle.ended:
        add((m.HANDLED, ended.ts, ended.queue, ended.channel, 1))
        add((m.HANDLE, ended.ts, ended.queue, ended.channel, ended.handle_us))
    for survey in lifecycle.surveys:
        queue, channel = survey_attribution(lifecycle.queued, survey.ts)
        if survey.nps is not None:
            score = survey.nps
            measure = m.PROMOTERS if score >= 9 else m.PASSIVES if score >= 7 else m.DETRACTORS
            add((measure, survey.ts, queue, channel, 1))
        if survey.csat is not None:
            add((m.CSAT_1 + survey.csat - 1, survey.ts, queue, channel, 1))
    return facts


def survey_attribution(queued: list[Record], survey_ts: int) -> tuple[str, str]:
    """Queue and channel of the contact's latest ``contact.queued`` not after the survey (else unknown)."""
    chosen: Record | None = None
    for rec in queued:  # sorted by ts
        if rec.ts <= survey_ts:
            chosen = rec
        else:
            break
    return (chosen.queue, chosen.channel) if chosen is not None else (m.UNKNOWN, m.UNKNOWN)


def summary_of(contact_id: str, lifecycle: Walk) -> Summary | None:
    """The FCR view of a contact, or None while no ``contact.queued`` is known."""
    if not lifecycle.queued:
        return None
    first = lifecycle.queued[0]
    final = None
    for ended in reversed(lifecycle.ended):
        if not ended.transferred:
            final = (ended.ts, ended.resolved, ended.queue, ended.channel)
            break
    return Summary(contact_id, first.customer_id, first.ts, first.reason, first.queue, first.channel, final)


@dataclass(slots=True)
class ContactState:
    """Everything remembered about one contact: its accepted events and every event id seen (for duplicates)."""

    records: list[Record] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    breaches_published: set[str] = field(default_factory=set)  # queued event ids whose breach went out
    last_ts: int = 0

    def add(self, rec: Record) -> bool:
        """Insert in event-time order; False when the event id was seen before (a duplicate)."""
        if rec.event_id in self.seen:
            return False
        self.seen.add(rec.event_id)
        key = rec.sort_key
        records = self.records
        index = len(records)
        while index > 0 and records[index - 1].sort_key > key:
            index -= 1
        records.insert(index, rec)
        if rec.ts > self.last_ts:
            self.last_ts = rec.ts
        return True

    def settle(self, horizon: int, lifecycle: Walk) -> list[tuple[Record, str]]:
        """Reject impossible events older than ``horizon`` (the allowed disorder has passed) and forget the
        original bytes of accepted ones. Returns the rejected records with their reasons."""
        rejected = [(rec, why) for rec, why in lifecycle.unfit if rec.ts < horizon]
        if rejected:
            gone = {id(rec) for rec, _ in rejected}
            self.records = [rec for rec in self.records if id(rec) not in gone]
        self.forget_bytes(horizon)
        return rejected

    def forget_bytes(self, horizon: int) -> None:
        """Events older than ``horizon`` can no longer be rejected: their original bytes are not needed."""
        for rec in self.records:
            if rec.ts < horizon and rec.raw is not None:
                rec.raw = None
                rec.source = None
                rec.key = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "r": [rec.to_list() for rec in self.records],
            "s": sorted(self.seen),
            "b": sorted(self.breaches_published),
            "t": self.last_ts,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ContactState":
        return cls(
            records=[Record.from_list(item) for item in data["r"]],
            seen=set(data["s"]),
            breaches_published=set(data.get("b", ())),
            last_ts=data.get("t", 0),
        )
