"""One contact's ledger: its events (as compact records), its queue visits, and the facts they imply.

Two ways to the same facts (Engine v2):

* **In order** (the usual case: an event that sorts after every event of its contact): the lifecycle moves one
  step and only the facts of that step are added or retracted (:meth:`ContactState.step`); nothing is walked.
* **Out of order** (an event that sorts before another of its contact, or one that cannot happen yet): the
  contact's events are kept sorted by event time, and the facts are derived from all of them anew
  (:func:`walk`, :func:`contact_facts`) and diffed against the facts before. This makes the result depend only
  on *which* events arrived, never on their order, so live processing and an in-order replay agree by
  construction. The in-order step is exactly one more iteration of :func:`walk`, which the property tests
  check against the independent oracle.

A record is a plain tuple ``(ts, rank, event_id, kind, queue, channel, a, b, c)`` (see ``TS``..``C``): it sorts
by event time, then by rank (a visit opens before it closes), then by event id, and it costs a fraction of an
object with attributes. Per kind, ``a, b, c`` are: queued ``reason, customer_id`` (the FCR customer is the one of the first queued
event); ended ``handle_us, resolved,
transferred``; survey ``nps, csat``; follow-up (contract v2) ``survey_event_id``. """

from __future__ import annotations

import base64
from bisect import insort
from dataclasses import dataclass, field
from typing import Any, Callable, Final, NamedTuple

from cxpulse.units import US_PER_SECOND
from cxpulse.core import measures as m
from cxpulse.core.measures import Fact
from cxpulse.settings import QueueSettings

US: Final = US_PER_SECOND

# record kinds, and their rank at an equal timestamp (a visit opens before it closes; a survey before its
# follow-up)
QUEUED: Final = "q"
ANSWERED: Final = "a"
ABANDONED: Final = "x"
ENDED: Final = "e"
SURVEY: Final = "s"
FOLLOWED: Final = "f"
RANK_OF: Final = {QUEUED: 0, ANSWERED: 1, ABANDONED: 1, ENDED: 2, SURVEY: 3, FOLLOWED: 4}  # field RANK of a record
FEEDBACK_RANK: Final = RANK_OF[SURVEY]  # records of this rank and above come from the survey topic
KIND_TYPE: Final = {
    QUEUED: "contact.queued",
    ANSWERED: "contact.answered",
    ABANDONED: "contact.abandoned",
    ENDED: "contact.ended",
    SURVEY: "survey.response",
    FOLLOWED: "survey.followed_up",
}
TS: Final = 0
RANK: Final = 1
ID: Final = 2
KIND: Final = 3
QUEUE: Final = 4
CHANNEL: Final = 5
A: Final = 6
B: Final = 7
C: Final = 8

Record = tuple[Any, ...]  # (ts, rank, event_id, kind, queue, channel, a, b, c)
QueueLookup = Callable[[str, str], QueueSettings]
Source = tuple[str, int, int]  # topic, partition, offset


def _handle_us(event: Any) -> int:
    return round((event.talk_seconds + event.hold_seconds + event.wrap_seconds) * US)


def record_of(event: Any, names: dict[str, str] | None = None) -> Record:
    """Keep only what the KPIs read from a validated event. ``names``: queue and channel names seen so far, so that
    every record of a queue shares one string (added to as new ones come)."""
    kind: str = event.type
    if kind == "survey.response":
        return (event.ts_us, 3, event.event_id, SURVEY, "", "", event.nps, event.csat, None)
    if kind == "survey.followed_up":
        return (event.ts_us, 4, event.event_id, FOLLOWED, "", "", event.survey_event_id, None, None)
    queue: str = event.queue
    channel: str = event.channel
    if names is not None:
        queue = names.setdefault(queue, queue)
        channel = names.setdefault(channel, channel)
    if kind == "contact.queued":
        return (event.ts_us, 0, event.event_id, QUEUED, queue, channel, event.reason, event.customer_id, None)
    if kind == "contact.answered":
        return (event.ts_us, 1, event.event_id, ANSWERED, queue, channel, None, None, None)
    if kind == "contact.abandoned":
        return (event.ts_us, 1, event.event_id, ABANDONED, queue, channel, None, None, None)
    if kind == "contact.ended":
        return (event.ts_us, 2, event.event_id, ENDED, queue, channel, _handle_us(event), event.resolved,
                event.transferred)
    raise TypeError(f"not an event: {kind!r}")


