"""Facts whose time has not come yet, 16 bytes each: sorted arrays per 10-minute slot.

Why: every first contact adds its FCR closing facts at t0 + F, a week ahead with the default window, so a worker
holds a week of them (646,881 after a simulated week, measured) and so does a replay. As one int in a heap and
one dict entry each (an ``(at, measure, queue, channel)`` code and its summed value) they took about 110 bytes
apiece, 70 MiB of the week's worker. Here a fact is two machine integers in ``array('q')``s: its offset inside
its slot with the id of its (measure, queue, channel), and its summed value. Arrays of one slot stay sorted, so
what falls due is a prefix (cut with one ``bisect``), and a retraction finds its fact by ``bisect`` too; facts
mostly arrive in time order (t0 + F grows with t0), so adding one is usually an append. Slots, not one array:
an insertion in the middle moves at most one slot's entries.

Exactness does not depend on the slot size: a fact is due exactly when now passes its own time.
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from typing import Final

COMBO_BITS: Final = 20  # a fact's code inside its slot: offset_us << COMBO_BITS | id of its (measure, queue, channel)
COMBOS: Final = 1 << COMBO_BITS
COMBO_MASK: Final = COMBOS - 1
SLOT_US: Final = 600_000_000  # 10 minutes: offsets < 2**30, so a code < 2**50 fits an int64
NEVER: Final = 2**63  # ``first_at`` when nothing is held


class FutureFacts:
    """Summed values of future facts by (time, combination id); a sum back at zero leaves no entry."""

    __slots__ = ("_slots", "_heap", "_count", "_per_combo", "first_at")

    def __init__(self) -> None:
        self._slots: dict[int, tuple[array[int], array[int]]] = {}  # slot -> (sorted codes, values)
        self._heap: list[int] = []  # slots with entries, earliest first (a slot emptied may linger: skipped)
        self._count = 0
        self._per_combo: dict[int, int] = {}  # combination id -> entries held (for the keys with a future)
        self.first_at = NEVER  # no fact is held before this instant (a lower bound after a retraction)

    def add(self, at: int, combo: int, value: int) -> None:
        """Add ``value`` to the fact of ``combo`` at ``at`` (a negative value retracts)."""
        slot = at // SLOT_US
        code = (at - slot * SLOT_US) << COMBO_BITS | combo
        held = self._slots.get(slot)
        if held is None:
            if not value:
                return
            self._slots[slot] = (array("q", (code,)), array("q", (value,)))
            heapq.heappush(self._heap, slot)
            self._added(at, combo)
            return
        codes, values = held
        size = len(codes)
        if codes[-1] < code:  # the usual case: later than every fact of its slot
            index = size
        else:
            index = bisect_left(codes, code)
            if codes[index] == code:
                total = values[index] + value
                if total:
                    values[index] = total
                    return
                del codes[index]
                del values[index]
                self._count -= 1
                self._per_combo[combo] -= 1
                if size == 1:
                    del self._slots[slot]
                return
        if not value:
            return
        codes.insert(index, code)
        values.insert(index, value)
        self._added(at, combo)

    def _added(self, at: int, combo: int) -> None:
        self._count += 1
        self._per_combo[combo] = self._per_combo.get(combo, 0) + 1
        if at < self.first_at:
            self.first_at = at

    def pop_due(self, now_us: int) -> list[tuple[int, int, int]]:
        """Remove and return ``(at, combo, value)`` of every fact at or before ``now_us``, in time order."""
        out: list[tuple[int, int, int]] = []
        if now_us < self.first_at:
            return out
        heap, slots, per_combo = self._heap, self._slots, self._per_combo
        while heap:
            slot = heap[0]
            base = slot * SLOT_US
            if base > now_us:
                break
            held = slots.get(slot)
            if held is None:
                heapq.heappop(heap)
                continue
            codes, values = held
            due = bisect_left(codes, (now_us - base + 1) << COMBO_BITS)  # codes below: at <= now_us
            for code, value in zip(codes[:due], values[:due]):
                combo = code & COMBO_MASK
                per_combo[combo] -= 1
                out.append((base + (code >> COMBO_BITS), combo, value))
            self._count -= due
            if due == len(codes):
                del slots[slot]
                heapq.heappop(heap)
                continue
            del codes[:due]
            del values[:due]
            break  # the rest of this slot lies after now, and so does every later slot
        self.first_at = self._first()
        return out

    def _first(self) -> int:
        heap, slots = self._heap, self._slots
        while heap:
            held = slots.get(heap[0])
            if held is not None:
                return heap[0] * SLOT_US + (held[0][0] >> COMBO_BITS)
            heapq.heappop(heap)
        return NEVER

    def items(self) -> Iterator[tuple[int, int, int]]:
        """Every held ``(at, combo, value)`` (slots in no particular order)."""
        for slot, (codes, values) in self._slots.items():
            base = slot * SLOT_US
            for code, value in zip(codes, values):
                yield base + (code >> COMBO_BITS), code & COMBO_MASK, value

    def combos(self) -> list[int]:
        """The combination ids with at least one fact held."""
        return [combo for combo, entries in self._per_combo.items() if entries]

    def __len__(self) -> int:
        return self._count


__all__ = ["COMBO_BITS", "COMBOS", "FutureFacts"]
