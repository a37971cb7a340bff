"""The demo's pressure (``cxpulse simulate --demo``): the busy part of the day, and staff that drifts.

Why: the centre file follows the real hour of day, so a demo started in the evening showed a quiet,
overstaffed centre: 100% service level, nobody waiting, nothing to look at. A demo must show what a
supervisor watches for at any hour: service level moving around its target, contacts waiting, some
abandoning, a breach now and then. Two things give that, both only in demo mode:

* **Busy hours.** Each queue's hour profile is replaced by its busy hours (those at least
  ``demo.busy_share`` of the peak) repeated in order, so every hour of the wall clock is a busy one.
* **Drifting staff.** Every ``demo.staffing_interval_seconds`` each queue is staffed with the Erlang C
  need for its forecast demand (the planner's figure for ``sl_target`` within ``sl_threshold_seconds``)
  times ``1 + offset``, where the offset is a slow random walk reflected into ``[-shortfall, +surplus]``:
  breaks, absences and late logins pull staff below the need for a while, then it recovers. The forecast
  is what a real intraday planner does: a moving average of the contacts that actually queued, repeats
  and transfers included (the file's arrival rate alone understates them).
"""

from __future__ import annotations

import random

from cxpulse.simulator.centre import Demo, Queue
from cxpulse.simulator.distributions import mean_of
from cxpulse.simulator.erlang import agents_for_service_level

_FORECAST_WEIGHT = 0.5
"""Share of the last interval in the forecast: recent enough to follow an hour's change, smooth enough that
one quiet interval does not send half the staff home."""


def busy_profile(profile: list[float] | None, share: float) -> list[float] | None:
    """24 hourly multipliers made of ``profile``'s busy hours only, repeated in their order of the day.

    ``None`` (a flat rate) stays ``None``: every hour is as busy as any other already.
    """
    if profile is None:
        return None
    peak = max(profile)
    busy = [value for value in profile if value >= share * peak]
    return [busy[hour % len(busy)] for hour in range(24)]


def handle_seconds(queue: Queue, answer_delay_mean: float) -> float:
    """Mean time an agent is taken by one contact: ring, talk, hold, wrap (what Erlang C calls 1/mu)."""
    return (
        answer_delay_mean
        + mean_of(queue.talk)
        + queue.hold_probability * mean_of(queue.hold)
        + mean_of(queue.wrap)
    )


class StaffingWalk:
    """How many agents one queue has, interval after interval: the Erlang C need times ``1 + offset``."""

    __slots__ = ("_rng", "_cfg", "_service_rate", "_threshold", "_target", "_interval_s", "forecast_per_hour", "offset")

    def __init__(
        self, queue: Queue, demo: Demo, rng: random.Random, *, answer_delay_mean: float, arrivals_per_hour: float
    ) -> None:
        self._rng = rng
        self._cfg = demo
        self._service_rate = 1.0 / max(handle_seconds(queue, answer_delay_mean), 1e-3)
        self._threshold = queue.staffing_threshold_seconds
        self._target = queue.sl_target
        self._interval_s = demo.staffing_interval_seconds
        self.forecast_per_hour = arrivals_per_hour
        self.offset = rng.uniform(-demo.shortfall, demo.surplus)

    def need(self) -> int:
        """The fewest agents that reach the target for the forecast demand (Erlang C, abandons ignored)."""
        return agents_for_service_level(self.forecast_per_hour / 3600.0, self._service_rate, self._threshold, self._target)

    def staffed(self) -> int:
        """Agents on duty for the current offset and forecast (at least one)."""
        return max(1, round(self.need() * (1.0 + self.offset)))

    def next_interval(self, queued_in_last_interval: int) -> int:
        """Update the forecast with what queued in the interval that ended, step the walk, return the staff."""
        observed = queued_in_last_interval * 3600.0 / self._interval_s
        self.forecast_per_hour += _FORECAST_WEIGHT * (observed - self.forecast_per_hour)
        low, high = -self._cfg.shortfall, self._cfg.surplus
        offset = self.offset + self._rng.gauss(0.0, self._cfg.step)
        while not low <= offset <= high:  # reflect at the bounds (terminates: each pass shrinks the excess)
            if high - low <= 0:
                offset = low
                break
            offset = 2 * low - offset if offset < low else 2 * high - offset
        self.offset = offset
        return self.staffed()
