"""Asterisk's ``queue_log`` (app_queue) to contract events: one line in, zero or more validated events out.

The format (``docs/sources.md`` has the whole table and the mapping): ``epoch|uniqueid|queue|agent|event|data...``
where ``data`` are the event's own parameters, e.g. ``CONNECT`` ``holdtime|bridged uniqueid|ringtime``. Two
shapes exist: the file Asterisk writes carries exactly the event's parameters (a CONNECT line has 8 fields,
a BLINDTRANSFER line 10), while the realtime/database layout and the tools that export it (``data1..data5``)
pad every line to 10 fields with empty ones. Trailing empty fields are therefore dropped before a line is
read, and older parameter lists (ENTERQUEUE without the position, COMPLETE* without origposition, TRANSFER of
Asterisk 1.4) are accepted too.

Why a state: a line alone does not carry every field of its event. The caller id (-> ``customer_id``)
appears only on ENTERQUEUE, and an agent's ``agent.state`` depends on its queues, its pause and its calls.
The state is small (open calls, known agents), serialisable (:meth:`QueueLogConverter.state`), and saved with
the file position by ``--follow``, so a restart continues exactly where the acknowledged lines ended.

Why deterministic event ids (``<uniqueid>-<EVENT>-<16 hex of the line's SHA-256>``): a restart, a re-read
after a crash or the same file converted twice produce the same ids, which the pipeline drops as duplicates.

Privacy: the caller id becomes ``customer_id`` (the contract's personal field); nothing here logs a caller
id, a customer id or an agent name; rejection reasons name uniqueids, queues and events, never those.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cxpulse.models.events import format_ts
from cxpulse.sources.records import AGENT, Produced, Rejection, validated
from cxpulse.units import US_PER_SECOND

HEADER_FIELDS = 5
"""epoch | uniqueid | queue | agent | event"""
_EPOCH = re.compile(r"^\d{1,12}(\.\d{1,6})?$")
_WAITING, _TALKING, _TRANSFERRED, _LEFT = "waiting", "talking", "transferred", "left"
CALL_MEMORY_US = 24 * 3600 * US_PER_SECOND
"""a call not seen for a day of event time is forgotten (a queue_log never closes some calls: a crash)"""
_NO_CALLER = {"", "anonymous", "unknown", "<unknown>", "restricted", "private", "unavailable"}

ABANDON_EVENTS = ("ABANDON", "EXITWITHTIMEOUT", "EXITWITHKEY", "EXITEMPTY")
COMPLETE_EVENTS = ("COMPLETECALLER", "COMPLETEAGENT")
TRANSFER_EVENTS = ("BLINDTRANSFER", "ATTENDEDTRANSFER", "TRANSFER")
AGENT_EVENTS = ("ADDMEMBER", "REMOVEMEMBER", "PAUSE", "PAUSEALL", "UNPAUSE", "UNPAUSEALL", "AGENTLOGIN",
                "AGENTLOGOFF", "AGENTCALLBACKLOGIN", "AGENTCALLBACKLOGOFF")
IGNORED_EVENTS = frozenset({
    "RINGNOANSWER", "RINGCANCELED", "CONFIGRELOAD", "QUEUESTART", "SYSCOMPAT", "AGENTDUMP", "DID", "INFO",
    "PENALTY", "MEMBER-PAUSED", "JOINEMPTY"})
"""events that exist in queue_log but say nothing the contract carries (a ring not answered, a reload...)"""


@dataclass(frozen=True, slots=True)
class QueueLogLine:
    """The fields of one line; ``data`` without trailing empty fields (the padded 10-field variant)."""

    raw: bytes
    ts_us: int
    uniqueid: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...]

    @property
    def ts(self) -> str:
        return format_ts(self.ts_us)

    def event_id(self, suffix: str = "") -> str:
        digest = hashlib.sha256(self.raw).hexdigest()[:16]
        return f"{self.uniqueid[:64]}-{self.event[:32]}-{digest}{suffix}"

    def seconds(self, index: int, name: str) -> float:
        """Parameter ``index`` as a whole number of seconds (``name`` for the reason)."""
        if len(self.data) <= index or not self.data[index].strip().isdigit():
            shown = repr(self.data[index][:20]) if len(self.data) > index else "missing"
            raise Rejection("bad_field", f"{self.event}: {name} (parameter {index + 1}) is not a number of seconds: {shown}")
        return float(int(self.data[index]))


def parse_line(raw: bytes) -> QueueLogLine:
    """Split one line; raises :class:`Rejection` when it is not a queue_log line at all."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejection("not_utf8", f"not UTF-8 (byte {exc.start})") from None
    text = text.rstrip("\r\n")
    fields = text.split("|")
    if len(fields) < HEADER_FIELDS:
        raise Rejection("bad_line", f"{len(fields)} fields; a queue_log line has at least {HEADER_FIELDS} "
                                    "(epoch|uniqueid|queue|agent|event)")
    epoch = fields[0].strip()
    if not _EPOCH.match(epoch):
        raise Rejection("bad_line", f"the first field is not a UNIX time: {epoch[:24]!r}")
    whole, _, frac = epoch.partition(".")
    ts_us = int(whole) * US_PER_SECOND + (int(frac.ljust(6, "0")) if frac else 0)
    data = list(fields[HEADER_FIELDS:])
    while data and data[-1] == "":
        data.pop()
    return QueueLogLine(raw, ts_us, fields[1].strip(), fields[2].strip(), fields[3].strip(),
                        fields[4].strip().upper(), tuple(data))


