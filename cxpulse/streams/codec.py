"""Bytes in and out of Kafka for the worker's own topics and tables (orjson: the fastest JSON we have).

Table values carry their partition (``"p"``) so that recovery can put each key back in its partition without
assuming which partitioner the producers used.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from aiokafka.partitioner import murmur2

from cxpulse.core.contact import ContactState, Summary
from cxpulse.core.customer import CustomerState


_PACK = msgspec.msgpack.Encoder().encode
_UNPACK = msgspec.msgpack.Decoder().decode


def encode_contact(state: ContactState, partition: int) -> bytes:
    """msgpack of ``[partition, row]``: bytes (the original events of unsettled records) stay bytes, with no
    base64 and no re-encoding of the event (Engine v2: the raw bytes were kept base64 in every stored contact)."""
    return _PACK([partition, state.to_row()])


def decode_contact(value: bytes) -> tuple[int, ContactState]:
    """(partition, state) of a stored contact."""
    partition, row = _UNPACK(value)
    return partition, ContactState.from_row(row)


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


def customer_partition(customer_id: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2), so a customer always lands on the same summaries partition."""
    return (murmur2(customer_id.encode("utf-8")) & 0x7FFFFFFF) % partitions


def key_text(key: Any) -> str:
    return key.decode("utf-8") if isinstance(key, (bytes, bytearray)) else str(key)
