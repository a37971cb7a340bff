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

HOUR_US = 3_600_000_000
Key = tuple[str, str]  # queue, channel
Slot = tuple[int, int, str, str]  # measure, at_us, queue, channel: a future fact without its value
Observer = Callable[[list[Fact], int], None]  # (facts, sign)


class Aggregates:
    """Sums of facts. ``apply(facts, sign)`` adds (+1) or retracts (-1) facts."""

    __slots__ = ("bucket_us", "buckets", "hours", "future", "_heap", "now", "totals", "observer", "open", "at_now")

    def __init__(self, bucket_us: int, now_us: int = 0, observer: "Observer | None" = None,
                 open_breaches: "dict[Key, dict[str, int]] | None" = None) -> None:
        self.bucket_us = bucket_us
        self.buckets: dict[Key, dict[int, list[int]]] = {}
        # the same counts summed per hour: a window adds whole hours and steps through buckets only at its edges
        self.hours: dict[Key, dict[int, list[int]]] = {}
        self.future: dict[Slot, int] = {}  # (measure, at, queue, channel) -> summed value
        self._heap: list[tuple[int, Slot]] = []
        self.now = now_us  # facts at or after this are in the future
        self.totals: dict[Key, list[int]] = {}
        self.observer = observer  # sees every fact with its sign (e.g. for Prometheus histograms)
        # deadlines (queued + T) of the visits still waiting, per key, by contact: their breach is not a stored
        # fact but a live one, counted in a window once its deadline lies inside it and before now (Engine v2:
        # no future fact, heap entry and retraction per contact for a breach that usually never happens)
        self.open = open_breaches if open_breaches is not None else {}
        # facts at exactly ``now`` (with their sign): in order, every event's own facts are at the newest event
        # time, which is now; they join their buckets at the next advance, without a heap (Engine v2)
        self.at_now: list[Fact] = []

    def apply(self, facts: Iterable[Fact], sign: int = 1, *, observe: bool = True) -> None:
        now = self.now
        if observe and self.observer is not None:
            facts = list(facts)
            self.observer(facts, sign)
        buckets, hours, totals, bucket_us = self.buckets, self.hours, self.totals, self.bucket_us
        for measure, at, queue, channel, value in facts:
            if at < now:  # the hot path, inlined: one dict lookup per level
                key = (queue, channel)
                per_key = buckets.get(key)
                if per_key is None:
                    per_key = buckets[key] = {}
                    totals[key] = [0] * N_MEASURES
                    hours[key] = {}
                start = at - at % bucket_us
                counts = per_key.get(start)
                if counts is None:
                    counts = per_key[start] = [0] * N_MEASURES
                per_hour = hours[key]
                hour = at - at % HOUR_US
                hour_counts = per_hour.get(hour)
                if hour_counts is None:
                    hour_counts = per_hour[hour] = [0] * N_MEASURES
                delta = sign * value
                counts[measure] += delta
                hour_counts[measure] += delta
                totals[key][measure] += delta
            elif at == now:
                self.at_now.append((measure, at, queue, channel, sign * value))
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
        if self.at_now:
            due_now, self.at_now = self.at_now, []
            self.apply(due_now, 1, observe=False)
        heap = self._heap
        if not heap or heap[0][0] > now_us:
            return
        due: list[Fact] = []
        future = self.future
        while heap and heap[0][0] <= now_us:  # future holds only facts after now; at now they join at_now
            _, slot = heapq.heappop(heap)
            value = future.pop(slot, 0)
            if value:
                due.append((slot[0], slot[1], slot[2], slot[3], value))
        if due:
            self.apply(due, 1, observe=False)

    def ensure_key(self, key: Key) -> None:
        """Make a (queue, channel) known even before it has counts (a queue where contacts only wait)."""
        if key not in self.buckets:
            self.buckets[key] = {}
            self.hours[key] = {}
            self.totals[key] = [0] * N_MEASURES

    def active_keys(self) -> set[Key]:
        """(queue, channel)s with a count, in a bucket or still due (a survey at exactly now is one); a key
        whose facts were all retracted (a survey first attributed to ``unknown``, then to its queue) is not."""
        keys = {key for key, counts in self.totals.items() if any(counts)}
        keys.update((queue, channel) for _, _, queue, channel in self.future)
        if self.at_now:  # entries carry their sign: a fact added and retracted at now leaves no count
            pending: dict[tuple[int, str, str], int] = {}
            for measure, _, queue, channel, value in self.at_now:
                pending[(measure, queue, channel)] = pending.get((measure, queue, channel), 0) + value
            keys.update((queue, channel) for (_, queue, channel), value in pending.items() if value)
        keys.update(key for key, deadlines in self.open.items() if any(at < self.now for at in deadlines.values()))
        return keys

    def prune(self, before_us: int) -> None:
        """Forget buckets that end before ``before_us`` (older than every window still reported)."""
        limit = before_us - self.bucket_us
        for per_key in self.buckets.values():
            for start in [s for s in per_key if s <= limit]:
                del per_key[start]
        for per_hour in self.hours.values():  # an hour goes once all its buckets are gone
            for hour in [h for h in per_hour if h + HOUR_US - self.bucket_us <= limit]:
                del per_hour[hour]

    def window(self, start_us: int, end_us: int, keys: Iterable[Key] | None = None) -> dict[Key, list[int]]:
        """Counts per key over buckets in [start_us, end_us); ``start_us`` must be a bucket edge and
        ``end_us`` must not pass ``now`` (only facts before ``now`` are in buckets)."""
        if end_us > self.now:
            raise ValueError("a window cannot end after the aggregates' now: advance() first")
        out: dict[Key, list[int]] = {}
        chosen = self.buckets.keys() if keys is None else keys
        bucket_us = self.bucket_us
        first_hour = -(-start_us // HOUR_US) * HOUR_US  # the first whole hour inside the window
        end_hour = end_us - end_us % HOUR_US  # whole hours end here
        if first_hour < end_hour:  # hours [first_hour, end_hour) lie wholly inside [start_us, end_us)
            whole = range(first_hour, end_hour, HOUR_US)
            edges = ((start_us, first_hour), (end_hour, end_us))
        else:
            whole = range(0)
            edges = ((start_us, end_us),)
        for key in chosen:
            per_key = self.buckets.get(key)
            sums = [0] * N_MEASURES
            if per_key:
                per_hour = self.hours.get(key, {})
                for hour in whole:
                    counts = per_hour.get(hour)
                    if counts is not None:
                        _add(sums, counts)
                for low, high in edges:
                    at = low - low % bucket_us
                    if at < low:
                        at += bucket_us
                    while at < high:
                        counts = per_key.get(at)
                        if counts is not None:
                            _add(sums, counts)
                        at += bucket_us
            deadlines = self.open.get(key)
            if deadlines:
                high = min(end_us, self.now)
                sums[SLA_BREACHES] += sum(1 for at in deadlines.values() if start_us <= at < high)
            out[key] = sums
        return out

    def open_breaches_before(self, end_us: int) -> dict[Key, int]:
        """Breaches of still-waiting visits whose deadline lies before ``end_us`` (and before now)."""
        high = min(end_us, self.now)
        out: dict[Key, int] = {}
        for key, deadlines in self.open.items():
            count = sum(1 for at in deadlines.values() if at < high)
            if count:
                out[key] = count
        return out

    def future_until(self, end_us: int) -> dict[Key, list[int]]:
        """Counts of facts still in the future but before ``end_us`` (for a window ending past now).

        Breaches are never future facts: a waiting visit's breach is live (:attr:`open`), and a closed visit's
        breach lies at queued + T, before its outcome."""
        out: dict[Key, list[int]] = {}
        for (measure, at, queue, channel), value in self.future.items():
            if at < end_us and measure != SLA_BREACHES:
                sums = out.setdefault((queue, channel), [0] * N_MEASURES)
                sums[measure] += value
        for measure, at, queue, channel, value in self.at_now:
            if at < end_us:
                sums = out.setdefault((queue, channel), [0] * N_MEASURES)
                sums[measure] += value
        return out


def _add(into: list[int], counts: list[int]) -> None:
    for index, value in enumerate(counts):
        if value:
            into[index] += value
