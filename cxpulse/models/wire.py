"""The hot-path decoder of the event contract: msgspec Structs that accept exactly what :mod:`.events` accepts.

Why a second decoder: the strict pydantic models of :mod:`cxpulse.models.events` cost tens of microseconds
per event, a large share of the per-event path (issue 9). msgspec decodes and validates the same bytes in a
few microseconds. The pydantic models stay the contract's reference (its JSON Schemas, its error messages);
this module is a faster road to the same answers:

* every event the pydantic path accepts, this path accepts with the same field values and the same
  ``ts_us``; every event it rejects, this path rejects with the same :class:`~.events.InvalidEvent` ``kind``
  and ``reason`` (``tests/unit/test_wire.py`` checks both directions with a hostile generator);
* a rejection is never explained here: on any refusal the bytes are handed to the pydantic parser, which
  raises the exact ``InvalidEvent``. Rejections are rare, so their speed does not matter.

Three roads, fastest first (see :func:`_decode`):

1. msgspec decodes the raw bytes into Structs that *forbid* unknown fields. Why forbid although the contract
   ignores them: a value msgspec skips is not checked the way orjson (and so the pydantic path) checks the
   whole message: invalid UTF-8 inside it, a number that overflows to infinity (``1e400``) pass msgspec and
   make orjson refuse the message as not JSON. Without skipped values, every byte goes through msgspec's own
   checks. (A duplicate key is decoded twice, both values checked: stricter than orjson's "last one wins",
   so such a message takes road 2.) Names and ids are then checked for control characters, only when the
   bytes contain a backslash or a DEL (see :func:`_may_hide_control`).
2. When that fails (most often: the producer added a field of its own), orjson parses the bytes exactly as
   the pydantic path does (so the same messages are "not JSON", duplicate keys resolve the same way), the
   fields the contract does not know are dropped, and msgspec converts the rest to the class ``type`` names.
   Measured: about as fast as pydantic, no faster (bench/validation.py prints it).
3. When that fails too, the pydantic parser decides: it raises the exact ``InvalidEvent``. Should it accept
   instead, the two validators disagree (a bug; the tests find none): the event is then built from
   pydantic's values, so the pipeline still sees pydantic's verdict, and a warning is logged once.

Timestamps are kept as the original text (``ts_text``) and as integer microseconds since the epoch (``ts_us``,
what the core computes with), parsed by :func:`ts_to_us` without creating a ``datetime`` on the usual path.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, ClassVar, Final, Literal, Union

import msgspec
import orjson
from msgspec.structs import force_setattr

from cxpulse.models.events import (
    MAX_DURATION_SECONDS,
    MAX_TS_US,
    MIN_TS_US,
    InvalidEvent,
    parse_any_event,
    parse_contact_event,
    parse_rfc3339,
    parse_survey_response,
    to_us,
)
from cxpulse.units import US_PER_SECOND

__all__ = [
    "InvalidEvent",
    "WireAnyEvent",
    "WireContactAbandoned",
    "WireContactAnswered",
    "WireContactEnded",
    "WireContactEvent",
    "WireContactQueued",
    "WireEvent",
    "WireSurveyFollowedUp",
    "WireSurveyResponse",
    "decode_any_event",
    "decode_contact_event",
    "decode_survey_response",
    "disagreements",
    "ts_to_us",
]

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------------ timestamps

_HEAD = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}", re.ASCII)
"""``YYYY-MM-DDTHH`` in ASCII digits: the part of a timestamp whose epoch seconds are cached."""
_OFFSET = re.compile(r"[Zz]|[+-]\d{2}:\d{2}", re.ASCII)
_MINUTE_SECOND: Final[dict[str, int]] = {f":{m:02d}:{s:02d}": m * 60 + s for m in range(60) for s in range(60)}
"""``":MM:SS"`` -> seconds: one lookup both checks the shape (ASCII digits, 00..59) and converts."""
_SHORT_FRACTION: Final[dict[str, int]] = {"": 0} | {
    f".{n:0{width}d}": n * 10 ** (6 - width) for width in (1, 2, 3) for n in range(10**width)
}
"""``""``, ``".d"``, ``".dd"``, ``".ddd"`` -> microseconds (1,111 entries); longer fractions are parsed."""
_CACHE_MAX: Final = 8192
_z_cache: dict[str, int] = {}
"""``YYYY-MM-DDTHH`` -> epoch seconds of ``YYYY-MM-DDTHH:00:00Z``; only valid instants are stored."""
_offset_cache: dict[str, int] = {}
"""``YYYY-MM-DDTHH`` + ``+hh:mm`` (or ``z``) -> epoch seconds of that hour at that offset; only valid ones.

