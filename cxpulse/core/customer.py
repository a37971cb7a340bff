"""First contact resolution, per customer (kpis.md, "First contact resolution").

Why per customer: whether a contact is a repeat, and whether a resolution is confirmed, depends on the
customer's *other* contacts within the FCR window F. The customer's facts are recomputed from the summaries
of all their remembered contacts whenever one of them changes, so the result again depends only on the set
of events, not on their order.
"""

from __future__ import annotations

import bisect
from operator import itemgetter
from dataclasses import dataclass, field
from typing import Any, Final

from cxpulse.core import measures as m
from cxpulse.core.contact import Summary
from cxpulse.core.measures import Fact


@dataclass(slots=True)
class CustomerState:
    """The FCR summaries of one customer's remembered contacts, by contact id."""

    contacts: dict[str, Summary] = field(default_factory=dict)

    def forget_before(self, t0_limit: int, fcr_window_us: int) -> None:
        """Drop contacts whose first queued time is before ``t0_limit`` and that no remaining contact needs.

        A remaining contact Y needs an older contact X when X lies in Y's repeat look-back ``[t0y - F, t0y)``:
        dropping X would turn Y into a first contact the next time Y's facts are derived (a late end of an
        email thread, say), while the facts applied earlier counted it as a repeat. So X stays while a remaining
        contact starts within F after it; a customer who comes back every few days keeps that chain."""
        by_time = sorted(self.contacts.values(), key=_BY_TIME, reverse=True)
        nearest_kept: int | None = None
        for summary in by_time:
            t0 = summary.t0
            if t0 < t0_limit and (nearest_kept is None or nearest_kept - t0 > fcr_window_us):
                del self.contacts[summary.contact_id]
                continue
            nearest_kept = t0  # newest first: the oldest kept so far, i.e. the nearest after every older one

    def to_row(self) -> list[Any]:
        """Compact stored form: ``[contact_id, t0, reason, queue, channel, final]`` per contact (the customer id
        is the key)."""
        return [[c.contact_id, c.t0, c.reason, c.queue, c.channel, list(c.final) if c.final else None]
                for c in self.contacts.values()]

    @classmethod
    def from_row(cls, customer_id: str, row: list[Any]) -> "CustomerState":
        state = cls()
        for contact_id, t0, reason, queue, channel, final in row:
            state.contacts[contact_id] = Summary(contact_id, customer_id, t0, reason, queue, channel,
                                                 tuple(final) if final else None)  # type: ignore[arg-type]
        return state

    def newest_t0(self) -> int:
        return max((c.t0 for c in self.contacts.values()), default=0)

    def to_dict(self) -> dict[str, Any]:
        return {"c": [list(s[:6]) + [list(s.final) if s.final else None] for s in self.contacts.values()]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CustomerState":
        state = cls()
        for item in data["c"]:
            final = tuple(item[6]) if item[6] else None
            state.contacts[item[0]] = Summary(*item[:6], final)  # type: ignore[arg-type, call-arg]
        return state


_BY_TIME: Final = itemgetter(2, 0)  # (t0, contact_id)


def _any_match(contacts: list[Summary], lo: int, hi: int, summary: Summary) -> bool:
    """Is there, among ``contacts[lo:hi]``, another contact whose reason matches ``summary``'s?"""
    reason, contact_id = summary.reason, summary.contact_id
    for index in range(lo, hi):
        other = contacts[index]
        if other.contact_id != contact_id and (reason is None or other.reason is None or other.reason == reason):
            return True
    return False


def customer_facts(state: CustomerState, fcr_window_us: int) -> list[Fact]:
    """Repeats, first contacts (resolved), closed and confirmed first contacts of one customer."""
    if len(state.contacts) == 1:  # most customers: no other contact, so no repeat and nothing to look up
        contacts = list(state.contacts.values())
        return _first_facts(contacts[0], fcr_window_us, confirmed=True) if contacts[0].final is not None else []
    contacts = sorted(state.contacts.values(), key=_BY_TIME)
    times = [s.t0 for s in contacts]
    facts: list[Fact] = []
    window = fcr_window_us
    for summary in contacts:
        t0 = summary.t0
        # a repeat: another contact with first queued time in [t0 - F, t0) and a matching reason
        if _any_match(contacts, bisect.bisect_left(times, t0 - window), bisect.bisect_left(times, t0), summary):
            facts.append((m.REPEATS, t0, summary.queue, summary.channel, 1))
            continue
        if summary.final is None:
            continue
        # confirmed: resolved, and no other matching contact with first queued time in (t0, t0 + F]
        confirmed = summary.final[1] and not _any_match(
            contacts, bisect.bisect_right(times, t0), bisect.bisect_right(times, t0 + window), summary
        )
        facts += _first_facts(summary, window, confirmed=confirmed)
    return facts


def _first_facts(summary: Summary, fcr_window_us: int, *, confirmed: bool) -> list[Fact]:
    """A first contact's facts: first (at its final end), resolved, closed at ``max(t0 + F, end)``, and
    confirmed when resolved and ``confirmed`` (no matching contact followed within F)."""
    ended_ts, resolved, queue, channel = summary.final  # type: ignore[misc]
    closed_at = max(summary.t0 + fcr_window_us, ended_ts)
    if resolved:
        out: list[Fact] = [(m.FIRST, ended_ts, queue, channel, 1), (m.FIRST_RESOLVED, ended_ts, queue, channel, 1),
                           (m.FIRST_CLOSED, closed_at, queue, channel, 1)]
        if confirmed:
            out.append((m.FIRST_CONFIRMED, closed_at, queue, channel, 1))
        return out
    return [(m.FIRST, ended_ts, queue, channel, 1), (m.FIRST_CLOSED, closed_at, queue, channel, 1)]
