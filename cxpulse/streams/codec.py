"""Bytes in and out of Kafka for the worker's own topics and tables (orjson: the fastest JSON we have).

Table values carry their partition (``"p"``) so that recovery can put each key back in its partition without
assuming which partitioner the producers used.
"""

from __future__ import annotations

import base64
import functools
from typing import Any

import msgspec
import orjson
from aiokafka.partitioner import murmur2

from cxpulse.core.agents import AgentTimeline
from cxpulse.core.contact import RANK_OF, ContactState, Summary
from cxpulse.core.customer import CustomerState


_PACK = msgspec.msgpack.Encoder().encode
_UNPACK = msgspec.msgpack.Decoder().decode


def encode_contact(state: ContactState, partition: int) -> bytes:
    """msgpack of ``[partition, row]``: bytes (the original events of unsettled records) stay bytes, with no
    base64 and no re-encoding of the event (Engine v2: the raw bytes were kept base64 in every stored contact)."""
    return _PACK([partition, state.to_row()])


def decode_contact(value: bytes, *, sync: bool = True) -> tuple[int, ContactState]:
    """(partition, state) of a stored contact; ``sync`` False for a restore, which walks the records itself.

    A value written by cxpulse 0.1 (JSON, raw bytes in base64) is read too, so a worker upgraded in place
    recovers its tables; it is written back in the new form the next time the contact changes."""
    if value[:1] == b"{":
        return _legacy_contact(orjson.loads(value), sync)
    partition, row = _UNPACK(value)
    return partition, ContactState.from_row(row, sync=sync)


def stored_last_ts(value: bytes) -> int:
    """The newest event time of a stored contact, for the sweep past the retention (streams/sweeper.py)."""
    if value[:1] == b"{":
        return int(orjson.loads(value).get("t", 0))
    _partition, row = _UNPACK(value)
    return int(row[3])


def stored_newest_t0(value: bytes) -> int:
    """The newest first-queued time among a stored customer's contacts (streams/sweeper.py)."""
    contacts = orjson.loads(value).get("c") or ()
    return max((int(item[2]) for item in contacts), default=0)


def _legacy_contact(data: dict[str, Any], sync: bool) -> tuple[int, ContactState]:
    """cxpulse 0.1's stored contact: ``{"r": [records], "s": seen ids, "b": published, "t": last ts, "p": p}``,
    a record being ``[kind, ts, id, queue, channel, customer, reason, handle_us, resolved, transferred, nps,
    csat, raw (base64), source, key (base64)]``."""
    records: list[list[Any]] = []
    pending: list[list[Any]] = []
    for kind, ts, event_id, queue, channel, customer, reason, handle, resolved, transferred, nps, csat, *rest in data["r"]:
        if kind == "q":
            records.append([ts, 0, event_id, kind, queue, channel, reason, customer, None])
        elif kind == "e":
            records.append([ts, 2, event_id, kind, queue, channel, handle, resolved, transferred])
        elif kind == "s":
            records.append([ts, 3, event_id, kind, "", "", nps, csat, None])
        else:
            records.append([ts, RANK_OF[kind], event_id, kind, queue, channel, None, None, None])
        raw = rest[0] if rest else None
        if raw is not None:
            key = rest[2] if len(rest) > 2 else None
            pending.append([event_id, base64.b64decode(raw), rest[1] if len(rest) > 1 else None,
                            base64.b64decode(key) if key else None])
    kept = {rec[2] for rec in records}
    refused = sorted(set(data.get("s", ())) - kept) or None
    row = [sorted(records), refused, data.get("b") or None, data.get("t", 0), pending or None]
    return int(data.get("p", 0)), ContactState.from_row(row, sync=sync)


def encode_agent(timeline: AgentTimeline, partition: int) -> bytes:
    """msgpack of ``[partition, row]``: an agent's recent state records and the event ids it has seen."""
    return _PACK([partition, timeline.to_row()])


def decode_agent(value: bytes) -> tuple[int, AgentTimeline]:
    partition, row = _UNPACK(value)
    return partition, AgentTimeline.from_row(row)


def encode_customer(state: CustomerState, partition: int) -> bytes:
    data = state.to_dict()
    data["p"] = partition
    return orjson.dumps(data)


def decode(value: bytes) -> dict[str, Any]:
    return orjson.loads(value)


def encode_summaries(summaries: list[Summary]) -> bytes:
    """Several FCR summaries in one record: one message per target partition per batch, not one per contact."""
    return orjson.dumps([list(summary) for summary in summaries])


def decode_summaries(value: bytes) -> list[Summary]:
    out = []
    for item in orjson.loads(value):
        final = tuple(item[6]) if item[6] else None
        out.append(Summary(item[0], item[1], item[2], item[3], item[4], item[5], final))  # type: ignore[arg-type]
    return out


@functools.lru_cache(maxsize=16_384)
def customer_partition(customer_id: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2), so a customer always lands on the same summaries partition.

    Cached: aiokafka's murmur2 is a pure-Python loop (about 1.5% of a loaded worker's time, profiled), and a
    contact's summary is sent twice within minutes (queued, then ended), so the second lookup is free."""
    return (murmur2(customer_id.encode("utf-8")) & 0x7FFFFFFF) % partitions


def key_text(key: Any) -> str:
    return key.decode("utf-8") if isinstance(key, (bytes, bytearray)) else str(key)