Visit = tuple[Record, "Record | None"]
"""One pass through a queue: ``(queued, outcome)``, outcome answered/abandoned or None while still waiting."""


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
    followups: list[Record] = field(default_factory=list)  # follow-ups of a survey of this contact (v2)
    in_service: int = 0  # answers not ended yet

    @property
    def waiting(self) -> Visit | None:
        last = self.visits[-1] if self.visits else None
        return last if last is not None and last[1] is None else None


_UNFIT_QUEUED: Final = (
    "contact.queued while the contact is already waiting in a queue (a contact has at most one open queue visit)"
)
_UNFIT_ENDED: Final = "contact.ended for a contact that was not answered (no contact.answered in service)"
UNFIT_FOLLOWED: Final = (
    "no such survey: survey.followed_up of a survey_event_id that is no survey.response of this contact"
)


def _unfit_outcome(kind: str) -> str:
    return f"{KIND_TYPE[kind]} for a contact with no open queue visit (no contact.queued waiting)"


def walk(records: list[Record]) -> Walk:
    """Read the lifecycle ``queued -> answered -> ended`` / ``queued -> abandoned`` from sorted events.

    Only what events.md calls impossible is refused: an answer or abandon with no open visit, an end with no
    answered contact in service, and a second open visit. Refused events count for nothing; the caller
    rejects them once the allowed disorder has passed (a missing earlier event may still arrive).
    """
    result = Walk()
    waiting: Record | None = None
    in_service = 0  # at an equal ts a transfer's new visit sorts before the old ``ended``
    for rec in records:
        kind = rec[KIND]
        if kind == QUEUED:
            if waiting is not None:
                result.unfit.append((rec, _UNFIT_QUEUED))
                continue
            waiting = rec
            result.queued.append(rec)
        elif kind == ANSWERED or kind == ABANDONED:
            if waiting is None:
                result.unfit.append((rec, _unfit_outcome(kind)))
                continue
            result.visits.append((waiting, rec))
            waiting = None
            if kind == ANSWERED:
                in_service += 1  # (an abandon of that new visit must not end the earlier answer's service)
        elif kind == ENDED:
            if not in_service:
                result.unfit.append((rec, _UNFIT_ENDED))
                continue
            in_service -= 1
            result.ended.append(rec)
        elif kind == SURVEY:
            result.surveys.append(rec)
        else:
            result.followups.append(rec)
    if waiting is not None:
        result.visits.append((waiting, None))
    result.in_service = in_service
    if result.followups:  # events.md v2: a follow-up needs its survey (at any ts: it may be written late)
        ids = {rec[ID] for rec in result.surveys}
        fit = [rec for rec in result.followups if rec[A] in ids]
        if len(fit) != len(result.followups):
            result.unfit += [(rec, UNFIT_FOLLOWED) for rec in result.followups if rec[A] not in ids]
            result.unfit.sort()
            result.followups = fit
    return result


def outcome_facts(queued: Record, outcome: Record, qs: QueueSettings, add: Callable[[Fact], None]) -> int:
    """The facts of a closed visit except offered and the breach; returns the wait (kpis.md "Per queue visit")."""
    wait = outcome[TS] - queued[TS]
    at, q, ch = outcome[TS], outcome[QUEUE], outcome[CHANNEL]
    threshold = qs.threshold_us
    if outcome[KIND] == ANSWERED:
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
    return wait


def survey_facts(survey: Record, queue: str, channel: str, add: Callable[[Fact], None]) -> None:
    """NPS category and CSAT score of one survey, attributed to ``queue``/``channel`` (kpis.md "Surveys")."""
    at = survey[TS]
    score = survey[A]
    if score is not None:
        measure = m.PROMOTERS if score >= 9 else m.PASSIVES if score >= 7 else m.DETRACTORS
        add((measure, at, queue, channel, 1))
    if survey[B] is not None:
        add((m.CSAT_1 + survey[B] - 1, at, queue, channel, 1))


def is_detractor(survey: Record) -> bool:
    """kpis.md "Closed-loop feedback (v2)": detractor feedback is ``nps`` <= 6 or ``csat`` <= 2."""
    nps, csat = survey[A], survey[B]
    return (nps is not None and nps <= 6) or (csat is not None and csat <= 2)


