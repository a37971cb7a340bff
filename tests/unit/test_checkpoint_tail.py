"""A start after a kill -9 from the last checkpoint and the contacts logged since (streams/touch_log.py,
streams/checkpoint.py ``catch_up``) gives what the worker held, and then the oracle's document.

- On the property tests' random histories, a worker of 3 contact partitions, simulated without Kafka as the worker
  runs (batches; each changed contact stored in a RocksDB-like table after the touch log; settled contacts out of
  memory and read back from the table): a checkpoint at one batch, a kill at a later one. The restarted side,
  the checkpoint caught up with the log, counts exactly what the killed one did (totals, waiting, awaiting), and
  what a rebuild of the whole table counts; fed the rest of the stream, its document equals the oracle's.
- The log: each key's earliest entry wins, a record cut short is ignored, another era's log is not read.
- What the start refuses (and rebuilds instead): a changelog record the log does not name, deletions it cannot
  account for, a logged contact missing from the table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxpulse.core import checkpoint as saved_state
from cxpulse.core.live import LiveKpis
from cxpulse.settings import KpiSettings
from cxpulse.streams import codec, touch_log
from cxpulse.streams.checkpoint import catch_up, tail_problem
from cxpulse.streams.storage import save_changed
from cxpulse.streams.touch_log import Touched, TouchLog
from test_kpi_oracle import assert_same, document_of, picture
from test_kpi_properties import _crc, scenarios, valid_events

PARTS = 3
TAIL = settings(max_examples=int(os.environ.get("CXPULSE_TAIL_EXAMPLES", "60")), deadline=None,
                derandomize=not os.environ.get("CXPULSE_PROPERTY_RANDOM"), database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

Table = dict[int, dict[bytes, bytes]]


class SimulatedWorker:
    """The contact side as the worker runs it (streams/agents.py ContactBatches), with a dict for each partition's
    RocksDB database and the touch log before every write; customers are fed the summaries directly."""

    def __init__(self, kpi: KpiSettings, table: Table, log: TouchLog) -> None:
        self.table, self.log = table, log
        self.live = LiveKpis(kpi, clock=lambda: 0, loader_for=self.loader_for)
        for partition in range(PARTS):  # as after recovery: every owned partition has its processor
            self.live.contacts(partition)

    def loader_for(self, partition: int) -> Any:
        def load(contact_id: str) -> Any:
            value = self.table.setdefault(partition, {}).get(contact_id.encode())
            return None if value is None else codec.decode_contact(value)[1]
        return load

    def batch(self, events: list[tuple[Any, bytes]]) -> None:
        live = self.live
        touched: set[int] = set()
        for offset, (event, data) in enumerate(events):
            partition = _crc(event.contact_id, PARTS)
            live.handle("contact-events", partition, event, data, offset)
            touched.add(partition)
        staged: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for partition in sorted(touched):
            live.settle(partition)
            proc = live.contacts(partition)
            save_changed(lambda p, key, value: staged.setdefault(p, []).append((key, value)), proc.dirty,
                         proc.contacts, codec.encode_contact, partition)
            for summary in proc.drain_summaries():
                live.customers(_crc(summary.customer_id, 2)).update(summary)
            proc.evict(keep_packed=False)
        for partition, changes in staged.items():  # the bulk writer: the log first, then the store
            store = self.table.setdefault(partition, {})
            self.log.note(partition, changes, store.get)
            for key, value in changes:
                if value is None:
                    store.pop(key, None)
                else:
                    store[key] = value


def _contact_side(live: LiveKpis, now: int) -> tuple[Any, ...]:
    """What the contact side counts: every total, the live waiting and awaiting figures, and the windows."""
    totals = {key: counts for key, counts in live.totals().items() if any(counts)}
    return totals, live.waiting(now), live.awaiting(now)


@TAIL
@given(scenarios(), st.floats(0.05, 0.6), st.floats(0.0, 0.4), st.integers(1, 40), st.data())
def test_a_checkpoint_caught_up_with_its_log_counts_what_the_killed_worker_did(
    tmp_path_factory: Any, scenario: Any, cut: float, more: float, size: int, data: Any
) -> None:
    kpi, stream, _, _, _ = scenario
    events = valid_events(stream)
    batches = [events[at:at + size] for at in range(0, len(events), size)]
    at_checkpoint = int(len(batches) * cut)
    at_kill = min(len(batches), at_checkpoint + int(len(batches) * more))
    directory = tmp_path_factory.mktemp("tail")
    table: Table = {}
    log = TouchLog(directory / "contacts.log")
    first = SimulatedWorker(kpi, table, log)
    for batch in batches[:at_checkpoint]:
        first.batch(batch)
    checkpoint_bytes = first.live.checkpoint("contacts")
    log.begin("era-1")
    for batch in batches[at_checkpoint:at_kill]:
        first.batch(batch)
    log.stop()  # kill -9

    touched = touch_log.read(log.path, "era-1")
    assert touched is not None
    saved, extra = saved_state.loads(checkpoint_bytes)
    in_memory = {p: set(state["contacts"]) | set(state["settled"]) for p, state in saved.items()}
    now = {(p, key): table.get(p, {}).get(key) for p, keys in touched.items() for key in keys}
    assert tail_problem(touched, in_memory, {p: set(keys) for p, keys in touched.items()}, now) is None
    second = SimulatedWorker(kpi, table, TouchLog(directory / "unused.log"))
    second.live.load_saved("contacts", saved, extra)
    catch_up(second.live, touched, now)
    # customers: recovered from their own table, as a worker's other side is
    second.live.rebuild_customers([(cid, codec.decode(codec.encode_customer(state, p)))
                                   for p, proc in first.live.customer_parts.items() for cid, state in proc.items()],
                                  {0, 1})
    rebuilt = LiveKpis(kpi, clock=lambda: 0)
    rebuilt.rebuild_contacts([(key.decode(), *codec.decode_contact(value)) for p in sorted(table)
                              for key, value in table[p].items()], set(range(PARTS)))
    instant = max(first.live.stream_time(), 1)
    assert _contact_side(second.live, instant) == _contact_side(first.live, instant)
    assert _contact_side(rebuilt, instant) == _contact_side(first.live, instant)

    for batch in batches[at_kill:]:
        second.batch(batch)
    pic = picture(stream, kpi)
    assert_same(document_of(pic, kpi, include_all=False), second.live.document(pic.now))


def test_the_log_keeps_each_key_s_earliest_value_and_every_deletion(tmp_path: Path) -> None:
    stored = {b"a": b"A0", b"b": b"B0"}
    log = TouchLog(tmp_path / "contacts.log")
    log.note(0, [(b"a", b"A1")], stored.get)  # not begun: nothing is logged
    log.begin("e1")
    log.note(0, [(b"a", b"A1"), (b"c", b"C1")], stored.get)
    stored.update({b"a": b"A1", b"c": b"C1"})
    log.note(0, [(b"a", b"A2"), (b"b", None)], stored.get)
    log.note(1, [(b"a", None)], {b"a": b"X"}.get)
    log.stop()
    log.resume("e1")  # a restarted process goes on in the same era: its first writes log values again
    log.note(0, [(b"a", b"A3")], stored.get)
    log.stop()
    assert touch_log.read(log.path, "e1") == {
        0: {b"a": Touched(b"A0", False), b"c": Touched(None, False), b"b": Touched(b"B0", True)},
        1: {b"a": Touched(b"X", True)},
    }
    assert touch_log.read(log.path, "e2") is None  # another checkpoint's
    assert touch_log.read(tmp_path / "none.log", "e1") is None
    whole = log.path.read_bytes()
    log.path.write_bytes(whole + (100).to_bytes(4, "little") + b"cut short")  # killed while writing
    assert touch_log.read(log.path, "e1") == touch_log.read(tmp_path / "contacts.log", "e1")
    log.begin("e2")  # a new checkpoint: the log starts empty in its name
    assert touch_log.read(log.path, "e2") == {} and touch_log.read(log.path, "e1") is None
    log.note(0, [(b"a", b"A4")], stored.get)
    log.discard()
    assert not log.path.exists() and not log.active


def test_a_start_refuses_what_the_log_cannot_account_for() -> None:
    memory = {0: {"held"}}

    def problem(touched: dict[bytes, Touched], now: dict[bytes, bytes | None], applied: set[bytes] = set()) -> Any:
        return tail_problem({0: touched}, memory, {0: applied} if applied else {},
                            {(0, key): value for key, value in now.items()})

    assert problem({b"held": Touched(None, False), b"new": Touched(None, False), b"old": Touched(b"v", False)},
                   {b"held": b"1", b"new": b"2", b"old": b"3"}, {b"held", b"new"}) is None
    swept = Touched(b"v", True)  # the sweeper deleted a settled contact: its counts stay
    assert problem({b"gone": swept}, {b"gone": None}) is None
    assert "does not name" in problem({b"new": Touched(None, False)}, {b"new": b"2"}, {b"new", b"foreign"})
    assert "deleted afterwards" in problem({b"old": Touched(b"v", False, deleted_later=True)}, {b"old": None})
    assert "in memory then" in problem({b"held": Touched(b"v", True)}, {b"held": None})  # the core's forget
    assert "stored again" in problem({b"gone": swept}, {b"gone": b"again"})
    assert "missing from the table" in problem({b"old": Touched(b"v", False)}, {b"old": None})
    assert "does not hold" in tail_problem({5: {b"x": Touched(None, False)}}, memory, {}, {(5, b"x"): b"1"})