Why the hour: a stream holds thousands of events per hour of event time, so nearly every lookup hits, and
the minutes and seconds left over are one lookup in :data:`_MINUTE_SECOND`. Bounded (cleared when full): a
replay of a month needs about 750 entries; a hostile producer cannot grow them without limit."""


def _head_seconds(head: str, offset: str) -> int | None:
    """Epoch seconds of ``head + ":00:00" + offset``, or ``None`` when :func:`~.events.parse_rfc3339` would
    not accept that hour. Why through ``datetime.fromisoformat``: which dates, hours and offsets exist is then
    decided by the very function the pydantic path uses (Feb 30, year 0, offset +24:00, and its quirks: it
    reads ``+00:60`` as ``+01:00``), not by a copy of its rules. The range is *not* checked here: it applies
    to the whole instant, seconds and fraction included."""
    if _HEAD.fullmatch(head) is None or _OFFSET.fullmatch(offset) is None or head[11:13] == "24":
        return None  # "24": should a later Python accept T24:00:00, T24:00:01 must still take the slow road
    try:
        moment = datetime.fromisoformat((head + ":00:00" + offset).replace("z", "Z").replace("t", "T"))
    except ValueError:
        return None
    return to_us(moment) // US_PER_SECOND


def _reference_ts_to_us(text: str) -> int:
    """The reference road: exactly :func:`~.events.parse_rfc3339` (it raises a ``ValueError`` subclass)."""
    return to_us(parse_rfc3339(text))


def _general_ts_to_us(text: str) -> int:
    """Any offset, any number of fractional digits, and filling the caches; the odd rest goes to the reference."""
    last = text[-1:]
    if last == "Z" or last == "z":
        offset, body = last, text[:-1]
    elif len(text) > 6 and text[-6] in "+-":
        offset, body = text[-6:], text[:-6]
    else:
        return _reference_ts_to_us(text)
    head = body[:13]
    key = head + offset
    base = _offset_cache.get(key)
    if base is None:
        base = _head_seconds(head, offset)
        if base is None:
            return _reference_ts_to_us(text)
        if len(_offset_cache) >= _CACHE_MAX:
            _offset_cache.clear()
        if len(_z_cache) >= _CACHE_MAX:
            _z_cache.clear()
        _offset_cache[key] = base
        if offset == "Z":
            _z_cache[head] = base
    seconds = _MINUTE_SECOND.get(body[13:19])
    if seconds is None:
        return _reference_ts_to_us(text)
    fraction = body[19:]
    micros = _SHORT_FRACTION.get(fraction)
    if micros is None:
        digits = fraction[1:]
        if fraction[:1] != "." or not (digits.isdigit() and digits.isascii()):  # isdigit alone admits "²"
            return _reference_ts_to_us(text)
        micros = int(digits[:6].ljust(6, "0"))  # truncated to the microsecond, as parse_rfc3339 does
    us = (base + seconds) * US_PER_SECOND + micros
    if not MIN_TS_US <= us <= MAX_TS_US:
        return _reference_ts_to_us(text)  # raises timestamp_range, worded by the reference
    return us


def ts_to_us(text: str) -> int:
    """Microseconds since the epoch of an RFC 3339 timestamp, by exactly the rules of ``parse_rfc3339``.

    Why not ``parse_rfc3339``: a regular expression, ``fromisoformat`` and two ``datetime`` subtractions cost
    several microseconds per event. The usual shape (``YYYY-MM-DDTHH:MM:SS`` + up to three fractional digits
    + ``Z``) costs here four slices and three dictionary lookups, no ``datetime``. Soundness of that road: a
    cached hour is a valid 13-character head, ``":MM:SS"`` found in :data:`_MINUTE_SECOND` is 6 characters
    at 13..18, so the text is exactly head + ``:MM:SS`` + a known fraction + ``Z``. Other offsets and longer
    fractions take :func:`_general_ts_to_us`; anything odd (no offset, a leap second, Unicode digits, a
    trailing newline) the reference, which gives the exact verdict. Raises ``ValueError`` when refused.
    """
    if text[-1:] == "Z":
        base = _z_cache.get(text[:13])
        if base is not None:
            seconds = _MINUTE_SECOND.get(text[13:19])
            micros = _SHORT_FRACTION.get(text[19:-1])
            if seconds is not None and micros is not None:
                us = (base + seconds) * US_PER_SECOND + micros
                # no upper check: a four-digit year's hour + :59:59 + .999 ends before MAX_TS_US; a cached hour
                # may lie before the epoch, though (the range applies to the whole instant, see _head_seconds)
                if us >= MIN_TS_US:
                    return us
    return _general_ts_to_us(text)


# ------------------------------------------------------------------------------------------------ the Structs

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def _may_hide_control(raw: bytes | str) -> bool:
    """Whether a decoded string of ``raw`` can hold a control character (U+0000-U+001F, U+007F) at all.

    JSON refuses those characters raw inside a string (msgspec and orjson both do), except DEL; so one can
    only come from an escape (``\\n``, ``\\u0001``, ...) or a raw DEL. Two ``memchr`` scans of the bytes clear
    nearly every event without looking at a field. Why not ``msgspec.Meta(pattern=NO_CONTROL)``: msgspec runs
    one Python ``re.search`` per field, measured at more than half of the decode time. (Had the pattern been
    kept, it would need ``\\Z``: Python's ``$`` also matches before a final newline, so ``"queue\\n"`` would
    pass, where pydantic-core's Rust regex reads ``$`` as the end of the text.)"""
    if type(raw) is bytes:
        return 92 in raw or 127 in raw  # an int operand is a memchr: 10x faster than b"\\" in raw (measured)
    return "\\" in raw or "\x7f" in raw


def _has_control(event: WireEvent) -> bool:
    """events.md "Plausibility": whether a name or id of ``event`` holds a control character (as
    ``NO_CONTROL`` of events.py judges: ``reason``, ``team``, ids and ``queue``; not ``disposition``/``comment``).
    ``str.isprintable`` (one C loop) clears almost every text; only a non-printable one is searched."""
    joined = "".join([getattr(event, name) or "" for name in event.checked_names])
    return not joined.isprintable() and _CONTROL.search(joined) is not None


Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]  # + no control characters: _has_control
QueueName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]  # idem
Seconds = Annotated[float, msgspec.Meta(ge=0, le=MAX_DURATION_SECONDS)]  # JSON has no NaN; overflow is refused
PRIORITY_MIN: Final = -(2**63)
PRIORITY_MAX: Final = 2**64 - 1
"""Why bounded although the contract says only "int": orjson reads a JSON integer outside int64/uint64 as a
float, which the strict pydantic path then refuses; msgspec would keep it as a Python int. Checked in
``__post_init__`` because msgspec's ``Meta(le=...)`` cannot express a bound above int64."""
Nps = Annotated[int, msgspec.Meta(ge=0, le=10)]
Csat = Annotated[int, msgspec.Meta(ge=1, le=5)]
Channel = Literal["voice", "chat", "email", "sms", "social", "app"]


