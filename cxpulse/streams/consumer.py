"""Faust's aiokafka consumer and flow control: four holes through which a worker lost events, closed; a fifth, watched.

The first two were found in the kill -9 test (``tests/integration/test_live_crash.py``, failing about one run in
three, the restarted worker missing ~2,500 contact events per partition and every FCR summary before the crash), by
logging what Faust's consumer skips and drops (session 8, ``docs/live-engine.md``, "Where a restarted worker
starts reading"):

1. **Records consumed while no partition was active.** Faust's fetch loop checks that some partition is active
   and then hands its *live* set of active partitions to the consumer thread. Recovery pauses the changelog
   partitions when it has read them; if that happens while the fetch is on its way, the thread sees an empty
   set, and an empty set means "every partition" to aiokafka's ``fetched_records``: it returns the records of
   the still paused stream partitions and moves their positions past them, and Faust's ``getmany`` then skips
   them as not active. The stream partitions resumed ~2,500 records further on than their commits.
   :meth:`Consumer._getmany` hands the thread a copy taken at the check instead, so aiokafka only ever returns
   records of partitions Faust asked for.
2. **No seek for partitions without a commit.** After each recovery Faust seeks every partition to its
   group's commit (``perform_seek``), which undoes a position moved as above; but aiokafka's
   ``seek_to_committed`` leaves a partition without a commit (or committed at 0) where it is, and no commit is
   the usual state of the FCR-summaries partitions in a worker's first minute. Their summaries were skipped and
   never read. :meth:`Consumer.seek_to_committed` seeks those stream partitions to their beginning, which is
   what the consumer's ``auto_offset_reset = "earliest"`` means for them (changelog partitions are left to
   Faust's recovery, which seeks them itself).

3. **Records cleared by a resume of a flow that was never suspended** (found in session 10 from a rebalance soak
   run that lost two events, ``bench/chaos.py`` scenario b, about one run in eight under load). Every stream's
   and channel's queue is a ``FlowControlQueue(clear_on_resume=True)``, and mode's ``FlowControlEvent.resume``
   clears them all, on every call. That is right the first time after a rebalance (what was buffered before it
   belongs to the old assignment), but Faust's recovery resumes the flow while it reads the changelogs, and
   ``Recovery.on_recovery_completed`` then resumes the stream partitions, seeks them to their commits, and only
   *then* calls ``app.flow_control.resume()`` once more, on a flow already active. The records the fetcher put
   into the agents' queues in those milliseconds after the seek (the first at exactly the committed offset)
   were cleared, never processed and never acknowledged; Faust's ``_new_offset`` accepts a hole of exactly one
   offset at the head of the acknowledged offsets (there for control records), so when one record was lost
   the next commit moved past it for good. :class:`FlowControl` clears the queues only when a suspended flow
   resumes. What an already active flow's queues hold was fetched in the current assignment, after the
   rebalance's own suspend and clear: the records at and after the commit (read twice at worst when they came
   before the seek, which the engine takes as duplicates).

4. **Skipped records acknowledged as processed.** A stream skips a record read while the flow is suspended or
   whose consumer generation is stale (one fetched before a rebalance), and Faust then *acknowledges* it like a
   processed one: its offset joins those the next commit may move past. The partition is sought back to its
   commit after the rebalance and the record is read again, but until that delivery is processed the commit can
   already cover it: a kill -9, or a rebalance that clears the queue it waits in, in that window loses it.
   :meth:`Consumer.ack` counts only records a stream took for processing (Faust marks those ``tracked``); a
   skipped record stays unacknowledged until it is read again and processed. Not seen to lose an event (3. was
   the soak's loss); closed because nothing may let a commit pass an unprocessed record.

5. **A commit past a record never processed, said.** Faust's ``_new_offset`` commits past a hole of exactly one
   offset at the head of the acknowledged offsets (the record at the committed offset unacknowledged, the ones
   after it acknowledged): after a seek it cannot tell a transaction marker there, which is no record and never
   comes, from a record that was dropped. 3. was such a drop; nothing else is known to make one. Reading the
   partition again from that offset would tell them apart, but a seek while Faust's fetch loop is inside a batch
   lets the batch's later records raise its read offset, and the loop then drops the records read again below it
   (a stalled commit instead of a lost record), so the worker does not do that. It *says* it:
   :meth:`Consumer._new_offset` logs a WARNING (topic, partition, offset; once per partition per
   :data:`HOLE_WARN_EVERY_SECONDS`, with the count) and counts it in :attr:`Consumer.holes_passed`. With the
   shipped producers (no transactions) any such line is a lost record; a transactional producer upstream makes
   them as a matter of course.

Faust issue #216 ("Recovery without tables resumes from kafka before seeking to committed offsets") is a
relative of the first; neither is fixed upstream in faust-streaming 0.15.3. Subclassing the driver's
``Consumer`` (and its ``Transport`` to name it) keeps the change to a few methods, each calling Faust's own;
the app's ``flow_control`` is a :class:`FlowControl` (``cxpulse.streams.app.WorkerApp``).
They lean on Faust's internals (``_getmany``, ``_new_offset``, ``_thread``, ``_acked``, ``_committed_offset``,
``_is_changelog_tp``): pyproject pins faust-streaming below 0.16, and ``tests/unit/test_worker_consumer.py``
fails if any of the five stops doing its part.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any, ClassVar

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from faust.types.transports import ConsumerT
from mode.utils.queues import FlowControlEvent

log = logging.getLogger("cxpulse.worker")

HOLE_WARN_EVERY_SECONDS = 600.0  # at most one WARNING per partition this often about commits past a hole (5.)


class Consumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer: fetches only for a fixed set of partitions, seeks uncommitted ones to the start,
    counts only processed records, and says when a commit passes a record it never processed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.holes_passed: Counter[TP] = Counter()  # commits past an unprocessed record at the committed offset
        self._hole_warned_at: dict[TP, float] = {}

    def _new_offset(self, tp: TP) -> int | None:
        """Faust's; a commit past one unprocessed record at the committed offset is counted and logged (5.)."""
        committed, acked = self._committed_offset[tp], self._acked[tp]
        hole = bool(committed and acked and min(acked) == committed + 1)
        offset = super()._new_offset(tp)
        if hole and offset is not None and not self._is_changelog_tp(tp):
            self.holes_passed[tp] += 1
            now = time.monotonic()
            if now - self._hole_warned_at.get(tp, -HOLE_WARN_EVERY_SECONDS) >= HOLE_WARN_EVERY_SECONDS:
                self._hole_warned_at[tp] = now
                log.warning("%s[%d]: committing past offset %d, which no stream processed (%d such commits "
                            "here so far): a transaction marker, or a record lost", tp.topic, tp.partition,
                            committed, self.holes_passed[tp])
        return offset

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> Any:
        """Fetch for a copy of the active partitions taken now, not for the set Faust goes on changing (1. above)."""
        fixed = None if active_partitions is None else frozenset(active_partitions)
        return await super()._getmany(fixed, timeout)  # type: ignore[arg-type]

    def ack(self, message: Message) -> bool:
        """Count ``message`` as processed only if a stream took it for processing (4. above)."""
        if not message.tracked:  # skipped by the stream: read again after the seek, and counted then
            message.acked = True
            return False
        return super().ack(message)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek every partition to its commit, and the stream partitions without one to their beginning (2.)."""
        committed: Mapping[Any, int | None] = await super().seek_to_committed()
        uncommitted = [tp for tp, offset in committed.items() if not offset and not self._is_changelog_tp(tp)]
        if uncommitted:
            await self._thread.seek_to_beginning(*uncommitted)
        return committed  # type: ignore[return-value]


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport, creating :class:`Consumer`."""

    Consumer: ClassVar[type[ConsumerT]] = Consumer


class FlowControl(FlowControlEvent):
    """mode's flow control, clearing the queues it manages only when a *suspended* flow resumes (3. above)."""

    def resume(self) -> None:
        """Resume production into the queues; drop what they hold only if the flow was suspended."""
        was_suspended = not self.is_active()
        self._suspend.clear()
        self._resume.set()
        if was_suspended:
            self.clear()
        else:
            kept = sum(queue.qsize() for queue in self._queues)
            if kept:  # what mode's resume would have dropped (the soak's lost records): seen, once per rebalance
                log.info("flow control: a resume of the active flow kept %d queued records", kept)
