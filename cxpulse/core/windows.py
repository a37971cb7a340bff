"""Window bounds: rolling windows end at now; ``today`` starts at local midnight, DST-aware.

Why rounding only the start: kpis.md lets the start of a rolling window be rounded down to the bucket
size (at most 1/15 of the window) as long as the reported bounds say so; the end is always exactly now.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from cxpulse.units import US_PER_SECOND
from cxpulse.settings import KpiSettings, parse_duration

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US = timedelta(microseconds=1)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_midnight_us(now_us: int, tz_name: str) -> int:
    """The most recent local midnight at or before ``now_us`` in ``tz_name``, as UTC microseconds.

    Built from the local date (not by subtracting 24 h), so a 23 h or 25 h day around a DST change is right.
    """
    zone = _zone(tz_name)
    local = (_EPOCH + timedelta(microseconds=now_us)).astimezone(zone)
    midnight = datetime(local.year, local.month, local.day, tzinfo=zone)
    return (midnight.astimezone(timezone.utc) - _EPOCH) // _ONE_US


def window_bounds(name: str, now_us: int, tz_name: str, bucket_us: int) -> tuple[int, int]:
    """[start, end) of window ``name`` ("15m", "1h", "24h", "today", ...) at ``now_us``."""
    if name == "today":
        return local_midnight_us(now_us, tz_name), now_us
    length = parse_duration(name) * US_PER_SECOND
    start = now_us - length
    start -= start % bucket_us
    return start, now_us


HOUR_US = 3600 * US_PER_SECOND
TODAY_LONGEST_US = 25 * HOUR_US  # "today" spans at most 25 h: local midnight on a day the clocks go back


def history_us(kpi: KpiSettings) -> int:
    """How far back buckets (and the distinct-customer index) must reach for every window of the document.

    A rolling window of length L starts at now - L rounded down to a bucket edge, so it reaches at most L + one
    bucket back; "today" reaches back to local midnight, at most 25 h. One hour more keeps a margin for documents
    read a little before the clock that pruned (the Redis refresh and the API run at the wall clock). With the
    default windows (24h, today) that is 26 h; it was two days, which held 22 hours of minute buckets and
    distinct-customer entries no window read (about 80 MiB in a week's worker, measured)."""
    rolling = [parse_duration(name) for name in kpi.windows if name != "today"]
    longest = max(rolling, default=0) * US_PER_SECOND + kpi.bucket_seconds * US_PER_SECOND
    return max(TODAY_LONGEST_US, longest) + HOUR_US