class WireEvent(
    msgspec.Struct, tag_field="type", frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False
):
    """Fields every contract event has. ``frozen``: events are facts; ``gc=False``: only scalars inside, so
    the garbage collector need not track millions of them.

    ``ts_text`` is the ``ts`` of the JSON as written; ``ts_us`` its instant, computed in ``__post_init__``
    (cheaper than a property computed on each read: the core reads it several times per event). A ``ts_us``
    key in the JSON is overwritten. ``type`` is a class constant, as the pydantic models' literal.
    Only the decode functions below check control characters (see :func:`_may_hide_control`).
    """

    type: ClassVar[str]
    checked_names: ClassVar[tuple[str, ...]] = ("event_id", "contact_id", "customer_id")
    event_id: Id
    ts_text: str = msgspec.field(name="ts")
    contact_id: Id
    customer_id: Id
    ts_us: int = 0

    def __post_init__(self) -> None:
        force_setattr(self, "ts_us", ts_to_us(self.ts_text))


class _WireContactEvent(WireEvent):
    channel: Channel
    queue: QueueName


class WireContactQueued(_WireContactEvent, tag="contact.queued"):
    """``contact.queued``: the contact starts waiting in ``queue``."""

    type: ClassVar[str] = "contact.queued"
    checked_names: ClassVar[tuple[str, ...]] = ("event_id", "contact_id", "customer_id", "queue", "reason")
    reason: str | None = None
    priority: int | None = None  # PRIORITY_MIN..PRIORITY_MAX

    def __post_init__(self) -> None:
        if self.priority is not None and not PRIORITY_MIN <= self.priority <= PRIORITY_MAX:
            raise ValueError("priority outside int64/uint64: orjson would read it as a float")
        force_setattr(self, "ts_us", ts_to_us(self.ts_text))


