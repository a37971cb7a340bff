"""DueQueue (cxpulse/core/due_queue.py) takes exactly what one heap of every entry would give, in its order."""

from __future__ import annotations

import heapq
import pickle

from hypothesis import given, settings, strategies as st

from cxpulse.core.due_queue import DueQueue

KEYS = st.sampled_from(["a", "b", "c", "d", "e"])
# mostly ascending instants (the usual stream), with ties and late ones
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(-3, 12), KEYS),
        st.tuples(st.just("take"), st.integers(-2, 14), st.just("")),
        st.tuples(st.just("retain"), st.integers(0, 0), st.sets(KEYS, max_size=4).map(lambda keys: "".join(keys))),
    ),
    max_size=80,
)


class HeapModel:
    """The reference: one heap of (at, key) tuples, as ContactProcessor kept before DueQueue."""

    def __init__(self) -> None:
        self.heap: list[tuple[int, str]] = []

    def push(self, at: int, key: str) -> None:
        heapq.heappush(self.heap, (at, key))

    def take_before(self, horizon: int) -> list[str]:
        out = []
        while self.heap and self.heap[0][0] < horizon:
            out.append(heapq.heappop(self.heap)[1])
        return out

    def retain(self, keys: str) -> None:
        self.heap = [entry for entry in self.heap if entry[1] in keys]
        heapq.heapify(self.heap)


@settings(max_examples=400, deadline=None)
@given(OPS)
def test_a_due_queue_takes_what_a_heap_takes_in_the_same_order(ops: list[tuple[str, int, str]]) -> None:
    queue, model = DueQueue(), HeapModel()
    clock = 0
    for op, value, key in ops:
        if op == "push":
            clock += value  # the instant moves forward usually, back sometimes
            queue.push(clock, key)
            model.push(clock, key)
        elif op == "take":
            horizon = clock + value - 6
            assert queue.take_before(horizon) == model.take_before(horizon)
        else:
            queue.retain(set(key))
            model.retain(key)
        assert len(queue) == len(model.heap)
        assert sorted(queue) == sorted(model.heap)
        assert queue.first_at() == (model.heap[0][0] if model.heap else None)
    assert queue.take_before(10**9) == model.take_before(10**9)


def test_an_in_order_stream_goes_through_the_queue_and_leaves_the_heap_empty() -> None:
    """Ascending (at, key) entries, ties in key order included, never reach the heap; a late one does, and is
    taken in its place among the others."""
    queue = DueQueue()
    for at, key in [(1, "a"), (2, "a"), (2, "b"), (5, "c")]:
        queue.push(at, key)
    assert queue._heap == []
    queue.push(2, "a")  # sorts before (5, "c"): late
    assert queue._heap == [(2, "a")]
    assert queue.take_before(3) == ["a", "a", "a", "b"]
    assert queue.first_at() == 5


def test_taking_compacts_the_front_of_the_queue_and_keeps_the_rest() -> None:
    """After 4,096 entries taken (and half the list), the list drops them: memory stays bounded by what waits."""
    queue = DueQueue()
    for at in range(6000):
        queue.push(at, "k")
    assert queue.take_before(5000) == ["k"] * 5000
    assert queue._head == 0 and len(queue._queue) == 1000
    assert queue.take_before(5001) == ["k"]
    assert queue._head == 1 and len(queue) == 999


def test_the_front_is_dropped_exactly_once_4096_entries_and_half_the_list_were_taken() -> None:
    """The bounds of the compaction, pinned: 8,190 entries, 4,095 taken: kept (4,096 needed); one more: dropped
    (4,096 taken, twice that >= 8,190). 8,192 entries and 4,096 taken: dropped (twice 4,096 is exactly 8,192).
    Two of three taken: kept (4,096 needed, however much of the list it is).

    Kills ``_COMPACT_AFTER`` 4096 -> 4095 and the two ``>=`` -> ``>`` and ``and`` -> ``or`` of ``take_before``."""
    queue = DueQueue()
    for at in range(8190):
        queue.push(at, "k")
    queue.take_before(4095)
    assert (queue._head, len(queue._queue)) == (4095, 8190)
    queue.take_before(4096)
    assert (queue._head, len(queue._queue)) == (0, 4094)

    queue = DueQueue()
    for at in range(8192):
        queue.push(at, "k")
    queue.take_before(4096)
    assert (queue._head, len(queue._queue)) == (0, 4096)

    queue = DueQueue()
    for at in range(3):
        queue.push(at, "k")
    queue.take_before(2)
    assert (queue._head, len(queue._queue)) == (2, 3)


def test_an_emptied_queue_starts_again_and_pickles_with_its_entries() -> None:
    """A checkpoint pickles the processor with its queue: entries and their order survive."""
    queue = DueQueue()
    queue.push(5, "a")
    assert queue.take_before(6) == ["a"]
    queue.push(1, "b")  # earlier than anything taken: nothing queued, so it starts the queue again
    queue.push(0, "c")
    copy = pickle.loads(pickle.dumps(queue))
    assert copy.take_before(10) == ["c", "b"]
    assert len(copy) == 0 and len(queue) == 2
