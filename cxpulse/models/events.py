"""The event contract (``shared/spec/events.md``) as strict pydantic v2 models.

Why strict: producers we do not control write these events, and a value that only *looks* right
(``"20"`` for a number, ``1`` for a boolean, a timestamp without offset) would silently skew a KPI.
Every rejection carries a reason a person can read and a short ``kind`` that is safe as a metric label.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal, Union

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError


Channel = Literal["voice", "chat", "email", "sms", "social", "app"]
CHANNELS: tuple[str, ...] = ("voice", "chat", "email", "sms", "social", "app")  # app: contract v2

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US = timedelta(microseconds=1)
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?(?P<offset>[Zz]|[+-]\d{2}:\d{2})?$"
)
# events.md "Plausibility": an instant from 1970-01-01 to 9999-12-31 in UTC (inclusive, to the microsecond)
MIN_TS_US = 0
MAX_TS_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z
MAX_DURATION_SECONDS = 86_400.0  # each of talk, hold, wrap



def parse_rfc3339(value: Any) -> datetime:
    """Accept only an RFC 3339 *string* with an explicit offset: event time must be unambiguous."""
    if not isinstance(value, str):
        raise PydanticCustomError("timestamp_type", "timestamp must be an RFC 3339 string")
    match = _RFC3339.match(value)
    if match is None:
        raise PydanticCustomError("timestamp_format", "timestamp is not RFC 3339: {value}", {"value": repr(value[:64])})
    if match.group("offset") is None:
        raise PydanticCustomError(
            "timestamp_no_offset", "timestamp has no UTC offset (add Z or +hh:mm): {value}", {"value": value}
        )
    text = value
    frac = match.group(1)
    if frac and len(frac) > 7:  # RFC 3339 allows any number of digits; we keep microseconds (truncated)
        text = value[: match.start(1)] + frac[:7] + value[match.end(1):]
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError as exc:
        raise PydanticCustomError("timestamp_format", "timestamp is not a valid date/time: {value}", {"value": repr(value[:64])}) from exc
    # bounded in UTC: "9999-12-31T23:59:59-23:59" is a valid string but lies in the year 10000 UTC, and a
    # year-0001 instant would make a wait of 2,025 years; neither may reach the clocks of the pipeline
    us = to_us(moment)
    if not MIN_TS_US <= us <= MAX_TS_US:
        raise PydanticCustomError(
            "timestamp_range", "timestamp outside 1970-01-01..9999-12-31 UTC: {value}", {"value": repr(value[:64])}
        )
    return moment


Timestamp = Annotated[datetime, BeforeValidator(parse_rfc3339)]
# events.md "Plausibility": names and ids carry no control characters (U+0000-U+001F, U+007F). Why: such a
# character is invisible on a wallboard, breaks log lines, and once broke the read model's merge. A pattern
# (checked in Rust by pydantic-core, and written into the JSON Schema) rather than a Python validator.
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
Id = Annotated[str, Field(min_length=1, max_length=128, pattern=NO_CONTROL)]
QueueName = Annotated[str, Field(min_length=1, max_length=64, pattern=NO_CONTROL)]
Name = Annotated[str, Field(pattern=NO_CONTROL)]  # reason, team: free names, but no control characters
Seconds = Annotated[float, Field(ge=0, le=MAX_DURATION_SECONDS, allow_inf_nan=False)]


def to_us(moment: datetime) -> int:
    """Exact integer microseconds since the epoch: waits compared with T must not suffer float rounding."""
    return (moment - _EPOCH) // _ONE_US


def format_ts(us: int) -> str:
    """RFC 3339 in UTC with millisecond precision when whole, microseconds otherwise; always a four-digit year.

    Why not ``strftime``: ``%Y`` writes year 1 as ``"1"`` on glibc, which is not RFC 3339. An instant outside
    the years 1..9999 is clamped to the nearest representable one rather than raising inside a sink."""
    try:
        moment = _EPOCH + timedelta(microseconds=us)
    except OverflowError:
        moment = datetime.max.replace(tzinfo=timezone.utc) if us > 0 else datetime.min.replace(tzinfo=timezone.utc)
        us = to_us(moment)
    head = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}."
    )
    if us % 1000 == 0:
        return head + f"{moment.microsecond // 1000:03d}Z"
    return head + f"{moment.microsecond:06d}Z"


class _Event(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    event_id: Id
    ts: Timestamp
    contact_id: Id
    customer_id: Id

    @property
    def ts_us(self) -> int:
        return to_us(self.ts)


class _ContactEvent(_Event):
    channel: Channel
    queue: QueueName


class ContactQueued(_ContactEvent):
    type: Literal["contact.queued"]
    reason: Name | None = None
    priority: int | None = None


class ContactAnswered(_ContactEvent):
    type: Literal["contact.answered"]
    agent_id: Id
    team: Name | None = None


class ContactAbandoned(_ContactEvent):
    type: Literal["contact.abandoned"]


class ContactEnded(_ContactEvent):
    type: Literal["contact.ended"]
    agent_id: Id
    talk_seconds: Seconds
    hold_seconds: Seconds
    wrap_seconds: Seconds
    resolved: bool
    transferred: bool = False
    disposition: str | None = None


def _at_least_one_score(model: "SurveyResponse") -> "SurveyResponse":
    if model.nps is None and model.csat is None:
        raise PydanticCustomError("score_missing", "a survey needs at least one of nps, csat")
    return model


class SurveyResponse(_Event):
    type: Literal["survey.response"]
    nps: Annotated[int, Field(ge=0, le=10)] | None = None
    csat: Annotated[int, Field(ge=1, le=5)] | None = None
    comment: str | None = None

    _check = model_validator(mode="after")(_at_least_one_score)


class SurveyFollowedUp(_Event):
    """Closing the loop (contract v2): someone at the centre answered the survey ``survey_event_id`` of this
    contact. Whether that survey exists is a lifecycle rule of the core (it may still arrive, within the
    allowed disorder), not a rule of the message."""

    type: Literal["survey.followed_up"]
    survey_event_id: Id
    agent_id: Id | None = None


ContactEvent = Annotated[
    Union[ContactQueued, ContactAnswered, ContactAbandoned, ContactEnded], Field(discriminator="type")
]
SurveyEvent = Annotated[Union[SurveyResponse, SurveyFollowedUp], Field(discriminator="type")]
AnyEvent = Union[ContactQueued, ContactAnswered, ContactAbandoned, ContactEnded, SurveyResponse, SurveyFollowedUp]
SURVEY_EVENT_TYPES = ("survey.response", "survey.followed_up")

CONTACT_EVENT_TYPES = ("contact.queued", "contact.answered", "contact.abandoned", "contact.ended")

_contact_adapter: TypeAdapter[Any] = TypeAdapter(ContactEvent)
_survey_adapter: TypeAdapter[SurveyResponse] = TypeAdapter(SurveyResponse)
_followed_up_adapter: TypeAdapter[SurveyFollowedUp] = TypeAdapter(SurveyFollowedUp)
_survey_topic_adapter: TypeAdapter[Any] = TypeAdapter(SurveyEvent)  # for the topic's JSON Schema


class InvalidEvent(Exception):
    """An event that breaks the contract. ``kind`` is a short fixed word (a metric label), ``reason`` is for people."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


