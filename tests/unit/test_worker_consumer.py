"""The worker's Kafka consumer and flow control (``cxpulse/streams/consumer.py``): the three holes in Faust's
consumer through which a worker lost events (the kill -9 test failing about one run in three until session 8; the
rebalance soak, ``bench/chaos.py`` scenario b, about one run in eight under load until session 10).

The consumer thread is replaced by a recorder here: what is pinned is what Faust's consumer *asks* the thread
for, which no broker can show deterministically (the race is between Faust's recovery and a fetch in flight).
The real broker's side is covered by ``tests/integration/test_live_crash.py`` (kill -9, restart, nothing lost).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from aiokafka import TopicPartition
from faust.types import TP
from faust.types.tuples import ConsumerMessage
from mode.utils.queues import FlowControlQueue

from cxpulse.settings import Settings
from cxpulse.streams import consumer as worker_consumer
from cxpulse.streams.app import faust_app

CHANGELOG = TP("cxpulse-contacts-changelog", 0)
EVENTS = TP("contact-events", 0)
SUMMARIES = TP("cxpulse-fcr-summaries", 0)


class RecordingThread:
    """Stands for Faust's consumer thread: records what it is asked; ``during_fetch`` runs while a fetch is on
    its way (what Faust's recovery does concurrently), then the partitions the fetch was asked for are read."""

    def __init__(self, committed: dict[TopicPartition, int | None]) -> None:
        self.committed = committed
        self.fetched_for: set[Any] | None = None
        self.during_fetch: Any = None
        self.sought_to_beginning: list[TopicPartition] = []

    async def getmany(self, active_partitions: Iterable[TP] | None, timeout: float) -> dict[Any, Any]:
        if self.during_fetch is not None:
            self.during_fetch()
        self.fetched_for = None if active_partitions is None else set(active_partitions)
        return {}

    async def seek_to_committed(self) -> dict[TopicPartition, int | None]:
        return dict(self.committed)

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        self.sought_to_beginning.extend(partitions)


@pytest.fixture
def consumer() -> Any:
    app = faust_app(Settings())
    app.Table("contacts")  # its changelog topic is "cxpulse-contacts-changelog"
    return app.consumer


def test_the_worker_app_uses_the_fixed_consumer(consumer: Any) -> None:
    assert type(consumer) is worker_consumer.Consumer


async def test_a_fetch_is_for_the_partitions_active_when_it_was_asked(consumer: Any) -> None:
    """Faust's recovery pauses the changelog partitions while a fetch is on its way: the fetch must still be for
    the changelog partition alone. (Faust handed over its live set: emptied, it meant "every partition" to
    aiokafka, which returned and moved past the paused stream partitions' records.)"""
    thread = RecordingThread({})
    consumer._thread = thread
    consumer._set_active_tps({CHANGELOG, EVENTS})
    consumer.pause_partitions({EVENTS})  # stream partitions stay paused during recovery
    thread.during_fetch = lambda: consumer.pause_partitions({CHANGELOG})  # recovery done: changelogs paused
    await consumer._getmany(consumer._get_active_partitions(), timeout=0.0)
    assert thread.fetched_for == {CHANGELOG}
    assert not consumer._get_active_partitions()  # Faust's own bookkeeping is untouched


async def test_seeking_to_the_commits_starts_uncommitted_stream_partitions_at_their_beginning(consumer: Any) -> None:
    """aiokafka leaves a partition without a commit (or committed at 0) where it is; the stream partitions among
    them go back to their beginning (``auto_offset_reset = "earliest"``); changelogs are recovery's to seek."""
    events, summaries = TopicPartition(*EVENTS), TopicPartition(*SUMMARIES)
    at_zero, changelog = TopicPartition("survey-responses", 0), TopicPartition(*CHANGELOG)
    thread = RecordingThread({events: 2561, summaries: None, at_zero: 0, changelog: None})
    consumer._thread = thread
    committed = await consumer.seek_to_committed()
    assert committed == {events: 2561, summaries: None, at_zero: 0, changelog: None}  # Faust reads these
    assert sorted(thread.sought_to_beginning) == sorted([summaries, at_zero])


async def test_perform_seek_records_the_commits_as_before(consumer: Any) -> None:
    """Faust's ``perform_seek`` on top: read offsets from the commits, committed offsets where there is one."""
    events, summaries = TopicPartition(*EVENTS), TopicPartition(*SUMMARIES)
    consumer._thread = RecordingThread({events: 2561, summaries: None})
    await consumer.perform_seek()
    assert consumer._read_offset[EVENTS] == 2561 and consumer._read_offset[SUMMARIES] is None
    assert consumer._committed_offset[EVENTS] == 2561 and SUMMARIES not in consumer._committed_offset


def queued(app: Any, *records: str) -> Any:
    """One of the app's stream queues (every stream's and channel's queue is one), holding ``records``."""
    queue = app.FlowControlQueue(maxsize=100, clear_on_resume=True)
    for record in records:
        queue.put_nowait(record)
    return queue


def test_the_worker_app_uses_the_fixed_flow_control(consumer: Any) -> None:
    """The agents' queues are managed by the app's flow control: it must be the one that keeps them."""
    app = consumer.app
    assert type(app.flow_control) is worker_consumer.FlowControl
    queue = queued(app, "stale")
    app.flow_control.suspend()
    app.flow_control.resume()
    assert queue.empty()  # managed by it: cleared when a suspended flow resumes


def test_the_last_resume_of_a_recovery_keeps_what_came_after_the_seek(consumer: Any) -> None:
    """Faust's ``Recovery.on_recovery_completed``: the flow is already active (recovery resumed it to read the
    changelogs); it seeks the stream partitions to their commits, the fetcher delivers the records from the
    commit on, and then the flow is resumed once more. Those records must still be there for the agent (they
    were cleared: the first, at the committed offset, was never processed, and the commit moved past it)."""
    app = consumer.app
    app.flow_control.suspend()  # a rebalance starts
    app.flow_control.resume()  # recovery reads the changelogs
    queue = queued(app, "offset 1033", "offset 1034")  # delivered after the seek to the commit, 1033
    app.flow_control.resume()  # Recovery.on_recovery_completed, after the seek
    assert app.flow_control.is_active()
    assert [queue.get_nowait(), queue.get_nowait()] == ["offset 1033", "offset 1034"]


def test_a_suspended_flow_resumes_without_what_it_held() -> None:
    """What was buffered before a rebalance belongs to the old assignment: the first resume after the suspend
    still drops it, as Faust's own does; and a suspended flow is reported inactive until then."""
    flow = worker_consumer.FlowControl()
    queue: FlowControlQueue[str] = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    flow.resume()
    queue.put_nowait("old assignment")
    flow.suspend()
    assert not flow.is_active()
    flow.resume()
    assert flow.is_active() and queue.empty()


def consumer_message(offset: int) -> Any:
    return ConsumerMessage(EVENTS.topic, EVENTS.partition, offset, 0.0, 0, None, b"k", b"v", None, tp=EVENTS)


def test_a_record_a_stream_skipped_is_not_counted_as_processed(consumer: Any) -> None:
    """Faust's stream acknowledges a record it skipped (flow suspended, or fetched before a rebalance) like a
    processed one; that offset must not be one the commit can move past before the record is read again and
    processed. A record the stream took (``tracked``) counts as before, and one skipped then read again counts
    when the second delivery is processed."""
    consumer.app.topics._acking_topics.add(EVENTS.topic)
    skipped = consumer_message(1033)  # never tracked: the stream's skip path acknowledges it untracked
    assert skipped.ack(consumer) is False
    assert skipped.acked and 1033 not in consumer._acked[EVENTS]
    taken = consumer_message(1034)
    taken.tracked = True  # what the stream does before processing a record
    assert taken.ack(consumer) is True
    assert consumer._acked[EVENTS] == [1034]
    again = consumer_message(1033)  # the seek after the rebalance delivers it again, and it is processed
    again.tracked = True
    assert again.ack(consumer) is True
    assert sorted(consumer._acked[EVENTS]) == [1033, 1034]


def test_a_commit_past_an_unprocessed_record_is_counted_and_said(consumer: Any,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Faust commits past a hole of one offset at the head of the acknowledged offsets (a transaction marker or
    a lost record: it cannot tell). The worker commits as Faust does, and counts and logs it; a head without a
    hole is neither, and changelog partitions are recovery's."""
    consumer._committed_offset[EVENTS] = 1033
    consumer._acked[EVENTS] = [1034, 1035]
    consumer._acked_index[EVENTS] = {1034, 1035}
    with caplog.at_level("WARNING", logger="cxpulse.worker"):
        assert consumer._new_offset(EVENTS) == 1036  # as Faust: past the hole
    assert consumer.holes_passed[EVENTS] == 1
    assert [r.getMessage() for r in caplog.records] == [
        "contact-events[0]: committing past offset 1033, which no stream processed (1 such commits here so far): "
        "a transaction marker, or a record lost"]
    consumer._committed_offset[EVENTS] = 1036
    consumer._acked[EVENTS] = [1036, 1037]
    consumer._acked_index[EVENTS] = {1036, 1037}
    assert consumer._new_offset(EVENTS) == 1038
    consumer._committed_offset[CHANGELOG] = 10
    consumer._acked[CHANGELOG] = [11]
    consumer._acked_index[CHANGELOG] = {11}
    assert consumer._new_offset(CHANGELOG) == 12
    assert consumer.holes_passed == {EVENTS: 1}
