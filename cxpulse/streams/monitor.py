"""Faust's Monitor sensor with the per-record bookkeeping the worker never reads taken out.

Why: Faust calls its Monitor on every record, four times (in, stream in, stream out, out), and the Monitor
counts by topic, by stream and by task (a ``str()`` lookup per event), times each event and keeps the times in
a deque, for Faust's own ``/stats`` pages. cxpulse exports its own figures (``/metrics``, ``/api/v1/status``)
and reads none of these; in a profile of the worker they were about 4% of its main thread. What Faust itself
reads of the Monitor stays: ``stream_inbound_time`` (the consumer's "stream stopped processing" warning), and
every hook outside the per-record path (commits, sends, rebalances, tables) is Faust's own.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from faust.sensors import Monitor


class QuietMonitor(Monitor):
    """Set as the app's ``Monitor``: per record, only the time the stream last took one from its partition."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        self.stream_inbound_time[tp] = monotonic()
        return None

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None