_KIND_BY_ERROR = {
    "missing": "missing_field",
    "union_tag_not_found": "missing_field",
    "union_tag_invalid": "unknown_type",
    "literal_error": "invalid_value",
    "timestamp_no_offset": "timestamp_without_offset",
    "timestamp_format": "invalid_timestamp",
    "timestamp_type": "invalid_timestamp",
    "score_missing": "missing_field",
    "string_too_short": "out_of_range",
    "string_too_long": "out_of_range",
    "greater_than_equal": "out_of_range",
    "less_than_equal": "out_of_range",
    "finite_number": "out_of_range",
    "timestamp_range": "invalid_timestamp",
    "string_pattern_mismatch": "control_character",
}
_DURATIONS = {"talk_seconds", "hold_seconds", "wrap_seconds"}


def _describe(exc: ValidationError) -> InvalidEvent:
    """Turn pydantic's errors into one sentence naming the field path, and one metric-safe kind."""
    parts: list[str] = []
    kind = "wrong_type"
    for index, err in enumerate(exc.errors(include_url=False)):
        loc = [str(p) for p in err["loc"]]
        # a discriminated union puts the tag first in the path ("contact.ended", "talk_seconds"): drop it
        if loc and loc[0] in CONTACT_EVENT_TYPES:
            loc = loc[1:]
        field = ".".join(loc) or "event"
        err_kind = _KIND_BY_ERROR.get(err["type"], "wrong_type")
        if err["type"] == "greater_than_equal" and field in _DURATIONS:  # durations are top-level fields
            err_kind = "negative_duration"
        if err["type"] == "union_tag_not_found":
            field, message = "type", "field required"
        elif err["type"] == "union_tag_invalid":
            field = "type"
            message = f"unknown event type {err['input'].get('type')!r}" if isinstance(err["input"], dict) else err["msg"]
        elif err["type"] == "missing":
            message = "field required"
        elif err["type"] == "string_pattern_mismatch":
            message = "contains a control character (U+0000-U+001F or U+007F)"
        else:
            message = err["msg"]
        if index == 0:
            kind = err_kind
        parts.append(f"{field}: {message}")
    return InvalidEvent(kind, "; ".join(parts))


