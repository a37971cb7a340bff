"""Hand-computed cases pinning the checkpoint of the live state (``cxpulse/core/checkpoint.py``,
``LiveKpis._side`` / ``checkpoint`` / ``load_checkpoint``) and the customer side's table loader
(``CustomerProcessor._state`` with ``loader``).

Why this file: issue 16 asks that the mutation run (``bench/mutants.py``, docs/mutation.md) over ``cxpulse/core``
report no surviving non-equivalent mutant. At 488461c every mutant of these rules was killed, but only by
``test_checkpoint.py``, which compares a restarted worker with one that never stopped over 1.5 simulated hours:
a run with only the hand-computed files (``--tests tests/unit/test_kpi_*.py ...``) left 17 of them alive, 15 of
them on lines no such test ran. These give each rule a small history whose figures are worked out by hand, so a
broken checkpoint fails with a readable difference. Each test names the mutants it kills (checked with
``bench/mutants.py --id ... --tests tests/unit/test_kpi_checkpoint_pinned.py``).

Defaults (kpis.md): voice T = 20 s, buckets of 60 s; the FCR window is 1 h where a customer test sets it.
"""

from __future__ import annotations

import pickle
from typing import Any

import orjson
import pytest

from cxpulse.core import checkpoint
from cxpulse.core import processors as processors_module
from cxpulse.core.aggregates import Aggregates
from cxpulse.core.contact import ContactState, Summary
from cxpulse.core.customer import CustomerState
from cxpulse.core.live import LiveKpis
from cxpulse.core.processors import CustomerProcessor
from cxpulse.models.agent_events import parse_agent_event
from cxpulse.settings import KpiSettings
from cxpulse.sinks.prometheus import Histograms
from test_kpi_engine_pinned import HOUR_US, MINUTE_US, T0, US, Clock, agent_event, contact_event, feed

KEY = ("billing", "voice")
WAIT_BOUNDS = (10.0, 20.0, 60.0)


def history(live: LiveKpis) -> None:
    """c1 (customer u1) queued 10:00:00 on contact partition 0, still waiting; c2 (u2) queued 10:00:01 and
    answered 10:00:31 on contact partition 1 (a wait of 30 s); both FCR summaries handed to customer partition 0;
    agent A available at 10:00:00 on agent partition 0. So the sides hold 2, 1 and 1 partitions."""
    assert feed(live, 0, contact_event("queued", "q1", T0), 0)
    assert feed(live, 1, contact_event("queued", "q2", T0 + 1 * US, "c2", customer_id="u2"), 1)
    assert feed(live, 1, contact_event("answered", "a2", T0 + 31 * US, "c2", customer_id="u2"), 2)
    assert live.handle_agent("agent-events", 0, parse_agent_event(orjson.dumps(agent_event("g1", T0, "available"))), 0)
    for partition in (0, 1):
        for summary in live.contacts(partition).drain_summaries():
            live.customers(0).update(summary)


def figures(live: LiveKpis, now: int) -> Any:
    return live.document(now, include_all=True), live.partial("w", now), live.totals(), live.waiting(now)


