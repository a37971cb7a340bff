"""Raw window counts of one worker, and the whole-centre document merged from several workers' counts.

Why: each worker owns some partitions. Ratios do not add, counts do: a worker publishes its raw counts per
(queue, channel) and window (a *partial*), and any reader (the Redis sink, the wallboard) merges the partials
of all live workers into the same document shape as ``GET /api/v1/kpis`` with the core's own ratio code.
"""

from __future__ import annotations

from typing import Any, Iterable

from cxpulse.units import US_PER_SECOND
from cxpulse.core.aggregates import Aggregates
from cxpulse.core.engine import _sum, live_feedback
from cxpulse.core.report import add_counts, window_kpis
from cxpulse.core.windows import window_bounds
from cxpulse.models.events import format_ts
from cxpulse.settings import KpiSettings


def partial(
    kpi: KpiSettings,
    parts: list[Aggregates],
    waiting: dict[tuple[str, str], tuple[int, float]],
    now_us: int,
    worker_id: str,
    awaiting: dict[tuple[str, str], tuple[int, float]] | None = None,
) -> dict[str, Any]:
    """This worker's raw counts at ``now_us``: per (queue, channel) and window ``[start, end, counts]``, and
    live state. Queues are a list of entries naming queue and channel as separate JSON strings: a key joined
    with a separator would break on any name that contains the separator."""
    bucket_us = kpi.bucket_seconds * US_PER_SECOND
    for part in parts:
        part.advance(now_us)
    awaiting = awaiting or {}
    keys = sorted({key for part in parts for key in part.active_keys()} | set(waiting) | set(awaiting))
    queues: list[dict[str, Any]] = []
    for queue, channel in keys:
        tz = kpi.for_queue(queue, channel).timezone
        windows = {}
        for name in kpi.windows:
            start, end = window_bounds(name, now_us, tz, bucket_us)
            windows[name] = [start, end, _sum(parts, start, end, (queue, channel))]
        count, longest = waiting.get((queue, channel), (0, 0.0))
        follow_ups, oldest = awaiting.get((queue, channel), (0, 0.0))
        queues.append({"queue": queue, "channel": channel, "windows": windows,
                       "live": [count, longest, follow_ups, oldest]})
    totals = {}
    for name in kpi.windows:
        start, end = window_bounds(name, now_us, kpi.timezone, bucket_us)
        totals[name] = [start, end, _sum(parts, start, end, None)]
    return {"worker": worker_id, "now": now_us, "queues": queues, "totals": totals}


def merge(kpi: KpiSettings, partials: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The KPI document over several workers' partials (counts added; a window spans the union of bounds)."""
    per_key: dict[tuple[str, str], dict[str, list[Any]]] = {}
    live: dict[tuple[str, str], list[float]] = {}
    totals: dict[str, list[Any]] = {}
    now = 0
    for item in partials:
        now = max(now, item["now"])
        for entry in item["queues"]:
            key = (entry["queue"], entry["channel"])
            windows = per_key.setdefault(key, {})
            for name, (start, end, counts) in entry["windows"].items():
                _merge_window(windows, name, start, end, counts)
            # [waiting, longest, awaiting follow-up, oldest awaiting]; a worker of before contract v2 sends two
            count, longest, *feedback = entry["live"]
            follow_ups, oldest = feedback if len(feedback) == 2 else (0, 0.0)
            held = live.setdefault(key, [0, 0.0, 0, 0.0])
            held[0] += count
            held[1] = max(held[1], longest)
            held[2] += follow_ups
            held[3] = max(held[3], oldest)
        for name, (start, end, counts) in item["totals"].items():
            _merge_window(totals, name, start, end, counts)
    queues = []
    for key in sorted(per_key):
        queue, channel = key
        formula = kpi.for_queue(queue, channel).sl_formula
        count, longest, follow_ups, oldest = live[key]  # set with per_key[key], in the same loop
        queues.append({
            "queue": queue,
            "channel": channel,
            "live": {"waiting": int(count), "longest_wait_seconds": longest,
                     **live_feedback(int(follow_ups), oldest)},
            "windows": {name: window_kpis(c, formula, s, e) for name, (s, e, c) in per_key[key].items()},
        })
    waiting_total = sum(int(v[0]) for v in live.values())
    longest_total = max((v[1] for v in live.values()), default=0.0)
    feedback_total = live_feedback(sum(int(v[2]) for v in live.values()), max((v[3] for v in live.values()), default=0.0))
    return {
        "generated_at": format_ts(now) if now else None,
        "queues": queues,
        "totals": {
            "live": {"waiting": waiting_total, "longest_wait_seconds": longest_total, **feedback_total},
            "windows": {name: window_kpis(c, kpi.sl_formula, s, e) for name, (s, e, c) in totals.items()},
        },
    }


def _merge_window(into: dict[str, list[Any]], name: str, start: int, end: int, counts: list[int]) -> None:
    held = into.get(name)
    if held is None:
        into[name] = [start, end, list(counts)]  # a copy: later partials are added into it
        return
    held[0] = min(held[0], start)
    held[1] = max(held[1], end)
    add_counts(held[2], counts)