def ended_facts(ended: Record, qs: QueueSettings, add: Callable[[Fact], None]) -> None:
    """Handled, handle time and (v2) the cost of one ``contact.ended``, with the settings of its queue.

    Cost is kept in integer millionths of the currency unit, rounded per contact (as timestamps are kept to the
    microsecond), so that adding and retracting it leaves no floating-point residue. Not configured: no cost
    fact at all, so that cost is null rather than 0 (kpis.md)."""
    at, queue, channel = ended[TS], ended[QUEUE], ended[CHANNEL]
    add((m.HANDLED, at, queue, channel, 1))
    add((m.HANDLE, at, queue, channel, ended[A]))
    if qs.cost_configured:
        add((m.COST, at, queue, channel, contact_cost_micros(ended[A], qs)))
        add((m.COSTED, at, queue, channel, 1))


def contact_cost_micros(handle_us: int, qs: QueueSettings) -> int:
    """(talk + hold + wrap) / 3600 * cost_per_hour + cost_per_contact, in millionths, rounded half to even."""
    return round(handle_us * qs.cost_per_hour / 3600) + qs.cost_per_contact_micros


def resolution_facts(final: Record, t0: int, add: Callable[[Fact], None]) -> None:
    """kpis.md "Resolution and cost (v2)": the final end, when resolved, resolves the contact after ts - t0."""
    if final[B]:
        add((m.RESOLVED, final[TS], final[QUEUE], final[CHANNEL], 1))
        add((m.RESOLUTION, final[TS], final[QUEUE], final[CHANNEL], final[TS] - t0))


def followed_up_facts(survey: Record, followup: Record, queue: str, channel: str, target_us: int,
                      add: Callable[[Fact], None]) -> None:
    """The first follow-up of a detractor feedback: followed up, the response time, and the breach when it
    came after survey ts + target (at that moment; a follow-up exactly at the target is in time)."""
    add((m.FOLLOWED_UP, followup[TS], queue, channel, 1))
    add((m.FEEDBACK_RESPONSE, followup[TS], queue, channel, followup[TS] - survey[TS]))
    if followup[TS] > survey[TS] + target_us:
        add((m.FEEDBACK_BREACHES, survey[TS] + target_us, queue, channel, 1))


Feedback = tuple[Record, str, str, "Record | None"]
"""A detractor feedback of a contact: ``(survey, queue, channel, first follow-up or None)``."""


def feedback_of(lifecycle: Walk) -> list[Feedback]:
    """The contact's detractor feedback, each with its attribution and its first follow-up (by event time)."""
    out: list[Feedback] = []
    for survey in lifecycle.surveys:
        if not is_detractor(survey):
            continue
        first = None
        for followup in lifecycle.followups:  # sorted: the first one that answers this survey
            if followup[A] == survey[ID]:
                first = followup
                break
        queue, channel = survey_attribution(lifecycle.queued, survey[TS])
        out.append((survey, queue, channel, first))
    return out


def contact_facts(lifecycle: Walk, queue_settings: QueueLookup) -> list[Fact]:
    """Every fact this contact contributes, per kpis.md "Per queue visit", "Handling", "Surveys" and (v2)
    "Resolution and cost", "Closed-loop feedback"."""
    facts: list[Fact] = []
    add = facts.append
    for queued, outcome in lifecycle.visits:
        qs = queue_settings(queued[QUEUE], queued[CHANNEL])
        threshold = qs.threshold_us
        add((m.OFFERED, queued[TS], queued[QUEUE], queued[CHANNEL], 1))
        if outcome is None:
            # still waiting: its breach, from queued + T on, is a live figure (Aggregates.open), not a fact
            continue
        if outcome_facts(queued, outcome, qs, add) > threshold:
            add((m.SLA_BREACHES, queued[TS] + threshold, queued[QUEUE], queued[CHANNEL], 1))
    if lifecycle.queued:
        first = lifecycle.queued[0]
        add((m.CONTACTS, first[TS], first[QUEUE], first[CHANNEL], 1))
        final = last_final(lifecycle.ended)
        if final is not None:
            resolution_facts(final, first[TS], add)
    for ended in lifecycle.ended:
        ended_facts(ended, queue_settings(ended[QUEUE], ended[CHANNEL]), add)
    for survey in lifecycle.surveys:
        queue, channel = survey_attribution(lifecycle.queued, survey[TS])
        survey_facts(survey, queue, channel, add)
        if is_detractor(survey):
            add((m.DETRACTOR_FEEDBACK, survey[TS], queue, channel, 1))
    if lifecycle.followups:
        for survey, queue, channel, first_followup in feedback_of(lifecycle):
            if first_followup is not None:
                target = queue_settings(queue, channel).feedback_target_us
                followed_up_facts(survey, first_followup, queue, channel, target, add)
    return facts


