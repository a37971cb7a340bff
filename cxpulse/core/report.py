"""From counts to the KPI document (the shape of ``cxpulse replay --json`` and ``GET /api/v1/kpis``).

Why in the core: the replay, the live API, the Redis read model and the wallboard must show the very same
figures, so the ratios (with their null-on-empty rule) are computed in one place.
"""

from __future__ import annotations

from typing import Any

from cxpulse.core import measures as m
from cxpulse.models.events import format_ts

WINDOW_FIELDS: tuple[str, ...] = (
    "offered", "answered", "answered_within_threshold", "abandoned", "abandoned_short", "sla_breaches",
    "service_level", "abandon_rate", "asa_seconds", "handled", "aht_seconds", "repeat_contacts",
    "first_contacts", "first_contacts_resolved", "fcr", "first_contacts_closed", "first_contacts_confirmed",
    "fcr_confirmed", "nps_responses", "promoters", "passives", "detractors", "nps", "csat_responses",
    "csat_satisfied", "csat",
)


def _ratio(numerator: float, denominator: float, scale: float = 1.0) -> float | None:
    """A ratio with a zero denominator is null (kpis.md, Windows), not 0 and not 100."""
    return None if denominator == 0 else scale * numerator / denominator


def service_level(counts: list[int], formula: str) -> float | None:
    """Service level by the configured ``sl_formula``."""
    answered, within = counts[m.ANSWERED], counts[m.ANSWERED_WITHIN]
    abandoned, short = counts[m.ABANDONED], counts[m.ABANDONED_SHORT]
    if formula == "exclude_short_abandons":
        return _ratio(within, answered + abandoned - short)
    if formula == "abandons_count_against":
        return _ratio(within, answered + abandoned)
    if formula == "abandons_within_count_for":
        return _ratio(within + counts[m.ABANDONED_WITHIN], answered + abandoned)
    raise ValueError(f"unknown sl_formula {formula!r}")


def window_kpis(counts: list[int], formula: str, start_us: int, end_us: int) -> dict[str, Any]:
    """One window object: its exact bounds, the raw counts and the ratios, under the documented names."""
    c = counts
    answered, abandoned, short = c[m.ANSWERED], c[m.ABANDONED], c[m.ABANDONED_SHORT]
    promoters, passives, detractors = c[m.PROMOTERS], c[m.PASSIVES], c[m.DETRACTORS]
    nps_responses = promoters + passives + detractors
    csat_responses = sum(c[m.CSAT_1 + k] for k in range(5))
    csat_satisfied = c[m.CSAT_1 + 3] + c[m.CSAT_1 + 4]
    asa_us = _ratio(c[m.WAIT_ANSWERED], answered)
    aht_us = _ratio(c[m.HANDLE], c[m.HANDLED])
    return {
        "start": format_ts(start_us),
        "end": format_ts(end_us),
        "offered": c[m.OFFERED],
        "answered": answered,
        "answered_within_threshold": c[m.ANSWERED_WITHIN],
        "abandoned": abandoned,
        "abandoned_short": short,
        "sla_breaches": c[m.SLA_BREACHES],
        "service_level": service_level(c, formula),
        "abandon_rate": _ratio(abandoned - short, answered + abandoned - short),
        "asa_seconds": None if asa_us is None else asa_us / 1_000_000,
        "handled": c[m.HANDLED],
        "aht_seconds": None if aht_us is None else aht_us / 1_000_000,
        "repeat_contacts": c[m.REPEATS],
        "first_contacts": c[m.FIRST],
        "first_contacts_resolved": c[m.FIRST_RESOLVED],
        "fcr": _ratio(c[m.FIRST_RESOLVED], c[m.FIRST]),
        "first_contacts_closed": c[m.FIRST_CLOSED],
        "first_contacts_confirmed": c[m.FIRST_CONFIRMED],
        "fcr_confirmed": _ratio(c[m.FIRST_CONFIRMED], c[m.FIRST_CLOSED]),
        "nps_responses": nps_responses,
        "promoters": promoters,
        "passives": passives,
        "detractors": detractors,
        "nps": _ratio(promoters - detractors, nps_responses, 100.0),
        "csat_responses": csat_responses,
        "csat_satisfied": csat_satisfied,
        "csat": _ratio(csat_satisfied, csat_responses, 100.0),
    }


def add_counts(into: list[int], other: list[int]) -> list[int]:
    for index, value in enumerate(other):
        if value:
            into[index] += value
    return into
