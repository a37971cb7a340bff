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
from typing import Any, ClassVar, Final

from cxpulse.core.attributes import own_attributes
from cxpulse.core.distinct import DistinctCustomers
from cxpulse.core.future import COMBO_BITS as _COMBO_BITS, COMBO_MASK as _COMBO_MASK, COMBOS as _COMBOS, FutureFacts
from cxpulse.core.measures import (
    CUSTOMERS, FEEDBACK_BREACHES, FIRST_CLOSED, FIRST_CONFIRMED, N_MEASURES, SLA_BREACHES, Fact,
)

HOUR_US: Final = 3_600_000_000
Key = tuple[str, str]  # queue, channel
# a future fact's code in ``future``: at_us << _COMBO_BITS | id of its (measure, queue, channel)
# the measures of an FCR close (at max(t0 + F, end)): a week ahead with the default window, kept in ``closing``
_CLOSING: Final = frozenset((FIRST_CLOSED, FIRST_CONFIRMED))
_NOTHING_PRUNED: Final = -(1 << 61)  # before any event time (and a short int for the compiled core)
Awaiting = dict[tuple[str, str], tuple[int, int]]  # (contact_id, survey id) -> (survey ts, survey ts + target)
Observer = Callable[[list[Fact], int], None]  # (facts, sign)


