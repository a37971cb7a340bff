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

from typing import Any

import orjson
import pytest

from cxpulse.core import measures as m
from cxpulse.core import processors as processors_module
from cxpulse.core.aggregates import Aggregates
from cxpulse.core.contact import ContactState, Record, Summary
from cxpulse.core.customer import CustomerState
from cxpulse.core.distinct import DistinctCustomers
from cxpulse.core.processors import ContactProcessor, CustomerProcessor
from cxpulse.models.events import format_ts, parse_any_event, to_us
from cxpulse.settings import KpiSettings
from test_kpi_edges import DAY, ev

US = 1_000_000
T0 = to_us(DAY)  # 2026-05-04T10:00:00Z
BUCKET_US = 60 * US
RETENTION_US = 31 * 86_400 * US  # contact_retention's default
BILLING = ("billing", "voice")
SALES = ("sales", "chat")
EVERYTHING = -(2**63)  # the start of a replay's ``all`` window (Aggregates.customers_until)


# -- distinct customers (distinct.py) -----------------------------------------------------------------------------
def test_a_contact_whose_t0_or_first_queue_moves_is_counted_once_where_it_now_is() -> None:
    """kpis.md: *customers* counts a customer per contact whose t0 (its first ``contact.queued``) lies in the
    window, under the (queue, channel) of that first queued event. An earlier queued arriving late moves t0, and
    may move the queue too; ``note`` is then called with the new values and what the summary said before
    (``previous``), and the old entry must go.

    c1 (u1) noted at t0 = 10 µs in billing, then at t0 = 5 µs in billing (an earlier queued of the same queue):
    [0, 6) holds t0 5 -> 1 customer; [6, 20) held only the old t0 10 -> 0. Then at t0 = 5 µs in sales (same t0,
    another queue): billing [0, 20) -> 0, sales [0, 20) -> 1, in total 1 (u1 once). Then c2 (u1 too) noted at
    t0 = 5 in sales (an equal entry: two contacts of one customer at one t0), and c2 moved to t0 = 30: one of
    the two equal entries goes, the other (c1's) stays: sales [0, 20) -> 1, [20, 40) -> 1.

    Kills ``DistinctCustomers.note`` ``and -> or`` and ``previous[0] == t0 -> !=`` (the move within billing
    ignored: t0 stays 10), ``previous[1] == queue -> !=`` (the move to sales ignored), ``_remove``'s
    ``entries[index] == entry -> !=`` (the old entry never removed) and ``del`` of every equal entry."""
    index = DistinctCustomers()
    index.note("u1", 10, *BILLING)
    index.note("u1", 5, *BILLING, previous=(10, *BILLING))
    assert (index.count(BILLING, 0, 6), index.count(BILLING, 6, 20)) == (1, 0)
    index.note("u1", 5, *SALES, previous=(5, *BILLING))
    assert (index.count(BILLING, 0, 20), index.count(SALES, 0, 20), index.count(None, 0, 20)) == (0, 1, 1)
    assert index.all == [(5, "u1")] and index.by_key[BILLING] == []
    index.note("u1", 5, *SALES)
    index.note("u1", 30, *SALES, previous=(5, *SALES))
    assert (index.count(SALES, 0, 20), index.count(SALES, 20, 40)) == (1, 1)
    assert index.all == [(5, "u1"), (30, "u1")]


def test_a_repeated_note_of_the_same_contact_is_free(
    monkeypatch: pytest.MonkeyPatch, on_core_sources: bool,
) -> None:
    """``note``'s contract: "a repeat of the same is free". A contact's summary is sent at its first queued and
    again at its end (and again for a re-delivered duplicate, live.py), each time with the same t0 and queue: the
    index must not remove and re-insert its entry each time (a bisect and a list deletion per event). Spied: the
    real ``_remove`` runs, each call is recorded. c1 noted, then twice again alike (``previous`` the same) -> no removal; then with t0 moved
    (10 -> 4 µs) -> exactly one.

    Kills ``note``'s early ``return`` removed and its ``previous[...]`` index mutants (never equal, so every
    repeat removes and re-inserts)."""
    if not on_core_sources:  # ran on the sources in a child pytest (tests/conftest.py)
        return
    removed: list[str] = []
    real_remove = DistinctCustomers._remove

    def spy(self: DistinctCustomers, customer_id: str, previous: tuple[int, str, str]) -> None:
        removed.append(customer_id)
        real_remove(self, customer_id, previous)

    monkeypatch.setattr(DistinctCustomers, "_remove", spy)
    index = DistinctCustomers()
    index.note("u1", 10, *BILLING)
    for _ in range(2):
        index.note("u1", 10, *BILLING, previous=(10, *BILLING))
    assert removed == []
    index.note("u1", 4, *BILLING, previous=(10, *BILLING))
    assert removed == ["u1"]
    assert index.all == [(4, "u1")]


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
    for customer, t0 in (("u1", 0), ("u2", 10), ("u1", 5), ("u3", 10)):
        index.note(customer, t0, *BILLING)
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
    index.note("u1", 0, *BILLING)
    index.note("u2", 10, *BILLING)
    index.note("u3", 20, *SALES)
    index.note("u1", 100, *BILLING)
    index.prune(50)
    assert (index.gone_all, index.gone_by_key) == ({"u1", "u2", "u3"}, {BILLING: {"u1", "u2"}, SALES: {"u3"}})
    assert (index.count(None, 0, 200), index.count(BILLING, 0, 200), index.count(SALES, 0, 200)) == (3, 2, 1)
    assert index.count(("other", "email"), 0, 200) == 0
    assert index.count(None, 0, 100) == 3
    with pytest.raises(ValueError, match="starts among pruned contacts"):
        index.count(None, 5, 200)
    assert (index.count(None, 50, 200), index.count(SALES, 50, 200)) == (1, 0)
    assert index.all == [(100, "u1")]  # only c4 is held


def test_a_live_index_forgets_pruned_customers() -> None:
    """Without keep_all (the index's default), pruned contacts are gone for good: u2 at 0 µs pruned before 50,
    u5 at 100 kept -> 1 customer over everything (and a window from 0 is answered, not refused: nothing of a
    live index is kept to be exact about).

    Kills ``DistinctCustomers.__init__`` ``keep_all=False -> True`` (u2 would stay counted: 2)."""
    index = DistinctCustomers()
    index.note("u2", 0, *BILLING)
    index.note("u5", 100, *BILLING)
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
    index.note("u1", 100, *BILLING)
    index.prune(50)
    index.note("u2", 10, *BILLING)
    assert (index.count(None, 20, 200), index.count(None, 0, 200)) == (1, 2)
    assert index.gone_from is None and index.gone_all == set()


def test_a_contact_whose_old_entry_was_pruned_moves_without_touching_other_entries() -> None:
    """``_remove``'s contract: the old entry is removed "where it still is (it may have been pruned)"; an entry
    of another customer at the old entry's place in the list is never taken instead, and an old entry past every
    held one is simply not found. A live index (no keep_all): c1 u1 at 40 µs in billing, c2 u2 at 100 in
    sales; prune(50): c1's entry goes (billing empty, all [(100, u2)]). c3 u3 at t0 10 in billing is noted late
    (older than the bound: billing [(10, u3)]). Then c1's summary moves to t0 30 (an earlier queued), still
    billing, ``previous`` (40, billing): its old entry is in neither list. In billing, (40, u1) sorts after
    every entry (index 1 = len); in all, before (100, u2), which is not equal and must stay.

    By kpis.md: billing [0, 50) holds c3 (u3, 10) and c1 (u1, 30) -> 2; sales [50, 200) c2 -> 1; in total
    [0, 200) u1, u2, u3 -> 3; [35, 200) only c2 -> 1 (nothing left at 40).

    Kills ``_remove``'s ``index < len(entries) -> <=`` and ``and -> or`` (``entries[1]`` of a one-entry list:
    IndexError; with ``or``, in ``all``, the entry of u2 deleted instead)."""
    index = DistinctCustomers()
    index.note("u1", 40, *BILLING)
    index.note("u2", 100, *SALES)
    index.prune(50)
    index.note("u3", 10, *BILLING)
    index.note("u1", 30, *BILLING, previous=(40, *BILLING))
    assert (index.count(BILLING, 0, 50), index.count(SALES, 50, 200)) == (2, 1)
    assert (index.count(None, 0, 200), index.count(None, 35, 200)) == (3, 1)
    assert index.all == [(10, "u3"), (30, "u1"), (100, "u2")]


def test_a_replay_index_after_pruning_adds_customers_first_seen_in_the_held_entries() -> None:
    """keep_all, a window spanning every pruned contact: the pruned customers (per key: those with a pruned
    contact in that key) plus the customers of held entries not among them. c1 u1 at 0 µs in billing, c2 u2 at
    100 in billing, c3 u1 at 100 in sales; prune(50): only c1 goes (billing gets a bit; sales, with nothing
    before 50, gets none).

    - total [0, 200): pruned {u1} + held {u2, u1} -> u1, u2 -> 2
    - billing [0, 200): pruned {u1} + held {u2} -> 2 (u2 is in no pruned set: counted)
    - sales [0, 200): no pruned contact in sales; held {u1} -> 1 (u1 was pruned in billing only: still counted)
    - gone_by_key lists billing only (sales had no pruned contact); gone_all {u1}

    Kills ``count``'s ``held + len(...) -> held - len(...)`` in total and per key (2 - 1 = 1, 1 - 1 = 0), a key
    without a bit read as bit 0 (``flag = 0 -> 1``: u1, pruned in billing, not counted in sales: 0), a customer
    not in ``gone`` read as mask 1 (``gone.get(customer, 0) -> 1``: u2 not counted in billing, bit 0: 1), and
    ``prune``'s ``continue`` removed for a key with nothing to prune (sales would get a bit: gone_by_key
    {..., sales: set()})."""
    index = DistinctCustomers(keep_all=True)
    index.note("u1", 0, *BILLING)
    index.note("u2", 100, *BILLING)
    index.note("u1", 100, *SALES)
    index.prune(50)
    assert (index.gone_all, index.gone_by_key) == ({"u1"}, {BILLING: {"u1"}})
    assert (index.count(None, 0, 200), index.count(BILLING, 0, 200), index.count(SALES, 0, 200)) == (2, 2, 1)