def _load_object(raw: bytes | str) -> dict[str, Any]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("not_json", f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidEvent("not_json", f"not a JSON object but {type(obj).__name__}")
    return obj


def parse_contact_event(raw: bytes | str | dict[str, Any]) -> ContactQueued | ContactAnswered | ContactAbandoned | ContactEnded:
    """Validate one record of topic ``contact-events``; raises :class:`InvalidEvent`."""
    obj = raw if isinstance(raw, dict) else _load_object(raw)
    try:
        return _contact_adapter.validate_python(obj)
    except ValidationError as exc:
        raise _describe(exc) from None


def parse_survey_response(raw: bytes | str | dict[str, Any]) -> SurveyResponse | SurveyFollowedUp:
    """Validate one record of topic ``survey-responses`` (a ``survey.response`` or, contract v2, a
    ``survey.followed_up``); raises :class:`InvalidEvent`."""
    obj = raw if isinstance(raw, dict) else _load_object(raw)
    kind = obj.get("type")
    if kind != "survey.response" and kind != "survey.followed_up":
        if "type" not in obj:
            raise InvalidEvent("missing_field", "type: field required")
        raise InvalidEvent("unknown_type", f"type: unknown event type {obj.get('type')!r} on the survey topic")
    try:
        if kind == "survey.response":
            return _survey_adapter.validate_python(obj)
        return _followed_up_adapter.validate_python(obj)
    except ValidationError as exc:
        raise _describe(exc) from None


def parse_any_event(raw: bytes | str | dict[str, Any]) -> AnyEvent:
    """Validate a record of either topic, told apart by ``type`` (JSON Lines files mix both)."""
    obj = raw if isinstance(raw, dict) else _load_object(raw)
    if obj.get("type") in SURVEY_EVENT_TYPES:
        return parse_survey_response(obj)
    return parse_contact_event(obj)


def topic_of(event: AnyEvent) -> str:
    """Which contract topic an event belongs on (by its type)."""
    return "survey-responses" if isinstance(event, (SurveyResponse, SurveyFollowedUp)) else "contact-events"


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of each topic, generated from the models so the two cannot drift."""
    return {
        "contact-events": _contact_adapter.json_schema(),
        "survey-responses": _survey_topic_adapter.json_schema(),
    }
