"""One memory budget for all of a worker's RocksDB databases: a shared block cache and a shared memtable limit.

Why: Faust opens one RocksDB database per table and partition (contacts, customers and agents x
``kafka.partitions``: 24 with the default 8 partitions) and gives each its own block cache and its own write
buffers. Sized per database, the worst case is 24 x (2 write buffers + cache): with 4 MiB buffers and an 8 MiB
cache, 384 MiB that a worker may reach as its tables fill and recovery reads them back, although the settled
contacts they hold are read rarely (one get per late event). RocksDB can share both across databases: one
``Cache`` for the blocks of every database and one ``WriteBufferManager`` that flushes the fullest memtable
when all of them together pass a limit. So the worker's RocksDB memory has one ceiling, set in
``worker.rocksdb_block_cache_mib`` + ``worker.rocksdb_memtables_mib``, whatever the partition count.

Faust builds each database's options itself (``RocksDBOptions.as_options``, a new cache per database) and has
no setting for shared objects; :func:`share_budget` therefore swaps the options object of each table's store
(before any database is opened: Faust opens them when their partition is first used) for
:class:`BudgetedOptions`, which takes Faust's options and puts the shared objects in.
"""

from __future__ import annotations

from typing import Any, Iterator

import rocksdict
from faust.stores.rocksdb import RocksDBOptions
from prometheus_client.core import GaugeMetricFamily, Metric

MIB = 1024 * 1024


class RocksDBBudget:
    """The shared block cache and memtable limit of one worker (created once, given to every table)."""

    def __init__(self, block_cache_bytes: int, memtables_bytes: int) -> None:
        self.block_cache_bytes = block_cache_bytes
        self.memtables_bytes = memtables_bytes
        self.cache = rocksdict.Cache(block_cache_bytes)
        # allow_stall False: over the limit RocksDB flushes; it never blocks the event loop's puts
        self.write_buffers = rocksdict.WriteBufferManager(memtables_bytes, False)

    def usage(self) -> dict[str, int]:
        """Bytes in use now: ``block_cache`` (every database's blocks) and ``memtables`` (every write buffer)."""
        return {"block_cache": int(self.cache.get_usage()), "memtables": int(self.write_buffers.get_usage())}


class BudgetCollector:
    """``cxpulse_rocksdb_memory_bytes{kind}`` on /metrics: what the shared budget holds now, so an operator sees
    the RocksDB part of the worker's resident memory (``block_cache`` includes index and filter blocks)."""

    def __init__(self, budget: RocksDBBudget) -> None:
        self.budget = budget

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("cxpulse_rocksdb_memory_bytes",
                                   "RocksDB memory of the worker's tables now, by kind (block_cache, memtables), "
                                   "against the budget worker.rocksdb_block_cache_mib / rocksdb_memtables_mib.",
                                   labels=["kind"])
        for kind, used in self.budget.usage().items():
            family.add_metric([kind], used)
        yield family


class BudgetedOptions(RocksDBOptions):  # type: ignore[misc]
    """Faust's options for one database, with the worker's shared cache and memtable limit put in."""

    budget: RocksDBBudget

    def as_options(self) -> Any:
        options = super().as_options()
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, True)
        table.set_block_cache(self.budget.cache)
        # index and filter blocks in the same cache: counted against the budget, not beside it
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        options.set_write_buffer_manager(self.budget.write_buffers)
        return options


def share_budget(table: Any, budget: RocksDBBudget) -> bool:
    """Give ``table``'s RocksDB store the worker's shared budget; False when the table is not on RocksDB
    (``memory://``). Call right after the table is created, before its store opens any database."""
    store = table.data  # Faust creates the store on first access; it opens databases later, per partition
    current = getattr(store, "rocksdb_options", None)
    if current is None or not getattr(store, "use_rocksdict", False):
        return False
    if getattr(store, "_dbs", None):
        raise RuntimeError(f"table {table.name!r}: a database is open already; the budget must come first")
    options = BudgetedOptions(
        max_open_files=current.max_open_files,
        write_buffer_size=current.write_buffer_size,
        max_write_buffer_number=current.max_write_buffer_number,
        target_file_size_base=current.target_file_size_base,
        block_cache_size=budget.block_cache_bytes,
        block_cache_compressed_size=current.block_cache_compressed_size,
        bloom_filter_size=current.bloom_filter_size,
        use_rocksdict=True,
        ttl=current.ttl,
        **current.extra_options,
    )
    options.budget = budget
    store.rocksdb_options = options
    return True


__all__ = ["MIB", "BudgetCollector", "BudgetedOptions", "RocksDBBudget", "share_budget"]
