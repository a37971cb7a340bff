"""The worker's RocksDB databases share one block cache and one memtable limit (issue 9: memory).

Real RocksDB (rocksdict, through Faust's own store), no Kafka: a Faust app with rocksdb:// tables opens its
databases on first use of a partition, which is all these tests need."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cxpulse.settings import Settings, WorkerSettings
from cxpulse.streams.app import rocksdb_options
from cxpulse.streams.rocksdb_budget import MIB, BudgetCollector, BudgetedOptions, RocksDBBudget, share_budget


def _app(tmp_path: Path, store: str = "rocksdb://") -> faust.App:
    return faust.App("budget-test", broker="kafka://127.0.0.1:1", store=store, datadir=str(tmp_path))


def _tables(app: faust.App, settings: Settings) -> list[Any]:
    options = rocksdb_options(settings)
    return [app.Table(name, partitions=2, key_type=bytes, value_type=bytes, options=dict(options))
            for name in ("contacts", "customers")]


def test_every_database_of_every_table_draws_on_the_one_budget(tmp_path: Path) -> None:
    settings = Settings(worker=WorkerSettings(rocksdb_write_buffer_mib=4))
    budget = RocksDBBudget(16 * MIB, 64 * MIB)
    tables = _tables(_app(tmp_path), settings)
    assert [share_budget(table, budget) for table in tables] == [True, True]
    for table in tables:
        options = table.data.rocksdb_options
        assert isinstance(options, BudgetedOptions) and options.budget is budget
        # Faust's per-database sizes stay what the settings say
        assert options.write_buffer_size == 4 * MIB and options.max_write_buffer_number == 2
    assert budget.usage() == {"block_cache": 0, "memtables": 0}

    value = b"x" * 1000
    dbs = [table.data._db_for_partition(p) for table in tables for p in (0, 1)]  # 4 databases
    for n, db in enumerate(dbs):
        for k in range(300):
            db.put(f"{n}-{k}".encode(), value)
    # 4 x 300 x 1000 B went into memtables, all counted by the one manager (RocksDB allocates its arena in
    # blocks, so the usage is at least what was written, and far below the 64 MiB limit: nothing flushed yet)
    used = budget.usage()["memtables"]
    assert 4 * 300 * 1000 <= used < 64 * MIB

    for db in dbs:  # flushed to files, then read back: the blocks of all four land in the one cache
        db.flush()
    assert budget.usage()["memtables"] < used
    seen = [budget.usage()["block_cache"]]
    for n, db in enumerate(dbs):
        assert db.get(f"{n}-7".encode()) == value
        seen.append(budget.usage()["block_cache"])
    assert seen == sorted(seen) and len(set(seen)) == 5, seen  # each database's read grew the same cache


def test_the_cache_is_a_ceiling(tmp_path: Path) -> None:
    """Reading far more than the cache holds keeps its usage at the capacity (RocksDB evicts)."""
    budget = RocksDBBudget(1 * MIB, 64 * MIB)
    (table, _) = _tables(_app(tmp_path), Settings())
    share_budget(table, budget)
    db = table.data._db_for_partition(0)
    for k in range(4000):
        db.put(f"k{k:05d}".encode(), bytes([k % 251]) * 1000)  # 4 MB of values that do not compress to nothing
    db.flush()
    for k in range(4000):
        assert db.get(f"k{k:05d}".encode()) == bytes([k % 251]) * 1000
    assert 0 < budget.usage()["block_cache"] <= 1 * MIB + 64 * 1024  # capacity plus one block in flight at most


def test_memory_tables_have_no_budget(tmp_path: Path) -> None:
    (table, _) = _tables(_app(tmp_path, "memory://"), Settings())
    assert share_budget(table, RocksDBBudget(MIB, MIB)) is False


def test_the_budget_comes_before_any_database_is_opened(tmp_path: Path) -> None:
    (table, _) = _tables(_app(tmp_path), Settings())
    table.data._db_for_partition(0)
    with pytest.raises(RuntimeError, match="table 'contacts': a database is open already"):
        share_budget(table, RocksDBBudget(MIB, MIB))


def test_metrics_show_both_kinds(tmp_path: Path) -> None:
    budget = RocksDBBudget(MIB, 8 * MIB)
    (table, _) = _tables(_app(tmp_path), Settings())
    share_budget(table, budget)
    table.data._db_for_partition(0).put(b"k", b"v" * 5000)
    registry = CollectorRegistry()
    registry.register(BudgetCollector(budget))
    (family,) = text_string_to_metric_families(generate_latest(registry).decode())
    assert family.name == "cxpulse_rocksdb_memory_bytes" and family.type == "gauge"
    samples = {s.labels["kind"]: s.value for s in family.samples}
    assert set(samples) == {"block_cache", "memtables"}
    assert samples["memtables"] >= 5000 and samples["block_cache"] == budget.usage()["block_cache"]


def test_settings_say_the_budget_in_mib() -> None:
    ws = WorkerSettings()
    assert (ws.rocksdb_block_cache_mib, ws.rocksdb_memtables_mib, ws.rocksdb_write_buffer_mib) == (8, 16, 4)
    with pytest.raises(ValueError, match="rocksdb_memtables_mib"):
        WorkerSettings(rocksdb_memtables_mib=0)