class Aggregates:
    """Sums of facts. ``apply(facts, sign)`` adds (+1) or retracts (-1) facts.

    Why facts before now are folded in lazily (Engine v2): a fact used to cost three counter updates (its
    bucket, its hour, the total) and four dictionary lookups the moment it was applied, about a fifth of the
    whole per-event cost. Now :meth:`apply` only appends it to ``_pending``; :meth:`_fold` sums the pending
    facts per (queue, channel, bucket) first, then touches each bucket, hour and total once per such slot,
    when something reads the counts (a window, the totals, pruning) or when ``FOLD_EVERY`` facts are pending.
    Sums are commutative, so the result is exactly the eager one, bucket structure included (a key whose facts
    cancel out still gets its zero counts)."""

    __slots__ = ("bucket_us", "_buckets", "_hours", "future", "_heap", "closing", "now", "_totals", "observer", "open",
                 "at_now", "_pending", "awaiting", "distinct", "_combos", "_combo_of", "_pruned_to")

    # pending facts: a bound on memory between reads (a replay reads only at the end)
    FOLD_EVERY: ClassVar[int] = 65_536

    def __reduce__(self) -> tuple[Any, ...]:
        """For pickle (a split replay's process hands its aggregates back): built anew for the same bucket width,
        then every attribute set. Why explicit: compiled by mypyc (setup.py) the class has neither ``__dict__``
        nor ``__slots__``, and its default reduction calls ``__init__`` without the width."""
        return (Aggregates, (self.bucket_us,), own_attributes(self))

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Every attribute of ``state`` set (pickle; and a checkpoint's, ``checkpoint.load_processor``)."""
        for name, value in state.items():
            setattr(self, name, value)

    def __init__(self, bucket_us: int, now_us: int = 0, observer: "Observer | None" = None,
                 open_breaches: "dict[Key, dict[str, int]] | None" = None) -> None:
        self.bucket_us = bucket_us
        self._buckets: dict[Key, dict[int, list[int]]] = {}
        # the same counts summed per hour: a window adds whole hours and steps through buckets only at its edges
        self._hours: dict[Key, dict[int, list[int]]] = {}
        # facts after now, by one int each (see _code): an FCR close at t0 + F waits there for a week for every
        # first contact, so a future fact costs an int in a heap and a dict entry, not two tuples (Engine v2)
        self.future: dict[int, int] = {}  # code (at, measure, queue, channel) -> summed value
        self._heap: list[int] = []  # codes, ordered by time
        # FCR closes (_CLOSING) are the future facts that wait long: a week of first contacts is 646,881 of them in
        # a week's worker. As codes above they cost about 110 bytes each (70 MiB); in ``closing`` 16 bytes
        # (cxpulse/core/future.py). Every other future fact is an event's own, ahead of now until the next advance
        # (or by a producer's clock skew): few at a time, and cheapest in the dict. Which of the two holds a fact
        # depends on its measure only, so its retraction always finds it.
        self.closing = FutureFacts()
        self._combos: list[tuple[int, str, str]] = []  # combo id -> (measure, queue, channel)
        self._combo_of: dict[tuple[int, str, str], int] = {}
        self.now = now_us  # facts at or after this are in the future
        self._totals: dict[Key, list[int]] = {}
        # the last prune's limit: a bucket starting at or before it is gone, and one a late fact would make there
        # is not made (see _fold)
        self._pruned_to = _NOTHING_PRUNED
        self.observer = observer  # sees every fact with its sign (e.g. for Prometheus histograms)
        # deadlines (queued + T) of the visits still waiting, per key, by contact: their breach is not a stored
        # fact but a live one, counted in a window once its deadline lies inside it and before now (Engine v2:
        # no future fact, heap entry and retraction per contact for a breach that usually never happens)
        self.open = open_breaches if open_breaches is not None else {}
        # facts at exactly ``now`` (with their sign): in order, every event's own facts are at the newest event
        # time, which is now; they join their buckets at the next advance, without a heap (Engine v2)
        self.at_now: list[Fact] = []
        self._pending: list[Fact] = []  # signed facts before now, not yet folded into their buckets
        # contract v2: detractor feedback not followed up yet, per key: like a waiting visit's breach, its
        # feedback breach (at survey ts + target) is a live figure, counted once its moment lies before now
        self.awaiting: dict[Key, Awaiting] = {}
        # contract v2: the customer side's index of contacts by t0, for distinct customers (None elsewhere)
        self.distinct: DistinctCustomers | None = None

    @property
    def buckets(self) -> dict[Key, dict[int, list[int]]]:
        """(queue, channel) -> bucket start -> counts (every fact before now folded in)."""
        self._fold()
        return self._buckets

    @property
    def hours(self) -> dict[Key, dict[int, list[int]]]:
        """(queue, channel) -> hour start -> counts: the buckets summed per hour."""
        self._fold()
        return self._hours

    @property
    def totals(self) -> dict[Key, list[int]]:
        """(queue, channel) -> every count before now since the start (never pruned)."""
        self._fold()
        return self._totals

    def apply(self, facts: Iterable[Fact], sign: int = 1, *, observe: bool = True) -> None:
        now = self.now
        if observe and self.observer is not None:
            facts = list(facts)
            self.observer(facts, sign)
        pending = self._pending
        for fact in facts:
            at = fact[1]
            if at < now:  # the hot path: folded later (see the class docstring)
                pending.append(fact if sign == 1 else (fact[0], at, fact[2], fact[3], sign * fact[4]))
            elif at == now:
                self.at_now.append(fact if sign == 1 else (fact[0], at, fact[2], fact[3], sign * fact[4]))
            elif fact[0] in _CLOSING:
                self.closing.add(at, self._combo_id(fact), sign * fact[4])
            else:
                code = self._code(fact)
                previous = self.future.get(code)
                if previous is None:
                    heapq.heappush(self._heap, code)
                    previous = 0
                total = previous + sign * fact[4]
                if total:
                    self.future[code] = total
                else:
                    self.future.pop(code, None)
        if len(pending) >= self.FOLD_EVERY:
            self._fold()

    def _code(self, fact: Fact) -> int:
        """One int for a future fact's (at, measure, queue, channel): ``at`` times 2**20 plus the id of its
        (measure, queue, channel), so codes sort by time like the facts."""
        return (fact[1] << _COMBO_BITS) | self._combo_id(fact)

    def _combo_id(self, fact: Fact) -> int:
        """The id of a future fact's (measure, queue, channel), below ``_COMBOS`` (2**20)."""
        combo = (fact[0], fact[2], fact[3])
        combo_id = self._combo_of.get(combo)
        if combo_id is None:
            combo_id = self._combo_of[combo] = len(self._combos)
            if combo_id >= _COMBOS:
                raise ValueError(f"more than {_COMBOS} (measure, queue, channel) combinations in the future")
            self._combos.append(combo)
        return combo_id

    def _decode(self, code: int, value: int) -> Fact:
        measure, queue, channel = self._combos[code & _COMBO_MASK]
        return (measure, code >> _COMBO_BITS, queue, channel, value)

    def _fold(self) -> None:
        """Add the pending facts to their buckets, hours and totals (see the class docstring).

        Why a row of every measure per (queue, channel, bucket) first: a fold of 100,000 events' facts (322k) meets
        4.2k such slots but 58k (slot, measure) pairs; keyed by the slot alone, a fact costs one three-element
        tuple and one dictionary lookup (a tuple's hash is not cached: a get and a set hashed the four-element key
        twice), and each bucket, hour and total is looked up once per slot, not once per measure."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        bucket_us = self.bucket_us
        rows: dict[tuple[str, str, int], list[int]] = {}
        for measure, at, queue, channel, value in pending:
            slot = (queue, channel, at - at % bucket_us)
            row = rows.get(slot)
            if row is None:
                row = rows[slot] = [0] * N_MEASURES
            row[measure] += value
        buckets, hours, totals = self._buckets, self._hours, self._totals
        pruned_to = self._pruned_to
        for (queue, channel, start), row in rows.items():
            key = (queue, channel)
            per_key = buckets.get(key)
            if per_key is None:
                per_key = buckets[key] = {}
                totals[key] = [0] * N_MEASURES
                hours[key] = {}
            if start <= pruned_to:  # a late fact in a pruned bucket: see _fold_pruned
                self._fold_pruned(key, start, row)
                continue
            counts = per_key.get(start)
            if counts is None:
                counts = per_key[start] = [0] * N_MEASURES
            per_hour = hours[key]
            hour = start - start % HOUR_US  # a bucket divides 15 minutes (settings), so it lies in one hour
            hour_counts = per_hour.get(hour)
            if hour_counts is None:
                hour_counts = per_hour[hour] = [0] * N_MEASURES
            total = totals[key]
            for measure in range(N_MEASURES):
                value = row[measure]
                if value:
                    counts[measure] += value
                    hour_counts[measure] += value
                    total[measure] += value

    def _fold_pruned(self, key: Key, start: int, row: list[int]) -> None:
        """Fold a row whose bucket a prune has passed: into the total, and into its hour while that hour still has
        buckets after the prune's limit; no bucket made.

        Why: such a bucket is one the next prune would delete unread (no window may start before the limit). A
        worker catching up a backlog makes them by the hundred thousand: event time runs days ahead in the minute
        between two prunes of the wall-clock maintenance timer, and every bucket it passes is already past every
        window. A simulated week through one worker held up to 160k such rows (about 56 MiB, ~120 MiB of Python's
        heap with what came with them) at a time, which set its RSS (docs/performance.md, session 19)."""
        total = self._totals[key]
        hour = start - start % HOUR_US
        hour_counts: list[int] | None = None
        if hour + HOUR_US - self.bucket_us > self._pruned_to:  # the hour keeps buckets after the limit: kept
            per_hour = self._hours[key]
            hour_counts = per_hour.get(hour)
            if hour_counts is None:
                hour_counts = per_hour[hour] = [0] * N_MEASURES
        for measure in range(N_MEASURES):
            value = row[measure]
            if value:
                total[measure] += value
                if hour_counts is not None:
                    hour_counts[measure] += value

    def advance(self, now_us: int) -> None:
        """Let time pass: facts before ``now_us`` join their buckets. Time never goes back."""
        if now_us <= self.now:
            return
        self.now = now_us
        if self.at_now:  # already signed, and now before the new now
            self._pending.extend(self.at_now)
            self.at_now = []
        heap = self._heap
        limit = (now_us + 1) << _COMBO_BITS  # codes below it: facts at or before now_us
        closing = self.closing
        if (not heap or heap[0] >= limit) and now_us < closing.first_at:
            return
        future = self.future
        pending = self._pending
        while heap and heap[0] < limit:  # future holds only facts after now; at now they join at_now
            code = heapq.heappop(heap)
            value = future.pop(code, 0)
            if value:
                fact = self._decode(code, value)
                if fact[1] < now_us:
                    pending.append(fact)
                else:
                    self.at_now.append(fact)
        if now_us >= closing.first_at:
            combos = self._combos
            for at, combo_id, value in closing.pop_due(now_us):
                measure, queue, channel = combos[combo_id]
                if at < now_us:
                    pending.append((measure, at, queue, channel, value))
                else:
                    self.at_now.append((measure, at, queue, channel, value))
        if len(pending) >= self.FOLD_EVERY:
            self._fold()

    def ensure_key(self, key: Key) -> None:
        """Make a (queue, channel) known even before it has counts (a queue where contacts only wait)."""
        if key not in self._buckets:  # no fold needed: a key is only ever added
            self._buckets[key] = {}
            self._hours[key] = {}
            self._totals[key] = [0] * N_MEASURES

    def active_keys(self) -> set[Key]:
        """(queue, channel)s with a count, in a bucket or still due (a survey at exactly now is one); a key
        whose facts were all retracted (a survey first attributed to ``unknown``, then to its queue) is not."""
        keys = {key for key, counts in self.totals.items() if any(counts)}
        combos = self._combos
        keys.update(combos[code & _COMBO_MASK][1:] for code in self.future)  # type: ignore[misc]
        keys.update(combos[combo_id][1:] for combo_id in self.closing.combos())  # type: ignore[misc]
        if self.at_now:  # entries carry their sign: a fact added and retracted at now leaves no count
            pending: dict[tuple[int, str, str], int] = {}
            for measure, _, queue, channel, value in self.at_now:
                pending[(measure, queue, channel)] = pending.get((measure, queue, channel), 0) + value
            keys.update((queue, channel) for (_, queue, channel), value in pending.items() if value)
        keys.update(key for key, deadlines in self.open.items() if any(at < self.now for at in deadlines.values()))
        keys.update(key for key, awaiting in self.awaiting.items() if awaiting)
        if self.distinct is not None:  # the customer side of a key whose contacts another part counts
            keys.update(self.distinct.keys())
        return keys

    def prune(self, before_us: int) -> None:
        """Forget buckets that end before ``before_us`` (older than every window still reported)."""
        limit = before_us - self.bucket_us
        self._fold()
        self._pruned_to = max(self._pruned_to, limit)
        for per_key in self._buckets.values():
            for start in [s for s in per_key if s <= limit]:
                del per_key[start]
        for per_hour in self._hours.values():  # an hour goes once all its buckets are gone
            for hour in [h for h in per_hour if h + HOUR_US - self.bucket_us <= limit]:
                del per_hour[hour]
        if self.distinct is not None:
            self.distinct.prune(limit + self.bucket_us)

    def window(self, start_us: int, end_us: int, keys: Iterable[Key] | None = None) -> dict[Key, list[int]]:
        """Counts per key over buckets in [start_us, end_us); ``start_us`` must be a bucket edge and
        ``end_us`` must not pass ``now`` (only facts before ``now`` are in buckets)."""
        if end_us > self.now:
            raise ValueError("a window cannot end after the aggregates' now: advance() first")
        out: dict[Key, list[int]] = {}
        self._fold()
        chosen = self._buckets.keys() if keys is None else keys
        bucket_us = self.bucket_us
        first_hour = -(-start_us // HOUR_US) * HOUR_US  # the first whole hour inside the window
        end_hour = end_us - end_us % HOUR_US  # whole hours end here
        if first_hour < end_hour:  # hours [first_hour, end_hour) lie wholly inside [start_us, end_us)
            whole = range(first_hour, end_hour, HOUR_US)
            edges: tuple[tuple[int, int], ...] = ((start_us, first_hour), (end_hour, end_us))
        else:
            whole = range(0)
            edges = ((start_us, end_us),)
        for key in chosen:
            per_key = self._buckets.get(key)
            sums = [0] * N_MEASURES
            if per_key:
                per_hour = self._hours.get(key, {})
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
            awaiting = self.awaiting.get(key)
            if awaiting:
                high = min(end_us, self.now)
                sums[FEEDBACK_BREACHES] += sum(1 for _, at in awaiting.values() if start_us <= at < high)
            if self.distinct is not None:
                sums[CUSTOMERS] = self.distinct.count(key, start_us, min(end_us, self.now))
            out[key] = sums
        return out

    def customers_total(self, start_us: int, end_us: int) -> int:
        """Distinct customers over every (queue, channel), each once (kpis.md), in [start_us, min(end, now))."""
        if self.distinct is None:
            return 0
        return self.distinct.count(None, start_us, min(end_us, self.now))

    def customers_until(self, end_us: int, key: Key | None) -> int:
        """Distinct customers with a contact before ``end_us`` (a replay's ``all`` window, which may end just
        after now), in ``key`` or in total."""
        if self.distinct is None:
            return 0
        return self.distinct.count(key, -(2**63), end_us)

    def awaiting_breaches_before(self, end_us: int) -> dict[Key, int]:
        """Feedback breaches of detractor feedback still awaiting a follow-up, due before ``end_us`` and now."""
        high = min(end_us, self.now)
        out: dict[Key, int] = {}
        for key, awaiting in self.awaiting.items():
            count = sum(1 for _, at in awaiting.values() if at < high)
            if count:
                out[key] = count
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

        SLA breaches are never future facts: a waiting visit's breach is live (:attr:`open`), and a closed visit's
        breach lies at queued + T, before its outcome. A feedback breach may be (a follow-up after the target,
        written ahead of now by a producer's clock): it counts like any fact."""
        out: dict[Key, list[int]] = {}
        for code, value in self.future.items():
            measure, at, queue, channel, _ = self._decode(code, value)
            if at < end_us and measure != SLA_BREACHES:
                sums = out.setdefault((queue, channel), [0] * N_MEASURES)
                sums[measure] += value
        combos = self._combos
        for at, combo_id, value in self.closing.items():
            if at < end_us:
                measure, queue, channel = combos[combo_id]
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