# -- contacts (processors.py) ---------------------------------------------------------------------------------------
def event(kind: str, eid: str, at_s: float, contact: str = "c1", **extra: Any) -> Any:
    """A validated event ``at_s`` seconds after 10:00:00 (billing/voice, customer u1 unless said)."""
    data = ev(kind, eid, DAY, contact, **extra) | {"ts": format_ts(T0 + int(at_s * US))}
    return parse_any_event(orjson.dumps(data))


def follow_up(eid: str, at_s: float, survey_id: str, contact: str = "c1") -> Any:
    data = {"event_id": eid, "type": "survey.followed_up", "ts": format_ts(T0 + int(at_s * US)), "contact_id": contact,
            "customer_id": "u1", "survey_event_id": survey_id, "agent_id": "sup-1"}
    return parse_any_event(orjson.dumps(data))


def contacts(*, loader: Any = None) -> ContactProcessor:
    """A contact processor as a live worker has one per partition (breaches published), default settings."""
    return ContactProcessor(KpiSettings(), Aggregates(BUCKET_US, T0), publish_breaches=True, loader=loader)


def billing(proc: ContactProcessor, measure: int, now_s: float = 3600) -> int:
    """One count of billing/voice over every fact before ``now_s`` seconds after 10:00:00."""
    proc.aggregates.advance(T0 + int(now_s * US))
    return proc.aggregates.totals.get(BILLING, [0] * m.N_MEASURES)[measure]


def settled_history(proc: ContactProcessor) -> None:
    """c1 queued 10:00:00 and still waiting; c3 queued 10:00:01 and abandoned 10:00:03; c2 queued 10:01:40 and
    abandoned 10:01:42: stream time 10:01:42, allowed disorder 60 s, so the settle horizon is 10:00:42."""
    for item in (event("queued", "q1", 0), event("queued", "q3", 1, "c3"), event("abandoned", "x3", 3, "c3"),
                 event("queued", "q2", 100, "c2"), event("abandoned", "x2", 102, "c2")):
        assert proc.handle(item)
    assert proc.stream_time == T0 + 102 * US


def test_a_settled_contact_is_packed_and_a_waiting_one_stays_for_its_breach() -> None:
    """settle() marks as evictable the contacts with events before the horizon (10:00:42) that are settled:
    nothing waiting, nothing that may still be refused, last event before the horizon. That is c3 (last event
    10:00:03), not c1 (waiting) nor c2 (no event before the horizon). Once saved (dirty cleared), evict() packs
    c3 only. c1 must stay an object: the breach timer finds its visit by it. due_breaches(10:01:42) then gives
    c1's breach at queued + T = 10:00:00 + 20 s = 10:00:20, and nothing for c3 (abandoned after 2 s, not
    waiting) nor c2 (deadline 10:02:00, after now).

    Kills ``ContactProcessor.settle``'s evictable test with ``and -> or`` and ``waiting is None -> is not``
    (c1 packed: its breach never published), either ``not`` removed (c3 never packed)."""
    proc = contacts()
    settled_history(proc)
    assert proc.settle() == []
    assert proc.evictable == {"c3"}
    proc.dirty.clear()  # the worker saved them
    assert proc.evict() == 1
    assert (set(proc.settled), set(proc.contacts)) == ({"c3"}, {"c1", "c2"})
    breaches = proc.due_breaches(T0 + 102 * US)
    assert [(b.contact_id, b.queued_event_id, b.breached_at_us) for b in breaches] == [("c1", "q1", T0 + 20 * US)]


def test_a_contact_not_yet_saved_is_never_dropped_and_a_saved_one_is_read_back_from_the_table() -> None:
    """The live worker keeps settled contacts in its table only (``evict(keep_packed=False)``) and reads one back
    through ``loader`` when an event of it arrives. Its table is a dict here, written as the worker does: after a
    batch, every dirty contact is stored and ``dirty`` cleared.

    c3 is settled after the history but not yet saved: evict() must keep it (0 moved), or its state would be
    lost. Saved, it goes (1 moved: in neither ``contacts`` nor ``settled``). Then its abandon x3 re-delivered is
    a duplicate (the table knows it), and a survey s3 at 10:05:00 (nps 10) is a promoter of billing/voice, the
    queue of its queued q3 read back from the table; no survey counts under unknown/unknown.

    Kills ``ContactProcessor.evict`` packing a dirty contact (``in dirty -> not in``, its ``continue``
    removed) and ``_load`` ignoring the loader (``loader is not None -> is``, its ``return`` removed: x3 would
    count as a new event of an unknown contact, s3 under unknown/unknown)."""
    table: dict[str, ContactState] = {}
    proc = contacts(loader=table.get)
    settled_history(proc)
    proc.settle()
    assert proc.evict(keep_packed=False) == 0
    assert "c3" in proc.contacts
    for contact_id in proc.dirty:
        table[contact_id] = ContactState.from_row(proc.contacts[contact_id].to_row())
    proc.dirty.clear()
    assert proc.evict(keep_packed=False) == 1
    assert "c3" not in proc.contacts and proc.settled == {}
    assert proc.handle(event("abandoned", "x3", 3, "c3")) is False
    assert proc.handle(event("survey", "s3", 300, "c3", nps=10))
    assert billing(proc, m.PROMOTERS) == 1
    assert proc.aggregates.totals.get(("unknown", "unknown")) is None


def save(proc: ContactProcessor, table: dict[str, ContactState]) -> None:
    """What the worker does after a batch: every dirty contact stored (a copy, through its row), ``dirty`` cleared."""
    for contact_id in proc.dirty:
        table[contact_id] = ContactState.from_row(proc.contacts[contact_id].to_row())
    proc.dirty.clear()


def test_a_survey_read_hours_ahead_of_its_contact_leaves_memory_and_counts_the_same_when_the_contact_comes() -> None:
    """A worker catching up a backlog reads the survey topic far ahead of the contact events (round-robin over
    topics, ~13x fewer surveys): a survey arrives for a contact none of whose events was read yet. Holding such
    contacts until the contact events reached them kept ~26k of a simulated day in memory (bench/days.py, session
    9). Nothing at the horizon needs them: once saved they leave, and come back from the table when their events
    come, counted exactly as in time order.

    c1 queued 10:00:00, answered 10:00:05, ended 10:01:05 (contact time 10:01:05, horizon 10:00:05). Then s2,
    c2's survey at 11:00:00 (nps 10, its bytes kept), an hour ahead: c2 holds only feedback, so it is evictable
    at once and, saved, leaves (in neither ``contacts`` nor ``settled``). c2's events come: queued 10:50:00,
    answered 10:50:05, ended 10:51:05: read back from the table, the survey is re-attributed from
    unknown/unknown to billing/voice: promoters 1 there, none under unknown/unknown; offered, answered and
    handled 2 (c1 and c2), as a processor given the same events in time order counts them. c3 queued 11:00:10
    moves the contact time (horizon 10:59:10): c2's contact events settle (the survey at 11:00:00 does not), and
    c2 leaves again, its survey's original bytes still in its stored row (what a later event that made it unfit
    would need for the dead-letter topic).

    Kills ``ContactProcessor.handle``'s feedback test (``kind == SURVEY -> !=``: c2 never evictable),
    ``_leaves`` judged by the newest event of any kind instead of the newest contact event (c2 held until the
    contact time passes 11:00:00), and ``ContactState.last_contact_ts`` counting feedback ranks."""
    table: dict[str, ContactState] = {}
    proc = contacts(loader=table.get)
    for item in (event("queued", "q1", 0), event("answered", "a1", 5), event("ended", "e1", 65)):
        assert proc.handle(item)
    raw = b'{"event_id": "s2"}'
    assert proc.handle(event("survey", "s2", 3600, "c2", nps=10), raw, ("survey-responses", 1, 7))
    assert "c2" in proc.evictable
    save(proc, table)
    proc.evict(keep_packed=False)
    assert "c2" not in proc.contacts and proc.settled == {}
    for item in (event("queued", "q2", 3000, "c2"), event("answered", "a2", 3005, "c2"),
                 event("ended", "e2", 3065, "c2")):
        assert proc.handle(item)
    in_order = contacts()
    for item in (event("queued", "q1", 0), event("answered", "a1", 5), event("ended", "e1", 65),
                 event("queued", "q2", 3000, "c2"), event("answered", "a2", 3005, "c2"),
                 event("ended", "e2", 3065, "c2"), event("survey", "s2", 3600, "c2", nps=10)):
        assert in_order.handle(item)
    for measure, want in ((m.PROMOTERS, 1), (m.OFFERED, 2), (m.ANSWERED, 2), (m.HANDLED, 2)):
        assert (billing(proc, measure, 7200), billing(in_order, measure, 7200)) == (want, want)
    assert proc.aggregates.totals.get(("unknown", "unknown"), [0] * m.N_MEASURES)[m.PROMOTERS] == 0
    save(proc, table)
    assert proc.handle(event("queued", "q3", 3610, "c3"))
    proc.settle()
    assert "c2" in proc.evictable
    save(proc, table)
    proc.evict(keep_packed=False)
    assert "c2" not in proc.contacts
    assert table["c2"].to_row()[4] == [["s2", raw, ["survey-responses", 1, 7], None]]


def test_a_settled_contact_read_back_for_a_duplicate_leaves_memory_again() -> None:
    """A re-delivery after a crash brings duplicates of settled contacts: each is read back from the table to
    learn that it is a duplicate, and no event of it reaches settle() again, so unless the duplicate itself
    marks it, it stayed in memory for good. After the history c3 (settled) is saved and leaves; its abandon x3
    again is a duplicate (False), and c3 is evictable and leaves with the next evict().

    Kills the duplicate branch of ``ContactProcessor.handle`` (``_leaves`` not asked, or ``not in self.dirty ->
    in``)."""
    table: dict[str, ContactState] = {}
    proc = contacts(loader=table.get)
    settled_history(proc)
    proc.settle()
    save(proc, table)
    assert proc.evict(keep_packed=False) == 1
    assert proc.handle(event("abandoned", "x3", 3, "c3")) is False
    assert "c3" in proc.contacts and "c3" in proc.evictable
    assert proc.evict(keep_packed=False) == 1
    assert "c3" not in proc.contacts


