"""How the wallboard shows a number: the Python twin of ``static/wallboard.js``'s ``format`` functions.

Why a twin: tests compute the text the page must show from the API's document with these functions, and the
browser test checks that the page's JavaScript gives the same text for the same values (same IEEE arithmetic,
half-up rounding with ``floor(x + 0.5)`` in both languages: Python's ``round`` rounds half to even). The
colour of a figure is :func:`cxpulse.wallboard.thresholds.state`, whose twin is the page's ``format.state``.
"""

from __future__ import annotations

import math
from typing import Any

NULL = "\u2013"  # en dash: a ratio with a zero denominator (kpis.md: null, not 0 and not 100)


def _half_up(x: float) -> int:
    return math.floor(x + 0.5)


def fmt_count(value: Any) -> str:
    return NULL if value is None else str(int(value))


def fmt_percent(ratio: float | None) -> str:
    """A 0..1 ratio as a whole percent: ``0.824`` -> ``82%``."""
    return NULL if ratio is None else f"{_half_up(ratio * 100)}%"


def fmt_percent1(ratio: float | None) -> str:
    """A 0..1 ratio with one decimal: ``0.0342`` -> ``3.4%`` (abandonment is small: a decimal matters)."""
    if ratio is None:
        return NULL
    tenths = _half_up(ratio * 1000)
    sign = "-" if tenths < 0 else ""
    tenths = abs(tenths)
    return f"{sign}{tenths // 10}.{tenths % 10}%"


def fmt_score(value: float | None) -> str:
    """A 0..100 score as a whole percent (CSAT): ``86.7`` -> ``87%``."""
    return NULL if value is None else f"{_half_up(value)}%"


def fmt_nps(value: float | None) -> str:
    """NPS, -100..100, signed: ``41.6`` -> ``+42``, ``-5`` -> ``-5``, ``0`` -> ``0``."""
    if value is None:
        return NULL
    n = _half_up(value)
    return f"+{n}" if n > 0 else str(n)


def fmt_duration(seconds: float | None) -> str:
    """Seconds as ``mm:ss`` (``h:mm:ss`` from one hour): ``83.4`` -> ``01:23``."""
    if seconds is None:
        return NULL
    total = max(0, _half_up(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes:02d}:{secs:02d}"


def fmt_threshold(seconds: float | None) -> str:
    """A service-level threshold, short: ``20`` -> ``20s``, ``3600`` -> ``1h``, ``14400`` -> ``4h``."""
    if seconds is None:
        return NULL
    s = _half_up(seconds)
    if s < 120 or s % 60:
        return f"{s}s"
    if s % 3600:
        return f"{s // 60}m"
    return f"{s // 3600}h"


# field of a tile -> (where in the document, formatter); "live" fields come from the entry's "live" object
TILE_FIELDS: dict[str, tuple[str, str, Any]] = {
    "waiting": ("live", "waiting", fmt_count),
    "longest_wait": ("live", "longest_wait_seconds", fmt_duration),
    "service_level": ("window", "service_level", fmt_percent),
    "asa": ("window", "asa_seconds", fmt_duration),
    "abandon_rate": ("window", "abandon_rate", fmt_percent1),
    "nps": ("window", "nps", fmt_nps),
    "csat": ("window", "csat", fmt_score),
    "fcr": ("window", "fcr", fmt_percent),
}


def tile_texts(entry: dict[str, Any], window: str) -> dict[str, str]:
    """What a tile shows for a document entry (a queue, or ``totals``) and window: field -> text."""
    win = entry["windows"].get(window) or {}
    out = {}
    for name, (where, key, fmt) in TILE_FIELDS.items():
        source = entry["live"] if where == "live" else win
        out[name] = fmt(source.get(key))
    return out


def testid_of(queue: str | None, channel: str | None, field: str) -> str:
    """The ``data-testid`` of a number on the page: ``tile-<queue>-<channel>-<field>``, ``totals-<field>``."""
    if queue is None:
        return f"totals-{field}"
    return f"tile-{queue}-{channel}-{field}"
