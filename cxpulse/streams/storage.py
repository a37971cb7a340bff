"""The worker's two Faust tables seen as stores: read one stored value, stage the changed keys of a batch.

Why a module of its own: the agents write through these helpers, the roll-back and the core's on-demand
loading of evicted contacts read through them, and the per-key isolation of :func:`save_changed` is pinned by
``tests/unit/test_hostile_input.py`` without Kafka.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from faust.types import TableT

from cxpulse.core.agents import AgentTimeline
from cxpulse.core.contact import ContactState
from cxpulse.core.customer import CustomerState
from cxpulse.streams import codec

log = logging.getLogger("cxpulse.worker")

Stage = Callable[[int, bytes, bytes | None], None]  # (partition, key, value or None to delete)


def save_changed(stage: Stage, dirty: set[str], states: Mapping[str, Any], encode: Callable[[Any, int], bytes],
                 partition: int) -> list[str]:
    """Stage each changed key of one partition once (``stage(partition, key, value)``; value None deletes it).

    Returns the keys whose state could not be *encoded* (a failure of our own, e.g. a number the codec cannot
    write): they are not staged, and the caller puts them back to their stored value and dead-letters the
    events that changed them. Why per key: one such contact once crashed the agent, and Faust then acked the
    rest of the partition's batch without storing it (a silent loss). A failure of the store or the changelog
    is not caught here: it stops the batch before its offsets are acknowledged (see
    :mod:`cxpulse.streams.agents`)."""
    failed: list[str] = []
    for key in dirty:
        state = states.get(key)
        if state is None:
            stage(partition, key.encode(), None)
            continue
        try:
            value = encode(state, partition)
        except Exception:  # noqa: BLE001 - any encoding failure is isolated to its key
            log.exception("cannot encode the state of a key of partition %d", partition)
            failed.append(key)
            continue
        stage(partition, key.encode(), value)
    dirty.clear()
    return failed


def stored_value(table: TableT, partition: int, key: bytes) -> bytes | None:
    """A table's stored value of ``key`` in ``partition``, read from its store directly.

    Why not ``table[key]``: Faust picks the RocksDB partition from the *current event*, which in a batch is
    not the event being handled; the partition is known here, so ask its database."""
    store: Any = table.data
    db_for = getattr(store, "_db_for_partition", None)
    if db_for is not None:  # rocksdb://
        value: bytes | None = db_for(partition).get(key)
        return value
    found: bytes | None = store.data.get(key)  # memory:// (tests): one dict for all partitions
    return found


def stored_contact(table: TableT, partition: int, contact_id: str) -> ContactState | None:
    """The stored state of one contact (None: the table has none)."""
    value = stored_value(table, partition, contact_id.encode())
    return codec.decode_contact(value)[1] if value is not None else None


def stored_agent(table: TableT, partition: int, agent_id: str) -> AgentTimeline | None:
    """The stored state of one agent (None: the table has none)."""
    value = stored_value(table, partition, agent_id.encode())
    return codec.decode_agent(value)[1] if value is not None else None


def stored_customer(table: TableT, partition: int, customer_id: str) -> CustomerState | None:
    """The stored state of one customer (None: the table has none)."""
    value = stored_value(table, partition, customer_id.encode())
    return CustomerState.from_dict(codec.decode(value)) if value is not None else None


def table_loader(table: TableT, read: Callable[[TableT, int, str], Any]) -> Callable[[int], Callable[[str], Any]]:
    """``loader_for(partition)`` for :class:`~cxpulse.core.live.LiveKpis`: what the core moved out of memory (settled
    contacts, customers beyond the recently changed ones: Engine v2) is read back from this partition's table
    (RocksDB on disk) with ``read(table, partition, key)`` when one of its events arrives."""
    def loader_for(partition: int) -> Callable[[str], Any]:
        def load(key: str) -> Any:
            return read(table, partition, key)
        return load
    return loader_for


def contact_loader(table: TableT) -> Callable[[int], Callable[[str], ContactState | None]]:
    """Settled contacts read back from the contacts table (see :func:`table_loader`)."""
    return table_loader(table, stored_contact)


def customer_loader(table: TableT) -> Callable[[int], Callable[[str], CustomerState | None]]:
    """Customers beyond the recently changed ones read back from the customers table (see :func:`table_loader`)."""
    return table_loader(table, stored_customer)
