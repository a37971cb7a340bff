"""Keys filed at an instant and taken once a horizon has passed it, in (instant, key) order: a heap that is
mostly a queue.

Why: every event of a contact files ``(event time, contact id)`` for settling, once the allowed disorder has
passed it (``ContactProcessor.settle``). As one heap of tuples, each push and pop compared tuples as Python
objects: a pop cost about 2,900 instructions, 3% of a replay's (``bench/replay_instructions.py``, callgrind).
Events mostly arrive in time order, and so do their entries: an entry that sorts at or after the last one
queued goes to the end of a list and leaves from its front, with one integer comparison; only one that sorts
before it (a late event, a restored contact) goes to a heap. Taking merges the two, so the keys come out in
exactly the order one heap of every entry would give.
"""

from __future__ import annotations

import heapq
from collections.abc import Container, Iterator
from typing import Final

Entry = tuple[int, str]  # (instant in microseconds, key)

# taken entries at the front of the queue that make it copy its rest to a new list (when they are also half of it)
_COMPACT_AFTER: Final = 4096


class DueQueue:
    """``(at, key)`` entries, taken by :meth:`take_before` in ``(at, key)`` order; a key may be filed many times."""

    __slots__ = ("_queue", "_head", "_heap")

    def __init__(self) -> None:
        self._queue: list[Entry] = []  # in (at, key) order; entries before ``_head`` were taken
        self._head = 0
        self._heap: list[Entry] = []  # entries that sorted before the queue's last one when filed

    def __len__(self) -> int:
        return len(self._queue) - self._head + len(self._heap)

    def __iter__(self) -> Iterator[Entry]:
        """Every entry not taken yet (in no particular order)."""
        yield from self._queue[self._head:]
        yield from self._heap

    def push(self, at: int, key: str) -> None:
        queue = self._queue
        if len(queue) > self._head:
            last = queue[-1]
            if at > last[0] or (at == last[0] and key >= last[1]):
                queue.append((at, key))
            else:
                heapq.heappush(self._heap, (at, key))
        else:  # nothing queued: the queue starts again at this entry
            if self._head:
                queue.clear()
                self._head = 0
            queue.append((at, key))

    def first_at(self) -> int | None:
        """The earliest instant filed (None when empty)."""
        queue, heap = self._queue, self._heap
        if len(queue) > self._head:
            at = queue[self._head][0]
            return at if not heap or at <= heap[0][0] else heap[0][0]
        return heap[0][0] if heap else None

    def take_before(self, horizon: int) -> list[str]:
        """The keys of every entry before ``horizon``, removed, in ``(at, key)`` order (repeats included)."""
        queue, heap = self._queue, self._heap
        head, end = self._head, len(queue)
        out: list[str] = []
        while True:
            from_queue = head < end and queue[head][0] < horizon
            from_heap = len(heap) > 0 and heap[0][0] < horizon
            if from_queue and from_heap:
                from_queue = queue[head] <= heap[0]
            if from_queue:
                out.append(queue[head][1])
                head += 1
            elif from_heap:
                out.append(heapq.heappop(heap)[1])
            else:
                break
        if head >= _COMPACT_AFTER and 2 * head >= end:
            del queue[:head]
            head = 0
        self._head = head
        return out

    def retain(self, keys: Container[str]) -> None:
        """Keep only the entries whose key is in ``keys`` (their order kept)."""
        self._queue = [entry for entry in self._queue[self._head:] if entry[1] in keys]
        self._head = 0
        self._heap = [entry for entry in self._heap if entry[1] in keys]
        heapq.heapify(self._heap)
