"""The raw counts every KPI is made of, and the *facts* that add to them.

Why facts: each KPI in kpis.md is a ratio of counts, and each count is "+1 (or +x) at some attribution time,
for some (queue, channel)". A fact is exactly that: ``(measure, at_us, queue, channel, value)``. Windows are
then plain sums of facts whose time lies inside, which makes every window exact and every total additive
(across queues, partitions and workers).

Values are integers (durations in microseconds) so that adding and later retracting a fact leaves no
floating-point residue.
"""

from __future__ import annotations


MEASURES: tuple[str, ...] = (
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
M = {name: index for index, name in enumerate(MEASURES)}
N_MEASURES = len(MEASURES)

OFFERED = M["offered"]
ANSWERED = M["answered"]
ANSWERED_WITHIN = M["answered_within_threshold"]
WAIT_ANSWERED = M["wait_answered_us"]
ABANDONED = M["abandoned"]
ABANDONED_SHORT = M["abandoned_short"]
ABANDONED_WITHIN = M["abandoned_within_threshold"]
WAIT_ABANDONED = M["wait_abandoned_us"]
SLA_BREACHES = M["sla_breaches"]
HANDLED = M["handled"]
HANDLE = M["handle_us"]
REPEATS = M["repeat_contacts"]
FIRST = M["first_contacts"]
FIRST_RESOLVED = M["first_contacts_resolved"]
FIRST_CLOSED = M["first_contacts_closed"]
FIRST_CONFIRMED = M["first_contacts_confirmed"]
PROMOTERS = M["promoters"]
PASSIVES = M["passives"]
DETRACTORS = M["detractors"]
CSAT_1 = M["csat_1"]  # csat_k = CSAT_1 + k - 1
CONTACTS = M["contacts"]
CUSTOMERS = M["customers"]
RESOLVED = M["resolved"]
RESOLUTION = M["resolution_us"]
COST = M["cost_micros"]
COSTED = M["costed"]
DETRACTOR_FEEDBACK = M["detractor_feedback"]
FOLLOWED_UP = M["followed_up"]
FEEDBACK_RESPONSE = M["feedback_response_us"]
FEEDBACK_BREACHES = M["feedback_breaches"]
DISTINCT = frozenset({CUSTOMERS})
"""Measures that are not sums of facts: a distinct count per window does not add up over buckets, so it is
counted from the customer side's index of contacts when a window is read (``Aggregates.window``)."""

UNKNOWN = "unknown"


Fact = tuple[int, int, str, str, int]
"""One addition to one count: ``(measure, at_us, queue, channel, value)``. A plain tuple, not a NamedTuple:
facts are made for every event and a NamedTuple costs several times more to build."""


def zero_counts() -> list[int]:
    return [0] * N_MEASURES