def test_a_duplicate_of_a_saved_contact_inside_the_allowed_disorder_keeps_it_in_memory() -> None:
    """The duplicate branch marks a contact evictable only when it may leave: saved (not dirty) *and* its newest
    contact event older than the allowed disorder (60 s). c1 queued 10:00:00, answered 10:00:05, ended 10:01:05,
    saved; queued q1 again is a duplicate (False) at contact time 10:01:05 (horizon 10:00:05): c1's ended event
    is inside the allowance, so c1 stays out of ``evictable`` (an event of it may still arrive out of order).

    Kills ``ContactProcessor.handle``'s duplicate test ``and -> or`` (a saved contact marked whatever ``_leaves``
    says) and its horizon ``stream_time - disorder -> +`` (10:02:05: c1 would leave at once)."""
    table: dict[str, ContactState] = {}
    proc = contacts(loader=table.get)
    for item in (event("queued", "q1", 0), event("answered", "a1", 5), event("ended", "e1", 65)):
        assert proc.handle(item)
    save(proc, table)
    assert proc.handle(event("queued", "q1", 0)) is False
    assert "c1" in proc.contacts and "c1" not in proc.evictable


def test_feedback_marks_its_contact_evictable_only_past_the_allowed_disorder() -> None:
    """Feedback (a survey, a follow-up) keeps no contact in memory once the contact's own events are older than
    the allowed disorder (``_leaves``, see the survey test above), but keeps it while they are not.

    c1 queued 10:00:00, answered 10:00:05, ended 10:01:05; its survey s1 at 10:01:06: the contact time is
    10:01:05 (horizon 10:00:05) and the ended event is inside the allowance: c1 is not evictable. c3 queued
    10:03:20 moves the contact time (horizon 10:02:20); c1 settles, is saved and leaves. c1's follow-up f1 of s1
    at 11:00:00 reads c1 back: its contact events are past the horizon, so the follow-up marks it evictable.

    Kills ``ContactProcessor.handle``'s feedback test ``kind == FOLLOWED -> !=`` (a follow-up never marks) and
    its horizon ``stream_time - disorder -> +`` (10:02:05: c1 evictable with its survey)."""
    table: dict[str, ContactState] = {}
    proc = contacts(loader=table.get)
    for item in (event("queued", "q1", 0), event("answered", "a1", 5), event("ended", "e1", 65),
                 event("survey", "s1", 66, nps=3)):
        assert proc.handle(item)
    assert "c1" not in proc.evictable
    assert proc.handle(event("queued", "q3", 200, "c3"))
    proc.settle()
    assert "c1" in proc.evictable
    save(proc, table)
    proc.evict(keep_packed=False)
    assert "c1" not in proc.contacts and "c1" not in proc.evictable
    assert proc.handle(follow_up("f1", 3600, "s1"))
    assert "c1" in proc.contacts and "c1" in proc.evictable


def test_a_live_processor_leaves_its_aggregates_clock_to_its_caller() -> None:
    """Live, "now" of the aggregates is the worker's clock (LiveKpis advances them when it reads), not the newest
    event time: a producer's clock may run ahead (up to ``max_clock_skew``), and its facts must wait until the
    worker's clock passes them. The aggregates start at 10:00:00; c1 queued 10:00:30 and c2 queued 10:00:40
    arrive; the clock reaches 10:00:20: the window [10:00:00, 10:00:20) holds no offered contact (both lie after
    it, in the same 1-minute bucket); at 10:00:41 it holds both.

    Kills ``ContactProcessor.__init__``'s ``moves_now = False -> True`` (the replay's road, where an event moves
    the aggregates to its time: at 10:00:40 the first offered would already sit in the 10:00 bucket)."""
    proc = contacts()
    assert proc.handle(event("queued", "q1", 30)) and proc.handle(event("queued", "q2", 40, "c2"))
    assert proc.aggregates.now == T0
    proc.aggregates.advance(T0 + 20 * US)
    assert proc.aggregates.window(T0, T0 + 20 * US, [BILLING])[BILLING][m.OFFERED] == 0
    proc.aggregates.advance(T0 + 41 * US)
    assert proc.aggregates.window(T0, T0 + 41 * US, [BILLING])[BILLING][m.OFFERED] == 2


def test_replace_puts_a_contact_back_to_its_stored_state_or_forgets_it() -> None:
    """When the worker cannot store a contact's new state, ``replace`` puts it back to what is stored, so the
    counts never run ahead of what a restart rebuilds. c1 queued 10:00:00, answered 10:00:05 (stored so), then
    ended 10:01:05 (handled 1) but not stored: replace(c1, stored) -> offered 1, answered 1, handled 0. Then
    replace(c1, None) (nothing stored) -> 0, 0, 0. replace of a contact the processor does not hold (c7) changes
    nothing.

    Kills ``ContactProcessor.replace`` without retracting the current facts (``current is not None -> is``:
    offered 2), retracting with sign ``-0``, ``state is not None -> is`` (nothing restored / None restored),
    and ``current is not None and ... -> or`` (c7: None has no records); and ``settle``'s ``continue`` for a
    contact no longer held (c1's events still on its timer)."""
    proc = contacts()
    proc.handle(event("queued", "q1", 0))
    proc.handle(event("answered", "a1", 5))
    stored = ContactState.from_row(proc.contacts["c1"].to_row())
    proc.handle(event("ended", "e1", 65))
    assert billing(proc, m.HANDLED) == 1
    proc.replace("c1", stored)
    assert [billing(proc, measure) for measure in (m.OFFERED, m.ANSWERED, m.HANDLED)] == [1, 1, 0]
    assert "c1" in proc.contacts and "c1" not in proc.dirty
    proc.replace("c1", None)
    assert [billing(proc, measure) for measure in (m.OFFERED, m.ANSWERED, m.HANDLED)] == [0, 0, 0]
    assert proc.contacts == {}
    proc.replace("c7", None)
    assert [billing(proc, measure) for measure in (m.OFFERED, m.ANSWERED, m.HANDLED)] == [0, 0, 0]
    # c1's events are still on the settle timer: once past the allowance (c9 queued 10:02:06, horizon
    # 10:01:06) settle() finds no contact for them and refuses nothing
    assert proc.handle(event("queued", "q9", 126, "c9"))
    assert proc.settle() == []


def test_a_packed_contact_is_forgotten_only_after_the_retention() -> None:
    """kpis.md: contacts are remembered for at least 30 days; the default retention is 31 days. c3 (last event
    10:00:03) packed after the history: ``forget(now)`` drops contacts whose last event is before now - 31 d.
    At now = 10:00:03 + 31 d: 10:00:03 < 10:00:03 is false -> kept; 1 µs later -> forgotten. c1 waits, never
    forgotten; c2 (last event 10:01:42) is still young.

    Kills ``ContactProcessor.forget`` ``packed_last_ts(packed) < limit -> <=`` (c3 dropped at exactly 31 d)."""
    proc = contacts()
    settled_history(proc)
    proc.settle()
    proc.dirty.clear()
    proc.evict()
    assert set(proc.settled) == {"c3"}
    assert proc.forget(T0 + 3 * US + RETENTION_US) == []
    assert proc.forget(T0 + 3 * US + RETENTION_US + 1) == ["c3"]
    assert proc.settled == {} and set(proc.contacts) == {"c1", "c2"}


def test_a_breach_already_published_is_not_published_again_after_a_recompute() -> None:
    """due_breaches hands out each breach once. c1 queued 10:00:00 still waits at 10:00:21: its breach (at
    10:00:20) goes out. Then a survey of c1 timed 09:59:59 arrives (before the queued: out of order, so the
    contact is recomputed and its waiting visit scheduled again): at 10:00:22 nothing more is due.

    Kills ``ContactProcessor.due_breaches``' ``continue`` for a visit already published, and ``_note_time``'s
    ``first_ts is None or ts < first_ts`` with ``or -> and`` (the earliest time would stay 10:00:00)."""
    proc = contacts()
    proc.handle(event("queued", "q1", 0))
    assert [b.queued_event_id for b in proc.due_breaches(T0 + 21 * US)] == ["q1"]
    assert proc.handle(event("survey", "s0", -1, nps=10))
    assert proc.due_breaches(T0 + 22 * US) == []
    assert proc.first_ts == T0 - US  # the earliest event is now s0 (09:59:59): where an "all" window starts


