"""The raw counts every KPI is made of, and the *facts* that add to them.

Why facts: each KPI in kpis.md is a ratio of counts, and each count is "+1 (or +x) at some attribution time,
for some (queue, channel)". A fact is exactly that: ``(measure, at_us, queue, channel, value)``. Windows are
then plain sums of facts whose time lies inside, which makes every window exact and every total additive
(across queues, partitions and workers).

Values are integers (durations in microseconds) so that adding and later retracting a fact leaves no
floating-point residue.
"""

from __future__ import annotations

from typing import Final


MEASURES: Final[tuple[str, ...]] = (
    "offered",
    "answered",
    "answered_within_threshold",
    "wait_answered_us",  # sum of waits of answered visits (ASA numerator)
    "abandoned",
    "abandoned_short",
    "abandoned_within_threshold",
    "wait_abandoned_us",
    "sla_breaches",
    "handled",
    "handle_us",  # sum of talk + hold + wrap (AHT numerator)
    "repeat_contacts",
    "first_contacts",
    "first_contacts_resolved",
    "first_contacts_closed",
    "first_contacts_confirmed",
    "promoters",
    "passives",
    "detractors",
    "csat_1",
    "csat_2",
    "csat_3",
    "csat_4",
    "csat_5",
    # contract v2: resolution and cost (kpis.md "Resolution and cost (v2)")
    "contacts",  # +1 per contact at t0 (its first contact.queued)
    "customers",  # distinct customers with a contact at t0 in the window: not a fact (see DISTINCT below)
    "resolved",  # final contact.ended (not transferred) with resolved true
    "resolution_us",  # sum of (that ts - t0)
    "cost_micros",  # cost of handled contacts in millionths of the currency unit (configured queues only)
    "costed",  # handled contacts of queues whose cost is configured (cost per contact's denominator)
    # contract v2: closed-loop feedback (kpis.md "Closed-loop feedback (v2)")
    "detractor_feedback",  # survey responses with nps <= 6 or csat <= 2, at the survey ts
    "followed_up",  # first follow-up of a detractor feedback, at its ts
    "feedback_response_us",  # sum of (first follow-up ts - survey ts)
    "feedback_breaches",  # detractor feedback not followed up by survey ts + target, at that moment
)
M: Final = {name: index for index, name in enumerate(MEASURES)}
N_MEASURES: Final = len(MEASURES)

OFFERED: Final = M["offered"]
ANSWERED: Final = M["answered"]
ANSWERED_WITHIN: Final = M["answered_within_threshold"]
WAIT_ANSWERED: Final = M["wait_answered_us"]
ABANDONED: Final = M["abandoned"]
ABANDONED_SHORT: Final = M["abandoned_short"]
ABANDONED_WITHIN: Final = M["abandoned_within_threshold"]
WAIT_ABANDONED: Final = M["wait_abandoned_us"]
SLA_BREACHES: Final = M["sla_breaches"]
HANDLED: Final = M["handled"]
HANDLE: Final = M["handle_us"]
REPEATS: Final = M["repeat_contacts"]
FIRST: Final = M["first_contacts"]
FIRST_RESOLVED: Final = M["first_contacts_resolved"]
FIRST_CLOSED: Final = M["first_contacts_closed"]
FIRST_CONFIRMED: Final = M["first_contacts_confirmed"]
PROMOTERS: Final = M["promoters"]
PASSIVES: Final = M["passives"]
DETRACTORS: Final = M["detractors"]
CSAT_1 = M["csat_1"]  # csat_k = CSAT_1 + k - 1
CONTACTS: Final = M["contacts"]
CUSTOMERS: Final = M["customers"]
RESOLVED: Final = M["resolved"]
RESOLUTION: Final = M["resolution_us"]
COST: Final = M["cost_micros"]
COSTED: Final = M["costed"]
DETRACTOR_FEEDBACK: Final = M["detractor_feedback"]
FOLLOWED_UP: Final = M["followed_up"]
FEEDBACK_RESPONSE: Final = M["feedback_response_us"]
FEEDBACK_BREACHES: Final = M["feedback_breaches"]
DISTINCT: Final = frozenset({CUSTOMERS})
"""Measures that are not sums of facts: a distinct count per window does not add up over buckets, so it is
counted from the customer side's index of contacts when a window is read (``Aggregates.window``)."""

UNKNOWN: Final = "unknown"


Fact = tuple[int, int, str, str, int]
"""One addition to one count: ``(measure, at_us, queue, channel, value)``. A plain tuple, not a NamedTuple:
facts are made for every event and a NamedTuple costs several times more to build."""


def zero_counts() -> list[int]:
    return [0] * N_MEASURES
