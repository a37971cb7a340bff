"""Counts per (queue, channel) in event-time buckets, with exact window edges.

Why buckets plus a "future" set: a rolling window is [start, now). Its start may be rounded to the bucket
size (kpis.md allows 1/15 of the window), but its end must be exact. Facts whose time has not come yet (a
breach due at queued + T, an FCR closing at t0 + F, a producer clock slightly ahead) wait in ``future`` and
move into their bucket when :meth:`Aggregates.advance` passes their time. Every bucket therefore only holds
facts before ``now``, and a window is the plain sum of its buckets.

Also kept: ``totals``, every count since the start (never pruned), for Prometheus counters.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable

from cxpulse.core.measures import N_MEASURES, SLA_BREACHES, Fact

Key = tuple[str, str]  # queue, channel
Slot = tuple[int, int, str, str]  # measure, at_us, queue, channel: a future fact without its value
Observer = Callable[[list[Fact], int], None]  # (facts, sign)


class Aggregates:
    """Sums of facts. ``apply(facts, sign)`` adds (+1) or retracts (-1) facts."""

    __slots__ = ("bucket_us", "buckets", "future", "_heap", "now", "totals", "observer")

    def __init__(self, bucket_us: int, now_us: int = 0, observer: "Observer | None" = None) -> None:
        self.bucket_us = bucket_us
        self.buckets: dict[Key, dict[int, list[int]]] = {}
        self.future: dict[Slot, int] = {}  # (measure, at, queue, channel) -> summed value
        self._heap: list[tuple[int, Slot]] = []
        self.now = now_us  # facts at or after this are in the future
        self.totals: dict[Key, list[int]] = {}
        self.observer = observer  # sees every fact with its sign (e.g. for Prometheus histograms)

    def _to_bucket(self, measure: int, at: int, key: Key, value: int) -> None:
        start = at - at % self.bucket_us
        per_key = self.buckets.get(key)
        if per_key is None:
            per_key = self.buckets[key] = {}
            self.totals[key] = [0] * N_MEASURES
        counts = per_key.get(start)
        if counts is None:
            counts = per_key[start] = [0] * N_MEASURES
        counts[measure] += value
        self.totals[key][measure] += value

    def apply(self, facts: Iterable[Fact], sign: int = 1) -> None:
        now = self.now
        if self.observer is not None:
            facts = list(facts)
            self.observer(facts, sign)
        buckets, totals, bucket_us = self.buckets, self.totals, self.bucket_us
        for measure, at, queue, channel, value in facts:
            if at < now:  # the hot path, inlined: one dict lookup per level
                key = (queue, channel)
                per_key = buckets.get(key)
                if per_key is None:
                    per_key = buckets[key] = {}
                    totals[key] = [0] * N_MEASURES
                start = at - at % bucket_us
                counts = per_key.get(start)
                if counts is None:
                    counts = per_key[start] = [0] * N_MEASURES
                delta = sign * value
                counts[measure] += delta
                totals[key][measure] += delta
            else:
                slot = (measure, at, queue, channel)
                previous = self.future.get(slot)
                if previous is None:
                    heapq.heappush(self._heap, (at, slot))
                    previous = 0
                total = previous + sign * value
                if total:
                    self.future[slot] = total
                else:
                    self.future.pop(slot, None)

    def advance(self, now_us: int) -> None:
        """Let time pass: facts before ``now_us`` join their buckets. Time never goes back."""
        if now_us <= self.now:
            return
        self.now = now_us
        heap = self._heap
        while heap and heap[0][0] < now_us:
            _, slot = heapq.heappop(heap)
            value = self.future.pop(slot, 0)
            if value:
                self._to_bucket(slot[0], slot[1], (slot[2], slot[3]), value)

    def ensure_key(self, key: Key) -> None:
        """Make a (queue, channel) known even before it has counts (a queue where contacts only wait)."""
        if key not in self.buckets:
            self.buckets[key] = {}
            self.totals[key] = [0] * N_MEASURES

    def active_keys(self) -> set[Key]:
        """(queue, channel)s with a count, in a bucket or still due (a survey at exactly now is one); a key
        whose facts were all retracted (a survey first attributed to ``unknown``, then to its queue) is not."""
        keys = {key for key, counts in self.totals.items() if any(counts)}
        keys.update((queue, channel) for _, _, queue, channel in self.future)
        return keys

    def prune(self, before_us: int) -> None:
        """Forget buckets that end before ``before_us`` (older than every window still reported)."""
        limit = before_us - self.bucket_us
        for per_key in self.buckets.values():
            for start in [s for s in per_key if s <= limit]:
                del per_key[start]

    def window(self, start_us: int, end_us: int, keys: Iterable[Key] | None = None) -> dict[Key, list[int]]:
        """Counts per key over buckets in [start_us, end_us); ``start_us`` must be a bucket edge and
        ``end_us`` must not pass ``now`` (only facts before ``now`` are in buckets)."""
        if end_us > self.now:
            raise ValueError("a window cannot end after the aggregates' now: advance() first")
        out: dict[Key, list[int]] = {}
        chosen = self.buckets.keys() if keys is None else keys
        for key in chosen:
            per_key = self.buckets.get(key)
            sums = [0] * N_MEASURES
            if per_key:
                for start, counts in per_key.items():
                    if start_us <= start < end_us:
                        for index, value in enumerate(counts):
                            if value:
                                sums[index] += value
            out[key] = sums
        return out

    def future_until(self, end_us: int) -> dict[Key, list[int]]:
        """Counts of facts still in the future but before ``end_us`` (for a window ending past now).

        A breach still in the future is a visit waiting since ``queued`` with ``queued + T >= now``: its wait
        does not *exceed* T yet (kpis.md), so it is not a breach yet, even in a window that includes ``now``."""
        out: dict[Key, list[int]] = {}
        for (measure, at, queue, channel), value in self.future.items():
            if at < end_us and measure != SLA_BREACHES:
                sums = out.setdefault((queue, channel), [0] * N_MEASURES)
                sums[measure] += value
        return out