def spy_recomputes(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The ids of the events whose contact ``ContactProcessor._recompute`` walks (the real one runs): which
    events were not one step. Only on the core's sources (the ``on_core_sources`` fixture): a compiled class's
    method cannot be replaced."""
    recomputed: list[str | None] = []
    real_recompute = ContactProcessor._recompute

    def spy(self: ContactProcessor, contact_id: str, state: ContactState, rec: Record | None = None) -> Any:
        recomputed.append(None if rec is None else rec[2])
        return real_recompute(self, contact_id, state, rec)

    monkeypatch.setattr(ContactProcessor, "_recompute", spy)
    return recomputed


def test_events_in_order_take_one_step_each_never_the_full_recompute(
    monkeypatch: pytest.MonkeyPatch, on_core_sources: bool,
) -> None:
    """Engine v2: an event that sorts after every record of its contact and can happen now is one step of the
    lifecycle (``_step``), not a walk of all its events (``_recompute``): the hot path of a live worker. Spied:
    the real ``_recompute`` runs, each call is recorded. c1 in order: queued 10:00:00, answered 10:00:05, ended
    10:01:05, survey 10:02:00 (nps 3: detractor), its follow-up 10:03:00, queued again 10:04:00, answered
    10:04:10, ended 10:05:10 -> no recompute; offered 2, answered 2, handled 2, detractor feedback 1, followed
    up 1. Then a survey timed 10:00:30 (out of order) -> exactly one recompute.

    Kills ``_step``'s ``in_service += 1`` on an answer (``-=``, ``+= 0``: the end would not fit, a recompute),
    and ``handle``'s road test with ``not state.unfit`` negated or ``kind != FOLLOWED or ...`` -> ``and``
    (every event recomputed)."""
    if not on_core_sources:  # ran on the sources in a child pytest (tests/conftest.py)
        return
    recomputed = spy_recomputes(monkeypatch)
    proc = contacts()
    for item in (event("queued", "q1", 0), event("answered", "a1", 5), event("ended", "e1", 65),
                 event("survey", "s1", 120, nps=3), follow_up("f1", 180, "s1"), event("queued", "q2", 240),
                 event("answered", "a2", 250), event("ended", "e2", 310)):
        assert proc.handle(item)
    assert recomputed == []
    counts = [billing(proc, measure) for measure in (m.OFFERED, m.ANSWERED, m.HANDLED, m.DETRACTOR_FEEDBACK,
                                                      m.FOLLOWED_UP)]
    assert counts == [2, 2, 2, 1, 1]
    assert proc.handle(event("survey", "s0", 30, nps=10))
    assert recomputed == ["s0"]


def test_a_settled_contact_that_gets_a_new_event_is_no_longer_evictable() -> None:
    """After the history c3 is settled (evictable). Then c3 queues again (q3b at 10:01:45, a new visit, still
    waiting): it is no longer settled, so evict() must leave it (0 moved), and its new visit's breach comes at
    10:01:45 + T = 10:02:05; due at 10:02:06 with c1's (10:00:20), in deadline order.

    Kills ``ContactProcessor.handle``'s ``contact_id in self.evictable -> not in`` (c3 would stay evictable, be
    packed while waiting, and its breach never found)."""
    proc = contacts()
    settled_history(proc)
    proc.settle()
    assert proc.evictable == {"c3"}
    assert proc.handle(event("queued", "q3b", 105, "c3"))
    assert proc.evictable == set()
    proc.dirty.clear()
    assert proc.evict() == 0
    breaches = proc.due_breaches(T0 + 126 * US)
    assert [(b.contact_id, b.queued_event_id, b.breached_at_us) for b in breaches] == [
        ("c1", "q1", T0 + 20 * US), ("c3", "q3b", T0 + 125 * US)]


def test_a_breach_is_due_only_once_the_wait_exceeds_t() -> None:
    """kpis.md: a breach is a wait that *exceeds* T (20 s). c1 queued 10:00:00 still waits: at exactly 10:00:20
    nothing is due; 1 µs later its breach is (at 10:00:20).

    Kills ``ContactProcessor.due_breaches`` ``heap[0][0] < now_us -> <=``."""
    proc = contacts()
    proc.handle(event("queued", "q1", 0))
    assert proc.due_breaches(T0 + 20 * US) == []
    assert [(b.queued_event_id, b.breached_at_us) for b in proc.due_breaches(T0 + 20 * US + 1)] == [("q1", T0 + 20 * US)]


def test_an_impossible_event_exactly_at_the_horizon_is_refused_at_the_next_settle() -> None:
    """events.md: an impossible event is refused once the allowed disorder (60 s) has passed. c1 queued 10:00:00
    and ended e1 at 10:00:05 with no answer. c9 queued 10:01:05: the horizon is 10:01:05 - 60 s = 10:00:05, e1
    is not older than it: settle() refuses nothing. c9 answered 10:01:06: horizon 10:00:06, e1 is older: it is
    refused now ("lifecycle").

    Kills ``ContactProcessor.settle`` ``heap[0][0] < horizon -> <=`` (e1's entry would be taken at exactly the
    horizon, when it cannot be refused yet, and c1 never looked at again: e1 never refused)."""
    proc = contacts()
    for item in (event("queued", "q1", 0), event("ended", "e1", 5), event("queued", "q9", 65, "c9")):
        assert proc.handle(item)
    assert proc.settle() == []
    assert proc.handle(event("answered", "a9", 66, "c9"))
    assert [(r.kind, r.event_id) for r in proc.settle()] == [("lifecycle", "e1")]


def test_an_impossible_event_is_refused_with_what_was_given_of_it() -> None:
    """events.md: an impossible event goes to the DLQ with its original bytes. Three contacts, each queued at
    10:00:00 and ended at 10:00:05 with no answer: e1 handed over with its bytes only (a replay has no Kafka
    source), e2 with its source only, e3 with neither (nothing is kept for it: its stored form has no pending
    bytes). c9 queued 10:01:10 (horizon 10:00:10): settle() refuses all three, each with what it was given.

    Kills ``ContactProcessor.handle``'s ``raw is not None or source is not None`` with ``or -> and`` and either
    ``is not -> is`` (bytes or source lost, or an empty entry kept for e3)."""
    proc = contacts()
    raw = b'{"event_id": "e1"}'
    source = ("contact-events", 3, 17)
    for contact in ("c1", "c2", "c3"):
        proc.handle(event("queued", f"q-{contact}", 0, contact))
    proc.handle(event("ended", "e1", 5, "c1"), raw, None)
    proc.handle(event("ended", "e2", 5, "c2"), None, source)
    proc.handle(event("ended", "e3", 5, "c3"))
    assert proc.contacts["c3"].to_row()[4] is None
    proc.handle(event("queued", "q9", 70, "c9"))
    refused = sorted((r.event_id, r.raw, r.source) for r in proc.settle())
    assert refused == [("e1", raw, None), ("e2", None, source), ("e3", None, None)]


def test_surveys_ahead_of_the_contact_events_do_not_move_the_lifecycle_clock() -> None:
    """Surveys and follow-ups come on their own topic and may run ahead of the contact events; the allowed
    disorder of a contact is judged against the time contact events have reached (events.md). c1 queued
    10:00:00 and ended e1 10:00:05 before its answer arrived (not possible yet: it waits). Then, from the survey
    topic: s9 of c2 at 10:02:00 (the newest event), s8 of c2 at 10:01:00 and its follow-up f8 at 10:01:30. The
    contact clock stays 10:00:05 (horizon 09:59:05): settle() refuses nothing. c1's answer a1 at 10:00:03 then
    arrives, 2 s out of order: e1 is possible after all, handled 1, and nothing is refused later (c3 queued
    10:01:10, horizon 10:00:10).

    Kills ``ContactProcessor.handle``'s ``rec[RANK] < FEEDBACK_RANK -> <=`` (the newest survey would move the
    clock to 10:02:00, horizon 10:01:00: e1 refused before a1 came, handled 0) and ``_note_time``'s
    ``kind != SURVEY -> ==`` / ``kind != FOLLOWED -> ==`` (s8 or f8 would move it to 10:01:00 or 10:01:30).
    The earliest event time stays q1's 10:00:00 (kills ``handle``'s ``first_ts is None -> is not``: never set
    by the newest event, and ``_note_time``'s ``first_ts is None -> is not``: moved to each later event)."""
    proc = contacts()
    for item in (event("queued", "q1", 0), event("ended", "e1", 5), event("survey", "s9", 120, "c2", nps=10),
                 event("survey", "s8", 60, "c2", nps=10), follow_up("f8", 90, "s8", "c2")):
        assert proc.handle(item)
    assert (proc.stream_time, proc.latest_ts) == (T0 + 5 * US, T0 + 120 * US)
    assert proc.settle() == []
    assert proc.handle(event("answered", "a1", 3))
    assert proc.handle(event("queued", "q3", 70, "c3"))
    assert proc.settle() == []
    assert billing(proc, m.HANDLED, 130) == 1
    assert proc.first_ts == T0  # the earliest event of all (q1): where an "all" window starts


def test_a_visit_answered_late_publishes_its_breach_once() -> None:
    """A visit answered after T whose breach no timer published yet goes out with the answer; one the timer
    already published does not go out again. c1 queued 10:00:00, answered 10:00:30 (no timer call between):
    due at 10:00:30 -> c1's breach at 10:00:20. c2 queued 10:00:40; the timer at 10:01:01 publishes its breach
    (10:01:00); c2 answered 10:01:10: nothing more. Both count: sla_breaches 2.

    Kills ``_step``'s ``publish_breaches and queued[ID] not in state.breaches_published`` with ``not in -> in``
    (c1's breach never published) and ``and -> or`` (c2's breach, already published by the timer, would go
    out again with its answer)."""
    proc = contacts()
    proc.handle(event("queued", "q1", 0))
    proc.handle(event("answered", "a1", 30))
    assert [(b.contact_id, b.breached_at_us) for b in proc.due_breaches(T0 + 30 * US)] == [("c1", T0 + 20 * US)]
    proc.handle(event("queued", "q2", 40, "c2"))
    assert [(b.contact_id, b.breached_at_us) for b in proc.due_breaches(T0 + 61 * US)] == [("c2", T0 + 60 * US)]
    proc.handle(event("answered", "a2", 70, "c2"))
    assert proc.due_breaches(T0 + 70 * US) == []
    assert billing(proc, m.SLA_BREACHES, 71) == 2


def test_a_second_end_without_a_new_answer_is_refused() -> None:
    """events.md: a ``contact.ended`` needs an answered visit before it. c1 queued 10:00:00, answered 10:00:05,
    ended e1 10:01:05, then ended e2 10:01:10 with no new answer (in order, so one step each until e2): e2 cannot
    happen; once the allowed disorder has passed (c9 queued 10:02:11, horizon 10:01:11) it is refused, and c1
    was handled once (handle time 60 s talk + 10 s wrap = 70 s).

    Kills ``_step``'s ``in_service -= 1`` at an end (``+=``, ``-= 0``: e2 would fit, be counted and never
    refused)."""
    proc = contacts()
    for item in (event("queued", "q1", 0), event("answered", "a1", 5), event("ended", "e1", 65),
                 event("ended", "e2", 70), event("queued", "q9", 131, "c9")):
        assert proc.handle(item)
    assert [(r.kind, r.event_id) for r in proc.settle()] == [("lifecycle", "e2")]
    assert (billing(proc, m.HANDLED, 132), billing(proc, m.HANDLE, 132)) == (1, 70 * US)


def test_a_later_final_end_replaces_the_earlier_one_one_step_at_a_time() -> None:
    """kpis.md: only the final (non-transferred) ``contact.ended`` decides resolution, at its ts, with the
    resolution time from t0. Both contacts in order (one step each), billing/voice:

    - c1 queued 10:00:00, answered 10:00:05, ended *unresolved* 10:01:05; queued again 10:02:00, answered
      10:02:05, ended resolved 10:03:00: resolved once, at 10:03:00, after 180 s (the earlier end resolved
      nothing, so nothing is taken back);
    - c2 queued 10:00:00, answered 10:00:05, ended *resolved* 10:01:05; queued again 10:02:00, answered
      10:02:05, ended unresolved 10:03:00: the resolution at 10:01:05 is taken back, at 10:01:05 (the window
      [10:00:00, 10:02:00) holds neither resolution).

    Window [10:00:00, 10:05:00): contacts 2 (t0 once each), resolved 1, resolution 180 s. Window [10:00:00,
    10:02:00): resolved 0.

    Kills ``_step``'s retraction: ``previous[1]`` (resolved) -> ``previous[0]`` (always true: c1's unresolved
    end retracted), its ts / queue / channel taken from the wrong field (retracted elsewhere), resolved
    ``True -> False`` and sign ``-0`` (nothing retracted); and the contacts fact ``1 -> 0``."""
    proc = contacts()
    for contact, first, last in (("c1", False, True), ("c2", True, False)):
        for item in (event("queued", f"{contact}q1", 0, contact), event("answered", f"{contact}a1", 5, contact),
                     event("ended", f"{contact}e1", 65, contact, resolved=first),
                     event("queued", f"{contact}q2", 120, contact), event("answered", f"{contact}a2", 125, contact),
                     event("ended", f"{contact}e2", 180, contact, resolved=last)):
            assert proc.handle(item)
    proc.aggregates.advance(T0 + 300 * US)
    whole = proc.aggregates.window(T0, T0 + 300 * US, [BILLING])[BILLING]
    assert (whole[m.CONTACTS], whole[m.RESOLVED], whole[m.RESOLUTION]) == (2, 1, 180 * US)
    assert proc.aggregates.window(T0, T0 + 120 * US, [BILLING])[BILLING][m.RESOLVED] == 0


