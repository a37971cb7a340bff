"""The chaos suite's shared parts: a spec oracle, a hostile-message generator and the checks of a live run.

Used by ``bench/chaos.py`` (``make chaos``: big runs, rebalances, a broker outage) and by
``tests/integration/test_chaos.py`` (a small, fast slice of the hostile-input scenario).

Why an oracle of our own (:func:`spec_verdict`): what is invalid must be decided by ``shared/spec/events.md``,
not by the code under test. The oracle reads the contract literally and says, for one record in isolation,
``valid``, ``invalid``, ``future`` (valid by shape but more than ``max_clock_skew`` ahead of the wall clock:
invalid live, valid in a replay), ``v2`` (valid only by contract version 2 additions that belong to other
issues: channel ``app``) or ``ambiguous`` (the contract does not decide, e.g. a missing ``reason`` whose
optionality the table leaves open, a space instead of ``T``, a leap second, duplicate JSON keys). Ambiguous
and v2 records are never sent, so every figure the suite checks follows from the contract alone. Lifecycle
validity (an ``answered`` with no open visit) needs a contact's history: the generator builds every hostile
contact from scratch (fresh ids), so it knows that history and marks such records ``lifecycle``.

Why hypothesis: the random part draws hostile values (bytes, JSON of any shape, strings at and beyond every
length bound, control characters, numbers at every range bound and outside JSON's own grammar, absurd
timestamps) from hypothesis strategies, run as a ``@given`` function with a fixed ``@seed``, no example
database and only the generate phase, so the same seed gives the same messages on every machine.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

import orjson

from worker_harness import Consumed, WorkerProcess, consume_all, iso, now_us, prepare_topics_for

S = 1_000_000
MAX_CLOCK_SKEW_US = 300 * S  # events.md: default max_clock_skew, 5 minutes
ALLOWED_DISORDER_US = 60 * S
DAY_US = 86_400 * S
EPOCH_DAYS_10000 = 2_932_897  # days from 1970-01-01 to 10000-01-01
CONTACT, SURVEY = "contact", "survey"
CONTACT_TYPES = ("contact.queued", "contact.answered", "contact.abandoned", "contact.ended")
CHANNELS_V1 = ("voice", "chat", "email", "sms", "social")
CONTROL = [chr(c) for c in range(0x20)] + ["\x7f"]
THRESHOLDS_S = {"voice": 20, "chat": 30, "sms": 120, "social": 3600, "email": 14400}
HUGE = 1_000_000  # bytes of a "huge" message: under Kafka's default 1 MiB record limit with DLQ headers


# ============================================================================================== the oracle
@dataclass(frozen=True)
class Verdict:
    """What the contract says of one record: ``status`` in valid/invalid/future/v2/ambiguous, and why."""

    status: str
    why: str = ""


VALID = Verdict("valid")


class _Ambiguous(Exception):
    pass


class _Invalid(Exception):
    pass


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year, 0 included): our own arithmetic, since
    Python's datetime cannot hold the years 0 and 10000 the contract's bounds are about."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _month_days(y: int, m: int) -> int:
    if m == 2:
        return 29 if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else 28
    return 30 if m in (4, 6, 9, 11) else 31


_TS = re.compile(r"^(\d{4})-(\d{2})-(\d{2})([Tt ])(\d{2}):(\d{2}):(\d{2})(\.\d*)?([Zz]|[+-]\d{2}:\d{2})?$")


def ts_instant_us(text: Any) -> int:
    """The UTC instant of an RFC 3339 timestamp in microseconds (fraction truncated; the bounds are checked
    exactly before); raises _Invalid / _Ambiguous. Lower-case ``t``/``z`` and any number of fractional digits
    are RFC 3339; a space separator and a leap second are not decided by the contract."""
    if not isinstance(text, str):
        raise _Invalid("ts is not a string")
    m = _TS.match(text)
    if m is None:
        raise _Invalid(f"ts is not RFC 3339: {text[:40]!r}")
    year, month, day, sep, hh, mi, ss, frac, off = m.groups()
    if frac == ".":
        raise _Invalid("ts has a '.' without digits")
    if off is None:
        raise _Invalid("ts has no offset")
    y, mo, d, h, mn, s = int(year), int(month), int(day), int(hh), int(mi), int(ss)
    if not 1 <= mo <= 12 or not 1 <= d <= _month_days(y, mo) or h > 23 or mn > 59 or s > 60:
        raise _Invalid(f"ts is not a calendar date/time: {text!r}")
    offset_s = 0
    if off not in ("Z", "z"):
        oh, om = int(off[1:3]), int(off[4:6])
        if oh > 23 or om > 59:
            raise _Invalid(f"ts offset out of range: {off}")
        offset_s = (oh * 3600 + om * 60) * (1 if off[0] == "+" else -1)
    if sep == " ":
        raise _Ambiguous("space instead of T (RFC 3339 allows it only by a note)")
    if s == 60:
        raise _Ambiguous("leap second")
    whole = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mn * 60 + s - offset_s
    digits = (frac or ".")[1:]
    exact_frac_positive = bool(digits) and int(digits) > 0
    if whole < 0:  # before 1970-01-01T00:00:00Z, whatever the fraction
        raise _Invalid(f"ts before 1970 in UTC: {text!r}")
    if whole >= EPOCH_DAYS_10000 * 86400:
        raise _Invalid(f"ts after 9999-12-31 in UTC: {text!r}")
    if whole == EPOCH_DAYS_10000 * 86400 - 1 and exact_frac_positive and len(digits) > 6 and int(digits[6:]) > 0:
        raise _Ambiguous("sub-microsecond digits at the upper bound (truncated or rounded?)")
    return whole * S + int((digits + "000000")[:6])


def _code_units(text: str) -> tuple[int, int]:
    """Length in code points and in UTF-16 units: '1..128 chars' is decided only when both agree."""
    return len(text), len(text.encode("utf-16-le")) // 2


def _check_str(value: Any, name: str, lo: int | None, hi: int | None, *, control_ok: bool = False,
               ambiguous_outside: bool = False) -> None:
    if not isinstance(value, str):
        raise _Invalid(f"{name} is not a string")
    if not control_ok and any(c in value for c in CONTROL):
        raise _Invalid(f"{name} contains a control character")
    cp, u16 = _code_units(value)
    inside = [(lo is None or n >= lo) and (hi is None or n <= hi) for n in (cp, u16)]
    if inside[0] != inside[1]:
        raise _Ambiguous(f"{name}: length in code points and UTF-16 units disagree with the bound")
    if not inside[0]:
        if ambiguous_outside:
            raise _Ambiguous(f"{name}: length {cp} outside a bound the contract states only elsewhere")
        raise _Invalid(f"{name}: length {cp} outside {lo}..{hi}")


def _check_int(value: Any, name: str, lo: int | None, hi: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid(f"{name} is not an integer")
    if isinstance(value, float):
        if value.is_integer() and (lo is None or value >= lo) and (hi is None or value <= hi):
            raise _Ambiguous(f"{name}: {value!r} is an integral number written as a float")
        raise _Invalid(f"{name}: {value!r} is not an integer")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise _Invalid(f"{name}: {value} outside {lo}..{hi}")
    if abs(value) > 2**53:
        raise _Ambiguous(f"{name}: {value} beyond the integers JSON implementations agree on")


def _check_duration(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid(f"{name} is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Invalid(f"{name} is not finite")
    if not 0 <= value <= 86_400:
        raise _Invalid(f"{name}: {value!r} outside 0..86400")


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    return False


def _beyond_interop(value: Any) -> bool:
    """An integer beyond 2**53 or a number that overflowed to infinity anywhere in the object."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) > 2**53
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(_beyond_interop(v) for v in value)
    if isinstance(value, dict):
        return any(_beyond_interop(v) for v in value.values())
    return False


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _Ambiguous("duplicate keys in a JSON object")
    return dict(pairs)


def _no_constants(token: str) -> Any:
    raise _Invalid(f"{token} is not JSON")


def decode(value: bytes | None) -> Any:
    """The JSON value of a record as the contract reads it; raises _Invalid / _Ambiguous."""
    if value is None:
        raise _Invalid("no value (a Kafka tombstone)")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise _Invalid("not UTF-8") from None
    if text.startswith("\ufeff"):
        raise _Ambiguous("byte order mark")
    try:
        obj = json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise _Invalid(f"not JSON: {exc.msg}") from None
    except RecursionError:
        raise _Invalid("not JSON (nesting beyond any parser)") from None
    if _has_surrogate(obj):
        raise _Ambiguous("lone surrogate escape")
    return obj