@dataclass
class _Call:
    customer_id: str
    queue: str
    phase: str
    agent: str | None
    seen_us: int


@dataclass
class _Agent:
    logged_in: bool = False
    queues: list[str] = field(default_factory=list)
    paused: bool = False
    pause_reason: str | None = None
    calls: int = 0
    emitted: tuple[str, str | None, tuple[str, ...]] | None = None

    def effective(self) -> tuple[str, str | None, tuple[str, ...]]:
        """(state, reason, queues) of events.md: logged out without login and queues; a call wins over a pause."""
        queues = tuple(self.queues)
        if not self.logged_in and not queues:
            return ("logged_out", None, ())
        if self.calls > 0:
            return ("on_contact", None, queues)
        if self.paused:
            return ("away", self.pause_reason, queues)
        return ("available", None, queues)


def _serves(agent: _Agent, queue: str) -> None:
    """A call from (or a pause in) a queue shows the agent is logged in and serves it, even without an
    ADDMEMBER line: static members (queues.conf) are never added, and a log read from its middle has lost them."""
    agent.logged_in = True
    if queue not in agent.queues:
        agent.queues = sorted([*agent.queues, queue])


@dataclass(slots=True)
class Conversion:
    """What one line became: events (validated), or ``ignored`` naming what it was."""

    events: list[Produced]
    ignored: str | None = None


