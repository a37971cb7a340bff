"""Hand-computed cases pinning the contact and customer state of the core: ``cxpulse/core/processors.py`` (settle,
evict, packing, forget, restore, replace, table loaders) and ``cxpulse/core/distinct.py`` (distinct customers
per window, ``keep_all`` with its sets of pruned customers).

Why this file: issue 16 asks that the mutation run (``bench/mutants.py``, see ``docs/mutation.md``) over
``cxpulse/core`` report no surviving non-equivalent mutant. The mutants left alive by every other unit test were
rules without a test: what a dirty contact or customer must never be (packed before it is saved), what a table
loader reads back, what an index of distinct customers counts at the edges of a window and after pruning. Each
test here names, in its docstring, the rule it pins and the mutants it kills (checked with ``bench/mutants.py
--id ... --tests tests/unit/test_kpi_state_pinned.py``). Every expected figure is worked out by hand from
kpis.md / events.md or from the documented contract of the function under test (the arithmetic is in the
docstring or a comment), never copied from what the code prints.

Defaults (kpis.md): voice T = 20 s, allowed disorder 60 s, contact retention 31 days, buckets of 60 s.
"""

from __future__ import annotations

import pytest

from cxpulse.core.distinct import DistinctCustomers

BILLING = ("billing", "voice")
SALES = ("sales", "chat")
EVERYTHING = -(2**63)  # the start of a replay's ``all`` window (Aggregates.customers_until)


# -- distinct customers (distinct.py) -----------------------------------------------------------------------------
def test_a_contact_whose_t0_or_first_queue_moves_is_counted_once_where_it_now_is() -> None:
    """kpis.md: *customers* counts a customer per contact whose t0 (its first ``contact.queued``) lies in the
    window, under the (queue, channel) of that first queued event. An earlier queued arriving late moves t0, and
    may move the queue too; ``note`` is then called with the new values and the old entry must go.

    c1 (u1) noted at t0 = 10 µs in billing, then at t0 = 5 µs in billing (an earlier queued of the same queue):
    [0, 6) holds t0 5 -> 1 customer; [6, 20) held only the old t0 10 -> 0. Then at t0 = 5 µs in sales (same t0,
    another queue): billing [0, 20) -> 0, sales [0, 20) -> 1, in total 1 (u1 once).

    Kills ``DistinctCustomers.note`` ``and -> or`` and ``held[0] == t0 -> !=`` (the move within billing ignored:
    t0 stays 10), ``held[1] == key -> !=`` (the move to sales ignored), ``_remove``'s ``entries[index] == entry
    -> !=`` (the old entry never removed)."""
    index = DistinctCustomers()
    index.note("c1", "u1", 10, *BILLING)
    index.note("c1", "u1", 5, *BILLING)
    assert (index.count(BILLING, 0, 6), index.count(BILLING, 6, 20)) == (1, 0)
    index.note("c1", "u1", 5, *SALES)
    assert (index.count(BILLING, 0, 20), index.count(SALES, 0, 20), index.count(None, 0, 20)) == (0, 1, 1)
    assert index.all == [(5, "u1", "c1")] and index.by_key[BILLING] == []


def test_a_repeated_note_of_the_same_contact_is_free(monkeypatch: pytest.MonkeyPatch) -> None:
    """``note``'s contract: "a repeat of the same is free". A contact's summary is sent at its first queued and
    again at its end (and again for a re-delivered duplicate, live.py), each time with the same t0 and queue: the
    index must not remove and re-insert its entry each time (a bisect and a list deletion per event). Spied: the
    real ``_remove`` runs, each call is recorded. c1 noted three times alike -> no removal; then with t0 moved
    (10 -> 4 µs) -> exactly one.

    Kills ``note``'s early ``return`` removed and its ``held[0]`` / ``held[1]`` index mutants (``held[1] == t0``,
    ``held[0] == key``: never equal, so every repeat removes and re-inserts)."""
    removed: list[str] = []
    real_remove = DistinctCustomers._remove

    def spy(self: DistinctCustomers, contact_id: str, held: tuple[int, tuple[str, str], str]) -> None:
        removed.append(contact_id)
        real_remove(self, contact_id, held)

    monkeypatch.setattr(DistinctCustomers, "_remove", spy)
    index = DistinctCustomers()
    for _ in range(3):
        index.note("c1", "u1", 10, *BILLING)
    assert removed == []
    index.note("c1", "u1", 4, *BILLING)
    assert removed == ["c1"]
    assert index.all == [(4, "u1", "c1")]