def spec_verdict(topic: str, value: bytes | None, now_us: int, *, future_margin_us: int = DAY_US) -> Verdict:
    """events.md, read literally, on one record of ``topic`` (``contact`` / ``survey``) at wall clock ``now_us``.

    ``future`` needs the event to be more than ``future_margin_us`` ahead (not merely 5 minutes), and an event
    between 2 minutes and that margin ahead is ``ambiguous``: the worker's wall clock when it reads the record
    is later than ``now_us`` by an unknown amount, so only clear cases are classified."""
    try:
        obj = decode(value)
        if not isinstance(obj, dict):
            raise _Invalid(f"not a JSON object but {type(obj).__name__}")
        verdict = _object_verdict(topic, obj, now_us, future_margin_us)
    except _Invalid as exc:
        return Verdict("invalid", str(exc))
    except _Ambiguous as exc:
        return Verdict("ambiguous", str(exc))
    return verdict


def _object_verdict(topic: str, obj: dict[str, Any], now_us: int, margin: int) -> Verdict:
    ambiguous: list[str] = []
    v2: list[str] = []

    def soft(check: Callable[[], None]) -> None:
        """Run a check whose ambiguity must not hide an invalidity found by a later check."""
        try:
            check()
        except _Ambiguous as exc:
            ambiguous.append(str(exc))

    def need(name: str) -> Any:
        if name not in obj:
            raise _Invalid(f"{name}: missing")
        return obj[name]

    kind = need("type")
    if not isinstance(kind, str):
        raise _Invalid("type is not a string")
    allowed = CONTACT_TYPES if topic == CONTACT else ("survey.response",)
    if kind == "survey.followed_up" and topic == SURVEY:
        raise _Ambiguous("survey.followed_up (contract v2, issue 12): validity depends on the survey")
    if kind not in allowed:
        raise _Invalid(f"unknown type {kind!r} on the {topic} topic")
    for name in ("event_id", "contact_id", "customer_id"):
        soft(lambda name=name: _check_str(need(name), name, 1, 128))
    instant = None
    try:
        instant = ts_instant_us(need("ts"))
    except _Ambiguous as exc:
        ambiguous.append(str(exc))
    if topic == CONTACT:
        channel = need("channel")
        if channel == "app":
            v2.append("channel app (contract v2, issue 12)")
        elif channel not in CHANNELS_V1:
            raise _Invalid(f"channel {channel!r}")
        soft(lambda: _check_str(need("queue"), "queue", 1, 64))
        if kind == "contact.queued":
            if "reason" not in obj:
                ambiguous.append("reason missing (the table does not mark it optional)")
            elif obj["reason"] is not None:
                soft(lambda: _check_str(obj["reason"], "reason", 1, None, ambiguous_outside=True))
            if "priority" in obj:
                if obj["priority"] is None:
                    ambiguous.append("priority null (optional int)")
                else:
                    soft(lambda: _check_int(obj["priority"], "priority", None, None))
        if kind in ("contact.answered", "contact.ended"):
            soft(lambda: _check_str(need("agent_id"), "agent_id", 1, 128, ambiguous_outside=True))
        if kind == "contact.answered":
            if "team" not in obj:
                ambiguous.append("team missing")
            elif obj["team"] is not None:
                soft(lambda: _check_str(obj["team"], "team", 1, 64, ambiguous_outside=True))
        if kind == "contact.ended":
            for name in ("talk_seconds", "hold_seconds", "wrap_seconds"):
                _check_duration(need(name), name)
            if not isinstance(need("resolved"), bool):
                raise _Invalid("resolved is not a boolean")
            if "transferred" in obj and not isinstance(obj["transferred"], bool):
                if obj["transferred"] is None:
                    ambiguous.append("transferred null")
                else:
                    raise _Invalid("transferred is not a boolean")
            if "disposition" not in obj:
                ambiguous.append("disposition missing")
            elif obj["disposition"] is not None and not isinstance(obj["disposition"], str):
                raise _Invalid("disposition is not a string")
    else:
        scores = 0
        if "nps" in obj and obj["nps"] is not None:
            soft(lambda: _check_int(obj["nps"], "nps", 0, 10))
            scores += 1
        if "csat" in obj and obj["csat"] is not None:
            soft(lambda: _check_int(obj["csat"], "csat", 1, 5))
            scores += 1
        if not scores:
            raise _Invalid("survey with neither nps nor csat")
        if "comment" not in obj:
            ambiguous.append("comment missing")
        elif obj["comment"] is not None and not isinstance(obj["comment"], str):
            raise _Invalid("comment is not a string")
    if _beyond_interop(obj):
        ambiguous.append("a number beyond what JSON implementations agree on (RFC 8259, section 6)")
    if ambiguous:
        return Verdict("ambiguous", "; ".join(ambiguous))
    assert instant is not None
    if instant > now_us + margin:
        return Verdict("future", f"{(instant - now_us) / S / 86400:.0f} days ahead of the wall clock")
    if instant > now_us + 120 * S:
        return Verdict("ambiguous", "ahead of the wall clock by less than the margin")
    if v2:
        return Verdict("v2", "; ".join(v2))
    return VALID


# ============================================================================================== messages
@dataclass
class Message:
    """One record to send. ``expect``: ``valid``, ``invalid`` (schema or plausibility), ``future``, ``lifecycle``
    (schema-valid, impossible in its contact's history), ``duplicate`` (an exact re-send of a valid one)."""

    topic: str  # CONTACT or SURVEY
    key: bytes | None
    value: bytes | None
    label: str
    expect: str
    why: str = ""
    ts_us: int | None = None  # event time of a valid one
    obj: dict[str, Any] | None = None  # parsed value of a valid one (for the oracle of counts)
    landed: tuple[str, int, int] | None = None  # topic, partition, offset once sent

    @property
    def dead_letter(self) -> bool:
        return self.expect in ("invalid", "future", "lifecycle")


def _walk_ok(kinds: list[str]) -> bool:
    """events.md lifecycle over a contact's events in time order: queued -> answered -> ended | abandoned."""
    waiting, in_service = False, 0
    for kind in kinds:
        if kind == "contact.queued":
            if waiting:
                return False
            waiting = True
        elif kind in ("contact.answered", "contact.abandoned"):
            if not waiting:
                return False
            waiting = False
            in_service += kind == "contact.answered"
        elif kind == "contact.ended":
            if not in_service:
                return False
            in_service -= 1
    return True


class RawToken:
    """A JSON-ish token written as is into the encoded message (NaN, Infinity, 1e400, 0x10, ...)."""

    def __init__(self, text: str) -> None:
        self.text = text


def encode(obj: Any, *, ascii_only: bool = False, indent: int | None = None) -> bytes:
    """JSON bytes of ``obj``; RawToken values are spliced in verbatim (they are outside what json.dumps writes)."""
    tokens: list[str] = []

    def swap(value: Any) -> Any:
        if isinstance(value, RawToken):
            tokens.append(value.text)
            return f"__raw_token_{len(tokens) - 1}__"
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        return value

    text = json.dumps(swap(obj), ensure_ascii=ascii_only, indent=indent, allow_nan=False)
    for index, token in enumerate(tokens):
        text = text.replace(f'"__raw_token_{index}__"', token)
    return text.encode("utf-8", "surrogatepass")