class QueueLogConverter:
    """Converts lines in file order; see the module docstring for why it keeps state."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self._calls: dict[str, _Call] = {}
        self._agents: dict[str, _Agent] = {}
        if state:
            self._calls = {uid: _Call(*values) for uid, values in state.get("calls", {}).items()}
            for name, values in state.get("agents", {}).items():
                agent = _Agent(**{k: v for k, v in values.items() if k != "emitted"})
                emitted = values.get("emitted")
                agent.emitted = (emitted[0], emitted[1], tuple(emitted[2])) if emitted else None
                self._agents[name] = agent

    def state(self) -> dict[str, Any]:
        """JSON-ready state, what :meth:`__init__` takes back."""
        return {
            "calls": {uid: [c.customer_id, c.queue, c.phase, c.agent, c.seen_us] for uid, c in self._calls.items()},
            "agents": {name: {"logged_in": a.logged_in, "queues": a.queues, "paused": a.paused,
                              "pause_reason": a.pause_reason, "calls": a.calls,
                              "emitted": list(a.emitted) if a.emitted else None}
                       for name, a in self._agents.items()},
        }

    def convert(self, raw: bytes) -> Conversion:
        """Events of one line (state updated only when every event is valid); raises :class:`Rejection`."""
        line = parse_line(raw)
        if line.event in IGNORED_EVENTS:
            return Conversion([], ignored=line.event)
        handler = _HANDLERS.get(line.event)
        if handler is None:
            raise Rejection("unknown_event", f"unknown queue_log event {line.event[:40]!r}")
        events, commit = handler(self, line)
        produced = [validated(event) for event in events]
        commit()
        self._forget_old(line.ts_us)
        return Conversion(produced)

    # -- contact lines --------------------------------------------------------------------------------------
    def _contact(self, line: QueueLogLine, kind: str, customer_id: str, queue: str, **extra: Any) -> dict[str, Any]:
        return {"event_id": line.event_id(), "type": kind, "ts": line.ts, "contact_id": line.uniqueid,
                "customer_id": customer_id, "channel": "voice", "queue": queue, **extra}

    def _call(self, line: QueueLogLine, phase: str) -> _Call:
        call = self._calls.get(line.uniqueid)
        if call is None:
            raise Rejection("lifecycle", f"{line.event} for uniqueid {line.uniqueid[:64]!r}, whose ENTERQUEUE was not read")
        if call.phase != phase:
            raise Rejection("lifecycle", f"{line.event} for uniqueid {line.uniqueid[:64]!r}, which is {call.phase} "
                                         f"(expected {phase})")
        return call

    def _enterqueue(self, line: QueueLogLine) -> tuple[list[dict[str, Any]], Callable[[], None]]:
        call = self._calls.get(line.uniqueid)
        if call is not None and call.phase not in (_TRANSFERRED, _LEFT):
            raise Rejection("lifecycle", f"ENTERQUEUE for uniqueid {line.uniqueid[:64]!r}, which is already {call.phase}")
        caller = line.data[1].strip() if len(line.data) > 1 else ""
        if call is not None:
            customer = call.customer_id  # the same call again (after a transfer or a timeout): the same customer
        elif caller.lower() in _NO_CALLER:
            customer = f"unknown-caller-{line.uniqueid}"  # no number: a customer of its own, never a repeat
        else:
            customer = caller
        event = self._contact(line, "contact.queued", customer, line.queue, reason=None)

        def commit() -> None:
            self._calls[line.uniqueid] = _Call(customer, line.queue, _WAITING, None, line.ts_us)

        return [event], commit

    def _connect(self, line: QueueLogLine) -> tuple[list[dict[str, Any]], Callable[[], None]]:
        call = self._call(line, _WAITING)
        if line.queue != call.queue:
            raise Rejection("lifecycle", f"CONNECT in queue {line.queue[:64]!r} for uniqueid {line.uniqueid[:64]!r}, "
                                         f"which waits in queue {call.queue[:64]!r}")
        events = [self._contact(line, "contact.answered", call.customer_id, call.queue, agent_id=line.agent, team=None)]
        agent = self._agent_copy(line.agent)
        agent.calls += 1
        _serves(agent, line.queue)
        events += self._agent_event(line, agent, line.agent)

        def commit() -> None:
            call.phase, call.agent, call.seen_us = _TALKING, line.agent, line.ts_us
            self._agents[line.agent] = agent

        return events, commit

    def _abandon(self, line: QueueLogLine) -> tuple[list[dict[str, Any]], Callable[[], None]]:
        call = self._call(line, _WAITING)
        event = self._contact(line, "contact.abandoned", call.customer_id, call.queue)

        def commit() -> None:
            call.phase, call.seen_us = _LEFT, line.ts_us

        return [event], commit

    def _end(self, line: QueueLogLine) -> tuple[list[dict[str, Any]], Callable[[], None]]:
        call = self._call(line, _TALKING)
        transferred = line.event in TRANSFER_EVENTS
        # COMPLETE*: holdtime|calltime|origposition; BLINDTRANSFER / TRANSFER: exten|context|holdtime|calltime|
        # origposition; ATTENDEDTRANSFER: method|target|holdtime|calltime|origposition
        talk = line.seconds(3 if transferred else 1, "calltime")
        agent_id = call.agent or line.agent
        events = [self._contact(line, "contact.ended", call.customer_id, call.queue, agent_id=agent_id,
                                talk_seconds=talk, hold_seconds=0.0, wrap_seconds=0.0, resolved=True,
                                transferred=transferred, disposition=None)]
        agent = self._agent_copy(agent_id)
        agent.calls = max(0, agent.calls - 1)
        events += self._agent_event(line, agent, agent_id)

        def commit() -> None:
            self._agents[agent_id] = agent
            if transferred:
                call.phase, call.agent, call.seen_us = _TRANSFERRED, None, line.ts_us
            else:
                del self._calls[line.uniqueid]

        return events, commit

    # -- agent lines ------------------------------------------------------------------------------------------
    def _agent_copy(self, name: str) -> _Agent:
        """A copy of an agent's record to change: the original changes only when the line's events are valid."""
        found = self._agents.get(name)
        if found is None:
            return _Agent()
        return _Agent(found.logged_in, list(found.queues), found.paused, found.pause_reason, found.calls, found.emitted)

    def _agent_event(self, line: QueueLogLine, agent: _Agent, agent_id: str) -> list[dict[str, Any]]:
        """An ``agent.state`` event when the agent's (state, reason, queues) changed; records it as emitted."""
        current = agent.effective()
        if current == agent.emitted:
            return []
        agent.emitted = current
        state, reason, queues = current
        return [{"event_id": line.event_id("-agent"), "type": "agent.state", "ts": line.ts,
                 "agent_id": agent_id,
                 "state": state, "reason": reason, "queues": list(queues), "team": None, "agent_name": None}]

    def _member(self, line: QueueLogLine) -> tuple[list[dict[str, Any]], Callable[[], None]]:
        if not line.agent or line.agent.upper() == "NONE":
            raise Rejection("bad_field", f"{line.event} without an agent", AGENT)
        agent = self._agent_copy(line.agent)
        queue = line.queue if line.queue.upper() != "NONE" else None
        event = line.event
        if event == "ADDMEMBER" and queue and queue not in agent.queues:
            agent.queues = sorted([*agent.queues, queue])
        elif event == "REMOVEMEMBER" and queue:
            agent.queues = [q for q in agent.queues if q != queue]
        elif event in ("PAUSE", "PAUSEALL"):
            if queue:
                _serves(agent, queue)
            agent.paused = True
            agent.pause_reason = (line.data[0].strip() or None) if line.data else None
        elif event in ("UNPAUSE", "UNPAUSEALL"):
            agent.paused, agent.pause_reason = False, None
        elif event in ("AGENTLOGIN", "AGENTCALLBACKLOGIN"):
            agent.logged_in = True
        elif event in ("AGENTLOGOFF", "AGENTCALLBACKLOGOFF"):
            agent.logged_in, agent.queues, agent.paused, agent.pause_reason = False, [], False, None
        events = self._agent_event(line, agent, line.agent)

        def commit() -> None:
            self._agents[line.agent] = agent

        return events, commit

    def _forget_old(self, now_us: int) -> None:
        """Drop calls unseen for :data:`CALL_MEMORY_US`: the state (and the position file) stays bounded."""
        if len(self._calls) < 1024:
            return
        horizon = now_us - CALL_MEMORY_US
        for uid in [uid for uid, call in self._calls.items() if call.seen_us < horizon]:
            del self._calls[uid]


_Handler = Callable[[QueueLogConverter, QueueLogLine], tuple[list[dict[str, Any]], Callable[[], None]]]
_HANDLERS: dict[str, _Handler] = {
    "ENTERQUEUE": QueueLogConverter._enterqueue,
    "CONNECT": QueueLogConverter._connect,
    **dict.fromkeys(ABANDON_EVENTS, QueueLogConverter._abandon),
    **dict.fromkeys(COMPLETE_EVENTS + TRANSFER_EVENTS, QueueLogConverter._end),
    **dict.fromkeys(AGENT_EVENTS, QueueLogConverter._member),
}
