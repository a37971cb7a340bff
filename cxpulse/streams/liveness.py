"""Is the worker alive in the sense an on-call engineer cares about: reading its input and reaching Kafka?

Why a module of its own: ``/readyz``, ``/api/v1/status``, ``/metrics`` and the stall guard all read the same
judgement, and it must be testable with an injected clock (no sleeping). Two failures are told apart:

* **stalled**: events wait in the source topics (lag > 0) and nothing has been consumed for ``stall_after``.
  Seen once in a rebalance soak: a worker owned every partition, said it was ready, and never read again
  (its last line: Faust's "producer buffer full"). A process that cannot move cannot heal itself from the
  inside, so after ``exit_after`` of stall the worker stops with :data:`EXIT_STALLED`; its supervisor
  (systemd, Kubernetes) restarts it, and the restart re-reads from the last committed offsets, where event-id
  de-duplication makes the re-read exact.
* **broker unreachable**: a metadata request to the bootstrap servers has failed for ``broker_after``.
  Nothing is consumed then either, but a restart would not help: the worker waits and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import time

from cxpulse.units import US_PER_SECOND

EXIT_STALLED = 75  # EX_TEMPFAIL: "try again", for the supervisor
# Behind by a backlog: at least this many records wait in the worker's source partitions (at the last lag
# measurement, every 5 s). Live, the lag is what arrived within a batch's wait: a few, or a few hundred on a
# busy platform. Behind, the worker takes longer batches and publishes its read model less often
# (streams/batching.py, sinks/redis_sink.py): its figures trail by the backlog anyway.
BACKLOG_RECORDS = 5_000


def wall_us() -> int:
    return time.time_ns() // 1000


@dataclass
class Liveness:
    """The worker's own liveness, driven by :meth:`consumed`, :meth:`lag_measured` and :meth:`broker_checked`."""

    stall_after_us: int
    exit_after_us: int  # 0: never stop on a stall
    broker_after_us: int
    clock: Callable[[], int] = wall_us
    last_consumed_us: int = 0
    lag: int = 0  # records waiting in the source partitions this worker owns
    broker_ok_us: int = 0  # last successful metadata request
    broker_failing: bool = False
    judging: bool = False  # only a ready worker is expected to consume
    stalls: int = field(default=0)  # how many times a stall began (a counter for /metrics)
    _stalled_before: bool = False

    def __post_init__(self) -> None:
        now = self.clock()
        self.last_consumed_us = self.broker_ok_us = now

    def consumed(self) -> None:
        """A batch of source records was taken (valid, invalid or duplicate alike)."""
        self.last_consumed_us = self.clock()

    def start_judging(self, judging: bool) -> None:
        """Ready: from now on, lag without consumption is a stall. Not ready (recovering): it is not."""
        if judging and not self.judging:
            self.last_consumed_us = self.clock()
        self.judging = judging

    def lag_measured(self, lag: int) -> None:
        self.lag = lag
        stalled = self.stalled
        if stalled and not self._stalled_before:
            self.stalls += 1
        self._stalled_before = stalled

    def broker_checked(self, ok: bool) -> None:
        if ok:
            self.broker_ok_us = self.clock()
        self.broker_failing = not ok

    @property
    def stalled_for_us(self) -> int:
        """How long consumption has stopped while records wait (0 when not stalled)."""
        if not self.judging or self.lag <= 0 or self.broker_unreachable:
            return 0
        idle = self.clock() - self.last_consumed_us
        return idle if idle >= self.stall_after_us else 0

    @property
    def behind(self) -> bool:
        """Catching up a backlog (see :data:`BACKLOG_RECORDS`)."""
        return self.lag >= BACKLOG_RECORDS

    @property
    def stalled(self) -> bool:
        return self.stalled_for_us > 0

    @property
    def broker_unreachable(self) -> bool:
        return self.broker_failing and self.clock() - self.broker_ok_us >= self.broker_after_us

    @property
    def must_exit(self) -> bool:
        """Stalled for so long that only a restart helps."""
        return self.exit_after_us > 0 and self.stalled_for_us >= self.exit_after_us

    def problems(self) -> list[str]:
        """Why the worker is not live, in words for /readyz (empty: live)."""
        out = []
        if self.broker_unreachable:
            seconds = (self.clock() - self.broker_ok_us) / US_PER_SECOND
            out.append(f"Kafka unreachable for {seconds:.0f} s (no answer to a metadata request)")
        if self.stalled:
            seconds = (self.clock() - self.last_consumed_us) / US_PER_SECOND
            out.append(f"consumer stalled: {self.lag} records wait and nothing was consumed for {seconds:.0f} s")
        return out
