"""A contact centre as a YAML file: queues, staffing, arrival rates, handle times, customer behaviour.

Why a file validated by pydantic: the simulator is only as believable as its centre, and a typo
(``agnets: 12``, a transfer to a queue that does not exist) must stop the run with a line naming the key
and the bad value instead of silently producing a different centre.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cxpulse.models.events import Channel
from cxpulse.simulator.distributions import ZERO, Distribution, Exponential, LogNormal

DEFAULT_CENTRE = Path(__file__).resolve().parent / "centres" / "default.yaml"

Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
QueueName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
HourProfile = Annotated[list[Annotated[float, Field(ge=0, allow_inf_nan=False)]], Field(min_length=24, max_length=24)]

SL_THRESHOLD_SECONDS_BY_CHANNEL: dict[str, float] = {
    "voice": 20, "chat": 30, "sms": 120, "social": 3600, "email": 14400, "app": 30,
}
"""The service-level threshold a queue is staffed for when its file names none: kpis.md's channel defaults
(and, for ``app``, which kpis.md leaves open, the settings' default: in-app messages are answered like a chat)."""


class CentreError(Exception):
    """A centre file that cannot be used; the message names every bad key and value, one per line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_profile(profile: list[float] | None) -> list[float] | None:
    if profile is not None and not any(value > 0 for value in profile):
        raise ValueError("an hour profile needs at least one hour with arrivals (a value > 0)")
    return profile


class Transfer(_Strict):
    """Some contacts need another skill: the agent ends their part and the contact queues again elsewhere."""

    probability: Probability = 0.0
    to: dict[QueueName, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="target queue -> relative weight"
    )

    @model_validator(mode="after")
    def _targets_when_used(self) -> "Transfer":
        if self.probability > 0 and not self.to:
            raise ValueError("a transfer probability > 0 needs at least one target queue in 'to'")
        return self


class Repeat(_Strict):
    """Customers whose issue was not resolved (or who gave up waiting) come back with the same reason."""

    probability: Probability = 0.0
    delay: Distribution = Field(
        default_factory=lambda: LogNormal(dist="lognormal", mean=7200, sd=5400),
        description="time from the unresolved end (or abandon) to the customer's next contact",
    )


class Queue(_Strict):
    """One queue (skill group) and the agents, customers and contacts it sees."""

    channel: Channel
    arrivals_per_hour: float = Field(ge=0, allow_inf_nan=False, description="new contacts per hour at profile 1.0")
    agents: int = Field(ge=1, description="agents staffed on this queue, each serving one contact at a time")
    priority: int | None = Field(default=None, description="written on contact.queued; informational")
    teams: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list, description="agents rotate over these")
    agent_prefix: str | None = Field(default=None, min_length=1, max_length=40)
    hour_profile: HourProfile | None = Field(default=None, description="overrides the centre's profile")
    talk: Distribution
    hold_probability: Probability = 0.0
    hold: Distribution = ZERO
    wrap: Distribution = ZERO
    patience: Distribution | None = Field(default=None, description="time a customer waits before abandoning; none = never")
    resolve_probability: Probability = 0.8
    transfer: Transfer = Field(default_factory=Transfer)
    reasons: dict[Annotated[str, Field(min_length=1)], Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="contact reason -> relative weight; empty = reason null"
    )
    repeat: Repeat = Field(default_factory=Repeat)
    answer_tolerance_seconds: float = Field(
        default=60, gt=0, description="a wait customers accept without losing goodwill (drives survey scores)"
    )
    answer_delay: Distribution | None = Field(
        default=None,
        description="ring and pick-up: from an agent being assigned to contact.answered; none = the centre's",
    )
    sl_threshold_seconds: float | None = Field(
        default=None, gt=0, allow_inf_nan=False,
        description="the service level the demo staffs for (--demo); none = the channel's default of kpis.md",
    )
    sl_target: float = Field(default=0.80, gt=0, lt=1, description="share answered within sl_threshold_seconds")

    _profile = field_validator("hour_profile")(lambda cls, v: _check_profile(v))

    @property
    def staffing_threshold_seconds(self) -> float:
        """The threshold the Erlang C staffing of ``--demo`` aims at."""
        if self.sl_threshold_seconds is not None:
            return self.sl_threshold_seconds
        return SL_THRESHOLD_SECONDS_BY_CHANNEL[self.channel]


class FollowUp(_Strict):
    """Closing the loop (contract v2, ``survey.followed_up``): someone calls a share of the detractors back.

    A detractor is a survey with ``nps`` <= 6 or ``csat`` <= 2 (kpis.md); the delay runs from the survey to the
    follow-up, and its long tail lands after the centre's ``feedback_response_target`` (a feedback breach), as
    do the detractors nobody follows up.
    """

    probability: Probability = Field(default=0.85, description="share of detractor surveys followed up at all")
    delay: Distribution = Field(
        default_factory=lambda: LogNormal(dist="lognormal", mean=21600, sd=43200),
        description="from the survey to its follow-up",
    )


class Surveys(_Strict):
    """Post-contact surveys: who answers, when, and how wait and resolution move the scores."""

    response_probability: Probability = 0.2
    delay: Distribution = Field(default_factory=lambda: Exponential(dist="exponential", mean=600))
    nps_probability: Probability = Field(default=0.85, description="a responder answers the NPS question")
    csat_probability: Probability = Field(default=0.85, description="a responder answers the CSAT question")
    comment_probability: Probability = 0.15
    follow_up: FollowUp | None = Field(
        default=None,
        description="follow-ups of detractors in every mode; none = only --demo writes them (demo.follow_up)",
    )


class Break(_Strict):
    """One away of an agent's shift (``agent.state`` ``away`` with this ``reason``), due ``after`` seconds on shift.

    Due while the agent is on a contact, the break starts when its wrap-up ends: nobody leaves a customer
    for a coffee."""

    reason: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
    after: float = Field(gt=0, allow_inf_nan=False, description="seconds from the start of the shift")
    duration: Distribution


class Shifts(_Strict):
    """Agents' breaks and lunch (they exist only with ``--agents``): the profile every agent's shift follows.

    Why shifts with a random start: agents on duty when the run starts have been on for a random part of
    ``shift_seconds``, so their breaks are spread over the hours instead of all falling due at once; an agent
    who logs on during the run (demo staffing) starts a shift then."""

    shift_seconds: float = Field(default=28800, gt=0, allow_inf_nan=False)
    breaks: list[Break] = Field(default_factory=list, description="each once per shift")


class Demo(_Strict):
    """How ``cxpulse simulate --demo`` (what ``make run`` starts) keeps the centre under pressure at any hour.

    Why a separate mode rather than a busier centre: the file's centre follows the real hour of day, which
    is right for a replay of history and for the benchmarks (their volume per day must stay put), but a
    demo started at 21:30 then shows a quiet, overstaffed evening: 100% everywhere, nothing to see.
    """

    busy_share: float = Field(
        default=0.85, gt=0, le=1,
        description="the busy part of the day: hours whose profile is at least this share of the peak hour",
    )
    staffing_interval_seconds: float = Field(
        default=600, ge=60, le=86400, allow_inf_nan=False, description="how often staffing changes"
    )
    shortfall: float = Field(
        default=0.25, ge=0, lt=1, description="staffing may fall this share below the Erlang C need"
    )
    surplus: float = Field(default=0.10, ge=0, le=1, description="staffing may rise this share above it")
    step: float = Field(
        default=0.06, gt=0, le=1, description="standard deviation of the walk per interval, a share of the need"
    )
    follow_up: FollowUp | None = Field(
        default=None, description="what --demo writes of survey.followed_up (over surveys.follow_up)"
    )
    queues: dict[QueueName, Queue] = Field(
        default_factory=dict,
        description="queues only the demo has (the in-app channel of contract v2): the file's day stays as it was",
    )


class Centre(_Strict):
    """The whole simulated contact centre."""

    name: str = "contact centre"
    timezone: str = Field(default="UTC", description="where the hour profile's hours are counted")
    hour_profile: HourProfile | None = Field(default=None, description="24 multipliers of arrivals_per_hour, hour 0..23")
    max_transfers: int = Field(default=2, ge=0, description="a contact is not transferred more often than this")
    answer_delay: Distribution | None = Field(
        default=None,
        description="ring and pick-up time of every queue that sets none; none = answered the moment an agent is free",
    )
    surveys: Surveys = Field(default_factory=Surveys)
    shifts: Shifts = Field(default_factory=Shifts, description="agents' breaks and lunch (with --agents)")
    agent_names: bool = Field(default=True, description="agent.state events carry a made-up agent_name")
    demo: Demo = Field(default_factory=Demo)
    queues: dict[QueueName, Queue] = Field(min_length=1)

    _profile = field_validator("hour_profile")(lambda cls, v: _check_profile(v))

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA timezone {value!r}") from None
        return value

    def queues_for(self, demo: bool) -> dict[str, Queue]:
        """The queues a run simulates: the file's, and in demo mode ``demo.queues`` after them."""
        return {**self.queues, **self.demo.queues} if demo else dict(self.queues)

    @model_validator(mode="after")
    def _transfer_targets_exist(self) -> "Centre":
        for name in self.demo.queues:
            if name in self.queues:
                raise ValueError(f"demo.queues.{name}: a queue of that name is in queues already")
        for section, queues, known in (("queues", self.queues, self.queues), ("demo.queues", self.demo.queues,
                                                                              self.queues_for(True))):
            for name, queue in queues.items():
                for target in queue.transfer.to:
                    if target not in known:
                        raise ValueError(f"{section}.{name}.transfer.to: unknown queue {target!r}")
                    if target == name:
                        raise ValueError(f"{section}.{name}.transfer.to: a queue cannot transfer to itself")
        return self


def _format(exc: ValidationError, source: str) -> str:
    lines = [f"invalid centre ({source}):"]
    for err in exc.errors(include_url=False):
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        value = err.get("input")
        shown = "{...}" if isinstance(value, dict) else repr(value)
        lines.append(f"  {key} = {shown[:80]}: {err['msg']}")
    return "\n".join(lines)


def parse_centre(data: Any, source: str = "centre") -> Centre:
    """Validate an already-loaded mapping; raises :class:`CentreError` naming each bad key and value."""
    if not isinstance(data, dict):
        raise CentreError(f"invalid centre ({source}): the top level must be a mapping, got {type(data).__name__}")
    try:
        return Centre.model_validate(data)
    except ValidationError as exc:
        raise CentreError(_format(exc, source)) from None


def load_centre(path: str | Path | None = None) -> Centre:
    """Read and validate a centre file; ``None`` means the default centre shipped with cxpulse."""
    file = Path(path) if path is not None else DEFAULT_CENTRE
    if not file.is_file():
        raise CentreError(f"invalid centre: file {str(file)!r} does not exist")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CentreError(f"invalid centre: {file} is not valid YAML: {exc}") from None
    return parse_centre(data, str(file))