def test_the_clocks_start_at_the_epoch() -> None:
    """events.md allows ``ts`` from 1970-01-01T00:00:00Z. A processor that has seen one ``contact.queued`` at
    the epoch: the newest contact-event time (the lifecycle clock), the newest time of any event and the
    earliest are all 0 (not 1 µs later: the allowed disorder and a live partition's breach clock count from it).

    Kills ``ContactProcessor.__init__`` ``stream_time = 0 -> 1`` and ``latest_ts = 0 -> 1``."""
    proc = contacts()
    data = ev("queued", "q0", DAY) | {"ts": format_ts(0)}
    assert proc.handle(parse_any_event(orjson.dumps(data)))
    assert (proc.stream_time, proc.latest_ts, proc.first_ts) == (0, 0, 0)


def test_detractor_feedback_awaits_until_followed_up_and_breaches_only_past_its_target() -> None:
    """kpis.md "Closed-loop feedback (v2)", target 1 h here. c1 queued 10:00:00; detractor feedback s1 at
    10:01:00 (nps 2) and s3 at 10:02:00 (csat 1), both billing/voice. At 10:03:00: 2 awaiting, the oldest
    (s1) for 120 s. f1 follows s1 up at 11:01:00, exactly its target: in time; s3 still awaits, for 11:01:00 -
    10:02:00 = 3540 s. f3 follows s3 up at 11:02:00.001, 1 ms past its target: nothing awaits, and one feedback
    breach goes out, at 10:02:00 + 1 h = 11:02:00 (target 3600 s), once. Counts: detractor feedback 2, followed
    up 2, feedback breaches 1, response 3600 s + 3600.001 s = 7200.001 s.

    Kills ``_followed_up``'s late test (``rec[TS] > survey[TS] + target`` with ``>=``, ``-``, or ``and -> or``:
    f1 would publish a breach), ``_not_awaiting``'s ``not mine`` removed (s3 lost from the contact's index
    while it still awaits, so f3 leaves it awaiting), and ``awaiting_by_queue``'s ``min -> max`` (the oldest)."""
    kpi = KpiSettings(channels={"voice": {"feedback_response_target": "1h"}})
    proc = ContactProcessor(kpi, Aggregates(BUCKET_US, T0), publish_breaches=True)
    for item in (event("queued", "q1", 0), event("survey", "s1", 60, nps=2), event("survey", "s3", 120, csat=1)):
        assert proc.handle(item)
    assert proc.awaiting_by_queue(T0 + 180 * US) == {BILLING: (2, 120.0)}
    assert proc.handle(follow_up("f1", 3660, "s1"))
    assert proc.awaiting_by_queue(T0 + 3660 * US) == {BILLING: (1, 3540.0)}
    assert proc.handle(follow_up("f3", 3720.001, "s3"))
    assert proc.awaiting_by_queue(T0 + 3721 * US) == {}
    breaches = proc.due_feedback_breaches(T0 + 3721 * US)
    assert [(b.survey_event_id, b.survey_ts_us, b.target_seconds, b.breached_at_us) for b in breaches] == [
        ("s3", T0 + 120 * US, 3600, T0 + 3720 * US)]
    assert proc.due_feedback_breaches(T0 + 3722 * US) == []
    counts = [billing(proc, measure, 3722) for measure in (m.DETRACTOR_FEEDBACK, m.FOLLOWED_UP, m.FEEDBACK_BREACHES,
                                                            m.FEEDBACK_RESPONSE)]
    assert counts == [2, 2, 1, 7_200_001_000]


DAY_S = 86_400


def test_detractor_feedback_older_than_the_retention_stops_awaiting_and_newer_feedback_still_awaits() -> None:
    """Feedback target 1 h, retention 31 days. c1: queued day 0 10:00:00 (abandoned 2 s later), detractor s1
    10:01:00; queued again day 30 10:00:00 (abandoned 2 s later), detractor s2 day 30 10:01:00. c2: queued day 0
    10:00:00 (abandoned 2 s later), detractor s3 10:01:00. At now = day 31 10:01:00, s1 and s3 are exactly 31 days old: they still await (3 awaiting) and c2
    (last event 10:01:00) is kept. 1 µs later c2 is forgotten, s1 and s3 stop awaiting and their breaches
    become facts at 10:01:00 + 1 h = 11:01:00 of day 0; s2 (30 days old) still awaits. It is then followed up at
    day 30 10:30:00, in time (target day 30 11:01:00): no breach for it (kpis.md: a breach is feedback *not*
    followed up by survey ts + target). Feedback breaches 2 (both at day 0 11:01:00), followed up 1.

    This was a bug (fixed with this test): every awaiting feedback of a contact with one expired feedback was
    expired with it, so s2 counted a breach although followed up in time (3). Kills the expiry's ``survey_ts <
    limit -> <=`` (s1, s3 gone at exactly 31 days) and its fact's ``key[0]`` / ``key[1]`` / value mutants."""
    kpi = KpiSettings(channels={"voice": {"feedback_response_target": "1h"}})
    proc = ContactProcessor(kpi, Aggregates(BUCKET_US, T0), publish_breaches=True)
    for item in (event("queued", "q1", 0), event("abandoned", "x1", 2), event("survey", "s1", 60, nps=0),
                 event("queued", "q3", 0, "c2"), event("abandoned", "x3", 2, "c2"), event("survey", "s3", 60, "c2", csat=2),
                 event("queued", "q2", 30 * DAY_S), event("abandoned", "x2", 30 * DAY_S + 2),
                 event("survey", "s2", 30 * DAY_S + 60, nps=6)):
        assert proc.handle(item)
    now = T0 + 60 * US + RETENTION_US  # day 31 10:01:00
    assert proc.forget(now) == []
    assert proc.awaiting_by_queue(now)[BILLING][0] == 3
    assert proc.forget(now + 1) == ["c2"]
    assert proc.awaiting_by_queue(now) == {BILLING: (1, float(DAY_S))}  # s2, day 30 10:01:00: one day before now
    assert proc.handle(follow_up("f2", 30 * DAY_S + 1800, "s2"))
    assert proc.awaiting_by_queue(now + 1) == {}
    end_s = 31 * DAY_S + 3600
    assert (billing(proc, m.FEEDBACK_BREACHES, end_s), billing(proc, m.FOLLOWED_UP, end_s)) == (2, 1)
    day0 = proc.aggregates.window(T0 + 3660 * US, T0 + 3720 * US, [BILLING])[BILLING]
    assert day0[m.FEEDBACK_BREACHES] == 2  # [11:01:00, 11:02:00) of day 0
    # a follow-up of the expired s1 (day 31 10:30:00) still counts as followed up (kpis.md: at its ts); nothing
    # of c1 awaits any more (kills ``_not_awaiting``'s early ``return`` for a contact awaiting nothing). s1 was
    # followed up 30 days late: still one breach (at day 0 11:01:00), not a second one beside its expiry's
    # (this was a bug: 3 breaches; the expiry's fact is taken back when the follow-up's own facts count it)
    assert proc.handle(follow_up("f1", 31 * DAY_S + 1800, "s1"))
    assert billing(proc, m.FOLLOWED_UP, end_s) == 2
    assert billing(proc, m.FEEDBACK_BREACHES, end_s) == 2
    assert proc.aggregates.window(T0 + 3660 * US, T0 + 3720 * US, [BILLING])[BILLING][m.FEEDBACK_BREACHES] == 2
    assert proc.expired_feedback == {}


def test_expired_feedback_does_not_await_again_after_a_recompute_and_an_in_time_follow_up_takes_its_breach_back() -> None:
    """Feedback target 1 h, retention 31 days. c1: queued day 0 10:00:00, abandoned 10:00:02, detractor s1
    10:01:00 (breach due 11:01:00), queued again day 30 10:00:00 and abandoned 10:00:02. At day 31 10:01:00 + 1
    µs s1 is past the retention: it expires, its breach a fact at day 0 11:01:00 (1 breach, nothing awaits).

    A late event of c1 from day 0 (an ended? no: a second survey s9 at 10:00:30, CSAT 5, not a detractor) makes
    the contact recompute: s1 has no follow-up, but it must not await again (that would count its breach twice:
    2). Then a follow-up f1 of s1 stamped day 0 10:30:00 (in time: before 11:01:00) arrives out of order: s1 was
    followed up in time after all, so no breach (0), followed up 1, response 29 min = 1740 s."""
    kpi = KpiSettings(channels={"voice": {"feedback_response_target": "1h"}})
    proc = ContactProcessor(kpi, Aggregates(BUCKET_US, T0), publish_breaches=True)
    for item in (event("queued", "q1", 0), event("abandoned", "x1", 2), event("survey", "s1", 60, nps=0),
                 event("queued", "q2", 30 * DAY_S), event("abandoned", "x2", 30 * DAY_S + 2)):
        assert proc.handle(item)
    now = T0 + 60 * US + RETENTION_US + 1
    assert proc.forget(now) == []
    end_s = 31 * DAY_S + 3600
    assert proc.awaiting_by_queue(now) == {}
    assert billing(proc, m.FEEDBACK_BREACHES, end_s) == 1
    assert proc.handle(event("survey", "s9", 30, csat=5))
    assert proc.awaiting_by_queue(now) == {}
    assert billing(proc, m.FEEDBACK_BREACHES, end_s) == 1
    assert proc.handle(follow_up("f1", 1800, "s1"))
    assert (billing(proc, m.FEEDBACK_BREACHES, end_s), billing(proc, m.FOLLOWED_UP, end_s)) == (0, 1)
    assert billing(proc, m.FEEDBACK_RESPONSE, end_s) == 1_740_000_000
    assert proc.expired_feedback == {}