class WireContactAnswered(_WireContactEvent, tag="contact.answered"):
    """``contact.answered``: an agent takes the contact."""

    type: ClassVar[str] = "contact.answered"
    checked_names: ClassVar[tuple[str, ...]] = (
        "event_id", "contact_id", "customer_id", "queue", "agent_id", "team"
    )
    agent_id: Id
    team: str | None = None


class WireContactAbandoned(_WireContactEvent, tag="contact.abandoned"):
    """``contact.abandoned``: the customer gives up while waiting."""

    type: ClassVar[str] = "contact.abandoned"
    checked_names: ClassVar[tuple[str, ...]] = ("event_id", "contact_id", "customer_id", "queue")


class WireContactEnded(_WireContactEvent, tag="contact.ended"):
    """``contact.ended``: the agent's work on the contact ends. ``disposition`` may hold anything (as in events.py)."""

    type: ClassVar[str] = "contact.ended"
    checked_names: ClassVar[tuple[str, ...]] = ("event_id", "contact_id", "customer_id", "queue", "agent_id")
    agent_id: Id
    talk_seconds: Seconds
    hold_seconds: Seconds
    wrap_seconds: Seconds
    resolved: bool
    transferred: bool = False
    disposition: str | None = None


class WireSurveyResponse(WireEvent, tag="survey.response"):
    """``survey.response`` (topic ``survey-responses``); at least one of ``nps``, ``csat``."""

    type: ClassVar[str] = "survey.response"
    nps: Nps | None = None
    csat: Csat | None = None
    comment: str | None = None  # free text: anything (as in events.py)

    def __post_init__(self) -> None:
        if self.nps is None and self.csat is None:
            raise ValueError("a survey needs at least one of nps, csat")
        force_setattr(self, "ts_us", ts_to_us(self.ts_text))


class WireSurveyFollowedUp(WireEvent, tag="survey.followed_up"):
    """``survey.followed_up`` (contract v2, topic ``survey-responses``): the survey ``survey_event_id`` of this
    contact was answered by the centre. Whether that survey exists is the core's lifecycle rule."""

    type: ClassVar[str] = "survey.followed_up"
    checked_names: ClassVar[tuple[str, ...]] = (
        "event_id", "contact_id", "customer_id", "survey_event_id", "agent_id"
    )
    survey_event_id: Id
    agent_id: Id | None = None


WireContactEvent = Union[WireContactQueued, WireContactAnswered, WireContactAbandoned, WireContactEnded]
WireSurveyEvent = Union[WireSurveyResponse, WireSurveyFollowedUp]
WireAnyEvent = Union[
    WireContactQueued, WireContactAnswered, WireContactAbandoned, WireContactEnded, WireSurveyResponse,
    WireSurveyFollowedUp,
]

_ALL_TYPES: Final = (
    WireContactQueued, WireContactAnswered, WireContactAbandoned, WireContactEnded, WireSurveyResponse,
    WireSurveyFollowedUp,
)
_SURVEY_TYPES: Final = (WireSurveyResponse, WireSurveyFollowedUp)
_CLASS_BY_TAG: Final[dict[str, type[WireEvent]]] = {cls.type: cls for cls in _ALL_TYPES}
_CONTACT_CLASSES: Final = {tag: cls for tag, cls in _CLASS_BY_TAG.items() if cls not in _SURVEY_TYPES}
_SURVEY_CLASSES: Final[dict[str, type[WireEvent]]] = {cls.type: cls for cls in _SURVEY_TYPES}


def _contract_keys(cls: type[WireEvent]) -> frozenset[str]:
    """The JSON keys the contract defines for one type (``ts_us`` is ours, not the contract's)."""
    return frozenset(f.encode_name for f in msgspec.structs.fields(cls) if f.name != "ts_us") | {"type"}


