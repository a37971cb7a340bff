"""Two parts of the worker that need no broker: its table writer's store side and its Faust monitor.

The bulk writer's sends and acknowledgements are covered on the real broker (tests/integration: the kill -9
test, live equals replay); here the store side alone, on a real RocksDB store of Faust's."""

from __future__ import annotations

from pathlib import Path

import faust

from cxpulse.settings import Settings, WorkerSettings
from cxpulse.streams.app import faust_app
from cxpulse.streams.monitor import QuietMonitor
from cxpulse.streams.table_writer import BulkTableWriter


def test_a_partition_s_changes_land_in_its_rocksdb_in_one_write(tmp_path: Path) -> None:
    """Puts and deletes in order, in the partition named, through one RocksDB write batch."""
    app = faust.App("cxpulse-test-writer", broker="kafka://127.0.0.1:1", store="rocksdb://", datadir=str(tmp_path))
    table = app.Table("t", partitions=2, key_type=bytes, value_type=bytes)
    writer = BulkTableWriter(app, table, on_failure=lambda why: None)
    writer._store(1, [(b"a", b"1"), (b"b", b"2")])
    writer._store(1, [(b"a", None), (b"c", b"3"), (b"b", b"2b")])
    one = table.data._db_for_partition(1)
    zero = table.data._db_for_partition(0)
    assert [one.get(key) for key in (b"a", b"b", b"c")] == [None, b"2b", b"3"]
    assert [zero.get(key) for key in (b"a", b"b", b"c")] == [None, None, None]


def test_the_memory_store_takes_the_same_changes() -> None:
    app = faust.App("cxpulse-test-writer-mem", broker="kafka://127.0.0.1:1", store="memory://")
    table = app.Table("t", partitions=2, key_type=bytes, value_type=bytes)
    writer = BulkTableWriter(app, table, on_failure=lambda why: None)
    writer._store(0, [(b"a", b"1"), (b"b", b"2")])
    writer._store(0, [(b"a", None)])
    assert dict(table.data.data) == {b"b": b"2"}


def test_the_worker_s_monitor_keeps_only_what_faust_reads(tmp_path: Path) -> None:
    """Faust's consumer reads ``stream_inbound_time`` (its "stream stopped processing" warning): still kept;
    the per-record counters are not (and no per-event state is handed back to be timed)."""
    app = faust_app(Settings(worker=WorkerSettings(data_dir=str(tmp_path))))
    monitor = app.monitor
    assert isinstance(monitor, QuietMonitor)
    tp = object()
    assert monitor.on_stream_event_in(tp, 5, object(), object()) is None
    assert tp in monitor.stream_inbound_time
    monitor.on_message_in(tp, 5, object())
    assert monitor.messages_received_total == 0 and monitor.events_total == 0


def test_behind_means_a_backlog_of_at_least_backlog_records() -> None:
    from cxpulse.streams.liveness import BACKLOG_RECORDS, Liveness

    liveness = Liveness(stall_after_us=30_000_000, exit_after_us=0, broker_after_us=15_000_000, clock=lambda: 0)
    assert not liveness.behind  # nothing measured yet
    liveness.lag_measured(BACKLOG_RECORDS - 1)
    assert not liveness.behind
    liveness.lag_measured(BACKLOG_RECORDS)
    assert liveness.behind


def _record(topic: str, partition: int, offset: int, value: bytes, key: bytes | None = b"k") -> object:
    """A consumed record as the agents see it (Faust's event: ``value`` and ``message``'s coordinates)."""
    from types import SimpleNamespace

    return SimpleNamespace(value=value, message=SimpleNamespace(topic=topic, partition=partition, offset=offset,
                                                                key=key))


def test_every_event_is_applied_or_comes_back_as_a_dead_letter_with_its_reason() -> None:
    """The agents' per-event step: a valid event is applied (None), an invalid one comes back as a dead letter
    with its reason and kind, and one whose handling raises as ``internal error`` with its original bytes and
    coordinates; each is counted on its topic, and every offset is recorded as consumed, whatever its fate."""
    import orjson

    from cxpulse.core.live import LiveKpis
    from cxpulse.models.wire import decode_contact_event
    from cxpulse.settings import KpiSettings
    from cxpulse.streams.agents import apply_event

    live = LiveKpis(KpiSettings())
    applied: list[tuple[str, int, int]] = []

    def handle(topic: str, partition: int, parsed: object, raw: bytes, offset: int, key: object) -> None:
        if parsed.contact_id == "boom":  # type: ignore[attr-defined]
            raise RuntimeError("a bug")
        live.handle(topic, partition, parsed, raw, offset, key)
        applied.append((topic, partition, offset))

    def parse(topic: str, raw: bytes) -> object:
        return decode_contact_event(raw)

    def event(contact_id: str) -> bytes:
        return orjson.dumps({"event_id": f"e-{contact_id}", "type": "contact.queued", "ts": "2026-11-28T10:00:00Z",
                             "contact_id": contact_id, "customer_id": "c1", "channel": "voice", "queue": "billing"})

    assert apply_event(live, _record("contact-events", 3, 7, event("ok")), parse, handle) is None
    assert applied == [("contact-events", 3, 7)]

    invalid = apply_event(live, _record("contact-events", 3, 8, b"{not json"), parse, handle)
    assert invalid is not None and invalid.value == b"{not json" and invalid.reason
    assert (invalid.source_topic, invalid.source_partition, invalid.source_offset) == ("contact-events", 3, 8)

    broken = event("boom")
    bug = apply_event(live, _record("contact-events", 1, 9, broken, key=b"boom"), parse, handle)
    assert bug is not None
    assert (bug.kind, bug.reason, bug.value, bug.key) == ("internal_error", "internal error: RuntimeError", broken,
                                                          b"boom")
    assert (bug.source_partition, bug.source_offset) == (1, 9)
    assert applied == [("contact-events", 3, 7)]

    health = live.topic_health("contact-events")
    assert health.processed == 1 and health.invalid["internal_error"] == 1
    assert sum(health.invalid.values()) == 2 and invalid.kind in health.invalid
    assert live.offsets[("contact-events", 3)] == 8 and live.offsets[("contact-events", 1)] == 9
