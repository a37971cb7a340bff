"""The agents' side of a simulated centre: ``agent.state`` events (contract v2) and the breaks of each shift.

Why a roster beside the engine rather than states kept in the engine: the engine already knows, at its hook
points, the moments an agent's state changes (given a contact, wrap-up starting, free again, logging on or
off); the roster only turns those moments into events and keeps what the engine does not need without
agents: who is on which shift and which break is due. A run without agents never builds one, so its output
stays byte for byte what it was (the benchmarks depend on that).

States follow the contacts exactly: ``on_contact`` from the moment a contact is given to the agent (the ring
included) to the end of talk and hold, ``wrap_up`` for the wrap time, then ``available`` (or straight on to
the next contact); ``away`` with the break's reason; ``logged_out`` when demo staffing sends the agent home.
"""

from __future__ import annotations

import random
from typing import Any, Protocol

from cxpulse.simulator.centre import Centre
from cxpulse.simulator.clock import TimestampFormatter, seconds_to_ms
from cxpulse.simulator.events import AGENT_TOPIC, SimEvent

_FIRST_NAMES = (
    "Alex", "Sam", "Maria", "Jonas", "Aisha", "Tom", "Lena", "Ravi", "Chloe", "Mateo", "Yuki", "Omar", "Ines",
    "Noah", "Priya", "Lukas", "Sofia", "Kwame", "Emma", "Diego", "Hana", "Felix", "Zoe", "Arjun",
)
"""Made-up display names (``agent_name``) so that a wallboard showing agents has something to show."""


class QueueLike(Protocol):
    """What the roster needs of the engine's queue state."""

    name: str
    prefix: str
    teams: list[str]


class _Shift:
    """One agent's current shift: when it started, the next break of the profile, a break waiting for a free moment."""

    __slots__ = ("number", "start_ms", "next_break", "pending", "on")

    def __init__(self) -> None:
        self.number = 0  # bumped at each log-on: a break scheduled for an earlier shift is stale
        self.start_ms = 0
        self.next_break = 0
        self.pending = False
        self.on = False


class AgentRoster:
    """Writes the ``agent.state`` events of a run into the engine's output list, and keeps the agents' shifts."""

    def __init__(self, centre: Centre, tag: str, stamp: TimestampFormatter, rng: random.Random,
                 out: list[SimEvent]) -> None:
        self._tag = tag
        self._stamp = stamp
        self._rng = rng
        self._out = out
        self._names = centre.agent_names
        self._shift_ms = seconds_to_ms(centre.shifts.shift_seconds)
        self._breaks = sorted(centre.shifts.breaks, key=lambda item: item.after)
        self._durations = [item.duration.sampler(rng) for item in self._breaks]
        self._after_ms = [seconds_to_ms(item.after) for item in self._breaks]
        self._shifts: dict[tuple[str, int], _Shift] = {}
        self._event_no = 0

    # ------------------------------------------------------------------ events

    def emit(self, at_ms: int, queue: QueueLike, agent: int, state: str, reason: str | None = None) -> None:
        """One ``agent.state`` event (key: the agent id, as the contract asks of topic ``agent-events``)."""
        agent_id = f"{queue.prefix}-{agent:04d}"
        self._event_no += 1
        event: dict[str, Any] = {
            # "g" is no hex digit: these ids never equal a contact event's (tag + 12 hex digits)
            "event_id": f"{self._tag}g{self._event_no:011x}",
            "type": "agent.state",
            "ts": self._stamp(at_ms),
            "agent_id": agent_id,
            "state": state,
            "reason": reason,
            "queues": [queue.name],
            "team": queue.teams[agent % len(queue.teams)] if queue.teams else None,
            "agent_name": self._name(agent) if self._names else None,
        }
        self._out.append(SimEvent(at_ms, AGENT_TOPIC, agent_id, event))

    @staticmethod
    def _name(agent: int) -> str:
        first = _FIRST_NAMES[agent % len(_FIRST_NAMES)]
        return f"{first} {chr(65 + (agent // len(_FIRST_NAMES) + agent * 7) % 26)}."

    # ------------------------------------------------------------------ shifts and breaks

    def log_on(self, queue: QueueLike, agent: int, at_ms: int, *, run_start: bool) -> tuple[int, int] | None:
        """A shift starts (``run_start``: the agent has been on for a random part of it already).

        Returns (due time, shift number) of its next break, for the engine to schedule, or None."""
        shift = self._shifts.setdefault((queue.name, agent), _Shift())
        shift.number += 1
        shift.on, shift.pending, shift.next_break = True, False, 0
        elapsed = int(self._rng.random() * self._shift_ms) if run_start and self._breaks else 0
        shift.start_ms = at_ms - elapsed
        while shift.next_break < len(self._breaks) and shift.start_ms + self._after_ms[shift.next_break] < at_ms:
            shift.next_break += 1  # taken before the run started
        return self._next_due(shift, at_ms)

    def log_off(self, queue: QueueLike, agent: int, at_ms: int) -> None:
        """The agent goes home (demo staffing): ``logged_out``, and the shift's breaks are off."""
        shift = self._shifts.get((queue.name, agent))
        if shift is not None:
            shift.on = shift.pending = False
        self.emit(at_ms, queue, agent, "logged_out")

    def break_is_current(self, queue: QueueLike, agent: int, number: int) -> bool:
        """A scheduled break still belongs to the agent's shift (they did not log off and on meanwhile)."""
        shift = self._shifts.get((queue.name, agent))
        return shift is not None and shift.on and shift.number == number

    def defer_break(self, queue: QueueLike, agent: int) -> None:
        """The break fell due during a contact: it starts when the agent is free."""
        self._shifts[(queue.name, agent)].pending = True

    def break_pending(self, queue: QueueLike, agent: int) -> bool:
        shift = self._shifts.get((queue.name, agent))
        return shift is not None and shift.pending

    def take_break(self, queue: QueueLike, agent: int, at_ms: int) -> tuple[int, tuple[int, int] | None]:
        """``away`` with the break's reason; returns when the agent is back and (due, shift) of the next break."""
        shift = self._shifts[(queue.name, agent)]
        index = shift.next_break
        shift.pending = False
        shift.next_break += 1
        self.emit(at_ms, queue, agent, "away", self._breaks[index].reason)
        back_ms = at_ms + max(1, seconds_to_ms(self._durations[index]()))
        return back_ms, self._next_due(shift, back_ms)

    def _next_due(self, shift: _Shift, not_before_ms: int) -> tuple[int, int] | None:
        if shift.next_break >= len(self._breaks):
            return None
        return max(shift.start_ms + self._after_ms[shift.next_break], not_before_ms), shift.number
