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

import copy
import os
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxpulse.core import checkpoint as saved_state
from cxpulse.core import processors
from cxpulse.core.customer import CustomerState
from cxpulse.core.live import LiveKpis
from cxpulse.core.processors import customer_memory_us
from cxpulse.settings import KpiSettings
from cxpulse.streams import codec, touch_log
from cxpulse.streams.checkpoint import catch_up, held_keys, lost_contact, tail_problem
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


def write(table: Table, log: TouchLog, staged: dict[int, list[tuple[bytes, bytes | None]]]) -> None:
    """The bulk table writer: each partition's changes to the log first, then to the store."""
    for partition, changes in staged.items():
        store = table.setdefault(partition, {})
        log.note(partition, changes, store.get)
        for key, value in changes:
            if value is None:
                store.pop(key, None)
            else:
                store[key] = value


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
            self.send(proc.drain_summaries())
            proc.evict(keep_packed=False)
        write(self.table, self.log, staged)

    def send(self, summaries: list[Any]) -> None:
        """The FCR summaries a batch sends on: here straight to the customers."""
        for summary in summaries:
            self.live.customers(_crc(summary.customer_id, 2)).update(summary)


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
    catch_up(second.live, "contacts", touched, now)
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


class SimulatedWorkerWithCustomers(SimulatedWorker):
    """Both logged sides, as the worker runs them: the contacts as above, and each batch's FCR summaries applied to
    the customers of 2 partitions, each changed customer stored in its own table after the customers' log; only a
    few customers stay in memory (the others are read back from the table, as Engine v2 keeps them)."""

    def __init__(self, kpi: KpiSettings, table: Table, log: TouchLog, customer_table: Table,
                 customer_log: TouchLog) -> None:
        self.customer_table, self.customer_log = customer_table, customer_log
        super().__init__(kpi, table, log)
        self.live.customer_loader_for = self.customer_loader_for
        for partition in range(2):
            self.live.customers(partition)

    def customer_loader_for(self, partition: int) -> Any:
        def load(customer_id: str) -> Any:
            value = self.customer_table.setdefault(partition, {}).get(customer_id.encode())
            return None if value is None else CustomerState.from_dict(codec.decode(value))
        return load

    def batch(self, events: list[tuple[Any, bytes]]) -> None:
        self.sent: list[Any] = []
        super().batch(events)
        for summary in self.sent:  # the customers agent's batch: after the contacts' batch is stored
            self.live.customers(_crc(summary.customer_id, 2)).update(summary)
        self.store_customers()

    def send(self, summaries: list[Any]) -> None:
        self.sent += summaries

    def store_customers(self) -> None:
        staged: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for partition, proc in self.live.customer_parts.items():
            save_changed(lambda p, key, value: staged.setdefault(p, []).append((key, value)), proc.dirty,
                         proc.customers, codec.encode_customer, partition)
        write(self.customer_table, self.customer_log, staged)

    def checkpoint_customers(self, now: int) -> bytes:
        """As ``forget_and_store`` then the checkpoint: old contacts forgotten and stored first."""
        for proc in self.live.customer_parts.values():
            proc.dirty.update(proc.forget(now))
        self.store_customers()
        return self.live.checkpoint("customers")


def _indexes(live: LiveKpis) -> dict[int, Any]:
    """Each customer partition's distinct-customers index: its entries by key and in total."""
    return {partition: ({key: entries for key, entries in proc.distinct.by_key.items() if entries},
                        proc.distinct.all) for partition, proc in live.customer_parts.items()}


def _differences(got: Any, want: Any, at: str = "") -> list[str]:
    """Where two documents differ (paths), for a readable failure."""
    if isinstance(got, dict) and isinstance(want, dict):
        return [d for key in sorted(set(got) | set(want), key=str)
                for d in _differences(got.get(key), want.get(key), f"{at}.{key}")]
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        return [d for index, (g, w) in enumerate(zip(got, want)) for d in _differences(g, w, f"{at}[{index}]")]
    return [] if got == want else [f"{at}: {got!r} != {want!r}"]


def _restart_side(live: LiveKpis, side: str, data: bytes, log: TouchLog, era: str, table: Table) -> None:
    touched = touch_log.read(log.path, era)
    assert touched is not None
    saved, extra = saved_state.loads(data)
    now = {(p, key): table.get(p, {}).get(key) for p, keys in touched.items() for key in keys}
    assert tail_problem(touched, held_keys(side, saved), {p: set(keys) for p, keys in touched.items()}, now) is None
    if side == "customers":
        assert lost_contact(touched, now) is None
    live.load_saved(side, saved, extra)
    catch_up(live, side, touched, now)