def test_settle_is_due_only_when_an_event_is_older_than_the_horizon() -> None:
    """``settle_due`` tells the engine whether ``settle`` has work: an event older than stream time minus the
    allowed disorder. After the history (stream time 10:01:42, horizon 10:00:42): due (c1's 10:00:00). After
    settle(): not due (the oldest left is c2's 10:01:40). A processor whose oldest event is exactly at the
    horizon (q1 10:00:00, e1 10:00:05, c9 queued 10:01:05 -> horizon 10:00:05; after settle() only e1's
    10:00:05 and later are left): not due.

    With two events, q1 10:00:00 and q9 10:01:10 (horizon 10:00:10), only the oldest is due: due.

    Kills ``ContactProcessor.settle_due``'s ``and -> or``, ``< -> <=``, ``stream_time - disorder -> +`` and
    ``heap[0] -> heap[1]`` (the second entry is not due)."""
    proc = contacts()
    settled_history(proc)
    assert proc.settle_due() is True
    proc.settle()
    assert proc.settle_due() is False
    edge = contacts()
    for item in (event("queued", "q1", 0), event("ended", "e1", 5), event("queued", "q9", 65, "c9")):
        edge.handle(item)
    edge.settle()
    assert edge.settle_due() is False
    two = contacts()  # q1 10:00:00, q9 10:01:10 (horizon 10:00:10): the oldest is due, the other not
    for item in (event("queued", "q1", 0), event("queued", "q9", 70, "c9")):
        two.handle(item)
    assert two.settle_due() is True


def test_a_late_answer_or_follow_up_seen_again_in_a_recompute_is_published_once_and_only_when_late() -> None:
    """Breaches found by a full recompute (events out of order) go out once, and only for a wait exceeding T
    (20 s) or a follow-up after its target (1 h):

    - c3's answer a3 10:02:20 arrives before its queued q3 10:02:00: waited exactly 20 s, no breach; c4's answer
      a4 10:03:20.001 before its queued q4 10:03:00: 1 ms over T, its breach (at 10:03:20) goes out, once;
    - c1: detractor s1 10:01:00 followed up by f1 exactly at 11:01:00 (in time), then a promoter s0 timed
      10:00:30 arrives (out of order: c1 recomputed): no feedback breach; c2: detractor s2 10:01:00 followed up
      1 ms late (11:01:00.001), published once, and again nothing when c2 is recomputed (a promoter s5 at
      10:00:30).

    Kills ``_late_breaches``' ``> -> >=`` and ``- -> +``, ``_sync_awaiting``'s late test (``>=``, ``-``) and
    ``_late_feedback``'s early ``return`` removed (published again at each recompute)."""
    kpi = KpiSettings(channels={"voice": {"feedback_response_target": "1h"}})
    proc = ContactProcessor(kpi, Aggregates(BUCKET_US, T0), publish_breaches=True)
    for item in (event("answered", "a3", 140, "c3"), event("queued", "q3", 120, "c3"),
                 event("answered", "a4", 200.001, "c4"), event("queued", "q4", 180, "c4")):
        assert proc.handle(item)
    breaches = proc.due_breaches(T0 + 200 * US)
    assert [(b.contact_id, b.breached_at_us) for b in breaches] == [("c4", T0 + 200 * US)]
    assert proc.due_breaches(T0 + 201 * US) == []
    for contact, late in (("c1", 0), ("c2", 0.001)):
        for item in (event("queued", f"{contact}q", 0, contact), event("survey", f"{contact}s", 60, contact, nps=1),
                     follow_up(f"{contact}f", 3660 + late, f"{contact}s", contact),
                     event("survey", f"{contact}p", 30, contact, nps=10)):
            assert proc.handle(item)
    found = proc.due_feedback_breaches(T0 + 3700 * US)
    assert [(b.contact_id, b.breached_at_us) for b in found] == [("c2", T0 + 3660 * US)]
    proc.handle(event("survey", "c2p2", 31, "c2", nps=10))  # c2 recomputed once more
    assert proc.due_feedback_breaches(T0 + 3701 * US) == []


def test_the_feedback_timer_publishes_past_the_target_of_the_queue_the_feedback_is_attributed_to_now() -> None:
    """Targets: voice 1 h, queue sales 2 h (a queue's setting overrides its channel's). c1 queued 10:00:00
    (billing/voice, abandoned 2 s later), detractor s1 10:01:00: due at 10:01:00 + 1 h = 11:01:00. c2 queued
    10:00:00 (billing/voice, abandoned 2 s later), detractor s2 10:05:00: attributed to billing/voice, due
    11:05:00; then c2's queued q2b at 10:03:00 in sales arrives late: s2 is re-attributed to sales/voice (the
    latest queued not after it), due 10:05:00 + 2 h = 12:05:00.

    At 11:00:00: billing 1 awaiting for 59 min (3540 s), sales 1 for 55 min (3300 s). The timer at exactly
    11:01:00 publishes nothing (not yet past the target); 1 µs later s1's breach (billing/voice, survey
    10:01:00, target 3600 s, at 11:01:00). At 11:05:00.000001 nothing: s2's first deadline no longer holds. At
    12:05:00.000001 s2's (sales/voice, target 7200 s, at 12:05:00).

    Kills ``due_feedback_breaches``' ``< -> <=``, its ``key[0]`` / ``key[1]`` mutants, the target ``at -
    survey_ts -> +``, and the re-attribution check (``at != deadline -> ==``, its ``continue`` removed)."""
    kpi = KpiSettings(channels={"voice": {"feedback_response_target": "1h"}},
                      queues={"sales": {"feedback_response_target": "2h"}})
    proc = ContactProcessor(kpi, Aggregates(BUCKET_US, T0), publish_breaches=True)
    for item in (event("queued", "q1", 0), event("abandoned", "x1", 2), event("survey", "s1", 60, nps=0),
                 event("queued", "q2", 0, "c2"), event("abandoned", "x2", 2, "c2"),
                 event("survey", "s2", 300, "c2", nps=0), event("queued", "q2b", 180, "c2", queue="sales")):
        assert proc.handle(item)
    sales = ("sales", "voice")
    assert proc.awaiting_by_queue(T0 + 3600 * US) == {BILLING: (1, 3540.0), sales: (1, 3300.0)}

    def published(now_us: int) -> list[tuple[str, str, str, str, int, int, int]]:
        return [(b.queue, b.channel, b.contact_id, b.survey_event_id, b.survey_ts_us, b.target_seconds,
                 b.breached_at_us) for b in proc.due_feedback_breaches(now_us)]

    assert published(T0 + 3660 * US) == []
    assert published(T0 + 3660 * US + 1) == [("billing", "voice", "c1", "s1", T0 + 60 * US, 3600, T0 + 3660 * US)]
    assert published(T0 + 3900 * US + 1) == []
    assert published(T0 + 7500 * US + 1) == [("sales", "voice", "c2", "s2", T0 + 300 * US, 7200, T0 + 7500 * US)]


def test_a_contact_processor_publishes_no_breach_unless_asked() -> None:
    """A processor made without ``publish_breaches`` (a replay's) counts breaches but hands none out: c1 queued
    10:00:00 and answered 10:00:30 (a breach at 10:00:20, counted), c2 queued 10:00:40 still waiting at 10:02:00
    (its breach at 10:01:00 counts live): due_breaches(10:02:00) gives nothing. Likewise c1's detractor feedback
    s1 at 10:01:00 never followed up: no feedback breach is handed out three days later (past any target).

    Kills ``ContactProcessor.__init__`` ``publish_breaches=False -> True``, and ``_now_waiting`` /
    ``_now_awaiting`` scheduling a timer without ``publish_breaches`` (``and -> or``)."""
    proc = ContactProcessor(KpiSettings(), Aggregates(BUCKET_US, T0))
    for item in (event("queued", "q1", 0), event("answered", "a1", 30), event("queued", "q2", 40, "c2"),
                 event("survey", "s1", 60, nps=0)):
        assert proc.handle(item)
    assert proc.due_breaches(T0 + 120 * US) == []
    assert billing(proc, m.SLA_BREACHES, 120) == 1
    assert proc.due_feedback_breaches(T0 + 3 * DAY_S * US) == []


def test_a_second_identical_survey_arriving_out_of_order_counts_twice() -> None:
    """Two survey responses of c1 at the same instant with the same scores (nps 10, csat 5) are two responses
    (distinct event ids): 2 promoters, csat_5 2. s1 arrives first (in order: one step); s0, whose id sorts
    before s1's, arrives second and is placed before it (a recompute): the facts before hold s1's once, the
    facts after hold the same facts twice, and the difference must add the second copy.

    Kills ``_diff``'s exact-set shortcut taken for a list with repeats (``and -> or``, the second ``== ->
    !=``): the second copy is in the set already, so it would never be added (promoters 1)."""
    proc = contacts()
    for item in (event("queued", "q1", 0), event("abandoned", "x1", 2), event("survey", "s1", 60, nps=10, csat=5),
                 event("survey", "s0", 60, nps=10, csat=5)):
        assert proc.handle(item)
    assert (billing(proc, m.PROMOTERS), billing(proc, m.CSAT_1 + 4)) == (2, 2)


# -- customers (processors.py) -------------------------------------------------------------------------------------
def summary(customer: str, contact: str, t0_s: float) -> Summary:
    """An FCR summary: first queued ``t0_s`` seconds after 10:00:00 in billing/voice, no reason, not ended."""
    return Summary(contact, customer, T0 + int(t0_s * US), None, "billing", "voice", None)


