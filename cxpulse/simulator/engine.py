"""The contact centre as a discrete-event simulation: contacts arrive, wait, are answered or give up.

Why a hand-rolled event loop over a heap: it is the textbook model behind Erlang C (Poisson arrivals, FIFO
queue, ``c`` identical agents, independent handle times), it is deterministic for a seed, and it yields
events in event-time order without ever touching Kafka, so the same core feeds a file, Kafka, or a test.

Per queue: arrivals are Poisson (rate piecewise constant by hour of the centre's day), a contact is given to
the longest-idle free agent or joins the back of the queue; a waiting customer abandons after an exponential
(or other) patience; with an ``answer_delay`` the assigned agent's phone rings (or the chat is picked up)
for that long before ``contact.answered``, and a customer may still hang up meanwhile; an agent talks,
maybe holds, wraps up, and then takes the next waiting contact. At the end a contact may be transferred (it
queues again elsewhere), resolved or not; unresolved and abandoned customers may come back later with the
same reason (a repeat contact), and some answer a survey whose scores fall with the wait and rise with
resolution. In demo mode (:mod:`cxpulse.simulator.demo`) the day is always busy and staffing drifts.

Agents: an agent is reserved from being assigned a contact (ring) to the end of its wrap-up, on one contact
at a time; in demo mode agents log on and off between contacts, never during one. With ``agents=True``
(:mod:`cxpulse.simulator.agents`) those moments become ``agent.state`` events: ``on_contact`` at
``_assign``, ``wrap_up`` when talk and hold are over (``_WRAP``), then ``available``, ``away`` (a break of
the centre's ``shifts``) or ``logged_out`` at ``_release``, and the log-ons of ``_log_on``. Agents on a
break take no contacts, so a run with breaks differs from one without; without agents nothing is drawn or
scheduled for them and the output is what it always was.

Feedback (contract v2): a share of detractor surveys is followed up (``survey.followed_up``) after a delay,
in demo mode (``demo.follow_up``) or when the centre asks for it (``surveys.follow_up``); the draws come
from a generator of their own, so the other events of the run do not move.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import itertools
import math
import random
from collections import deque
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator
from zoneinfo import ZoneInfo

from cxpulse.simulator.agents import AgentRoster
from cxpulse.simulator.centre import Centre, Queue
from cxpulse.simulator.clock import TimestampFormatter, seconds_to_ms
from cxpulse.simulator.demo import StaffingWalk, busy_profile
from cxpulse.simulator.distributions import ZERO, Distribution, Sampler, mean_of
from cxpulse.simulator.events import CONTACT_TOPIC, SURVEY_TOPIC, SimEvent
from cxpulse.simulator.invalid import InvalidEventMaker

# heap actions (ints: cheap to compare, and ties are broken by a sequence number before them)
_ARRIVAL, _REPEAT, _ABANDON, _END, _SURVEY, _ANSWER, _STAFF, _WRAP, _BREAK, _BACK, _FOLLOW_UP = range(11)

_UNRESOLVED_DISPOSITIONS = ("follow-up-needed", "escalated", "callback-promised", "information-given")
_GOOD_COMMENTS = ("Quick and friendly, thank you.", "Sorted in one call.", "Very helpful agent.")
_BAD_COMMENTS = ("Waited far too long.", "Still not fixed.", "I was passed around between departments.")


def run_tag(seed: int, start_ms: int) -> str:
    """Eight hex digits naming a run: ids of two runs differ unless seed and start are the same."""
    return hashlib.blake2b(f"{seed}:{start_ms}".encode(), digest_size=4).hexdigest()


class _QueueState:
    """A queue at run time: its agents (free, busy), its waiting line and its samplers."""

    __slots__ = (
        "name", "channel", "priority", "agents", "fresh", "free", "waiting", "teams", "prefix",
        "talk", "hold", "hold_p", "wrap", "patience", "resolve_p", "transfer_p", "transfer_to",
        "transfer_cum", "reasons", "reason_cum", "repeat_p", "repeat_delay", "tolerance_ms",
        "base_rate", "profile", "next_arrival", "seg_end", "seg_rate", "ring", "next_id", "off", "leaving",
        "queued", "staffed", "staffing",
    )

    def __init__(self, name: str, cfg: Queue, rng: random.Random, agents: int, rate_per_ms: float,
                 profile: list[float] | None, ring: Sampler | None) -> None:
        self.name = name
        self.channel = cfg.channel
        self.priority = cfg.priority
        self.agents = agents
        self.fresh = 0  # agents 0..fresh-1 have worked; the others have been idle since the start
        self.free: deque[int] = deque()  # agents who finished, longest idle first
        self.waiting: deque[_Visit] = deque()  # FIFO; abandoned visits are skipped when reached
        self.teams = list(cfg.teams)
        self.prefix = cfg.agent_prefix or f"ag-{name}"
        self.talk = cfg.talk.sampler(rng)
        self.hold = cfg.hold.sampler(rng)
        self.hold_p = cfg.hold_probability
        self.wrap = cfg.wrap.sampler(rng)
        self.patience = cfg.patience.sampler(rng) if cfg.patience is not None else None
        self.resolve_p = cfg.resolve_probability
        self.transfer_p = cfg.transfer.probability
        self.transfer_to = list(cfg.transfer.to)
        self.transfer_cum = list(itertools.accumulate(cfg.transfer.to.values()))
        self.reasons: list[str | None] = list(cfg.reasons) or [None]
        self.reason_cum = list(itertools.accumulate(cfg.reasons.values())) or [1.0]
        self.repeat_p = cfg.repeat.probability
        self.repeat_delay = cfg.repeat.delay.sampler(rng)
        self.tolerance_ms = cfg.answer_tolerance_seconds * 1000.0
        self.base_rate = rate_per_ms
        self.profile = profile
        self.next_arrival = 0.0  # float ms: the Poisson clock must not accumulate rounding
        self.seg_end = -math.inf  # end of the hour whose rate seg_rate is
        self.seg_rate = 0.0
        self.ring = ring  # ring and pick-up time, or None: answered the moment an agent is assigned
        # demo staffing: agents on duty and not leaving, who logged off (longest off first), how many leave
        # after their contact, the next never-used id, visits queued in this staffing interval, the walk
        self.staffed = agents
        self.next_id = agents
        self.off: deque[int] = deque()
        self.leaving = 0
        self.queued = 0
        self.staffing: StaffingWalk | None = None

    def take_agent(self) -> int | None:
        """The longest-idle free agent (never-used agents first), or ``None`` when all are busy."""
        if self.fresh < self.agents:
            self.fresh += 1
            return self.fresh - 1
        return self.free.popleft() if self.free else None


class _Contact:
    """One customer interaction, across its queue visits (transfers)."""

    __slots__ = ("contact_id", "customer_id", "customer_no", "reason", "home", "transfers", "wait_ms", "resolved")

    def __init__(self, contact_id: str, customer_id: str, customer_no: int, reason: str | None,
                 home: _QueueState) -> None:
        self.contact_id = contact_id
        self.customer_id = customer_id
        self.customer_no = customer_no
        self.reason = reason
        self.home = home  # where the customer comes back to when they contact again
        self.transfers = 0
        self.wait_ms = 0  # total wait over all visits, for the survey's mood
        self.resolved = False


class _Visit:
    """One pass of a contact through a queue (queued -> answered | abandoned)."""

    __slots__ = ("contact", "queue", "queued_ms", "waiting", "agent")

    def __init__(self, contact: _Contact, queue: _QueueState, queued_ms: int) -> None:
        self.contact = contact
        self.queue = queue
        self.queued_ms = queued_ms
        self.waiting = True  # until answered or abandoned (a ringing contact is still waiting)
        self.agent: int | None = None  # the agent reserved for it while it rings


class Simulation:
    """A seeded run of a centre from ``start_ms``; iterate :meth:`events` for its records in time order.

    ``arrival_scale`` and ``agent_scale`` multiply every queue's arrival rate and staffing (load mode
    scales both, so a bigger centre is equally busy); ``flat_profile`` ignores the hour profile.
    ``invalid_rate`` mixes that fraction of bad events (see :mod:`cxpulse.simulator.invalid`) in.
    ``demo`` keeps the centre busy at any hour with drifting staff (:mod:`cxpulse.simulator.demo`); the
    file's ``agents`` are then replaced by the demo's staffing, and the demo's own queues join.
    ``agents`` writes the agents' ``agent.state`` events (topic ``agent-events``), breaks included.
    """

    def __init__(
        self,
        centre: Centre,
        *,
        start_ms: int,
        seed: int,
        arrival_scale: float = 1.0,
        agent_scale: float = 1.0,
        flat_profile: bool = False,
        invalid_rate: float = 0.0,
        demo: bool = False,
        agents: bool = False,
    ) -> None:
        if not 0.0 <= invalid_rate <= 1.0:
            raise ValueError(f"invalid_rate must be in [0, 1], got {invalid_rate}")
        if demo and flat_profile:
            raise ValueError("demo mode keeps the busy hours of the profile: it cannot be flat too")
        self.centre = centre
        self.start_ms = start_ms
        self.tag = run_tag(seed, start_ms)
        self._rng = random.Random(seed)
        self._zone = ZoneInfo(centre.timezone)
        self._stamp = TimestampFormatter()
        self._heap: list[tuple[int, int, int, Any]] = []
        self._seq = itertools.count()
        self._event_no = itertools.count()
        self._contact_no = itertools.count(1)
        self._customer_no = itertools.count(1)
        self._out: list[SimEvent] = []
        self._invalid_rate = invalid_rate
        self._survey_delay = centre.surveys.delay.sampler(self._rng)
        queues = centre.queues_for(demo)
        first = next(iter(queues.items()))
        self._invalid = InvalidEventMaker(random.Random(f"invalid:{seed}"), self.tag, (first[0], first[1].channel))
        self._invalid_rng = random.Random(f"invalid-draw:{seed}")
        self.queues: dict[str, _QueueState] = {}
        delays: dict[str, Distribution | None] = {}
        for name, cfg in queues.items():
            profile = None if flat_profile else (cfg.hour_profile or centre.hour_profile)
            if demo:
                profile = busy_profile(profile, centre.demo.busy_share)
            staff = max(1, math.ceil(cfg.agents * agent_scale - 1e-9))
            rate = cfg.arrivals_per_hour * arrival_scale / 3_600_000.0
            delay = cfg.answer_delay if cfg.answer_delay is not None else centre.answer_delay
            if delay == ZERO:
                delay = None  # fixed 0 switches it off, as it does hold and wrap-up
            delays[name] = delay
            ring = delay.sampler(self._rng) if delay is not None else None
            self.queues[name] = _QueueState(name, cfg, self._rng, staff, rate, profile, ring)
        for state in self.queues.values():
            state.next_arrival = float(start_ms)
            self._schedule_arrival(state)
        self._staffing_ms = 0
        if demo:
            staffing_rng = random.Random(f"staffing:{seed}")  # the walk does not shift the centre's own draws
            self._staffing_ms = seconds_to_ms(centre.demo.staffing_interval_seconds)
            for name, state in self.queues.items():
                delay = delays[name]
                walk = StaffingWalk(
                    queues[name], centre.demo, staffing_rng,
                    answer_delay_mean=mean_of(delay) if delay is not None else 0.0,
                    arrivals_per_hour=state.seg_rate * 3_600_000.0,
                )
                state.staffing = walk
                state.agents = state.next_id = state.staffed = walk.staffed()
            self._push(start_ms + self._staffing_ms, _STAFF, None)
        follow_up = centre.demo.follow_up if demo and centre.demo.follow_up is not None else centre.surveys.follow_up
        self._follow_up_p = follow_up.probability if follow_up is not None else 0.0
        self._follow_up_rng = random.Random(f"follow-up:{seed}")
        self._follow_up_delay = follow_up.delay.sampler(self._follow_up_rng) if follow_up is not None else None
        self._follow_up_no = 0
        self._roster: AgentRoster | None = None
        if agents:
            self._roster = AgentRoster(centre, self.tag, self._stamp, random.Random(f"agents:{seed}"), self._out)
            for state in self.queues.values():
                # every agent is idle at the start, in id order: the order the fresh agents would be taken in,
                # but kept in ``free`` so that one can go on a break before their first contact
                state.free.extend(range(state.agents))
                state.fresh = state.agents
                for agent in range(state.agents):
                    self._roster.emit(start_ms, state, agent, "available")
                    self._schedule_break(state, agent, self._roster.log_on(state, agent, start_ms, run_start=True))

    # ---------------------------------------------------------------- scheduling

    def _push(self, at_ms: int, action: int, payload: Any) -> None:
        heapq.heappush(self._heap, (at_ms, next(self._seq), action, payload))

    def _hour_segment(self, state: _QueueState, at_ms: float) -> None:
        """Set the queue's arrival rate for the local hour containing ``at_ms`` and when that hour ends."""
        if state.profile is None:
            state.seg_end, state.seg_rate = math.inf, state.base_rate
            return
        local = datetime.fromtimestamp(at_ms / 1000.0, self._zone)
        hour_start = local.replace(minute=0, second=0, microsecond=0)
        end = (hour_start + timedelta(hours=1)).astimezone(timezone.utc).timestamp() * 1000.0
        state.seg_end = end if end > at_ms else at_ms + 3_600_000.0
        state.seg_rate = state.base_rate * state.profile[local.hour]

    def _schedule_arrival(self, state: _QueueState) -> None:
        """Next Poisson arrival; exact for a rate that is constant within each hour (memorylessness)."""
        t = state.next_arrival
        for _ in range(24 * 400):  # a profile has a positive hour, so this ends well before
            if t >= state.seg_end:
                self._hour_segment(state, t)
            if state.seg_rate > 0:
                candidate = t + self._rng.expovariate(state.seg_rate)
                if candidate < state.seg_end:
                    state.next_arrival = candidate
                    self._push(int(candidate), _ARRIVAL, state)
                    return
            if state.seg_end == math.inf:
                return  # a queue with no arrivals at all
            t = state.seg_end
        raise RuntimeError(f"queue {state.name}: no arrivals within 400 days")  # pragma: no cover

    # ---------------------------------------------------------------- emitting

    def _emit(self, at_ms: int, topic: str, contact_id: str, event: dict[str, Any]) -> None:
        record = SimEvent(at_ms, topic, contact_id, event)
        self._out.append(record)
        if self._invalid_rate and self._invalid_rng.random() < self._invalid_rate:
            self._out.append(self._invalid.make(record))

    def _envelope(self, kind: str, at_ms: int, contact: _Contact, state: _QueueState) -> dict[str, Any]:
        return {
            "event_id": f"{self.tag}{next(self._event_no):012x}",
            "type": kind,
            "ts": self._stamp(at_ms),
            "contact_id": contact.contact_id,
            "customer_id": contact.customer_id,
            "channel": state.channel,
            "queue": state.name,
        }

    # ---------------------------------------------------------------- contact lifecycle

    def _new_contact(self, state: _QueueState, customer_no: int | None, reason: str | None) -> _Contact:
        if customer_no is None:
            customer_no = next(self._customer_no)
            reason = state.reasons[bisect.bisect(state.reason_cum, self._rng.random() * state.reason_cum[-1])]
        contact_id = f"ct-{self.tag}-{next(self._contact_no):07d}"
        return _Contact(contact_id, f"cust-{self.tag}-{customer_no:06d}", customer_no, reason, state)

    def _enqueue(self, contact: _Contact, state: _QueueState, at_ms: int) -> None:
        event = self._envelope("contact.queued", at_ms, contact, state)
        event["reason"] = contact.reason
        if state.priority is not None:
            event["priority"] = state.priority
        self._emit(at_ms, CONTACT_TOPIC, contact.contact_id, event)
        state.queued += 1
        visit = _Visit(contact, state, at_ms)
        agent = state.take_agent()
        if agent is not None:
            answer_ms = self._assign(visit, agent, at_ms)
            if answer_ms > at_ms and state.patience is not None:  # it rings: the customer may hang up first
                give_up_ms = at_ms + seconds_to_ms(state.patience())
                if give_up_ms < answer_ms:
                    self._push(give_up_ms, _ABANDON, visit)
            return
        state.waiting.append(visit)
        if state.patience is not None:
            self._push(at_ms + seconds_to_ms(state.patience()), _ABANDON, visit)

    def _assign(self, visit: _Visit, agent: int, at_ms: int) -> int:
        """Give the contact to ``agent``: answered now, or after the ring when the queue has an answer delay.

        Returns when it will be answered. The agent is reserved for the contact (``on_contact``) from now on.
        """
        if self._roster is not None:
            self._roster.emit(at_ms, visit.queue, agent, "on_contact")
        ring = visit.queue.ring
        if ring is None:
            self._answer(visit, agent, at_ms)
            return at_ms
        visit.agent = agent
        answer_ms = at_ms + seconds_to_ms(ring())
        self._push(answer_ms, _ANSWER, visit)
        return answer_ms

    def _answer(self, visit: _Visit, agent: int, at_ms: int) -> None:
        visit.waiting = False
        state, contact = visit.queue, visit.contact
        contact.wait_ms += at_ms - visit.queued_ms
        agent_id = f"{state.prefix}-{agent:04d}"
        event = self._envelope("contact.answered", at_ms, contact, state)
        event["agent_id"] = agent_id
        event["team"] = state.teams[agent % len(state.teams)] if state.teams else None
        self._emit(at_ms, CONTACT_TOPIC, contact.contact_id, event)
        talk = seconds_to_ms(state.talk())
        hold = seconds_to_ms(state.hold()) if state.hold_p and self._rng.random() < state.hold_p else 0
        wrap = seconds_to_ms(state.wrap())
        if self._roster is not None and wrap:
            self._push(at_ms + talk + hold, _WRAP, (state, agent))
        self._push(at_ms + talk + hold + wrap, _END, (visit, agent, agent_id, talk, hold, wrap))

    def _abandon(self, visit: _Visit, at_ms: int) -> None:
        if not visit.waiting:
            return  # answered before their patience ran out
        visit.waiting = False
        contact = visit.contact
        contact.wait_ms += at_ms - visit.queued_ms
        event = self._envelope("contact.abandoned", at_ms, contact, visit.queue)
        self._emit(at_ms, CONTACT_TOPIC, contact.contact_id, event)
        if visit.agent is not None:  # hung up while it rang: the reserved agent is free again
            self._release(visit.queue, visit.agent, at_ms)
        self._maybe_repeat(contact, visit.queue, at_ms)

    def _end(self, payload: tuple[_Visit, int, str, int, int, int], at_ms: int) -> None:
        visit, agent, agent_id, talk, hold, wrap = payload
        state, contact = visit.queue, visit.contact
        rng = self._rng
        transferred = (
            state.transfer_p > 0
            and contact.transfers < self.centre.max_transfers
            and rng.random() < state.transfer_p
        )
        resolved = not transferred and rng.random() < state.resolve_p
        if transferred:
            disposition = "transferred"
        elif resolved:
            disposition = "resolved"
        else:
            disposition = _UNRESOLVED_DISPOSITIONS[int(rng.random() * len(_UNRESOLVED_DISPOSITIONS))]
        event = self._envelope("contact.ended", at_ms, contact, state)
        event.update(
            agent_id=agent_id,
            talk_seconds=talk / 1000,
            hold_seconds=hold / 1000,
            wrap_seconds=wrap / 1000,
            resolved=resolved,
            transferred=transferred,
            disposition=disposition,
        )
        self._emit(at_ms, CONTACT_TOPIC, contact.contact_id, event)
        if transferred:
            contact.transfers += 1
            target = state.transfer_to[bisect.bisect(state.transfer_cum, rng.random() * state.transfer_cum[-1])]
            self._enqueue(contact, self.queues[target], at_ms)
        else:
            contact.resolved = resolved
            surveys = self.centre.surveys
            if surveys.response_probability and rng.random() < surveys.response_probability:
                self._push(at_ms + seconds_to_ms(self._survey_delay()), _SURVEY, (contact, state))
            if not resolved:
                self._maybe_repeat(contact, state, at_ms)
        self._release(state, agent, at_ms)

    def _release(self, state: _QueueState, agent: int, at_ms: int) -> None:
        """The agent is free: they log off if staffing is being cut, go on a break that fell due meanwhile,
        else take the longest-waiting contact or idle."""
        roster = self._roster
        if state.leaving:
            state.leaving -= 1
            state.off.append(agent)
            if roster is not None:
                roster.log_off(state, agent, at_ms)
            return
        if roster is not None and roster.break_pending(state, agent):
            self._take_break(state, agent, at_ms)
            return
        waiting = state.waiting
        while waiting:
            visit = waiting.popleft()
            if visit.waiting:
                self._assign(visit, agent, at_ms)
                return
        state.free.append(agent)
        if roster is not None:
            roster.emit(at_ms, state, agent, "available")

    # ---------------------------------------------------------------- agents' breaks (with agents only)

    def _schedule_break(self, state: _QueueState, agent: int, due: tuple[int, int] | None) -> None:
        if due is not None:
            self._push(due[0], _BREAK, (state, agent, due[1]))

    def _break_due(self, state: _QueueState, agent: int, shift: int, at_ms: int) -> None:
        """A break falls due: an idle agent goes now, a busy one when their contact is done."""
        roster = self._roster
        assert roster is not None
        if not roster.break_is_current(state, agent, shift):
            return  # they logged off (and maybe on again) since it was scheduled
        if agent in state.free:
            state.free.remove(agent)
            self._take_break(state, agent, at_ms)
        else:
            roster.defer_break(state, agent)

    def _take_break(self, state: _QueueState, agent: int, at_ms: int) -> None:
        assert self._roster is not None
        back_ms, due = self._roster.take_break(state, agent, at_ms)
        self._push(back_ms, _BACK, (state, agent))
        self._schedule_break(state, agent, due)

    # ---------------------------------------------------------------- demo staffing

    def _restaff(self, at_ms: int) -> None:
        """Every queue's staffing interval ended: its walk gives the new staff, the next interval is scheduled."""
        for state in self.queues.values():
            assert state.staffing is not None
            self._staff(state, state.staffing.next_interval(state.queued), at_ms)
            state.queued = 0
        self._push(at_ms + self._staffing_ms, _STAFF, None)

    def _staff(self, state: _QueueState, target: int, at_ms: int) -> None:
        """Bring the agents on duty to ``target``: nobody is taken off a contact, busy leavers go when done."""
        change = target - state.staffed
        state.staffed = target
        if change > 0:
            back = min(state.leaving, change)  # those about to leave stay after all
            state.leaving -= back
            for _ in range(change - back):
                self._log_on(state, at_ms)
            return
        cut = -change
        never_used = min(cut, state.agents - state.fresh)  # idle since the start: they simply never appear
        state.agents -= never_used
        cut -= never_used
        while cut and state.free:
            agent = state.free.popleft()  # the longest idle goes first
            state.off.append(agent)
            if self._roster is not None:
                self._roster.log_off(state, agent, at_ms)
            cut -= 1
        state.leaving += cut

    def _log_on(self, state: _QueueState, at_ms: int) -> None:
        """One more agent on duty: back from a break (longest off first) or new; they take a waiting contact."""
        if state.off:
            agent = state.off.popleft()
        else:
            agent = state.next_id
            state.next_id += 1
        if self._roster is not None:
            self._schedule_break(state, agent, self._roster.log_on(state, agent, at_ms, run_start=False))
        self._release(state, agent, at_ms)

    def _maybe_repeat(self, contact: _Contact, state: _QueueState, at_ms: int) -> None:
        """An unresolved (or abandoned) customer may come back with the same reason, to the same line."""
        if state.repeat_p and self._rng.random() < state.repeat_p:
            self._push(at_ms + seconds_to_ms(state.repeat_delay()), _REPEAT, contact)

    def _survey(self, contact: _Contact, state: _QueueState, at_ms: int) -> None:
        """Scores: goodwill starts high, resolution lifts it, waiting beyond tolerance and transfers sink it."""
        rng, cfg = self._rng, self.centre.surveys
        mood = 0.55 + (0.3 if contact.resolved else -0.15)
        mood -= 0.12 * min(contact.wait_ms / state.tolerance_ms, 3.0) + 0.08 * contact.transfers
        mood = min(1.0, max(0.0, mood + rng.gauss(0.0, 0.15)))
        nps: int | None = round(10 * mood) if rng.random() < cfg.nps_probability else None
        csat: int | None = 1 + round(4 * mood) if rng.random() < cfg.csat_probability else None
        if nps is None and csat is None:
            csat = 1 + round(4 * mood)
        comment = None
        if cfg.comment_probability and rng.random() < cfg.comment_probability:
            pool = _GOOD_COMMENTS if mood >= 0.6 else _BAD_COMMENTS
            comment = pool[int(rng.random() * len(pool))]
        event = {
            "event_id": f"{self.tag}{next(self._event_no):012x}",
            "type": "survey.response",
            "ts": self._stamp(at_ms),
            "contact_id": contact.contact_id,
            "customer_id": contact.customer_id,
            "nps": nps,
            "csat": csat,
            "comment": comment,
        }
        self._emit(at_ms, SURVEY_TOPIC, contact.contact_id, event)
        if self._follow_up_p and ((nps is not None and nps <= 6) or (csat is not None and csat <= 2)):
            if self._follow_up_rng.random() < self._follow_up_p:
                assert self._follow_up_delay is not None
                due_ms = at_ms + max(1, seconds_to_ms(self._follow_up_delay()))
                self._push(due_ms, _FOLLOW_UP, (contact, event["event_id"]))

    def _follow_up(self, contact: _Contact, survey_event_id: str, at_ms: int) -> None:
        """Someone at the centre answers a detractor's survey (contract v2 ``survey.followed_up``).

        Not mixed with invalid events (``--invalid-rate`` spoils contact and survey responses only)."""
        self._follow_up_no += 1
        event = {
            # "u" is no hex digit: never the id of a contact event or survey response (tag + 12 hex digits)
            "event_id": f"{self.tag}u{self._follow_up_no:011x}",
            "type": "survey.followed_up",
            "ts": self._stamp(at_ms),
            "contact_id": contact.contact_id,
            "customer_id": contact.customer_id,
            "survey_event_id": survey_event_id,
            "agent_id": None,
        }
        self._out.append(SimEvent(at_ms, SURVEY_TOPIC, contact.contact_id, event))

    # ---------------------------------------------------------------- main loop

    def events(self, until_ms: int | None = None) -> Iterator[SimEvent]:
        """Records with ``at_ms < until_ms`` (forever when ``None``), in event-time order.

        May be called again with a later ``until_ms`` to continue the same run.
        """
        heap, out = self._heap, self._out
        pop = heapq.heappop
        limit = math.inf if until_ms is None else until_ms
        while heap and heap[0][0] < limit:
            at_ms, _, action, payload = pop(heap)
            if action == _END:
                self._end(payload, at_ms)
            elif action == _ARRIVAL:
                self._enqueue(self._new_contact(payload, None, None), payload, at_ms)
                self._schedule_arrival(payload)
            elif action == _ABANDON:
                self._abandon(payload, at_ms)
            elif action == _ANSWER:
                if payload.waiting:  # else the customer hung up while it rang
                    self._answer(payload, payload.agent, at_ms)
            elif action == _SURVEY:
                self._survey(payload[0], payload[1], at_ms)
            elif action == _STAFF:
                self._restaff(at_ms)
            elif action == _WRAP:
                assert self._roster is not None
                self._roster.emit(at_ms, payload[0], payload[1], "wrap_up")
            elif action == _BREAK:
                self._break_due(payload[0], payload[1], payload[2], at_ms)
            elif action == _BACK:
                self._release(payload[0], payload[1], at_ms)
            elif action == _FOLLOW_UP:
                self._follow_up(payload[0], payload[1], at_ms)
            else:  # _REPEAT
                previous: _Contact = payload
                contact = self._new_contact(previous.home, previous.customer_no, previous.reason)
                self._enqueue(contact, previous.home, at_ms)
            if out:
                yield from out
                out.clear()