def test_each_side_read_back_from_its_checkpoint_gives_the_same_figures_histograms_and_partitions() -> None:
    """A new process reads every side back (contacts with the histograms' sums, customers, agents) and holds
    exactly what the old one held.

    By hand, at 10:01:00 (T = 20 s): offered 2, answered 1; SLA breaches 2 (c2 answered after 30 s > 20 s, at
    10:00:21; c1 still waiting past 10:00:20); contacts 2 and customers 2 (u1, u2) in the ``all`` window;
    billing/voice waiting (1, 60.0 s); the wait histogram one answered wait of 30 s in the (20, 60] bucket;
    agent A logged in and available, 60 s available in the 15m window. ``load_checkpoint`` returns the partitions
    of each side: 2, 1, 1; each contact partition's idle timer starts at the new process's clock (10:05:00).

    Kills ``_AGGREGATE_SLOTS``' ``slot != "observer" -> ==`` (only the old observer saved: empty counts, the old
    histograms); ``processor_state``'s ``in _SUPPLIED -> not in`` and its ``continue`` removed (closures and
    settings pickled: refused); ``load_processor``'s ``== "aggregates" -> !=`` and its ``continue`` removed (the
    aggregates replaced by a dict of slots); ``loads``' ``found != FORMAT -> ==`` (its own format refused);
    every ``_side`` mutant (a side read into another, or ``None``); ``LiveKpis.checkpoint``'s
    ``side == "contacts" -> !=`` (the histograms' sums saved with the customers, ``load_state(None)`` for the
    contacts); ``load_checkpoint``'s ``side == "contacts" -> !=`` (the sums not loaded, the idle timers not
    started)."""
    now = T0 + MINUTE_US
    old = LiveKpis(KpiSettings(), observer=Histograms(WAIT_BOUNDS), clock=Clock(now))
    history(old)
    before = figures(old, now)

    histograms = Histograms(WAIT_BOUNDS)
    restarted_at = T0 + 5 * MINUTE_US
    new = LiveKpis(KpiSettings(), observer=histograms, clock=Clock(restarted_at))
    counts = {side: new.load_checkpoint(side, old.checkpoint(side)) for side in LiveKpis.SIDES}
    assert counts == {"contacts": 2, "customers": 1, "agents": 1}
    assert (sorted(new.contact_parts), sorted(new.customer_parts), sorted(new.agent_parts)) == ([0, 1], [0], [0])
    assert new.last_contact_wall_us == {0: restarted_at, 1: restarted_at}

    after = figures(new, now)
    assert after == before
    document, _, _, waiting = after
    window = document["totals"]["windows"]["all"]
    assert (window["offered"], window["answered"], window["sla_breaches"]) == (2, 1, 2)
    assert (window["contacts"], window["customers"]) == (2, 2)
    assert waiting == {KEY: (1, 60.0)}
    agents = document["agents"]
    assert (agents["live"]["logged_in"], agents["live"]["available"], agents["windows"]["15m"]["available_seconds"]) \
        == (1, 1, 60.0)
    # one answered wait of 30 s: slots (.., 10], (10, 20], (20, 60], (60, +Inf), then the sum in µs
    assert histograms.state() == old.observer.state()
    assert histograms.wait[(*KEY, "answered")] == [0, 0, 1, 0, 30 * US]
    assert new.contacts(0).aggregates.observer is histograms  # the new process's observer, not the old one's


def test_a_worker_without_an_observer_checkpoints_its_contacts_with_no_sums() -> None:
    """Tools and tests run ``LiveKpis`` without an observer (no Prometheus): the contact side's checkpoint then
    carries no sums (``extra`` None) and reads back whole. Same history as above: at 10:01:00 offered 2, SLA
    breaches 2, waiting (1, 60.0 s) in the new process.

    Kills ``LiveKpis.checkpoint``'s ``side == "contacts" and hasattr(...) -> or`` (``None.state()``: an
    AttributeError instead of a checkpoint)."""
    now = T0 + MINUTE_US
    old = LiveKpis(KpiSettings(), clock=Clock(now))
    history(old)
    data = old.checkpoint("contacts")
    assert checkpoint.loads(data)[1] is None
    new = LiveKpis(KpiSettings(), clock=Clock(now))
    assert new.load_checkpoint("contacts", data) == 2
    window = new.document(now, include_all=True)["totals"]["windows"]["all"]
    assert (window["offered"], window["sla_breaches"]) == (2, 2)
    assert new.waiting(now) == {KEY: (1, 60.0)}


def test_a_checkpoint_is_format_1_and_reads_only_format_1() -> None:
    """``FORMAT`` is what a checkpoint file on the worker's disk says about its shape: this version writes 1 and
    reads only 1 (a file of another shape is refused, and the worker rebuilds from its tables instead). A
    format-1 tuple pickled by hand reads back as ``(state by partition, extra)``; formats 0 and 2 are refused.

    Kills ``FORMAT`` ``1 -> 0`` (it would write 0, refuse 1 and read 0) and ``loads``' ``!= -> ==``."""
    assert pickle.loads(checkpoint.dumps({}, "sums"))[0] == 1
    written = pickle.dumps((1, {3: {"stream_time": 7}}, "sums"), protocol=5)
    assert checkpoint.loads(written) == ({3: {"stream_time": 7}}, "sums")
    for other in (0, 2):
        with pytest.raises(ValueError, match=f"checkpoint format {other}, this version reads 1"):
            checkpoint.loads(pickle.dumps((other, {}, None), protocol=5))


def summary(customer: str, contact: str, t0_s: int) -> Summary:
    """An FCR summary: first queued ``t0_s`` seconds after 10:00:00 in billing/voice, no reason, not ended."""
    return Summary(contact, customer, T0 + t0_s * US, None, "billing", "voice", None)