def test_a_customer_not_yet_saved_is_never_packed_and_the_most_recent_stay(monkeypatch: pytest.MonkeyPatch) -> None:
    """The customer side keeps the ``RECENT_CUSTOMERS`` most recently changed customers as objects (1 here) and
    packs older ones, never one not yet saved (dirty). u1, u2, u3 changed in that order (10:00, 10:01, 10:02);
    u2 and u3 saved, u1 not: evict() must pack neither u1 (dirty) nor u3 (the most recent), and keep the order
    of change (u1 oldest). Once u1 is saved too, evict() packs u1 and u2 (2) and only u3 stays an object.

    Kills ``CustomerProcessor.evict`` packing a dirty customer (``in dirty -> not in``, its ``continue``
    removed), ``len(customers) - len(keep) -> +`` (the loop would run on through u3) and putting the kept
    customers back at the newest end (``move_to_end(last=False) -> True``: u3 packed next)."""
    monkeypatch.setattr(processors_module, "RECENT_CUSTOMERS", 1)
    proc = CustomerProcessor(KpiSettings(fcr_window="1h"), Aggregates(BUCKET_US, T0))
    for index, customer in enumerate(("u1", "u2", "u3")):
        proc.update(summary(customer, f"c{index + 1}", 60 * index))
    proc.dirty = {"u1"}
    proc.evict()
    assert "u1" not in proc.packed and "u3" not in proc.packed
    assert list(proc.customers)[0] == "u1" and list(proc.customers)[-1] == "u3"
    proc.dirty.clear()
    assert proc.evict() == 2
    assert (list(proc.customers), sorted(proc.packed)) == (["u3"], ["u1", "u2"])


def test_updates_move_customers_out_only_when_enough_saved_ones_can_go(
    monkeypatch: pytest.MonkeyPatch, on_core_sources: bool,
) -> None:
    """``update`` calls ``evict`` once more than 2 x ``RECENT_CUSTOMERS`` (2 here) customers are *saved* (not
    dirty): evict() can move only those, and counting the unsaved ones in made every update past that size pop
    and put back each unsaved customer (a fifth of a replay's time, session 7). Five customers changed and not
    saved: no evict; saved, then a sixth: one evict, which leaves the RECENT_CUSTOMERS most recently changed.

    Kills ``len(customers) - len(dirty) -> +`` (evict called at the third unsaved customer)."""
    if not on_core_sources:  # ran on the sources in a child pytest (tests/conftest.py)
        return
    monkeypatch.setattr(processors_module, "RECENT_CUSTOMERS", 2)
    proc = CustomerProcessor(KpiSettings(fcr_window="1h"), Aggregates(BUCKET_US, T0))
    calls = []
    evict = proc.evict
    monkeypatch.setattr(proc, "evict", lambda: calls.append(1) or evict())
    for index in range(5):
        proc.update(summary(f"u{index}", f"c{index}", 60 * index))
    assert (calls, len(proc.customers), proc.packed) == ([], 5, {})
    proc.dirty.clear()  # the worker saved them
    proc.update(summary("u5", "c5", 300))
    assert calls == [1]
    assert (list(proc.customers), sorted(proc.packed)) == (["u4", "u5"], ["u0", "u1", "u2", "u3"])


def test_a_summary_sent_again_unchanged_leaves_its_customer_saved() -> None:
    """A contact's summary is sent again unchanged after a re-delivered duplicate (live.py): the customer's state
    does not change, so it must not be marked for saving again (``dirty`` is what the worker writes).

    Kills ``CustomerProcessor.update``'s early ``return`` removed for an unchanged summary."""
    proc = CustomerProcessor(KpiSettings(fcr_window="1h"), Aggregates(BUCKET_US, T0))
    proc.update(summary("u1", "c1", 0))
    assert proc.dirty == {"u1"}
    proc.dirty.clear()
    proc.update(summary("u1", "c1", 0))
    assert proc.dirty == set()
    proc.update(summary("u1", "c1", 10))  # t0 10:00:10 instead of 10:00:00: a change, to be saved
    assert proc.dirty == {"u1"}


def test_forgetting_old_contacts_of_customers_marks_changed_customers_for_saving(monkeypatch: pytest.MonkeyPatch) -> None:
    """The customer side drops contacts older than 2 F + the allowed disorder (F = 1 h: 2 h 1 min) that no
    remaining contact looks back to. u1: c1 t0 10:00:00 (day 0), c2 t0 day 1 10:00:00 (more than F after c1, so
    c2 does not need c1). u2: c3 t0 day 1 10:00:00.

    - now = day 0 12:01:00: limit = now - 2 h - 60 s = day 0 10:00:00; c1 is not older: nothing changes,
      nothing to save (dirty empty);
    - 1 µs later c1 goes: u1 changed (dirty, to be saved), u2 not; no customer is gone.

    Packed (``recent`` 0, so every saved customer is packed), a customer goes whole once its newest t0 is
    older than the limit: u1 and u2 (newest t0 both day 1 10:00:00) stay at now = day 1 12:01:00 and go 1 µs
    later.

    Kills ``CustomerProcessor.forget``'s limit mutants (``2 * F -> 1 *``, either sign flipped), ``len(contacts)
    != before -> ==`` (the changed customer not saved, the unchanged one saved), ``not state.contacts``
    removed, and the packed ``_prefix(packed) < limit -> <=``."""
    kpi = KpiSettings(fcr_window="1h")
    proc = CustomerProcessor(kpi, Aggregates(BUCKET_US, T0))
    for item in (summary("u1", "c1", 0), summary("u1", "c2", DAY_S), summary("u2", "c3", DAY_S)):
        proc.update(item)
    proc.dirty.clear()
    now = T0 + (2 * 3600 + 60) * US
    assert proc.forget(now) == [] and proc.dirty == set()
    assert proc.forget(now + 1) == [] and proc.dirty == {"u1"}
    assert sorted(proc.customers["u1"].contacts) == ["c2"]
    monkeypatch.setattr(proc, "recent", 0)
    proc.dirty.clear()
    assert proc.evict() == 2 and sorted(proc.packed) == ["u1", "u2"]
    later = now + DAY_S * US
    assert proc.forget(later) == []
    assert sorted(proc.forget(later + 1)) == ["u1", "u2"]


def test_a_customer_processor_keeps_no_pruned_customers_unless_asked() -> None:
    """``keep_all_customers`` (a replay's and a live worker's ``all`` window) is asked for explicitly; without it
    the distinct index forgets pruned contacts whole. u1 with t0 day 0 10:00:00, u2 with t0 day 3 10:00:00;
    the aggregates pruned before day 2: customers with a contact before day 3 10:01:00 counted from the start
    of time -> only u2 (1); the index keeps no customer ids of pruned contacts.

    Kills ``CustomerProcessor.__init__`` ``keep_all_customers=False -> True`` (u1 would stay counted: 2)."""
    aggregates = Aggregates(BUCKET_US, T0)
    proc = CustomerProcessor(KpiSettings(fcr_window="1h"), aggregates)
    proc.update(summary("u1", "c1", 0))
    proc.update(summary("u2", "c2", 3 * DAY_S))
    aggregates.advance(T0 + (3 * DAY_S + 60) * US)
    aggregates.prune(T0 + 2 * DAY_S * US)
    assert aggregates.customers_until(T0 + (3 * DAY_S + 60) * US, None) == 1
    assert proc.distinct.gone_all == set()


def test_a_contact_forgotten_by_the_customer_side_before_the_index_still_moves_in_the_index() -> None:
    """Found by the mutation review of 76ef462 (the index had stopped keeping its own map of contacts): with F = 1 h
    the customer side forgets a contact 2 h 1 min after its t0, the index keeps it 26 h. c1 (u1) queued at 10:00:00,
    answered, ended; forgotten by the customer side at 12:01:01 (u1 gone). Three hours later an earlier queued of
    c1 arrives (t0 -> 09:59:50): by kpis.md u1 now has a contact at 09:59:50 and none at 10:00:00, so billing
    customers over [10:00, 10:01) = 0 and over [09:59, 10:00) = 1. Without a map the index kept the old entry
    (1 and 1). With the default F (7 days: the customer side forgets long after the index) no map is kept.

    Kills ``CustomerProcessor.__init__``'s ``forgets_first`` ``< -> >=`` (no map with F = 1 h) and ``note``
    ignoring its own record (``previous = held`` removed)."""
    kpi = KpiSettings(fcr_window="1h")
    aggregates = Aggregates(BUCKET_US, T0)
    contacts, customers = ContactProcessor(kpi, aggregates), CustomerProcessor(kpi, aggregates)
    assert customers.distinct.contacts == {}
    assert CustomerProcessor(KpiSettings(), Aggregates(BUCKET_US, T0)).distinct.contacts is None

    def feed(item: dict[str, Any]) -> None:
        assert contacts.handle(parse_any_event(orjson.dumps(item)))
        for changed in contacts.drain_summaries():
            customers.update(changed)

    for kind, eid, at_s in (("queued", "q1", 0), ("answered", "a1", 30), ("ended", "e1", 300)):
        feed(ev(kind, eid, DAY, "c1") | {"ts": format_ts(T0 + at_s * US)})
    feed(ev("queued", "q9", DAY, "c9", customer="u9") | {"ts": format_ts(T0 + 3 * 3600 * US)})
    assert customers.forget(T0 + (2 * 3600 + 61) * US) == ["u1"]
    feed(ev("queued", "q0", DAY, "c1") | {"ts": format_ts(T0 - 10 * US)})
    billing = ("billing", "voice")
    assert customers.distinct.count(billing, T0, T0 + 60 * US) == 0
    assert customers.distinct.count(billing, T0 - 60 * US, T0) == 1


def test_the_index_s_own_contact_map_is_pruned_with_its_entries_not_before() -> None:
    """``track_contacts`` (a short FCR window): the index's map of contacts is pruned with the entries, the entry at
    exactly the bound staying in both. c1 (u1) noted at t0 50 µs (billing), c2 (u2) at 10; prune(50) drops c2's
    entry and map record and keeps c1's (t0 50 is not before 50). c1's t0 then moves to 40 with no ``previous``
    (the customer side forgot it): the map still says where its entry is, so billing over [50, 60) has no
    customer any more, and [40, 50) has u1. ``contacts`` afterwards: c1 at 40 only.

    Kills ``prune``'s map ``held[0] < before_us -> <=`` (c1's record dropped at the bound: its old entry stays,
    [50, 60) -> 1)."""
    index = DistinctCustomers(track_contacts=True)
    index.note("u1", 50, *BILLING, contact_id="c1")
    index.note("u2", 10, *BILLING, contact_id="c2")
    index.prune(50)
    assert index.contacts == {"c1": (50, *BILLING)} and index.all == [(50, "u1")]
    index.note("u1", 40, *BILLING, contact_id="c1")
    assert (index.count(BILLING, 50, 60), index.count(BILLING, 40, 50)) == (0, 1)
    assert index.contacts == {"c1": (40, *BILLING)}