_KEYS_BY_TAG: Final = {tag: _contract_keys(cls) for tag, cls in _CLASS_BY_TAG.items()}

_contact_decoder: Final = msgspec.json.Decoder(WireContactEvent)
_any_decoder: Final = msgspec.json.Decoder(WireAnyEvent)

# ------------------------------------------------------------------------------------------------ decoding

_disagreements = 0


def disagreements() -> int:
    """How many events msgspec refused and pydantic accepted in this process (should stay 0; see module doc)."""
    return _disagreements


def _from_pydantic(model: Any, obj: dict[str, Any]) -> WireEvent:
    """Build the Struct from the values pydantic accepted (the road of a disagreement, never the usual one)."""
    global _disagreements
    _disagreements += 1
    if _disagreements == 1:
        log.warning("msgspec refused an event pydantic accepts (type %r); using pydantic's values", model.type)
    cls = _CLASS_BY_TAG[model.type]
    names = [f.name for f in msgspec.structs.fields(cls) if f.name not in ("ts_text", "ts_us")]
    return cls(ts_text=obj["ts"], **{name: getattr(model, name) for name in names})


def _decode(
    raw: bytes | str,
    decoder: msgspec.json.Decoder[Any],
    classes: dict[str, type[WireEvent]],
    parse: Callable[[Any], Any],
    want: tuple[type[WireEvent], ...] | None = None,
) -> Any:
    """The three roads of the module doc: strict msgspec, orjson + msgspec on the contract's keys, pydantic.

    ``classes``: the types this topic admits, by tag. ``want``: the only classes the first road may return (the
    survey topic decodes with the decoder of every type, see :func:`decode_survey_response`). The second road
    converts to the one class named by ``type`` (measured: converting to the union costs 6x more)."""
    try:
        event = decoder.decode(raw)
    except Exception:  # ValidationError, DecodeError, UnicodeDecodeError, RecursionError: all mean "not here"
        pass
    else:
        if (want is None or type(event) in want) and not (_may_hide_control(raw) and _has_control(event)):
            return event
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return parse(raw)  # raises InvalidEvent("not_json", ...) worded by the reference
    if not isinstance(obj, dict):
        return parse(raw)  # raises InvalidEvent("not_json", "not a JSON object ...")
    tag = obj.get("type")
    cls = classes.get(tag) if isinstance(tag, str) else None
    if cls is not None:
        try:
            event = msgspec.convert({k: obj[k] for k in _KEYS_BY_TAG[tag] if k in obj}, cls)
        except Exception:
            pass
        else:
            if not (_may_hide_control(raw) and _has_control(event)):
                return event
    model = parse(obj)  # raises the exact InvalidEvent; returns only on a disagreement
    return _from_pydantic(model, obj)


def decode_contact_event(
    raw: bytes | str,
) -> WireContactQueued | WireContactAnswered | WireContactAbandoned | WireContactEnded:
    """Decode one record of topic ``contact-events``, as :func:`~.events.parse_contact_event` would judge it.

    Raises :class:`~.events.InvalidEvent` with the same ``kind`` and ``reason`` as the pydantic path."""
    return _decode(raw, _contact_decoder, _CONTACT_CLASSES, parse_contact_event)  # type: ignore[no-any-return]


def decode_survey_response(raw: bytes | str) -> WireSurveyResponse | WireSurveyFollowedUp:
    """Decode one record of topic ``survey-responses`` (a ``survey.response`` or a ``survey.followed_up``), as
    :func:`~.events.parse_survey_response` would.

    Why with the decoder of every type: msgspec accepts a lone tagged Struct *without* its tag, and the
    contract requires ``type``; a contact event sent here is refused by the reference, with its wording."""
    return _decode(  # type: ignore[no-any-return]
        raw, _any_decoder, _SURVEY_CLASSES, parse_survey_response, want=_SURVEY_TYPES
    )


def decode_any_event(raw: bytes | str) -> WireAnyEvent:
    """Decode a record of either topic, told apart by ``type``, as :func:`~.events.parse_any_event` would."""
    return _decode(raw, _any_decoder, _CLASS_BY_TAG, parse_any_event)  # type: ignore[no-any-return]