@TAIL
@given(scenarios(), st.floats(0.05, 0.6), st.floats(0.05, 0.6), st.floats(0.0, 0.4), st.integers(1, 40),
       st.sampled_from([0.0, 0.0, 0.3, 0.6, 0.9, 1.2]), st.booleans(), st.booleans())
def test_both_sides_caught_up_with_their_logs_count_what_the_killed_worker_did(
    tmp_path_factory: Any, monkeypatch: Any, scenario: Any, cut: float, customer_cut: float, more: float,
    size: int, forget_ahead: float, evict: bool, long_fcr: bool
) -> None:
    """The customers too: their checkpoint (taken at another batch than the contacts', after forgetting the contacts
    past their memory, up to 1.2 memories ahead of the stream at times so that forgetting drops some; an FCR window
    of 1 h or 24 h, short and long enough for the distinct index to keep its own map of contacts or not) and their log bring the
    restarted worker's every figure to the killed one's, with few customers in memory (the rest read back from the
    table) or all; and both then go on alike, to the oracle's document when nothing was forgotten early."""
    kpi, stream, _, _, _ = scenario
    if long_fcr:  # F past half the distinct index's history: the index relies on the customers' summaries
        kpi = kpi.model_copy(update={"fcr_window": 86400})
    monkeypatch.setattr(processors, "RECENT_CUSTOMERS", 1 if evict else 1024)
    events = valid_events(stream)
    batches = [events[at:at + size] for at in range(0, len(events), size)]
    checkpoints = {int(len(batches) * cut): "contacts", int(len(batches) * customer_cut): "customers"}
    at_kill = min(len(batches), max(checkpoints) + int(len(batches) * more))
    directory = tmp_path_factory.mktemp("tails")
    tables: dict[str, Table] = {"contacts": {}, "customers": {}}
    logs = {side: TouchLog(directory / f"{side}.log") for side in tables}
    first = SimulatedWorkerWithCustomers(kpi, tables["contacts"], logs["contacts"], tables["customers"],
                                         logs["customers"])
    saved: dict[str, bytes] = {}
    for index in range(at_kill + 1):
        for side in ("contacts", "customers"):
            if index in checkpoints and checkpoints[index] == side or (side not in saved and index == at_kill):
                if side == "customers":
                    ahead = int(forget_ahead * customer_memory_us(kpi))
                    saved[side] = first.checkpoint_customers(max(first.live.stream_time(), 0) + ahead)
                else:
                    saved[side] = first.live.checkpoint(side)
                logs[side].begin(f"era-{side}")
        if index < at_kill:
            first.batch(batches[index])
    for side_log in logs.values():
        side_log.stop()  # kill -9

    kept = copy.deepcopy(tables)  # the restarted worker's disk; the killed one goes on alike on its own copy
    second = SimulatedWorkerWithCustomers(kpi, kept["contacts"], TouchLog(directory / "unused.log"),
                                          kept["customers"], TouchLog(directory / "unused-customers.log"))
    for side in ("contacts", "customers"):
        _restart_side(second.live, side, saved[side], logs[side], f"era-{side}", kept[side])
    instant = max(first.live.stream_time(), 1)
    differences = _differences(second.live.document(instant), first.live.document(instant))
    assert not differences, "\n".join(differences)
    assert _indexes(second.live) == _indexes(first.live)  # the distinct customers' entries, not only their counts

    for batch in batches[at_kill:]:
        first.batch(batch)
        second.batch(batch)
    instant = max(first.live.stream_time(), 1)
    differences = _differences(second.live.document(instant), first.live.document(instant))
    assert not differences, "\n".join(differences)
    if not forget_ahead:  # forgetting ahead of the stream drops contacts whose events are still to come
        pic = picture(stream, kpi)
        assert_same(document_of(pic, kpi, include_all=False), second.live.document(pic.now))


def test_a_customer_that_lost_a_contact_since_the_checkpoint_is_refused() -> None:
    """A forget between two checkpoints (a save that failed after it) kept the dropped contacts' facts in the counts;
    the stored value no longer explains them, so the start rebuilds."""
    def row(*contacts: str) -> bytes:
        return orjson.dumps({"c": [[c, "cust", 1, None, "q", "voice", None] for c in contacts], "p": 0})

    touched = {0: {b"cust": Touched(row("a", "b"), False)}}
    assert lost_contact(touched, {(0, b"cust"): row("a", "b", "c")}) is None
    assert "lost a contact" in lost_contact(touched, {(0, b"cust"): row("b", "c")})  # type: ignore[operator]
    assert lost_contact({0: {b"new": Touched(None, False)}}, {(0, b"new"): row("a")}) is None
