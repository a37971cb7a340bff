"""Simulated time: integer milliseconds since the epoch, and its RFC 3339 spelling.

Why integer milliseconds: the heap orders events exactly (no float ties that differ between machines), a
wait computed from two timestamps is exact, and ``ended.ts - answered.ts`` equals talk + hold + wrap to the
millisecond. Formatting caches the date-time prefix of the current second, because datetime formatting
would otherwise be the simulator's single largest cost at 50k events/s.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class TimestampFormatter:
    """``ms -> "2026-11-22T09:15:02.250Z"``, identical to :func:`cxpulse.models.events.format_ts` (ms * 1000)."""

    __slots__ = ("_second", "_prefix")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, ms: int) -> str:
        second, milli = divmod(ms, 1000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{milli:03d}Z"


def to_ms(moment: datetime) -> int:
    """An aware datetime as integer epoch milliseconds (sub-millisecond parts dropped)."""
    if moment.tzinfo is None:
        raise ValueError("simulated time needs a timezone-aware datetime")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def now_ms() -> int:
    """The wall clock, rounded down to the whole second (a tidy default start)."""
    return int(datetime.now(timezone.utc).timestamp()) * 1000


def seconds_to_ms(seconds: float) -> int:
    """A sampled duration in whole milliseconds (never negative)."""
    return int(seconds * 1000.0 + 0.5) if seconds > 0 else 0
