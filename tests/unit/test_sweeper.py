"""Stored contacts past the retention are deleted from the table too (cxpulse.streams.sweeper), on a real RocksDB.

A settled contact is not in memory (the table holds it), so the core's forget never sees it; the sweeper walks
the partition's database a slice at a time and marks those older than the retention, never one in memory or
waiting to be saved; the next batch's save deletes what is marked.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from rocksdict import Rdict

from cxpulse.core.contact import ContactState
from cxpulse.core.live import LiveKpis
from cxpulse.settings import KpiSettings
from cxpulse.streams import codec
from cxpulse.streams.storage import save_changed
from cxpulse.streams.sweeper import OFFSET_KEY, ContactSweeper

DAY = 86_400_000_000
NOW = 1_795_338_000_000_000


def stored(last_ts: int) -> bytes:
    state = ContactState()
    state.last_ts = last_ts
    return codec.encode_contact(state, 0)


def test_a_slice_per_tick_marks_only_settled_contacts_past_the_retention(tmp_path: Path) -> None:
    db = Rdict(str(tmp_path / "contacts-0"))
    kpi = KpiSettings()
    limit = NOW - kpi.contact_retention * 1_000_000
    for n in range(10):  # c0..c4 past the retention, c5..c9 within it
        db[f"c{n}".encode()] = stored(limit - DAY if n < 5 else limit + DAY)
    db[b"c-legacy"] = b'{"r": [], "t": %d, "p": 0}' % (limit - 1)  # a value written by cxpulse 0.1
    db[OFFSET_KEY] = b"1234"
    live = LiveKpis(kpi)
    proc = live.contacts(0)
    proc.contacts["c1"] = ContactState()  # loaded by a late event: the core's forget decides, not the sweeper
    proc.dirty.add("c2")  # marked already (the core forgot it in this tick): not counted again
    table = SimpleNamespace(data=SimpleNamespace(_db_for_partition=lambda p: db))
    sweeper = ContactSweeper(table, live, keys_per_tick=4)
    marked = [sweeper.sweep(NOW) for _ in range(3)]  # 12 keys: 4 + 4 + the last 4 (then from the start)
    assert marked == [2, 2, 0] and sweeper.swept_total == 4  # keys sort: offset, c-legacy, c0, c1, ...
    assert proc.dirty == {"c0", "c2", "c3", "c4", "c-legacy"}
    assert sweeper.cursors == {}  # wrapped: the next slice starts from the first key again

    # the next batch deletes what was marked (and saves what is in memory), as the agents do
    staged: list[tuple[int, bytes, bytes | None]] = []
    save_changed(lambda p, k, v: staged.append((p, k, v)), proc.dirty, proc.contacts, codec.encode_contact, 0)
    deleted = sorted(k for _, k, v in staged if v is None)
    assert deleted == [b"c-legacy", b"c0", b"c2", b"c3", b"c4"]
    assert [k for _, k, v in staged if v is not None] == []  # c1 (in memory) is not dirty: nothing to save
    db.close()


def test_memory_store_has_nothing_to_sweep() -> None:
    live = LiveKpis(KpiSettings())
    live.contacts(0)
    assert ContactSweeper(SimpleNamespace(data=SimpleNamespace()), live).sweep(NOW) == 0


def test_customers_whose_newest_contact_can_change_no_count_are_marked(tmp_path: Path) -> None:
    """A stored customer goes once its newest contact is older than twice the FCR window plus the allowance (what
    ``CustomerProcessor.forget`` drops from memory), never one held in memory."""
    from cxpulse.core.contact import Summary
    from cxpulse.core.customer import CustomerState
    from cxpulse.streams.sweeper import CustomerSweeper

    db = Rdict(str(tmp_path / "customers-0"))
    kpi = KpiSettings()
    limit = NOW - 2 * kpi.fcr_window * 1_000_000 - kpi.allowed_disorder * 1_000_000

    def customer(cid: str, *t0s: int) -> bytes:
        state = CustomerState()
        for n, t0 in enumerate(t0s):
            state.contacts[f"{cid}-c{n}"] = Summary(f"{cid}-c{n}", cid, t0, None, "billing", "voice", None)
        return codec.encode_customer(state, 0)

    db[b"old"] = customer("old", limit - 2 * DAY, limit - DAY)
    db[b"mixed"] = customer("mixed", limit - DAY, limit + 1)  # a newer contact: it can still change a count
    db[b"held"] = customer("held", limit - DAY)
    live = LiveKpis(kpi)
    proc = live.customers(0)
    proc.customers["held"] = CustomerState()
    table = SimpleNamespace(data=SimpleNamespace(_db_for_partition=lambda p: db))
    assert CustomerSweeper(table, live).sweep(NOW) == 1
    assert proc.dirty == {"old"}
    db.close()
