"""From counts to the KPI document (the shape of ``cxpulse replay --json`` and ``GET /api/v1/kpis``).

Why in the core: the replay, the live API, the Redis read model and the wallboard must show the very same
figures, so the ratios (with their null-on-empty rule) are computed in one place.
"""

from __future__ import annotations

from typing import Any

from cxpulse.core.definitions import FIELDS, SERVICE_LEVEL, Amount, Count
from cxpulse.models.events import format_ts

WINDOW_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS)
"""The document's window fields after ``start`` and ``end``, in order: those of the definitions table."""

# (name, (coefficient, measure index)...) for counts; (name, kpi) for ratios: resolved once, not per window
_PLAN: tuple[tuple[str, Any], ...] = tuple(
    (f.name, f.value.indexed if isinstance(f, Count) else f) for f in FIELDS
)


def service_level(counts: list[int], formula: str) -> float | None:
    """Service level by the configured ``sl_formula`` (the definitions table's variant of that name)."""
    return SERVICE_LEVEL.ratio(formula).evaluate(counts)


def window_kpis(counts: list[int], formula: str, start_us: int, end_us: int) -> dict[str, Any]:
    """One window object: its exact bounds, the counts and the ratios of the definitions table, under the
    documented names. ``formula`` is the ``sl_formula`` of the queue (the centre's for totals); it picks the
    variant of every KPI whose setting is ``sl_formula``."""
    out: dict[str, Any] = {"start": format_ts(start_us), "end": format_ts(end_us)}
    for name, how in _PLAN:
        if isinstance(how, tuple):
            out[name] = sum(coefficient * counts[index] for coefficient, index in how)
        elif isinstance(how, Amount):
            out[name] = how.evaluate(counts)
        else:
            out[name] = how.ratio(formula if how.setting == "sl_formula" else None).evaluate(counts)
    return out


def add_counts(into: list[int], other: list[int]) -> list[int]:
    for index, value in enumerate(other):
        if value:
            into[index] += value
    return into