def test_distinct_customers_in_a_window_of_an_index_filled_out_of_order() -> None:
    """Four contacts noted out of t0 order (the index must stay sorted): c1 u1 at 0 µs, c2 u2 at 10, c3 u1 at 5,
    c4 u3 at 10, all billing. By kpis.md (distinct customers with a contact whose t0 is in [start, end)):

    - [0, 6): c1, c3 -> u1 only -> 1 (two contacts, one customer)
    - [0, 11): u1, u2, u3 -> 3;  [5, 11): c3 u1, c2 u2, c4 u3 -> 3;  [6, 11): c2 u2, c4 u3 -> 2
    - [10, 10): empty -> 0;  [11, 99): none -> 0;  another key, never noted -> 0, in total over [0, 11) -> 3

    Kills ``count`` taking ``entry[0]`` (the t0s: [0, 6) would be 2), ``_insert`` comparing with ``entries[0]``
    instead of the last entry (c3 appended after c2: [6, 11) would read c3 too), the unknown key's early
    ``return 0`` removed (``bisect`` of None) or made ``return 1``, and ``not entries`` removed there."""
    index = DistinctCustomers()
    for contact, customer, t0 in (("c1", "u1", 0), ("c2", "u2", 10), ("c3", "u1", 5), ("c4", "u3", 10)):
        index.note(contact, customer, t0, *BILLING)
    assert [entry[0] for entry in index.all] == [0, 5, 10, 10]
    assert index.count(BILLING, 0, 6) == 1
    assert (index.count(BILLING, 0, 11), index.count(BILLING, 5, 11), index.count(BILLING, 6, 11)) == (3, 3, 2)
    assert (index.count(BILLING, 10, 10), index.count(BILLING, 11, 99)) == (0, 0)
    assert index.count(SALES, 0, 11) == 0
    assert index.count(None, 0, 11) == 3


def test_a_replay_index_after_pruning_counts_pruned_customers_only_for_windows_that_span_them() -> None:
    """keep_all (a replay's, and a live worker's ``all`` window): contacts pruned from the index stay counted as
    customer ids. c1 u1 at 0 µs (billing), c2 u2 at 10 (billing), c3 u3 at 20 (sales), c4 u1 at 100 (billing);
    pruned before 50: c1, c2, c3 go (their customers u1, u2 kept in billing's set, u3 in sales', all three in
    the total's), the earliest pruned t0 is 0.

    - a window starting at 0 = the earliest pruned t0 spans every pruned contact: total {u1, u2, u3} + c4's u1
      -> 3; billing {u1, u2} + u1 -> 2; sales {u3} + no entry -> 1; a key never noted -> 0
    - ending at 100 (c4 excluded, [.., 100)): still 3 in total, from the pruned sets alone
    - starting at 5, after the earliest pruned t0 but before the bound 50: cannot be exact -> ValueError
    - starting at 50 = the bound: no pruned contact can be inside; only c4 -> 1 (sales: none -> 0)
    - the pruned contacts are forgotten by the index (only c4 held)

    Kills ``count`` ``start_us > gone_from -> >=`` (a window from exactly the earliest pruned t0 refused),
    ``start_us < pruned_before -> <=`` (the window from the bound refused), the unknown key's ``return
    len(gone)`` removed (``bisect`` of None), and ``prune`` taking ``all[1][0]`` as the earliest pruned t0 (10:
    the window from 5 would pass)."""
    index = DistinctCustomers(keep_all=True)
    index.note("c1", "u1", 0, *BILLING)
    index.note("c2", "u2", 10, *BILLING)
    index.note("c3", "u3", 20, *SALES)
    index.note("c4", "u1", 100, *BILLING)
    index.prune(50)
    assert (index.gone_all, index.gone_by_key) == ({"u1", "u2", "u3"}, {BILLING: {"u1", "u2"}, SALES: {"u3"}})
    assert (index.count(None, 0, 200), index.count(BILLING, 0, 200), index.count(SALES, 0, 200)) == (3, 2, 1)
    assert index.count(("other", "email"), 0, 200) == 0
    assert index.count(None, 0, 100) == 3
    with pytest.raises(ValueError, match="starts among pruned contacts"):
        index.count(None, 5, 200)
    assert (index.count(None, 50, 200), index.count(SALES, 50, 200)) == (1, 0)
    assert set(index.contacts) == {"c4"}


def test_a_live_index_forgets_pruned_customers() -> None:
    """Without keep_all (the index's default), pruned contacts are gone for good: u2 at 0 µs pruned before 50,
    u5 at 100 kept -> 1 customer over everything (and a window from 0 is answered, not refused: nothing of a
    live index is kept to be exact about).

    Kills ``DistinctCustomers.__init__`` ``keep_all=False -> True`` (u2 would stay counted: 2)."""
    index = DistinctCustomers()
    index.note("c1", "u2", 0, *BILLING)
    index.note("c2", "u5", 100, *BILLING)
    index.prune(50)
    assert (index.count(None, EVERYTHING, 200), index.count(None, 0, 200), index.count(BILLING, 0, 200)) == (1, 1, 1)
    assert index.gone_all == set()


def test_pruning_nothing_moves_no_bound() -> None:
    """``prune(before)`` with no contact before ``before`` changes nothing: c1 u1 at 100 µs, prune(50) (nothing
    older), then c2 u2 noted at t0 10 (a contact older than the bound, e.g. replayed late). The window [20, 200)
    holds c1 only -> 1 customer, and the one from 0 both -> 2 (nothing was pruned, so no window is refused).

    Kills ``prune``'s early ``return`` removed (the bound would move to 50 with nothing pruned: [20, 200) would
    be read as spanning everything before 200, counting c2 at 10 -> 2)."""
    index = DistinctCustomers(keep_all=True)
    index.note("c1", "u1", 100, *BILLING)
    index.prune(50)
    index.note("c2", "u2", 10, *BILLING)
    assert (index.count(None, 20, 200), index.count(None, 0, 200)) == (1, 2)
    assert index.gone_from is None and index.gone_all == set()