def test_catch_up_of_a_customer_moved_out_of_memory_takes_its_checkpointed_facts_out() -> None:
    """A start from a checkpoint older than the table (a kill -9): a customer stored again since the checkpoint is
    caught up from ``was``, its stored value at the checkpoint, when the checkpoint no longer held it in memory
    (moved out to the table). u1's c1 (t0 10:00) is counted and u1 leaves memory; the checkpoint is taken; then
    u1's c2 (t0 10:10) was stored. c1 ended resolved at 10:05. Catching up u1 from ``was`` (c1) to its stored value
    now (c1, c2) must count exactly what a worker that never stopped counts, read 8 days on (past c1's t0 + F, a
    week): first contacts 1 (c1), resolved 1, closed 1 (F passed; not confirmed: c2 came within F), repeat contacts
    1 (c2).

    Kills ``CustomerProcessor.catch_up``'s ``held is not None -> is`` (``was`` replaced by None for a customer out
    of memory: c1's facts added a second time: first contacts 2)."""
    kpi = KpiSettings()
    c1 = summary("u1", "c1", 0)._replace(final=(T0 + 300 * US, True, "billing", "voice"))  # ended 10:05, resolved
    checkpointed = CustomerProcessor(kpi, Aggregates(BUCKET_US, T0))
    checkpointed.update(c1)
    was = checkpointed.get("u1")
    assert was is not None
    was = CustomerState.from_dict(was.to_dict())
    checkpointed.customers.pop("u1")  # moved out: the table holds it (a worker's customers have a loader)
    checkpointed.dirty.clear()
    now = CustomerState.from_dict(was.to_dict())
    now.contacts["c2"] = summary("u1", "c2", 600)
    checkpointed.catch_up("u1", was, now)
    never_stopped = CustomerProcessor(kpi, Aggregates(BUCKET_US, T0))
    never_stopped.update(c1)
    never_stopped.update(summary("u1", "c2", 600))
    for proc in (checkpointed, never_stopped):
        proc.aggregates.advance(T0 + 8 * 86400 * US)  # past t0 + F (a week): the first contact's facts are due
    got, want = (proc.aggregates.totals[BILLING] for proc in (checkpointed, never_stopped))
    assert got == want
    assert (got[m.FIRST], got[m.FIRST_RESOLVED], got[m.FIRST_CLOSED], got[m.REPEATS]) == (1, 1, 1, 1)


# -- settled contacts kept in memory, the most recent ones (evict's ``keep``: worker.recent_contacts) ------------------
def four_settled(proc: ContactProcessor) -> None:
    """c1..c4 each queued and abandoned 2 s later, at 10:00:00, 10:00:10, 10:00:20, 10:00:30; then c9 queued at
    10:02:00 (still waiting): stream time 10:02:00, horizon 10:01:00, so settle() files c1..c4, in that order of
    their settle-heap entries (time order), as evictable; c9 is not (waiting, and inside the allowance)."""
    for k in range(1, 5):
        assert proc.handle(event("queued", f"q{k}", 10 * (k - 1), f"c{k}"))
        assert proc.handle(event("abandoned", f"x{k}", 10 * (k - 1) + 2, f"c{k}"))
    assert proc.handle(event("queued", "q9", 120, "c9"))
    proc.settle()
    assert proc.evictable == {"c1", "c2", "c3", "c4"}


def test_evict_keeps_the_most_recently_settled_contacts_up_to_keep_and_reads_the_others_back() -> None:
    """``evict(keep=2)``: of the four settled and saved contacts, the two settled last (c3, c4) stay objects
    (``lingering``, oldest first), c1 and c2 leave (2 moved; with ``keep_packed=False`` they are in the table only).
    Then c2's survey (nps 10 at 10:05:00) reads c2 back from the table and counts a billing/voice promoter; c4's
    survey (nps 0) finds c4 in memory (no read: the loader is watched) and counts a detractor. Promoters 1,
    detractors 1 (kpis.md: 9-10 promoter, 0-6 detractor), the same counts as with every contact read back.

    Kills ``evict``'s ``excess <= 0 -> < 0`` / ``len - keep -> +`` (nothing or everything kept), the oldest-first
    slice (the newest evicted instead) and ``handle``'s removal of a lingering contact that gets an event."""
    table: dict[str, ContactState] = {}
    reads: list[str] = []

    def loader(contact_id: str) -> ContactState | None:
        reads.append(contact_id)
        return table.get(contact_id)

    proc = contacts(loader=loader)
    four_settled(proc)
    assert proc.evict(keep_packed=False, keep=2) == 0  # not saved yet: none lingers, none leaves
    assert proc.lingering == {} and proc.evictable == {"c1", "c2", "c3", "c4"}
    save(proc, table)
    reads.clear()
    assert proc.evict(keep_packed=False, keep=2) == 2
    assert list(proc.lingering) == ["c3", "c4"] and proc.evictable == set()
    assert set(proc.contacts) == {"c3", "c4", "c9"} and proc.settled == {}
    assert proc.handle(event("survey", "s2", 300, "c2", nps=10))
    assert proc.handle(event("survey", "s4", 300, "c4", nps=0))
    assert reads == ["c2"]
    assert "c4" not in proc.lingering  # it changed: it must be saved (and settle again) before it may leave
    assert (billing(proc, m.PROMOTERS, 400), billing(proc, m.DETRACTORS, 400)) == (1, 1)


def test_a_lingering_contact_that_waits_again_or_is_not_saved_never_leaves() -> None:
    """A lingering contact is settled *and saved*. With ``keep=4`` all four stay (0 moved). c4 queues again (q4b
    at 10:02:01, waiting): it leaves ``lingering`` and ``evict(keep=0)`` must not move it out (its breach is found
    through it: due at 10:02:01 + 20 s = 10:02:21). c1, the oldest lingering, is marked dirty (a re-delivered
    duplicate is stored again, live.py): it stays until it is saved, then it goes; c2 and c3 (clean) go at once:
    2 moved, then 1.

    Kills ``handle``'s lingering removal (``in self.lingering -> not in``: c4 evicted while waiting, its breach
    lost), ``evict``'s ``cid not in dirty -> in`` (c1 dropped before it was stored), ``max(0, ...) -> max(1, ...)``
    (one leaves although four may stay) and the look-ahead ``excess + len(dirty) -> -`` (past the dirty c1, c3
    would stay)."""
    table: dict[str, ContactState] = {}
    proc = contacts(loader=table.get)
    four_settled(proc)
    save(proc, table)
    assert proc.evict(keep_packed=False, keep=4) == 0
    assert list(proc.lingering) == ["c1", "c2", "c3", "c4"]
    assert proc.handle(event("queued", "q4b", 121, "c4"))
    save(proc, table)
    proc.dirty.add("c1")
    assert proc.evict(keep_packed=False, keep=0) == 2
    assert set(proc.contacts) == {"c1", "c4", "c9"} and list(proc.lingering) == ["c1"]
    save(proc, table)
    assert proc.evict(keep_packed=False, keep=0) == 1
    assert set(proc.contacts) == {"c4", "c9"}
    breaches = proc.due_breaches(T0 + 142 * US)
    assert [(b.contact_id, b.queued_event_id) for b in breaches] == [("c9", "q9"), ("c4", "q4b")]


def test_an_answer_or_an_end_before_a_survey_read_ahead_is_one_step_and_a_queued_one_a_recompute(
    monkeypatch: pytest.MonkeyPatch, on_core_sources: bool,
) -> None:
    """A worker catching up a backlog reads the survey topic ahead of the contact events, so a survey often comes
    before its contact's answer and end. Those sort after every *contact* event, with only feedback after them:
    one step each (``_before_feedback_only``), no walk. c1 queued q1 10:00:00; its survey s1 timed 10:10:00 (nps
    3) comes next; then a1 answered 10:00:05 and e1 ended 10:05:00 -> no recompute. Billing/voice: offered 1,
    answered 1 (within T = 20 s: 1), handled 1, detractors 1 and detractor feedback 1 (s1 attributed to q1's
    queue, the latest queued not after it). Then q2 queued 10:06:40 in sales/chat, also before s1: a queued
    event may move the survey's attribution (kpis.md: the latest ``contact.queued`` not after the survey), so it
    is a recompute, and s1 now counts under sales/chat (detractors there 1, billing 0). a2 answered 10:06:50 (after
    q2, before s1) is a step again.

    Kills ``_before_feedback_only``'s queued exclusion (``== QUEUED -> !=``: s1 would stay under billing), its
    ``return False`` on a contact event after ``rec`` and ``other < rec -> >`` (steps out of order: wrong
    counts or recomputes), ``rec[RANK] >= FEEDBACK_RANK -> >`` (a survey out of order taken as a step: s2 at 10:08:20,
    before s1, must still be a recompute) and ``handle`` appending instead of inserting (records out of order).
    s2 (nps 10) counts a promoter under sales/chat, q2's queue."""
    if not on_core_sources:  # ran on the sources in a child pytest (tests/conftest.py)
        return
    recomputed = spy_recomputes(monkeypatch)
    proc = contacts()
    for item in (event("queued", "q1", 0), event("survey", "s1", 600, nps=3), event("answered", "a1", 5),
                 event("ended", "e1", 300)):
        assert proc.handle(item)
    assert recomputed == []
    assert [rec[2] for rec in proc.contacts["c1"].records] == ["q1", "a1", "e1", "s1"]
    counts = [billing(proc, measure) for measure in (m.OFFERED, m.ANSWERED, m.ANSWERED_WITHIN, m.HANDLED,
                                                      m.DETRACTORS, m.DETRACTOR_FEEDBACK)]
    assert counts == [1, 1, 1, 1, 1, 1]
    assert proc.handle(event("queued", "q2", 400, queue="sales", channel="chat"))
    assert recomputed == ["q2"]
    assert proc.handle(event("answered", "a2", 410, queue="sales", channel="chat"))
    assert recomputed == ["q2"]
    sales = proc.aggregates.totals[SALES]
    assert (billing(proc, m.DETRACTORS), sales[m.DETRACTORS], sales[m.OFFERED], sales[m.ANSWERED]) == (0, 1, 1, 1)
    assert [rec[2] for rec in proc.contacts["c1"].records] == ["q1", "a1", "e1", "q2", "a2", "s1"]
    assert proc.handle(event("survey", "s2", 500, nps=10))  # feedback out of order: a recompute, as before
    assert recomputed == ["q2", "s2"]
    assert billing(proc, m.PROMOTERS) == 0 and proc.aggregates.totals[SALES][m.PROMOTERS] == 1