def test_a_customer_read_back_from_its_table_stays_in_memory_until_it_is_saved(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's customer side keeps only recently changed customers and reads the others back from its table
    (``loader``, a dict of stored rows here, written as the worker does: every dirty customer after a batch).
    A customer read back and changed must be held in memory, dirty, until the worker saves it: the worker saves
    what ``customers`` holds, so a customer changed but not held would never reach the table, and the next read
    would lose the change.

    u1's c1 (t0 10:00:00) saved, then moved out (RECENT_CUSTOMERS 0: nothing held); c2 of u1 at 10:10:00 reads u1
    back: held with both contacts, dirty. Stored again (the table's row holds c1 and c2), moved out again, read
    back: still c1 and c2.

    Kills ``CustomerProcessor._state``'s ``loaded is not None -> is`` (u1 read back but not held: the worker
    would save nothing and c2 would be lost)."""
    monkeypatch.setattr(processors_module, "RECENT_CUSTOMERS", 0)
    rows: dict[str, list[Any]] = {}

    def load(customer_id: str) -> CustomerState | None:
        row = rows.get(customer_id)
        return CustomerState.from_row(customer_id, row) if row is not None else None

    def save(proc: CustomerProcessor) -> None:
        for customer_id in proc.dirty:
            state = proc.customers.get(customer_id)
            if state is not None:
                rows[customer_id] = state.to_row()
        proc.dirty.clear()

    proc = CustomerProcessor(KpiSettings(fcr_window="1h"), Aggregates(MINUTE_US, T0), loader=load)
    proc.update(summary("u1", "c1", 0))
    save(proc)
    assert proc.evict() == 1 and not proc.customers and not proc.packed
    proc.update(summary("u1", "c2", 600))
    assert "u1" in proc.customers and proc.dirty == {"u1"}
    assert sorted(proc.customers["u1"].contacts) == ["c1", "c2"]
    save(proc)
    assert proc.evict() == 1 and not proc.customers
    assert sorted(rows["u1"][i][0] for i in range(len(rows["u1"]))) == ["c1", "c2"]
    assert sorted(proc.get("u1").contacts) == ["c1", "c2"]  # type: ignore[union-attr]


# -- a rebuild from stored values that still hold original bytes (ContactProcessor.evict_settled) -------------------
ENDED = {"agent_id": "a1", "talk_seconds": 60, "hold_seconds": 0, "wrap_seconds": 10, "resolved": True,
         "transferred": False}


Stored = list[tuple[str, int, ContactState]]


def stored_before_any_settle(events: list[dict[str, Any]]) -> tuple[Stored, dict[str, bytes]]:
    """Feed ``events`` to a worker's partition 0 without settling, and return its contacts in their stored form
    (what the table holds: every value still carries its events' original bytes), with each event's bytes."""
    first = LiveKpis(KpiSettings(), clock=Clock(T0 + HOUR_US))
    sent: dict[str, bytes] = {}
    for offset, item in enumerate(events):
        sent[item["event_id"]] = orjson.dumps(item)
        assert feed(first, 0, item, offset)
    stored = [(cid, 0, ContactState.from_row(state.to_row(), sync=False))
              for cid, state in first.contacts(0).contacts.items()]
    assert all(state.pending for _, _, state in stored)
    return stored, sent


def rebuilt(stored: Stored) -> LiveKpis:
    """A worker restarted from the table (no checkpoint): ``rebuild_contacts`` with the table as its loader."""
    table = {cid: state for cid, _, state in stored}
    live = LiveKpis(KpiSettings(), clock=Clock(T0 + HOUR_US), loader_for=lambda partition: table.get)
    assert live.rebuild_contacts(stored, {0}) == len(stored)
    return live


def test_a_rebuild_keeps_the_bytes_of_an_impossible_event_for_the_dead_letter_topic() -> None:
    """events.md: an impossible event goes to the dead-letter topic with its original bytes. c1 queued 10:00:00
    and ended 10:00:05 with no answer (an end without an answer: impossible, so c1 is unfit); c9 queued 10:10:00.
    Stored before any settle, then rebuilt: stream time 10:10:00, horizon 10:09:00. The rebuild drops the bytes of
    settled events of *fit* contacts only (as settle() does); c1's e1 is refused at the first settle after it,
    with the very bytes it came with.

    Kills ``evict_settled``'s ``state.pending and not state.unfit`` with ``not`` removed or ``and -> or`` (either
    way the bytes of the unfit c1 are dropped: e1 refused with ``raw`` None)."""
    stored, sent = stored_before_any_settle([
        contact_event("queued", "q1", T0),
        contact_event("ended", "e1", T0 + 5 * US, **ENDED),
        contact_event("queued", "q9", T0 + 10 * MINUTE_US, "c9"),
    ])
    live = rebuilt(stored)
    assert set(live.contacts(0).contacts) == {"c1", "c9"}  # c1 unfit, c9 waiting: both stay
    refused = [(r.event_id, r.raw, r.source) for r in live.settle(0)]
    assert refused == [("e1", sent["e1"], ("contact-events", 0, 1))]


def test_a_rebuild_keeps_the_bytes_of_events_still_inside_the_allowed_disorder() -> None:
    """An event inside the allowed disorder (60 s) may still be refused, by an event arriving late: its bytes must
    survive a rebuild. c1 queued q1 10:00:00, abandoned x1 10:00:10, queued again q2 10:00:20 (waiting). Stored,
    rebuilt at stream time 10:00:20: the horizon is 09:59:20, no event is settled, every byte is kept. Then an
    answer a1 of c1 at 10:00:05 arrives late (inside the allowance): in time order q1, a1, x1, q2, so a1 closes
    q1's visit and x1 abandons a visit that is no longer waiting: x1 is impossible. c9 queued 10:01:20 moves the
    horizon to 10:00:20; settle() refuses x1 with its original bytes and source (offset 1).

    Kills ``evict_settled``'s ``horizon = stream_time - disorder -> +`` (the horizon 10:01:20: x1's bytes dropped
    at the rebuild, refused with ``raw`` None) and its evictable test's ``and -> or`` (the waiting c1 moved out of
    memory, where the breach timer looks for it)."""
    stored, sent = stored_before_any_settle([
        contact_event("queued", "q1", T0),
        contact_event("abandoned", "x1", T0 + 10 * US),
        contact_event("queued", "q2", T0 + 20 * US),
    ])
    live = rebuilt(stored)
    assert set(live.contacts(0).contacts) == {"c1"}  # waiting: it stays
    assert feed(live, 0, contact_event("answered", "a1", T0 + 5 * US), 3)
    assert live.settle(0) == []  # x1 is impossible now, but inside the allowance
    assert feed(live, 0, contact_event("queued", "q9", T0 + 80 * US, "c9"), 4)
    refused = [(r.event_id, r.raw, r.source) for r in live.settle(0)]
    assert refused == [("x1", sent["x1"], ("contact-events", 0, 1))]


def test_a_rebuild_of_many_contacts_compacts_the_settle_heap_but_keeps_those_still_in_memory() -> None:
    """A rebuild files every restored contact for settling; once the settled ones have left memory, the heap is
    compacted (more than twice the contacts in memory + 1,024 entries) to the entries of contacts still in memory,
    which must keep theirs. 1,100 contacts d0..d1099 queued 10:00:00 + i ms and abandoned 1 s later (settled);
    c1 queued 10:00:00 and ended 10:00:05 with no answer (unfit); c9 queued 10:10:00 (waiting). Rebuilt at stream
    time 10:10:00 (horizon 10:09:00): the 1,100 leave memory, 1,102 entries > 2 x 2 + 1,024, and the heap keeps c1's
    and c9's. The first settle refuses c1's e1 with its original bytes.

    Kills ``evict_settled``'s compaction keeping the entries ``not in`` memory, or testing each entry's time
    instead of its contact (``entry[1] -> entry[0]``): c1's entry gone, e1 never refused."""
    events = []
    for i in range(1100):
        events += [contact_event("queued", f"q{i}", T0 + i * 1000, f"d{i}"),
                   contact_event("abandoned", f"x{i}", T0 + i * 1000 + US, f"d{i}")]
    events += [contact_event("queued", "q1", T0), contact_event("ended", "e1", T0 + 5 * US, **ENDED),
               contact_event("queued", "q9", T0 + 10 * MINUTE_US, "c9")]
    stored, sent = stored_before_any_settle(sorted(events, key=lambda item: item["ts"]))
    live = rebuilt(stored)
    proc = live.contacts(0)
    assert set(proc.contacts) == {"c1", "c9"}
    assert sorted(cid for _, cid in proc._settle) == ["c1", "c9"]
    refused = [(r.event_id, r.raw) for r in live.settle(0)]
    assert refused == [("e1", sent["e1"])]


def test_prune_without_a_time_prunes_at_the_wall_clock() -> None:
    """The maintenance timer may call ``LiveKpis.prune()`` with no time: it then prunes at the wall clock
    (``clock``). c0 (u0) queued day 0 10:00:00, c1 (u1) day 3 10:00:00; the clock at day 3 10:00:01: c0's t0 lies
    past every default window (26 h back), so the distinct-customer index keeps only c1.

    Kills ``LiveKpis.prune``'s ``now is None -> is not`` (no time given: None taken as the time)."""
    day = 86_400 * US
    live = LiveKpis(KpiSettings(), clock=Clock(T0 + 3 * day + US))
    for k in range(2):
        assert feed(live, 0, contact_event("queued", f"q{k}", T0 + k * 3 * day, f"c{k}", customer_id=f"u{k}"), k)
    for item in live.contacts(0).drain_summaries():
        live.customers(0).update(item)
    assert [customer for _, customer in live.customers(0).distinct.all] == ["u0", "u1"]
    live.prune()
    assert [customer for _, customer in live.customers(0).distinct.all] == ["u1"]
