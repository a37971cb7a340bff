"""Future facts (``cxpulse/core/future.py``), 16 bytes each in sorted arrays per 10-minute slot, against the plain
model they replace: a dict of (at, combination) -> summed value, where a sum back at zero leaves no entry and
``pop_due(now)`` takes every fact at or before now, in time order."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from cxpulse.core.future import NEVER, SLOT_US, FutureFacts

T0 = 1_780_000_000_000_000  # a microsecond time in 2026

# times spread over three slots, with collisions (same time, same combination) and slot edges
times = st.one_of(
    st.integers(0, 3 * SLOT_US - 1),
    st.sampled_from([0, 1, SLOT_US - 1, SLOT_US, SLOT_US + 1, 2 * SLOT_US, 3 * SLOT_US - 1]),
)
adds = st.tuples(st.just("add"), times, st.integers(0, 3), st.integers(-2, 2))
pops = st.tuples(st.just("pop"), times, st.just(0), st.just(0))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(adds, adds, adds, pops), max_size=80))
def test_future_facts_equal_a_dict_of_sums(ops: list[tuple[str, int, int, int]]) -> None:
    future = FutureFacts()
    model: dict[tuple[int, int], int] = {}
    now = -1
    for op, offset, combo, value in ops:
        at = T0 + offset
        if op == "add":
            if at <= now:  # the aggregates only hold facts after now
                continue
            total = model.get((at, combo), 0) + value
            if total:
                model[(at, combo)] = total
            else:
                model.pop((at, combo), None)
            future.add(at, combo, value)
        else:
            now = max(now, at)
            due = sorted((key for key in model if key[0] <= now), key=lambda key: key[0])
            got = future.pop_due(now)
            assert [entry[0] for entry in got] == sorted(entry[0] for entry in got), "not in time order"
            assert sorted(got) == sorted((a, c, model.pop((a, c))) for a, c in due)
        assert sorted(future.items()) == sorted((a, c, v) for (a, c), v in model.items())
        assert len(future) == len(model)
        assert sorted(future.combos()) == sorted({c for _, c in model})
        assert future.first_at <= min((a for a, _ in model), default=NEVER)


def test_a_fact_falls_due_exactly_at_its_time_whatever_its_slot() -> None:
    """+1 at slot edge - 1 µs and +1 at the slot edge (combination 7), +3 then -3 at 5 µs into the next slot
    (combination 1: gone, not kept at 0). At edge - 2 nothing is due; at edge - 1 the first; at the edge the
    second; afterwards nothing is held and first_at says never."""
    future = FutureFacts()
    edge = (T0 // SLOT_US + 1) * SLOT_US
    future.add(edge, 7, 1)
    future.add(edge - 1, 7, 1)
    future.add(edge + 5, 1, 3)
    future.add(edge + 5, 1, -3)
    assert len(future) == 2 and future.combos() == [7] and future.first_at == edge - 1
    assert future.pop_due(edge - 2) == []
    assert future.pop_due(edge - 1) == [(edge - 1, 7, 1)]
    assert future.first_at == edge
    assert future.pop_due(edge) == [(edge, 7, 1)]
    assert len(future) == 0 and future.first_at == NEVER and list(future.items()) == []


def test_a_slot_emptied_by_a_retraction_is_gone_and_takes_new_facts() -> None:
    """+1 then -1 at slot edge + 10 µs (combination 3): the slot's only fact is gone, and so is the slot. +2 at
    edge + 20 µs (combination 3) in that same slot, and +1 at edge - 5 µs (combination 4) in the slot before:
    both held (items, len 2). Popping at edge - 1 gives only the earlier fact; first_at is then edge + 20, the
    fact left (not the retracted edge + 10); popping at edge + 20 gives +2.

    Kills ``core/future.py::FutureFacts.add::21e9dc3b#15`` ``size == 1 -> size == 0`` (the emptied slot would stay
    as two empty arrays: the next add to it reads ``codes[-1]`` of an empty array), and ``_first``'s
    ``db14dcec#3`` (slot start minus the offset: edge - 20) and ``db14dcec#5`` (the first *value*, 2, read as the
    offset: edge + 0): first_at is exact once pop_due has recomputed it, only a retraction leaves a lower bound."""
    future = FutureFacts()
    edge = (T0 // SLOT_US + 1) * SLOT_US
    future.add(edge + 10, 3, 1)
    future.add(edge + 10, 3, -1)
    assert len(future) == 0 and list(future.items()) == [] and future.combos() == []
    future.add(edge + 20, 3, 2)
    future.add(edge - 5, 4, 1)
    assert sorted(future.items()) == [(edge - 5, 4, 1), (edge + 20, 3, 2)] and len(future) == 2
    assert future.pop_due(edge - 1) == [(edge - 5, 4, 1)]
    assert future.first_at == edge + 20
    assert future.pop_due(edge + 20) == [(edge + 20, 3, 2)]
    assert len(future) == 0 and future.first_at == NEVER


def test_a_slot_emptied_by_a_retraction_is_skipped_when_facts_fall_due() -> None:
    """+1 at slot edge + 10 µs (combination 3), then -1 there: that slot is emptied (it may linger among the slots
    to visit). +1 at the next slot's edge + 7 µs (combination 5). Popping at that time gives exactly that fact,
    skipping the emptied slot; nothing is left.

    Kills ``core/future.py::FutureFacts.pop_due::ddbeebdc#6``, the ``continue`` removed after dropping a slot
    with no entries (it would unpack the missing slot: TypeError)."""
    future = FutureFacts()
    edge = (T0 // SLOT_US + 1) * SLOT_US
    future.add(edge + 10, 3, 1)
    future.add(edge + 10, 3, -1)
    future.add(edge + SLOT_US + 7, 5, 1)
    assert future.pop_due(edge + SLOT_US + 7) == [(edge + SLOT_US + 7, 5, 1)]
    assert len(future) == 0 and list(future.items()) == [] and future.combos() == [] and future.first_at == NEVER