class Builder:
    """Makes hostile contacts from scratch: fresh ids per contact, chains of valid events before the target."""

    def __init__(self, tag: str, start_us: int, end_us: int, now_us: int, sim_contacts: set[str]) -> None:
        self.tag = tag
        self.start_us, self.end_us, self.now_us = start_us, end_us, now_us
        self.sim_contacts = sim_contacts
        self.n = 0
        self.known_contacts: set[str] = set()  # contacts with a schema-valid event sent
        self.dropped: Counter[str] = Counter()

    def fresh(self) -> int:
        self.n += 1
        return self.n

    def base(self, kind: str, n: int, ts_us: int, step: int = 0, queue: str | None = None) -> dict[str, Any]:
        """A valid event of hostile contact ``n`` (queue ``chaos-<k>`` so hostile rows are easy to spot)."""
        event: dict[str, Any] = {"event_id": f"hx-{self.tag}-{n}-{step}", "type": kind, "ts": iso(ts_us),
                                 "contact_id": f"hx-{self.tag}-{n}", "customer_id": f"hxc-{self.tag}-{n}"}
        if kind == "survey.response":
            event.update(nps=7, csat=4, comment="fine")
            return event
        channel = CHANNELS_V1[n % len(CHANNELS_V1)]
        event.update(channel=channel, queue=queue or f"chaos-{n % 3}")
        if kind == "contact.queued":
            event.update(reason="chaos", priority=1)
        elif kind == "contact.answered":
            event.update(agent_id=f"hxa-{n}", team="chaos-team")
        elif kind == "contact.ended":
            event.update(agent_id=f"hxa-{n}", talk_seconds=30.5, hold_seconds=0, wrap_seconds=4,
                         resolved=True, transferred=False, disposition="done")
        return event

    def chain(self, kind: str, n: int, t0: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The valid events that must precede a ``kind`` target for its lifecycle to be possible, and the target."""
        q = self.base("contact.queued", n, t0, 0)
        if kind == "contact.answered":
            return [q], self.base(kind, n, t0 + 5 * S, 1, q["queue"])
        if kind == "contact.abandoned":
            return [q], self.base(kind, n, t0 + 3 * S, 1, q["queue"])
        if kind == "contact.ended":
            a = self.base("contact.answered", n, t0 + 5 * S, 1, q["queue"])
            return [q, a], self.base(kind, n, t0 + 65 * S, 2, q["queue"])
        return [], self.base(kind, n, t0, 0)

    def normal_ts(self, rng: random.Random) -> int:
        """A time inside the simulated stream, early enough for a lifecycle verdict to settle before its end."""
        return rng.randrange(self.start_us, self.end_us - 6 * 60 * S)

    def classify(self, topic: str, value: bytes | None, key: bytes | None, label: str,
                 prefix_kinds: list[str] | None = None, contact: str | None = None) -> Message | None:
        """A message for ``value`` with the oracle's verdict, lifecycle included; None when not to be sent.

        ``prefix_kinds``: the types of the valid events of contact ``contact`` sent before this one (a chain);
        None for a lone event. A lone event, or one whose contact id was mutated, has no history; its contact
        id must then be new (a clash with another hostile or simulated contact would give it one)."""
        verdict = spec_verdict(topic, value, self.now_us)
        if verdict.status in ("ambiguous", "v2"):
            self.dropped[f"{verdict.status}: {verdict.why.split(':')[0][:50]}"] += 1
            return None
        if verdict.status != "valid":
            return Message(topic, key, value, label, verdict.status, verdict.why)
        obj = decode(value)
        ts = ts_instant_us(obj["ts"])
        if topic == CONTACT:
            cid = obj["contact_id"]
            if prefix_kinds is not None and cid == contact:
                kinds = [*prefix_kinds, obj["type"]]
            else:
                kinds = [obj["type"]]
                if cid in self.known_contacts or cid in self.sim_contacts:
                    self.dropped["contact id clash"] += 1
                    return None
            self.known_contacts.add(cid)
            if not _walk_ok(kinds):
                if ts > self.end_us - 6 * 60 * S:
                    self.dropped["lifecycle verdict would not settle in time"] += 1
                    return None
                return Message(topic, key, value, label, "lifecycle", f"impossible lifecycle {kinds}")
        return Message(topic, key, value, label, "valid", ts_us=ts, obj=obj)

    def send_chain(self, prefix: list[dict[str, Any]], label: str) -> list[Message]:
        """The valid events a target needs before it, as messages (asserted valid by the oracle)."""
        out = []
        for index, event in enumerate(prefix):
            msg = self.classify(CONTACT, encode(event), _key_of(event), f"{label} (its contact's earlier events)",
                                [e["type"] for e in prefix[:index]], event["contact_id"])
            assert msg is not None and msg.expect == "valid", (label, msg)
            out.append(msg)
        return out


def _key_of(obj: Any) -> bytes | None:
    if isinstance(obj, dict) and isinstance(obj.get("contact_id"), str):
        return obj["contact_id"].encode("utf-8", "surrogatepass")
    return None


# ---------------------------------------------------------------------------------------------- boundary table
def boundary_messages(b: Builder, rng: random.Random, huge: int = 2) -> list[Message]:
    """Every field at and beyond its bound, absurd timestamps, control characters, shapes: one message each.

    A target whose lifecycle needs earlier events gets them first (valid, fresh contact)."""
    out: list[Message] = []

    def add(label: str, kind: str, mutate: Callable[[dict[str, Any]], Any], *, topic: str | None = None,
            raw: Callable[[dict[str, Any]], bytes] | None = None, lone: bool = False) -> None:
        n = b.fresh()
        topic = topic or (SURVEY if kind == "survey.response" else CONTACT)
        if lone:
            prefix, target = [], b.base(kind, n, b.normal_ts(rng))
        else:
            prefix, target = b.chain(kind, n, b.normal_ts(rng))
        result = mutate(target)
        if result is not None:
            target = result
        value = raw(target) if raw else encode(target)
        msgs = b.send_chain(prefix, label)
        key = _key_of(target) if isinstance(target, dict) else f"hx-{b.tag}-{n}".encode()
        msg = b.classify(topic, value, key, label, None if lone else [e["type"] for e in prefix], f"hx-{b.tag}-{n}")
        if msg is None:
            return
        out.extend([*msgs, msg])

    def setf(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
        return lambda e: e.__setitem__(name, value)

    def drop(name: str) -> Callable[[dict[str, Any]], None]:
        return lambda e: e.pop(name, None)

    # ids: 0/1/128/129 chars (contact_id on lone events only: a chain's contact must keep its id)
    for name in ("event_id", "contact_id", "customer_id"):
        for length in (0, 1, 128, 129):
            for kind in ("contact.queued", "survey.response"):
                add(f"{name} {length} chars ({kind})", kind, setf(name, ("x" * 200)[:length] if length else ""),
                    lone=True)
    for length in (1, 128):
        add(f"agent_id {length} chars", "contact.answered", setf("agent_id", "a" * length))
    for length in (0, 1, 64, 65):
        add(f"queue {length} chars", "contact.queued", setf("queue", "q" * length), lone=True)
        add(f"queue {length} chars (ended)", "contact.ended", setf("queue", "q" * length))
    add("queue multibyte 64 chars", "contact.queued", setf("queue", "é" * 64), lone=True)
    add("queue emoji U+1F600 x 40 (80 UTF-16 units)", "contact.queued", setf("queue", "\U0001F600" * 20), lone=True)
    # durations
    for value in (-1, 0, 86400, 86400.5, 1e14, 1e308, -0.0, 0.001):
        for name in ("talk_seconds", "wrap_seconds"):
            add(f"{name} {value!r}", "contact.ended", setf(name, value))
    for token in ("NaN", "Infinity", "-Infinity", "1e400", "0x10", "01", "+1", ".5", "1.e2"):
        add(f"talk_seconds token {token}", "contact.ended", setf("talk_seconds", RawToken(token)))
    add("talk_seconds 1E2 (valid JSON exponent)", "contact.ended", setf("talk_seconds", RawToken("1E2")))
    add("talk_seconds as string", "contact.ended", setf("talk_seconds", "30"))
    add("priority as string", "contact.queued", setf("priority", "1"), lone=True)
    add("priority 1.5", "contact.queued", setf("priority", 1.5), lone=True)
    add("priority -7", "contact.queued", setf("priority", -7), lone=True)
    add("priority absent", "contact.queued", drop("priority"), lone=True)
    # scores
    for nps in (-1, 0, 10, 11):
        add(f"nps {nps}", "survey.response", setf("nps", nps))
    for csat in (0, 1, 5, 6):
        add(f"csat {csat}", "survey.response", setf("csat", csat))
    add("nps true", "survey.response", setf("nps", True))
    add("nps as string", "survey.response", setf("nps", "9"))
    add("nps and csat null", "survey.response", lambda e: e.update(nps=None, csat=None))
    add("csat null, nps 3", "survey.response", lambda e: e.update(nps=3, csat=None))
    add("nps absent, csat 2", "survey.response", lambda e: (e.pop("nps"), e.update(csat=2)))
    # booleans
    add("resolved 1", "contact.ended", setf("resolved", 1))
    add("transferred 0", "contact.ended", setf("transferred", 0))
    add("resolved as string", "contact.ended", setf("resolved", "true"))
    add("transferred absent", "contact.ended", drop("transferred"))
    # timestamps (lone: an event moved in time must not break its own contact's lifecycle)
    for label, ts in (
        ("ts year 0001", "0001-01-01T00:00:00Z"), ("ts 1969", "1969-12-31T23:59:59.999Z"),
        ("ts 1970-01-01 00:00:00Z", "1970-01-01T00:00:00Z"), ("ts 1970 +01:00 (1969 UTC)", "1970-01-01T00:30:00+01:00"),
        ("ts 9999-12-31T23:59:59Z (future)", "9999-12-31T23:59:59Z"),
        ("ts 9999-12-31T23:59:59-23:59 (year 10000 UTC)", "9999-12-31T23:59:59-23:59"),
        ("ts no offset", iso(b.normal_ts(rng))[:-1]), ("ts date only", "2026-11-22"),
        ("ts 2026-02-30", "2026-02-30T10:00:00Z"), ("ts hour 24", "2026-11-22T24:00:00Z"),
        ("ts offset +24:00", "2026-11-22T10:00:00+24:00"), ("ts offset +0100", "2026-11-22T10:00:00+0100"),
        ("ts '.' without digits", "2026-11-22T10:00:00.Z"), ("ts empty", ""), ("ts as number", 1763800000),
        ("ts five-digit year", "12026-11-22T10:00:00Z"), ("ts tomorrow+1 (future)", iso(b.now_us + 2 * DAY_US)),
    ):
        for kind in ("contact.queued", "survey.response"):
            add(f"{label} ({kind})", kind, setf("ts", ts), lone=True)
    for kind in ("contact.queued", "survey.response"):
        t = b.normal_ts(rng)
        base = iso(t)[:-1]
        add(f"ts 12 fractional digits ({kind})", kind, setf("ts", base + "123456789Z"), lone=True)
        add(f"ts 10 fractional digits, +05:30 ({kind})", kind,
            setf("ts", iso(t + 5 * 3600 * S + 1800 * S)[:-1] + "1234567+05:30"), lone=True)
        add(f"ts lower-case t and z ({kind})", kind, setf("ts", iso(t).replace("T", "t").replace("Z", "z")), lone=True)
        add(f"ts -00:00 ({kind})", kind, setf("ts", iso(t)[:-1] + "-00:00"), lone=True)
        add(f"ts 2 minutes ahead, within skew ({kind})", kind, setf("ts", iso(b.now_us + 60 * S)), lone=True)
    # control characters in names and ids; allowed ones in comment / disposition / C1
    for char in ("\x00", "\x01", "\t", "\n", "\x1f", "\x7f"):
        code = f"U+{ord(char):04X}"
        add(f"queue with {code}", "contact.queued", setf("queue", f"bill{char}ing"), lone=True)
        add(f"reason with {code}", "contact.queued", setf("reason", f"card{char}lost"), lone=True)
        add(f"event_id with {code}", "contact.queued", lambda e, c=char: e.__setitem__("event_id", e["event_id"] + c),
            lone=True)
        add(f"customer_id with {code}", "survey.response",
            lambda e, c=char: e.__setitem__("customer_id", e["customer_id"] + c), lone=True)
        add(f"agent_id with {code}", "contact.answered", setf("agent_id", f"ag{char}1"))
        add(f"team with {code}", "contact.answered", setf("team", f"team{char}1"))
        add(f"contact_id with {code}", "contact.queued",
            lambda e, c=char: e.__setitem__("contact_id", e["contact_id"] + c), lone=True)
        add(f"comment with {code} (allowed)", "survey.response", setf("comment", f"so{char}so"))
        add(f"disposition with {code} (allowed)", "contact.ended", setf("disposition", f"done{char}"))
        add(f"queue with raw {code} inside the JSON string", "contact.queued", setf("queue", "QCTRL"),
            raw=lambda e, c=char: encode(e).replace(b"QCTRL", f"q{c}q".encode()), lone=True)
    add("queue with U+0085 (C1, allowed)", "contact.queued", setf("queue", "bill\u0085ing"), lone=True)
    add("queue with U+2028 (allowed)", "contact.queued", setf("queue", "bill\u2028ing"), lone=True)
    add("queue right-to-left and emoji", "contact.queued", setf("queue", "\u202eقائمة\U0001F4DE"), lone=True)
    # types, channels, fields, shapes
    add("unknown type contact.transferred", "contact.queued", setf("type", "contact.transferred"), lone=True)
    add("survey.response on the contact topic", "survey.response", lambda e: None, topic=CONTACT)
    add("contact.queued on the survey topic", "contact.queued", lambda e: None, topic=SURVEY, lone=True)
    add("type absent", "contact.queued", drop("type"), lone=True)
    add("type 7", "contact.queued", setf("type", 7), lone=True)
    add("channel fax", "contact.queued", setf("channel", "fax"), lone=True)
    add("channel VOICE", "contact.queued", setf("channel", "VOICE"), lone=True)
    for name in ("event_id", "ts", "contact_id", "customer_id", "channel", "queue"):
        add(f"{name} absent", "contact.queued", drop(name), lone=True)
    for name in ("agent_id", "talk_seconds", "hold_seconds", "wrap_seconds", "resolved"):
        add(f"{name} absent (ended)", "contact.ended", drop(name))
    add("agent_id absent (answered)", "contact.answered", drop("agent_id"))
    add("extra fields", "contact.queued", lambda e: e.update(x_vendor={"a": [1, {"b": None}]}, zz=1e308), lone=True)
    add("extra field with control characters (ignored)", "survey.response", setf("x_note", "\x00\x1f"))
    add("survey with an invalid queue as an extra field", "survey.response", setf("queue", "\x00" * 70))
    add("pretty-printed JSON with whitespace", "contact.queued", lambda e: None,
        raw=lambda e: b"  \n" + encode(e, indent=2) + b"\r\n\t ", lone=True)
    add("ASCII-escaped JSON", "contact.queued", setf("queue", "caf\u00e9"), raw=lambda e: encode(e, ascii_only=True),
        lone=True)
    add("event nested in an object", "contact.queued", lambda e: {"event": e}, lone=True)
    add("event in an array", "contact.queued", lambda e: [e], lone=True)
    add("invalid UTF-8 in a string", "contact.queued", setf("queue", "QBAD"),
        raw=lambda e: encode(e).replace(b"QBAD", b"q\xff\xfeq"), lone=True)
    add("overlong UTF-8", "contact.queued", setf("queue", "QBAD"),
        raw=lambda e: encode(e).replace(b"QBAD", b"q\xc0\xafq"), lone=True)
    add("UTF-8 encoded surrogate", "contact.queued", setf("queue", "QBAD"),
        raw=lambda e: encode(e).replace(b"QBAD", b"q\xed\xa0\x80q"), lone=True)
    add("truncated JSON", "contact.ended", lambda e: None, raw=lambda e: encode(e)[:-7])
    # lifecycle impossibilities
    add("answered with no open visit", "contact.answered", lambda e: None, lone=True)
    add("abandoned with no open visit", "contact.abandoned", lambda e: None, lone=True)
    add("ended never answered", "contact.ended", lambda e: None, lone=True)
    # huge strings: invalid where bounded, valid where not
    for index in range(huge):
        pad = HUGE - 400
        if index % 2 == 0:
            add(f"queue of ~1 MB", "contact.queued", setf("queue", "Q" * pad), lone=True)
        else:
            add(f"comment of ~1 MB (valid)", "survey.response", setf("comment", "c" * pad))
    # not JSON at all
    for index, raw in enumerate((b"", b"null", b"42", b'"contact.queued"', b"[]", b"{}", b"<html>502</html>",
                                 b"\x00\x01\x02\xff", b"{" * 5000, b"[" * 100_000 + b"]" * 100_000)):
        for topic in (CONTACT, SURVEY):
            label = f"raw bytes {raw[:12]!r}{'...' if len(raw) > 12 else ''} ({topic})"
            msg = b.classify(topic, raw, [None, b"", b"\xff\x00key"][index % 3], label)
            if msg is not None:
                out.append(msg)
    out.append(Message(CONTACT, b"tombstone-key", None, "Kafka null value (tombstone)", "invalid", "no value"))
    return out


# ---------------------------------------------------------------------------------------------- hypothesis part
def random_messages(b: Builder, count: int, seed: int) -> list[Message]:
    """``count`` hypothesis examples, each one hostile message (with the valid chain its target needs)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed
    from hypothesis import strategies as st

    control_text = st.text(alphabet=st.sampled_from(CONTROL + list("ab-_.é€\u2028\U0001F600")), max_size=70)
    bounded_text = st.integers(0, 5).flatmap(
        lambda i: st.text(alphabet="xyz", min_size=[0, 1, 63, 64, 65, 128, 129][i], max_size=[0, 1, 64, 65, 66, 129, 130][i]))
    json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                            st.floats(allow_nan=False, allow_infinity=False),
                            st.text(max_size=30))
    json_value = st.recursive(json_scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                   st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                              max_leaves=12)
    numbers = st.one_of(st.sampled_from([-1, 0, 1, 5, 6, 10, 11, 86400, 86400.5, 86399.999, 1e14, 1e308, -0.0, 2**53,
                                         2**63, 2**64, 5.0]),
                        st.floats(min_value=-1e6, max_value=1e6), st.integers(-100, 100_000))
    tokens = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "0x1F", "00", "1.", "+5", "1e-400",
                              "1E3", "-0", "true ", "nulll"]).map(RawToken)
    digits = st.integers(0, 12).flatmap(lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n))

    @st.composite
    def timestamps(draw: Any) -> str:
        if draw(st.booleans()):
            moment = draw(st.integers(b.start_us, b.end_us - 6 * 60 * S))
            text = iso(moment)[:-5]
        else:
            year = draw(st.one_of(st.sampled_from([0, 1, 1969, 1970, 2026, 9999]), st.integers(0, 9999)))
            text = (f"{year:04d}-{draw(st.integers(0, 13)):02d}-{draw(st.integers(0, 32)):02d}T"
                    f"{draw(st.integers(0, 24)):02d}:{draw(st.integers(0, 60)):02d}:{draw(st.integers(0, 60)):02d}")
        frac = draw(st.one_of(st.just(""), digits.map(lambda d: "." + d)))
        offset = draw(st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+05:30", "-23:59", "+23:59", "+24:00",
                                       "+0100", "+14:00", "Z+01:00"]))
        sep = draw(st.sampled_from(["T", "T", "T", "t", " "]))
        return text[:10] + sep + text[11:] + frac + offset

    values = st.one_of(json_value, control_text, bounded_text, numbers, tokens, timestamps())
    kinds = st.sampled_from(list(CONTACT_TYPES) + ["survey.response"])
    keys = st.one_of(st.none(), st.binary(max_size=20))
    out: list[Message] = []
    rng = random.Random(seed)

    def one(data: Any) -> None:
        category = data.draw(st.sampled_from(["bytes", "shape", "utf8", "mutate", "mutate", "mutate", "mutate", "ts"]),
                             label="category")
        n = b.fresh()
        if category == "bytes":
            raw = data.draw(st.binary(max_size=300))
            topic = data.draw(st.sampled_from([CONTACT, SURVEY]))
            msg = b.classify(topic, raw, data.draw(keys), "random bytes")
            if msg is not None:
                out.append(msg)
            return
        kind = data.draw(kinds)
        topic = SURVEY if kind == "survey.response" else CONTACT
        lone = category in ("ts", "shape", "utf8") or kind in ("contact.queued", "survey.response")
        if lone:
            prefix, target = [], b.base(kind, n, b.normal_ts(rng))
        else:
            prefix, target = b.chain(kind, n, b.normal_ts(rng))
        label = category
        if category == "shape":
            wrapped = data.draw(st.one_of(json_value, st.just([target]), st.just({"data": target}), st.just(None)))
            value = encode(wrapped)
        elif category == "utf8":
            bad = data.draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xc0\x80", b"\xed\xb2\x80",
                                             b"\xf8\x88\x80\x80\x80", b"\x80"]))
            value = encode(target).replace(b'"contact_id"', b'"contact_id' + bad + b'"', 1) if data.draw(
                st.booleans()) else encode(target).replace(f'"{target["event_id"]}"'.encode(),
                                                           b'"' + target["event_id"].encode() + bad + b'"')
        elif category == "ts":
            target["ts"] = data.draw(timestamps())
            label = "random ts"
            value = encode(target)
        else:
            protected = {"type", "contact_id", "ts"} if prefix else set()
            names = [k for k in target if k not in protected] + ["x_extra"]
            for _ in range(data.draw(st.integers(1, 2))):
                name = data.draw(st.sampled_from(names))
                if data.draw(st.integers(0, 4)) == 0:
                    target.pop(name, None)
                    label = f"mutate: {name} removed"
                else:
                    target[name] = data.draw(values)
                    label = f"mutate: {name}"
            value = encode(target, ascii_only=data.draw(st.booleans()), indent=data.draw(st.sampled_from([None, None, 1])))
        chain_msgs = b.send_chain(prefix, label)
        try:
            parsed = decode(value)
        except (_Invalid, _Ambiguous):
            parsed = None
        key = _key_of(parsed) or _key_of(target)
        msg = b.classify(topic, value, key, label, None if lone else [e["type"] for e in prefix], f"hx-{b.tag}-{n}")
        if msg is None:
            return
        out.extend([*chain_msgs, msg])

    @hseed(seed)
    @settings(max_examples=count, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def collect(data: Any) -> None:
        one(data)

    collect()
    return out


# ---------------------------------------------------------------------------------------------- the mix
@dataclass
class Mix:
    """Everything a hostile run sends, in send order, and what the contract expects of it."""

    messages: list[Message]
    dropped: Counter[str]
    tail: list[Message] = field(default_factory=list)  # the ~1 MB records, sent after the rest was checked

    def of(self, *expect: str) -> list[Message]:
        return [m for m in self.messages if m.expect in expect]

    def counts(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for m in self.messages:
            out.setdefault(m.topic, Counter())[m.expect] += 1
        return out


def sim_messages(path: Path) -> list[Message]:
    """The simulator's (valid) events as messages, in file order."""
    out = []
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        obj = orjson.loads(line)
        topic = SURVEY if obj["type"] == "survey.response" else CONTACT
        out.append(Message(topic, obj["contact_id"].encode(), line, "simulator", "valid",
                           ts_us=ts_instant_us(obj["ts"]), obj=obj))
    return out


def build_mix(sim: list[Message], tag: str, start_us: int, end_us: int, *, random_count: int, seed: int,
              duplicates: int, huge: int, now_us: int | None = None) -> Mix:
    """The simulator's events with the boundary table, ``random_count`` hypothesis examples, ``duplicates``
    exact re-sends of simulator events and an id collision mixed in at seeded positions (each hostile contact's
    events keep their order)."""
    rng = random.Random(seed)
    now = now_us if now_us is not None else time.time_ns() // 1000
    sim_contacts = {m.obj["contact_id"] for m in sim if m.obj}
    b = Builder(tag, start_us, end_us, now, sim_contacts)
    hostile = boundary_messages(b, rng, huge) + random_messages(b, random_count, seed)
    # an id collision: the same event_id under another contact is not a duplicate (kpis.md, Duplicates)
    donor = next(m for m in sim if m.obj and m.obj["type"] == "contact.queued")
    n = b.fresh()
    event = b.base("contact.queued", n, b.normal_ts(rng))
    event["event_id"] = donor.obj["event_id"]
    collision = b.classify(CONTACT, encode(event), _key_of(event), "event_id of another contact (not a duplicate)")
    assert collision is not None and collision.expect == "valid", collision
    hostile.append(collision)
    # drop byte-identical records: each dead letter must be traceable to one record sent
    seen: set[tuple[str, bytes | None]] = set()
    unique = []
    for m in hostile:
        if (m.topic, m.value) in seen:
            b.dropped["identical bytes"] += 1
            continue
        seen.add((m.topic, m.value))
        unique.append(m)
    dups = [Message(m.topic, m.key, m.value, "duplicate of a simulator event", "duplicate", ts_us=m.ts_us, obj=m.obj)
            for m in rng.sample(sim, min(duplicates, len(sim)))]
    # positions: hostile contacts keep their order (a chain is inserted in increasing positions)
    merged: list[Message] = list(sim)
    slots = sorted(rng.randrange(len(merged) + 1) for _ in unique)
    for offset, (slot, m) in enumerate(zip(slots, unique)):
        merged.insert(slot + offset, m)
    for m in dups:  # after the original, anywhere
        original = merged.index(next(x for x in merged if x.value == m.value and x.expect == "valid"))
        merged.insert(rng.randrange(original + 1, len(merged) + 1), m)
    # sent last: the ~1 MB records (a worker they stop must not hide the other findings) and valid events ahead
    # of the wall clock (``cxpulse replay --now`` cannot evaluate before its newest event: checked apart)
    tail = [m for m in merged if (m.value is not None and len(m.value) > 100_000)
            or (m.expect == "valid" and m.ts_us is not None and m.ts_us > now)]
    return Mix([m for m in merged if m not in tail], b.dropped, tail)


def valid_file(mix: Mix, path: Path) -> int:
    """Exactly the valid records (and the duplicates), one JSON line each, in send order: the replay's input."""
    count = 0
    with path.open("wb") as handle:
        for m in mix.messages:
            if m.expect in ("valid", "duplicate"):
                assert m.value is not None
                line = m.value if b"\n" not in m.value and b"\r" not in m.value else orjson.dumps(orjson.loads(m.value))
                handle.write(line.strip() + b"\n")
                count += 1
    return count


async def send_all(bootstrap: str, topics: Any, messages: Iterable[Message]) -> None:
    """Send in order (one producer, acknowledged at the end); note where each record landed."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5,
                                max_request_size=HUGE + 48_000, client_id="cxpulse-chaos-producer")
    await producer.start()
    try:
        pending = []
        for m in messages:
            name = topics.contact_events if m.topic == CONTACT else topics.survey_responses
            pending.append((m, name, await producer.send(name, key=m.key, value=m.value)))
        for m, name, future in pending:
            meta = await future
            m.landed = (name, meta.partition, meta.offset)
    finally:
        await producer.stop()


# ============================================================================================== checks
@dataclass
class Outcome:
    """What one hostile run found: figures and the list of failures (empty = the contract holds)."""

    sent: dict[str, Counter[str]] = field(default_factory=dict)
    dropped: Counter[str] = field(default_factory=Counter)
    dlq_records: Counter[str] = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)
    lost: int = 0
    doubled: int = 0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, text: str) -> None:
        self.failures.append(text)


def check_dead_letters(mix: Mix, dlq: list[Consumed], topics: Any, out: Outcome) -> None:
    """Every invalid record in its DLQ exactly once, with its bytes, key, a reason and its coordinates;
    no valid one there."""
    dlq_name = {CONTACT: topics.contact_events_dlq, SURVEY: topics.survey_responses_dlq}
    by_value: dict[tuple[str, bytes], list[Consumed]] = {}
    for record in dlq:
        out.dlq_records[record.topic] += 1
        by_value.setdefault((record.topic, record.value or b""), []).append(record)
    missing: list[str] = []
    for m in mix.of("invalid", "future", "lifecycle"):
        candidates = by_value.get((dlq_name[m.topic], m.value or b""), [])
        # a tombstone and an empty value both have no bytes: tell them apart by the key where possible
        found = [r for r in candidates if r.key == m.key][:1] or candidates[:1]
        for record in found:
            candidates.remove(record)
        if not candidates:
            by_value.pop((dlq_name[m.topic], m.value or b""), None)
        if not found:
            missing.append(f"{m.label} [{m.expect}: {m.why}]")
            continue
        record = found[0]
        reason = record.headers.get("cxpulse-reason", b"")
        problems = []
        if record.key != m.key:
            problems.append(f"key {record.key!r} != original {m.key!r}")
        if not reason.strip():
            problems.append("no reason")
        assert m.landed is not None
        where = (record.headers.get("cxpulse-source-topic", b"").decode(errors="replace"),
                 record.headers.get("cxpulse-source-partition", b"").decode(errors="replace"),
                 record.headers.get("cxpulse-source-offset", b"").decode(errors="replace"))
        if where != (m.landed[0], str(m.landed[1]), str(m.landed[2])):
            problems.append(f"source {where} != {m.landed}")
        if problems:
            out.fail(f"DLQ record of {m.label!r} ({record.headers.get('cxpulse-kind', b'?').decode()}): "
                     + "; ".join(problems))
    valid_values = {(dlq_name[m.topic], m.value or b""): m for m in mix.of("valid", "duplicate")}
    lost_valid = []
    for (name, value), records in by_value.items():
        m = valid_values.get((name, value))
        reason = records[0].headers.get("cxpulse-reason", b"").decode(errors="replace")[:140]
        if m is not None:
            lost_valid.append(f"{m.label}: {reason}")
        else:
            out.fail(f"DLQ: {len(records)} record(s) that match nothing sent: {value[:60]!r}: {reason}")
    if missing:
        out.fail(f"invalid records NOT dead-lettered ({len(missing)}): " + "; ".join(missing[:25]))
    if lost_valid:
        out.lost += len(lost_valid)
        out.fail(f"valid records dead-lettered ({len(lost_valid)}): " + "; ".join(lost_valid[:25]))


def check_status(mix: Mix, status: dict[str, Any], topics: Any, out: Outcome) -> None:
    """``/api/v1/status`` per topic: processed (minus lifecycle rejections) = valid records, duplicates =
    re-sends, invalid (all kinds) = records the contract calls invalid."""
    names = {CONTACT: topics.contact_events, SURVEY: topics.survey_responses}
    for topic, name in names.items():
        expected = Counter(m.expect for m in mix.messages if m.topic == topic)
        health = status.get("topics", {}).get(name, {"processed": 0, "duplicates": 0, "invalid": {}})
        invalid = health["invalid"]
        lifecycle = invalid.get("lifecycle", 0)
        want_invalid = expected["invalid"] + expected["future"] + expected["lifecycle"]
        got = {"processed - lifecycle": health["processed"] - lifecycle, "duplicates": health["duplicates"],
               "invalid": sum(invalid.values()), "invalid lifecycle": lifecycle}
        want = {"processed - lifecycle": expected["valid"], "duplicates": expected["duplicate"],
                "invalid": want_invalid, "invalid lifecycle": expected["lifecycle"]}
        for what in got:
            if got[what] != want[what]:
                out.fail(f"status {topic} {what}: worker {got[what]}, sent {want[what]} (invalid by kind {invalid})")
        out.notes.append(f"status {topic}: processed {health['processed']}, duplicates {health['duplicates']}, "
                         f"invalid {dict(sorted(invalid.items()))}")


COUNTED = ("offered", "answered", "abandoned", "handled")


def expected_counts(mix: Mix, at_us: int) -> tuple[dict[tuple[str, str], Counter[str]], Counter[str]]:
    """An oracle independent of the engine: per (queue, channel) offered/answered/abandoned/handled of the
    valid, de-duplicated records with event time up to ``at_us`` (the ``all`` window is [first, now]), and the
    survey totals. Simulator events are in order and hostile contacts are built valid, so each record counts."""
    per_key: dict[tuple[str, str], Counter[str]] = {}
    surveys: Counter[str] = Counter()
    field_of = {"contact.queued": "offered", "contact.answered": "answered", "contact.abandoned": "abandoned",
                "contact.ended": "handled"}
    for m in mix.of("valid"):
        obj = m.obj
        assert obj is not None and m.ts_us is not None
        if m.ts_us > at_us:
            continue
        if obj["type"] == "survey.response":
            surveys["nps_responses"] += obj.get("nps") is not None
            surveys["csat_responses"] += obj.get("csat") is not None
            continue
        per_key.setdefault((obj["queue"], obj["channel"]), Counter())[field_of[obj["type"]]] += 1
    return per_key, surveys


def check_counts(mix: Mix, live: dict[str, Any], out: Outcome) -> None:
    """Lost and doubled, by the independent oracle: the live ``all`` window against the records sent."""
    at = ts_instant_us(live["generated_at"])
    per_key, surveys = expected_counts(mix, at)
    got = {(q["queue"], q["channel"]): q["windows"]["all"] for q in live["queues"]}
    wrong = []
    for key in sorted(set(per_key) | {k for k, w in got.items() if any(w.get(f) for f in COUNTED)}, key=str):
        for name in COUNTED:
            want = per_key.get(key, Counter())[name]
            have = got.get(key, {}).get(name, 0) or 0
            if have < want:
                out.lost += want - have
            elif have > want:
                out.doubled += have - want
            if have != want:
                wrong.append(f"{key!r} {name}: live {have}, sent {want}")
    totals = live["totals"]["windows"]["all"]
    for name in ("nps_responses", "csat_responses"):
        want, have = surveys[name], totals.get(name, 0) or 0
        out.lost += max(0, want - have)
        out.doubled += max(0, have - want)
        if have != want:
            wrong.append(f"totals {name}: live {have}, sent {want}")
    if wrong:
        out.fail(f"counts of the valid records (lost {out.lost}, doubled {out.doubled}): " + "; ".join(wrong[:20]))


def doc_diff(live: dict[str, Any], offline: dict[str, Any], limit: int = 30) -> list[str]:
    """Differing leaves, queues matched by (queue, channel)."""
    out: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                walk(a.get(key, "<missing>"), b.get(key, "<missing>"), f"{path}.{key}")
        elif isinstance(a, list) and isinstance(b, list) and all(isinstance(x, dict) and "queue" in x for x in a + b):
            index_a = {(x["queue"], x["channel"]): x for x in a}
            index_b = {(x["queue"], x["channel"]): x for x in b}
            for key in sorted(set(index_a) | set(index_b), key=str):
                walk(index_a.get(key, "<missing>"), index_b.get(key, "<missing>"), f"{path}[{key[0]!r}/{key[1]}]")
        elif a != b:
            out.append(f"{path}: live {a!r} != replay {b!r}")

    walk(live, offline, "doc")
    return out


def replay_counts(path: Path, now: str) -> tuple[dict[str, Any], str]:
    """``cxpulse replay --json --now`` of ``path``; the document and the replay's own summary line(s)."""
    import os
    import subprocess

    from worker_harness import CXPULSE

    env = {k: v for k, v in os.environ.items() if not k.startswith("CXPULSE_")}
    done = subprocess.run([CXPULSE, "replay", str(path), "--json", "--now", now, "--no-progress"],
                          capture_output=True, env=env, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"cxpulse replay exited {done.returncode}: {done.stderr.decode(errors='replace')[-1500:]}")
    return orjson.loads(done.stdout), done.stderr.decode(errors="replace").strip()


async def compare_with_replay(worker_docs: Callable[[], Any], path: Path, out: Outcome, attempts: int = 8
                              ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The live document (from ``worker_docs()``) against the replay of exactly the valid records at the live
    ``generated_at``; retried a few times (first contact resolution trails by a moment)."""
    live = offline = None
    diff: list[str] = []
    summary = ""
    for _ in range(attempts):
        live = await worker_docs()
        try:
            offline, summary = await asyncio.to_thread(replay_counts, path, live["generated_at"])
        except RuntimeError as exc:
            out.fail(f"replay of the valid records failed: {exc}")
            return live, None
        diff = doc_diff(live, offline)
        if not diff:
            break
        await asyncio.sleep(1.0)
    if "invalid" in summary and not re.search(r";\s*0 invalid", summary):
        out.fail(f"the replay rejects records the contract calls valid: {summary[-600:]}")
    out.notes.append(f"replay: {summary.splitlines()[0] if summary else '?'}")
    if diff:
        out.mismatches = diff
        out.fail(f"live document != replay of the valid records ({len(diff)} leaves): " + "; ".join(diff[:12]))
    return live, offline


def breach_oracle(mix: Mix) -> dict[tuple[str, str], int]:
    """(contact id, visit id) -> breached_at (us) of every visit of the valid records whose wait exceeds T
    (default thresholds) or that still waits; the queued ts + T may lie in the future."""
    per_contact: dict[str, list[tuple[int, int, dict[str, Any]]]] = {}
    rank = {"contact.queued": 0, "contact.answered": 1, "contact.abandoned": 1, "contact.ended": 2}
    for m in mix.of("valid"):
        obj = m.obj
        assert obj is not None and m.ts_us is not None
        if obj["type"] in rank:
            per_contact.setdefault(obj["contact_id"], []).append((m.ts_us, rank[obj["type"]], obj))
    out: dict[tuple[str, str], int] = {}
    for contact, events in per_contact.items():
        events.sort(key=lambda item: (item[0], item[1]))
        open_visit: tuple[int, dict[str, Any]] | None = None
        for ts, _, event in events:
            if event["type"] == "contact.queued":
                open_visit = (ts, event)
            elif event["type"] in ("contact.answered", "contact.abandoned") and open_visit is not None:
                queued_ts, queued = open_visit
                limit = THRESHOLDS_S[queued["channel"]] * S
                if ts - queued_ts > limit:
                    out[(contact, queued["event_id"])] = queued_ts + limit
                open_visit = None
        if open_visit is not None:
            queued_ts, queued = open_visit
            out[(contact, queued["event_id"])] = queued_ts + THRESHOLDS_S[queued["channel"]] * S
    return out


SETTLE_S = 20.0  # how long the checks poll for what the worker sends after it has accounted for a record


async def until_true(fetch: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], timeout: float,
                     every: float = 0.3) -> Any:
    """Fetch until ``done(value)`` or the deadline; return the last value (the check then judges it).

    Why: a record the worker has counted may still be on its way to the DLQ, the breach topic or Redis; polling
    with a deadline waits exactly as long as needed, where a fixed sleep would be too short or too long."""
    deadline = time.monotonic() + timeout
    while True:
        value = await fetch()
        if done(value) or time.monotonic() >= deadline:
            return value
        await asyncio.sleep(every)


def missing_breaches(mix: Mix, records: list[Consumed], read_at_us: int) -> list[tuple[str, str]]:
    """Breaches due (by the oracle) more than 2 s before ``read_at_us`` and not on the topic yet."""
    seen = {(body["contact_id"], body["visit_id"]) for body in (orjson.loads(r.value) for r in records)}
    return [k for k, at in breach_oracle(mix).items() if at < read_at_us - 2 * S and k not in seen]


def check_breaches(mix: Mix, records: list[Consumed], read_at_us: int, out: Outcome) -> None:
    """Every breach of the valid records on ``sla-breaches`` exactly once; none that is not one."""
    counts = Counter()
    bad_ts = []
    for r in records:
        body = orjson.loads(r.value)
        counts[(body["contact_id"], body["visit_id"])] += 1
        for name in ("queued_ts", "breached_at"):
            try:
                ts_instant_us(body[name])
                if not re.match(r"^\d{4}-", body[name]):
                    raise _Invalid("not a four-digit year")
            except (_Invalid, _Ambiguous) as exc:
                bad_ts.append(f"{name} {body[name]!r} ({exc})")
    expected = breach_oracle(mix)
    twice = {k: n for k, n in counts.items() if n > 1}
    missing = [k for k, at in expected.items() if at < read_at_us - 2 * S and k not in counts]
    false = [k for k in counts if k not in expected or expected[k] > read_at_us]
    out.notes.append(f"breaches: {sum(counts.values())} records, {len(counts)} visits, "
                     f"{sum(1 for at in expected.values() if at < read_at_us)} due by the oracle")
    if twice:
        out.fail(f"breaches published twice: {len(twice)}, e.g. {sorted(twice)[:3]}")
    if missing:
        out.fail(f"breaches never published: {len(missing)} of {len(expected)}, e.g. {sorted(missing)[:3]}")
    if false:
        # Not a failure (docs/live-engine.md, "SLA breaches"): a visit is judged by its partition's clock, and an
        # answer that arrives after other contacts' later events (disorder is bounded per contact only) can come
        # after its breach was published. The counts (sla_breaches) stay exact; the record stays on the topic.
        out.notes.append(f"breach records for visits that turned out not to breach: {len(false)}, e.g. {sorted(false)[:3]}")
    if bad_ts:
        out.fail(f"breach records with timestamps that are not RFC 3339 with a four-digit year: {bad_ts[:3]}")


async def poll_status(worker: WorkerProcess, done: Callable[[dict[str, Any]], bool], timeout: float
                      ) -> tuple[dict[str, Any], bool]:
    """``/api/v1/status`` until ``done`` (True) or the timeout / the worker's death (False); never raises."""
    began = time.monotonic()
    status: dict[str, Any] = {}
    while time.monotonic() - began < timeout:
        if not worker.alive():
            return status, False
        try:
            status = await worker.status()
        except Exception as exc:  # noqa: BLE001 - a 500 is a finding, not a crash of the suite
            status = {"error": repr(exc)}
        if "topics" in status and done(status):
            return status, True
        await asyncio.sleep(0.3)
    return status, False


def invalid_seen(status: dict[str, Any]) -> int:
    return sum(sum(h["invalid"].values()) for h in status.get("topics", {}).values())


async def check_read_model(worker: WorkerProcess, redis_url: str, out: Outcome) -> None:
    """The Redis read model is alive: this worker's merged document was written within the last few seconds."""
    import redis.asyncio as aioredis

    prefix = worker.env.get("CXPULSE_REDIS__KEY_PREFIX", "")
    client = aioredis.Redis.from_url(redis_url)
    try:
        def fresh(value: bytes | None) -> bool:
            return value is not None and now_us() - ts_instant_us(orjson.loads(value)["generated_at"]) <= 5 * S

        raw = await until_true(lambda: client.get(f"{prefix}:kpis"), fresh, SETTLE_S)
        if raw is None:
            out.fail(f"Redis read model: {prefix}:kpis absent (every publish failing, or expired)")
            return
        doc = orjson.loads(raw)
        age = (time.time_ns() // 1000 - ts_instant_us(doc["generated_at"])) / S
        if age > 5.0:
            out.fail(f"Redis read model: {prefix}:kpis is {age:.0f} s old (publishing stopped)")
        api = await worker.kpis()
        queues_api = {(q["queue"], q["channel"]) for q in api["queues"]}
        queues_redis = {(q["queue"], q["channel"]) for q in doc["queues"]}
        if queues_api != queues_redis:
            out.fail(f"Redis read model: queues differ from /api/v1/kpis: only in the API "
                     f"{sorted(queues_api - queues_redis, key=str)[:5]}, only in Redis "
                     f"{sorted(queues_redis - queues_api, key=str)[:5]}")
    finally:
        await client.aclose()


def sent_table(mix: Mix) -> dict[str, Counter[str]]:
    return mix.counts()


def print_outcome(title: str, out: Outcome, extra: Iterable[str] = ()) -> None:
    """The scenario's figures, then its failures."""
    print(f"\n=== {title}: {'PASS' if not out.failures else 'FAIL'} ===")
    for topic, counts in out.sent.items():
        print(f"  sent on {topic}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if out.dropped:
        print("  generated but not sent (contract silent or timing-dependent): "
              + ", ".join(f"{k} {v}" for k, v in sorted(out.dropped.items())))
    print("  DLQ records: " + (", ".join(f"{k} {v}" for k, v in sorted(out.dlq_records.items())) or "0"))
    print(f"  mismatches (live vs replay leaves): {len(out.mismatches)}; lost: {out.lost}; doubled: {out.doubled}")
    for line in [*out.notes, *extra]:
        print(f"  {line}")
    for index, failure in enumerate(out.failures, 1):
        print(f"  FAILURE {index}: {failure}")


# ============================================================================================== scenario (a)
@dataclass
class HostileRun:
    """A finished hostile-input run: the outcome and what a test may want to look at."""

    outcome: Outcome
    mix: Mix
    status: dict[str, Any]
    live: dict[str, Any] | None
    log_tail: str


async def run_hostile(tmp: Path, bootstrap: str, redis_url: str, *, seed: int, random_count: int, duplicates: int,
                      huge: int, minutes: int, scale: float, timeout: float = 120.0) -> HostileRun:
    """Scenario (a): the simulator's valid events with hostile ones mixed in, sent to one live worker; then
    every check of this module. Never raises on a finding: each one is a line of ``outcome.failures``."""
    from worker_harness import delete_topics_with_prefix, new_worker, now_us, simulate_file

    out = Outcome()
    start = (now_us() // S - (minutes + 3) * 60) * S  # the stream ends 3 minutes ago
    sim_path = tmp / "sim.jsonl"
    await asyncio.to_thread(simulate_file, sim_path, start_us=start, seconds=minutes * 60, seed=seed, scale=scale)
    sim = sim_messages(sim_path)
    mix = await asyncio.to_thread(build_mix, sim, f"s{seed}", start, start + minutes * 60 * S,
                                  random_count=random_count, seed=seed, duplicates=duplicates, huge=huge)
    out.sent, out.dropped = mix.counts(), mix.dropped
    valid_path = tmp / "valid.jsonl"
    valid_file(mix, valid_path)
    worker = new_worker(tmp, bootstrap, name="chaos")
    worker.env["CXPULSE_REDIS__URL"] = redis_url
    status: dict[str, Any] = {}
    live = None
    try:
        # the whole mix is on the topics before the worker starts: a stream written while the worker reads it
        # would show visits waiting whose (minutes old) answer is simply not produced yet, i.e. true breaches live
        await prepare_topics_for(worker)
        await send_all(bootstrap, worker.topics, mix.messages)
        worker.start()
        try:
            await worker.wait_ready()
        except BaseException as exc:  # pytest.fail's exception: a worker that never got ready is a finding too
            out.fail(f"the worker did not get ready: {exc}")
            return HostileRun(out, mix, status, None, worker.log_tail(40))
        read_once = len(mix.of("valid", "duplicate", "invalid", "future"))
        invalid_all = len(mix.of("invalid", "future", "lifecycle"))
        status, reached = await poll_status(
            worker, lambda st: WorkerProcess.seen(st) >= read_once and invalid_seen(st) >= invalid_all, timeout)
        if not reached:
            out.fail(f"the worker did not account for every record within {timeout:.0f}s (alive: {worker.alive()}): "
                     f"seen {WorkerProcess.seen(status) if 'topics' in status else '?'} of {read_once} read once, "
                     f"invalid {invalid_seen(status) if 'topics' in status else '?'} of {invalid_all}; status {status}")
        if not worker.alive():
            out.fail(f"the worker died (rc {worker.proc.returncode if worker.proc else None}); log tail:\n"
                     + worker.log_tail(25))
        else:
            try:
                code, body = await until_true(lambda: worker.get("/readyz"), lambda r: r[0] == 200, SETTLE_S)
                if code != 200:
                    out.fail(f"/readyz answers {code} at the end: {body}")
                status = await worker.status()
            except Exception as exc:  # noqa: BLE001
                out.fail(f"/readyz or /api/v1/status does not answer: {exc!r}")
        if "topics" in status:
            check_status(mix, status, worker.topics, out)
        try:
            expected_dlq = len(mix.of("invalid", "future", "lifecycle"))
            dlq = await until_true(
                lambda: consume_all(bootstrap, [worker.topics.contact_events_dlq, worker.topics.survey_responses_dlq]),
                lambda records: len(records) >= expected_dlq or not worker.alive(), SETTLE_S)
            check_dead_letters(mix, dlq, worker.topics, out)
        except (AssertionError, Exception) as exc:  # noqa: BLE001
            out.fail(f"could not read the DLQ topics: {exc!r}")
        if worker.alive():
            live, _ = await compare_with_replay(lambda: worker.kpis(all_window=True), valid_path, out)
            if live is not None:
                check_counts(mix, live, out)
            await check_read_model(worker, redis_url, out)
        read_at = now_us()
        try:
            # the breaches due by then: the worker publishes them once caught up and idle (a backlog was read)
            breaches = await until_true(
                lambda: consume_all(bootstrap, [worker.topics.sla_breaches]),
                lambda records: not missing_breaches(mix, records, read_at) or not worker.alive(), SETTLE_S)
            check_breaches(mix, breaches, read_at, out)
        except (AssertionError, Exception) as exc:  # noqa: BLE001
            out.fail(f"could not read sla-breaches: {exc!r}")
        if mix.tail and worker.alive():
            await huge_phase(worker, bootstrap, mix, status, out, timeout)
        return HostileRun(out, mix, status, live, worker.log_tail(40))
    finally:
        worker.stop()
        await delete_topics_with_prefix(bootstrap, worker.app_id)



async def huge_phase(worker: WorkerProcess, bootstrap: str, mix: Mix, before: dict[str, Any], out: Outcome,
                     timeout: float) -> None:
    """The ~1 MB records last (a worker they stop must not hide every other finding): each invalid one in the
    DLQ with its bytes and key, each valid one counted, and the worker still alive and answering."""
    await send_all(bootstrap, worker.topics, mix.tail)
    base = WorkerProcess.seen(before) if "topics" in before else 0
    base_invalid = invalid_seen(before) if "topics" in before else 0
    want_invalid = sum(1 for m in mix.tail if m.dead_letter)
    status, reached = await poll_status(
        worker, lambda st: WorkerProcess.seen(st) >= base + len(mix.tail) and invalid_seen(st) >= base_invalid + want_invalid,
        timeout)
    labels = ", ".join(f"{m.label} ({m.expect})" for m in mix.tail)
    wanted = {(m.value, m.key) for m in mix.tail if m.dead_letter}
    dlq = await until_true(
        lambda: consume_all(bootstrap, [worker.topics.contact_events_dlq, worker.topics.survey_responses_dlq]),
        lambda records: wanted <= {(r.value, r.key) for r in records} or not worker.alive(), SETTLE_S)
    if not worker.alive():
        out.fail(f"[tail] the worker died on {labels}; log tail:\n" + worker.log_tail(12))
        return
    if not reached:
        out.fail(f"[tail] not accounted for within {timeout:.0f}s ({labels}); status {status}")
    values = {(r.value, r.key) for r in dlq}
    for m in mix.tail:
        there = (m.value, m.key) in values
        if m.dead_letter and not there:
            out.fail(f"[tail] {m.label} ({len(m.value or b'')} bytes, invalid) not in the DLQ with its key")
        if not m.dead_letter and there:
            out.lost += 1
            out.fail(f"[tail] {m.label} (valid) dead-lettered")
    out.notes.append(f"sent last: {labels}")
    if worker.alive():
        try:
            live = await worker.kpis(all_window=True)
            full = Mix(mix.messages + mix.tail, mix.dropped)
            path = Path(worker.data_dir).parent / f"{worker.app_id}-valid-all.jsonl"
            valid_file(full, path)
            await asyncio.to_thread(replay_counts, path, live["generated_at"])
        except RuntimeError as exc:
            out.fail(f"[tail] the live document cannot be reproduced: {str(exc)[-300:]}")