def last_final(ended: list[Record]) -> Record | None:
    """The last non-transferred end (the record; :func:`final_of` gives what FCR keeps of it)."""
    for rec in reversed(ended):
        if not rec[C]:
            return rec
    return None


def survey_attribution(queued: list[Record], survey_ts: int) -> tuple[str, str]:
    """Queue and channel of the contact's latest ``contact.queued`` not after the survey (else unknown)."""
    chosen: Record | None = None
    for rec in queued:  # sorted by ts
        if rec[TS] <= survey_ts:
            chosen = rec
        else:
            break
    return (chosen[QUEUE], chosen[CHANNEL]) if chosen is not None else (m.UNKNOWN, m.UNKNOWN)


def final_of(ended: list[Record]) -> tuple[int, bool, str, str] | None:
    """The last non-transferred end: what decides first contact resolution."""
    for rec in reversed(ended):
        if not rec[C]:
            return (rec[TS], rec[B], rec[QUEUE], rec[CHANNEL])
    return None


class ContactState:
    """Everything remembered about one contact.

    ``records`` are its accepted events, sorted; ``rejected`` the ids of events refused by the lifecycle rules
    (still duplicates if sent again); ``pending`` the original bytes, source and Kafka key of events that may
    still be refused (inside the allowed disorder), dropped once they are settled. The remaining fields are the
    lifecycle's position after the last record, kept so that an in-order event is one step, not a walk.
    """

    __slots__ = (
        "records", "rejected", "_published", "last_ts", "pending",
        "waiting", "in_service", "last_queued", "first_queued", "final", "unfit",
    )

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.rejected: list[str] | None = None
        self._published: set[str] | None = None  # queued event ids whose breach went out (None: none)
        self.last_ts = 0
        self.pending: dict[str, tuple[bytes | None, Source | None, bytes | None]] | None = None
        self.waiting: Record | None = None
        self.in_service = 0
        self.last_queued: Record | None = None
        self.first_queued: Record | None = None
        self.final: tuple[int, bool, str, str] | None = None
        self.unfit = False

    @property
    def breaches_published(self) -> set[str]:
        """Queued event ids whose breach was published (a copy when there is none: mark with :meth:`mark`)."""
        return self._published if self._published is not None else set()

    def mark(self, queued_event_id: str) -> None:
        if self._published is None:
            self._published = set()
        self._published.add(queued_event_id)

    def clear_marks(self) -> None:
        self._published = None

    # -- events ---------------------------------------------------------------------------------------
    def has(self, event_id: str) -> bool:
        """Was an event with this id seen (accepted or refused)? A contact holds a handful of events."""
        for rec in self.records:
            if rec[ID] == event_id:
                return True
        return self.rejected is not None and event_id in self.rejected

    def remember(self, event_id: str, raw: bytes | None, source: Source | None, key: bytes | None) -> None:
        """Keep an event's original bytes until it is settled (for the dead-letter topic if it is refused)."""
        if self.pending is None:
            self.pending = {}
        self.pending[event_id] = (raw, source, key)

    def insert(self, rec: Record) -> None:
        insort(self.records, rec)
        if rec[TS] > self.last_ts:
            self.last_ts = rec[TS]

    def sync(self, lifecycle: Walk) -> None:
        """Take the lifecycle's position from a full walk (after an out-of-order event or a restore)."""
        waiting = lifecycle.waiting
        self.waiting = waiting[0] if waiting is not None else None
        self.in_service = lifecycle.in_service
        self.last_queued = lifecycle.queued[-1] if lifecycle.queued else None
        self.first_queued = lifecycle.queued[0] if lifecycle.queued else None
        self.final = final_of(lifecycle.ended)
        self.unfit = bool(lifecycle.unfit)

    def fits(self, kind: str) -> bool:
        """Can an event of ``kind`` that sorts after every record happen now (one step of :func:`walk`)?"""
        if kind == QUEUED:
            return self.waiting is None
        if kind == ANSWERED or kind == ABANDONED:
            return self.waiting is not None
        if kind == ENDED:
            return self.in_service > 0
        return True

    def settle(self, horizon: int, lifecycle: Walk) -> list[tuple[Record, str, tuple[bytes | None, Source | None, bytes | None]]]:
        """Refuse impossible events older than ``horizon`` (the allowed disorder has passed) and forget the
        original bytes of accepted ones. Returns the refused records, with why and their original bytes.

        Refused records count for nothing in :func:`walk` (it skips them), so removing them changes no fact."""
        refused = [(rec, why) for rec, why in lifecycle.unfit if rec[TS] < horizon]
        out = []
        if refused:
            gone = {rec[ID] for rec, _ in refused}
            self.records = [rec for rec in self.records if rec[ID] not in gone]
            self.rejected = (self.rejected or []) + sorted(gone)
            for rec, why in refused:
                out.append((rec, why, self.pending.pop(rec[ID], (None, None, None)) if self.pending else (None, None, None)))
        self.forget_bytes(horizon)
        return out

    def last_contact_ts(self) -> int:
        """Time of the newest *contact* event (0: none yet). Surveys and follow-ups are left out: they come on a
        topic of their own, which a worker catching up a backlog may read hours ahead of the contact events."""
        for rec in reversed(self.records):  # sorted by time: the newest contact event is near the end
            if rec[RANK] < FEEDBACK_RANK:
                return rec[TS]
        return 0

    def forget_bytes(self, horizon: int) -> None:
        """Events older than ``horizon`` can no longer be refused: drop their original bytes."""
        pending = self.pending
        if not pending:
            return
        for event_id in [rec[ID] for rec in self.records if rec[TS] < horizon and rec[ID] in pending]:
            del pending[event_id]
        if not pending:
            self.pending = None

    def summary(self, contact_id: str) -> Summary | None:
        """The FCR view of the contact, or None while no ``contact.queued`` is known."""
        first = self.first_queued
        if first is None:
            return None
        return Summary(contact_id, first[B], first[TS], first[A], first[QUEUE], first[CHANNEL], self.final)

    # -- storage ----------------------------------------------------------------------------------------
    def to_row(self) -> list[Any]:
        """The stored form: plain lists of ints, strings, bools and bytes (msgpack writes bytes as they are).

        Why not the lifecycle position: it is derived (:meth:`sync`) when the state is loaded."""
        pending = None
        if self.pending:
            pending = [[eid, raw, list(src) if src else None, key] for eid, (raw, src, key) in self.pending.items()]
        return [
            [list(rec) for rec in self.records], self.rejected,
            sorted(self._published) if self._published else None, self.last_ts, pending,
        ]

    @classmethod
    def from_row(cls, row: list[Any], *, sync: bool = True) -> "ContactState":
        """The stored form back; ``sync`` False leaves the lifecycle position to the caller (a restore walks
        the records anyway, so walking them here too would be done twice for every recovered contact)."""
        state = cls()
        state.records = [tuple(rec) for rec in row[0]]
        state.rejected = list(row[1]) if row[1] else None
        state._published = set(row[2]) if row[2] else None
        state.last_ts = row[3]
        if row[4]:
            state.pending = {eid: (raw, tuple(src) if src else None, key) for eid, raw, src, key in row[4]}  # type: ignore[misc]
        if sync:
            state.sync(walk(state.records))
        return state

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form (bytes as base64): for tests and tools that store states as JSON."""
        row = self.to_row()
        if row[4]:
            row[4] = [[eid, _b64(raw), src, _b64(key)] for eid, raw, src, key in row[4]]
        return {"row": row}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ContactState":
        row = list(data["row"])
        if row[4]:
            row[4] = [[eid, _unb64(raw), src, _unb64(key)] for eid, raw, src, key in row[4]]
        return cls.from_row(row)


def _b64(value: bytes | None) -> str | None:
    return base64.b64encode(value).decode("ascii") if value is not None else None


def _unb64(value: str | None) -> bytes | None:
    return base64.b64decode(value) if value is not None else None
