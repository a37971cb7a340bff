"""One settings object for every part of cxpulse: a YAML file plus ``CXPULSE_*`` environment variables.

Why one object: the KPI core, the worker, the sinks and the simulator must agree on thresholds, topics and
addresses; a second source of truth would let the wallboard and Prometheus disagree. Validation happens at
start, and :func:`load_settings` turns pydantic's errors into lines naming the key and the bad value.

Environment variables override the file, nested keys joined by ``__``:
``CXPULSE_KAFKA__BOOTSTRAP_SERVERS=broker:9092``, ``CXPULSE_KPI__TIMEZONE=Europe/Paris``.
The file is ``$CXPULSE_CONFIG`` or the path given to :func:`load_settings`.
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from cxpulse.units import US_PER_SECOND

SlFormula = Literal["exclude_short_abandons", "abandons_count_against", "abandons_within_count_for"]
CHANNELS = ("voice", "chat", "email", "sms", "social", "app")  # app: in-app messaging (contract v2)
FEEDBACK_RESPONSE_TARGET = 48 * 3600  # kpis.md "Settings" (v2): how soon a detractor should hear back
_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> int:
    """``"60s"``, ``"15m"``, ``"1h"``, ``"7d"`` or a number of seconds -> whole seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        seconds = int(value)
    else:
        match = _DURATION.match(str(value).strip())
        if match is None:
            raise ValueError(f"not a duration like 60s, 15m, 1h, 7d: {value!r}")
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds < 0:
        raise ValueError(f"duration must not be negative: {value!r}")
    return seconds


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA timezone {name!r}") from None
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelDefaults(_Strict):
    """Per-channel defaults of the per-queue settings (kpis.md, Settings)."""

    sl_threshold_seconds: float = Field(gt=0)
    sl_target: float = Field(default=0.80, gt=0, le=1)
    short_abandon_seconds: float = Field(default=0, ge=0)
    cost_per_hour: float = Field(default=0, ge=0, allow_inf_nan=False, description="v2: cost of one hour of handling")
    cost_per_contact: float = Field(default=0, ge=0, allow_inf_nan=False, description="v2: fixed cost per handled contact")
    feedback_response_target: int = Field(default=FEEDBACK_RESPONSE_TARGET, gt=0, description="v2: seconds; accepts 48h")

    _target = field_validator("feedback_response_target", mode="before")(lambda cls, v: parse_duration(v))


class QueueOverride(_Strict):
    """What a single queue may change; unset fields fall back to its channel's defaults."""

    sl_threshold_seconds: float | None = Field(default=None, gt=0)
    sl_target: float | None = Field(default=None, gt=0, le=1)
    short_abandon_seconds: float | None = Field(default=None, ge=0)
    sl_formula: SlFormula | None = None
    timezone: str | None = None
    cost_per_hour: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    cost_per_contact: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    feedback_response_target: int | None = Field(default=None, gt=0)

    _tz = field_validator("timezone")(lambda cls, v: v if v is None else _check_timezone(v))
    _target = field_validator("feedback_response_target", mode="before")(
        lambda cls, v: v if v is None else parse_duration(v)
    )


class QueueSettings(_Strict):
    """The effective settings of one (queue, channel): what the KPI core reads on its hot path."""

    sl_threshold_seconds: float
    sl_target: float
    short_abandon_seconds: float
    sl_formula: SlFormula
    timezone: str
    cost_per_hour: float = 0.0
    cost_per_contact: float = 0.0
    feedback_response_target: int = FEEDBACK_RESPONSE_TARGET

    @cached_property
    def cost_configured(self) -> bool:
        """kpis.md: both costs 0 means cost is not configured for this queue (its cost is null, not 0)."""
        return self.cost_per_hour > 0 or self.cost_per_contact > 0

    @cached_property
    def cost_per_hour_micros(self) -> float:
        """Cost of one hour in millionths of the currency unit (the core keeps cost as integer micros)."""
        return self.cost_per_hour * 1_000_000

    @cached_property
    def cost_per_contact_micros(self) -> int:
        return round(self.cost_per_contact * 1_000_000)

    @cached_property
    def feedback_target_us(self) -> int:
        return self.feedback_response_target * US_PER_SECOND

    @cached_property
    def threshold_us(self) -> int:
        return round(self.sl_threshold_seconds * US_PER_SECOND)

    @cached_property
    def short_abandon_us(self) -> int:
        return round(self.short_abandon_seconds * US_PER_SECOND)


def _default_channels() -> dict[str, ChannelDefaults]:
    return {
        "voice": ChannelDefaults(sl_threshold_seconds=20, short_abandon_seconds=5),
        "chat": ChannelDefaults(sl_threshold_seconds=30),
        "sms": ChannelDefaults(sl_threshold_seconds=120),
        "social": ChannelDefaults(sl_threshold_seconds=3600),
        "email": ChannelDefaults(sl_threshold_seconds=14400),
        # contract v2: kpis.md gives no T for app; in-app messaging is answered like a chat, so chat's 30 s,
        # and S = 0 ("0 otherwise")
        "app": ChannelDefaults(sl_threshold_seconds=30),
    }


class KpiSettings(_Strict):
    """Everything kpis.md calls a setting."""

    sl_formula: SlFormula = "exclude_short_abandons"
    timezone: str = "UTC"
    fcr_window: int = Field(default=7 * 86400, description="seconds; accepts 7d")
    allowed_disorder: int = Field(default=60, description="seconds; accepts 60s")
    windows: tuple[str, ...] = ("15m", "1h", "24h", "today")
    bucket_seconds: int = Field(default=60, gt=0, description="aggregation bucket; at most 1/15 of the shortest window")
    channels: dict[str, ChannelDefaults] = Field(default_factory=_default_channels)
    queues: dict[str, QueueOverride] = Field(default_factory=dict)
    contact_retention: int = Field(default=31 * 86400, description="how long a contact is remembered (>= 30 days)")
    max_clock_skew: int = Field(
        default=300, description="seconds; accepts 5m: live, an event further ahead of the wall clock is invalid"
    )

    _tz = field_validator("timezone")(lambda cls, v: _check_timezone(v))

    @field_validator("fcr_window", "allowed_disorder", "contact_retention", "bucket_seconds", "max_clock_skew", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> int:
        return parse_duration(value)

    @field_validator("channels", mode="before")
    @classmethod
    def _merge_channels(cls, value: Any) -> Any:
        """A file may set one field of one channel; the other channels and fields keep their defaults."""
        if not isinstance(value, dict):
            return value
        merged: dict[str, Any] = {name: d.model_dump() for name, d in _default_channels().items()}
        for name, override in value.items():
            if name not in CHANNELS:
                raise ValueError(f"unknown channel {name!r} (one of {', '.join(CHANNELS)})")
            if isinstance(override, ChannelDefaults):
                override = override.model_dump()
            if not isinstance(override, dict):
                raise ValueError(f"channel {name!r} must be a mapping, got {override!r}")
            merged[name] = {**merged[name], **override}
        return merged

    @field_validator("windows")
    @classmethod
    def _windows(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name != "today":
                parse_duration(name)
        if not value:
            raise ValueError("at least one window is needed")
        return value

    @model_validator(mode="after")
    def _bucket_fits_windows(self) -> "KpiSettings":
        rolling = [parse_duration(w) for w in self.windows if w != "today"]
        shortest = min(rolling, default=86400)
        if self.bucket_seconds * 15 > shortest:
            raise ValueError(
                f"bucket_seconds={self.bucket_seconds} is more than 1/15 of the shortest window ({shortest} s)"
            )
        if 86400 % self.bucket_seconds or 900 % self.bucket_seconds:
            raise ValueError(f"bucket_seconds={self.bucket_seconds} must divide 15 minutes, so local midnights stay on bucket edges")
        if self.contact_retention < 30 * 86400:
            raise ValueError(f"contact_retention={self.contact_retention} s is below the 30 days kpis.md asks for")
        return self

    def for_queue(self, queue: str, channel: str) -> QueueSettings:
        """Effective settings of a queue visit: the queue's overrides over its channel's defaults.

        Not cached here (a cache inside a pydantic model takes part in ``==``); hot paths keep their own."""
        base = self.channels.get(channel) or ChannelDefaults(sl_threshold_seconds=20)
        over = self.queues.get(queue) or QueueOverride()
        return QueueSettings(
            sl_threshold_seconds=over.sl_threshold_seconds or base.sl_threshold_seconds,
            sl_target=over.sl_target or base.sl_target,
            short_abandon_seconds=(
                over.short_abandon_seconds if over.short_abandon_seconds is not None else base.short_abandon_seconds
            ),
            sl_formula=over.sl_formula or self.sl_formula,
            timezone=over.timezone or self.timezone,
            cost_per_hour=over.cost_per_hour if over.cost_per_hour is not None else base.cost_per_hour,
            cost_per_contact=over.cost_per_contact if over.cost_per_contact is not None else base.cost_per_contact,
            feedback_response_target=over.feedback_response_target or base.feedback_response_target,
        )

    def cost_configured_anywhere(self) -> bool:
        """Is cost configured for some channel or queue? (Else every cost of the document is null.)"""
        return any(c.cost_per_hour > 0 or c.cost_per_contact > 0 for c in self.channels.values()) or any(
            (q.cost_per_hour or 0) > 0 or (q.cost_per_contact or 0) > 0 for q in self.queues.values()
        )


class TopicSettings(_Strict):
    contact_events: str = "contact-events"
    survey_responses: str = "survey-responses"
    contact_events_dlq: str = "contact-events-dlq"
    survey_responses_dlq: str = "survey-responses-dlq"
    sla_breaches: str = "sla-breaches"
    # contract v2: detractor feedback not followed up by its target; its own topic, because every reader of
    # sla-breaches (the wallboard banner) takes a record there for an SLA breach
    feedback_breaches: str = "feedback-breaches"
    agent_events: str = "agent-events"
    agent_events_dlq: str = "agent-events-dlq"


class KafkaSettings(_Strict):
    bootstrap_servers: str = "127.0.0.1:19092"
    topics: TopicSettings = Field(default_factory=TopicSettings)
    partitions: int = Field(default=8, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1)
    client_id: str = "cxpulse"
    # security: every Kafka client of cxpulse (worker, Faust, simulator, produce) uses these
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = Field(default=None, description="never logged; from the environment preferably")
    ssl_cafile: str | None = Field(default=None, description="CA bundle to verify the brokers (default: system CAs)")
    ssl_certfile: str | None = Field(default=None, description="client certificate (mutual TLS)")
    ssl_keyfile: str | None = None

    @model_validator(mode="after")
    def _security_complete(self) -> "KafkaSettings":
        if self.security_protocol.startswith("SASL_"):
            missing = [name for name in ("sasl_mechanism", "sasl_username", "sasl_password") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"security_protocol={self.security_protocol} needs {', '.join(missing)}")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name}={path!r}: no such file")
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ValueError("ssl_keyfile needs ssl_certfile")
        return self


class RedisSettings(_Strict):
    enabled: bool = True
    url: str = "redis://127.0.0.1:16379/0"
    key_prefix: str = "cxpulse"
    ttl_seconds: int = Field(default=15, ge=2, description="read-model keys expire: stale data cannot pass for live")
    publish_interval_seconds: float = Field(default=0.5, gt=0, le=10, description="event to wallboard stays under 1 s")

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"must start with redis://, rediss:// or unix://, got {value!r}")
        return value


class WorkerSettings(_Strict):
    app_id: str = "cxpulse"
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    store: str = "rocksdb://"
    data_dir: str = ".local/worker"
    max_queues: int = Field(default=200, ge=1, description="distinct queue labels in /metrics before 'other'")
    stall_seconds: float = Field(
        default=30.0, gt=0, description="records wait and nothing is consumed this long: unready (stalled)"
    )
    stall_exit_seconds: float = Field(
        default=300.0, ge=0, description="stalled this long: the worker exits (code 75) for its supervisor to restart it; 0 = never"
    )
    rocksdb_write_buffer_mib: int = Field(default=4, ge=1, description="RocksDB write buffer per table partition")
    # 8 + 16 MiB (32 + 32 until session 9): settled contacts are read back rarely, and the OS page cache, which
    # is not the worker's RSS, holds their files anyway; two simulated days, bench/days.py: RSS 349 MiB against
    # 380, events/s unchanged (docs/performance.md)
    rocksdb_block_cache_mib: int = Field(
        default=8, ge=1, description="RocksDB block cache shared by all the worker's tables and partitions"
    )
    rocksdb_memtables_mib: int = Field(
        default=16, ge=1, description="RocksDB write buffers of all the worker's tables and partitions together"
    )
    recent_contacts: int = Field(
        default=1024, ge=0,
        description="settled contacts kept in memory per partition, the most recently settled: their next event "
        "(an end, a survey) then needs no RocksDB read and decode; 0 = every settled contact leaves memory at once",
    )
    checkpoint: bool = Field(
        default=True,
        description="on a clean stop, save the live state beside the tables, so the next start reads it back "
        "instead of rebuilding it from every stored contact (used only while the tables are unchanged)",
    )
    checkpoint_every_seconds: float = Field(
        default=60.0, ge=0,
        description="with checkpoint on, also save the contacts' and the customers' live state this often while "
        "running, and log the keys stored since, so a start after a crash (kill -9, the OOM killer) reads the "
        "checkpoints and those keys instead of rebuilding every stored contact and customer; 0 = only on a clean stop",
    )
    group_instance_id: str | None = Field(
        default=None, min_length=1, max_length=249,
        description="Kafka static group membership (KIP-345): a name unique to this worker that stays the same "
        "across its restarts (the Helm chart sets the StatefulSet pod's name). A worker restarted within the "
        "session timeout then gets its partitions back at once, without a rebalance, where without one it waits for "
        "its old member's session to expire (10 s) after a kill -9. Two workers must never share one. Unset: "
        "dynamic membership (a clean stop leaves the group at once)",
    )
    broker_unreachable_seconds: float = Field(
        default=15.0, gt=0, description="no answer to a metadata request this long: unready (broker unreachable)"
    )
    framework_log_level: Literal["WARNING", "INFO", "DEBUG"] = Field(
        default="WARNING",
        description="log level of Faust, aiokafka and mode (never below the worker's own): INFO shows rebalances, "
        "partition assignments and table recovery, what an engineer needs when a worker stops reading",
    )

    @field_validator("store")
    @classmethod
    def _store(cls, value: str) -> str:
        if value not in ("rocksdb://", "memory://"):
            raise ValueError(f"must be rocksdb:// or memory://, got {value!r}")
        return value


ThresholdMetric = Literal["waiting", "longest_wait", "abandon_rate", "asa", "service_level", "oldest_awaiting"]
TileMetric = Literal["service_level", "waiting", "longest_wait", "asa", "abandon_rate", "nps", "csat", "fcr"]
TILE_METRICS: tuple[str, ...] = ("service_level", "waiting", "longest_wait", "asa", "abandon_rate", "nps", "csat", "fcr")
_RATIO_METRICS = ("abandon_rate", "service_level")
_SECONDS_METRICS = ("longest_wait", "asa", "oldest_awaiting")


def _threshold_value(metric: str, value: Any) -> Any:
    """A threshold in the metric's unit: ``"30s"``/``"2m"`` for waits, ``"5%"`` or 0.05 for ratios."""
    if value is None or isinstance(value, bool):
        return value
    if metric in _SECONDS_METRICS and isinstance(value, str):
        return parse_duration(value)
    if metric in _RATIO_METRICS and isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"not a percentage: {value!r}") from None
    return value


class Threshold(_Strict):
    """One metric's colour bands. ``above``: warn from ``warn`` up, critical from ``critical`` up (``>=``);
    ``below``: warn under ``warn``, critical under ``critical`` (``<``), the way Grafana's threshold steps
    read. Unset fields keep the default of :mod:`cxpulse.wallboard.thresholds`; ``null`` turns a band off."""

    warn: float | None = Field(default=None, ge=0)
    critical: float | None = Field(default=None, ge=0)
    direction: Literal["above", "below"] | None = None


def _lenient(metric: str, value: Any) -> Any:
    """The value in the metric's unit, or unchanged: the field's own validation then names the exact key."""
    try:
        return _threshold_value(metric, value)
    except ValueError:
        return value


def _thresholds_of(value: Any) -> Any:
    """Metric -> Threshold, with the values of each metric parsed in its unit."""
    if not isinstance(value, dict):
        return value
    out: dict[Any, Any] = {}
    for metric, band in value.items():
        if isinstance(band, dict):
            band = {k: (_lenient(str(metric), v) if k in ("warn", "critical") else v) for k, v in band.items()}
        out[metric] = band
    return out


class ThresholdSettings(_Strict):
    """``default`` applies to every queue (over the built-in rule that follows each queue's SL threshold and
    target); ``queues.<queue>`` over that, field by field."""

    default: dict[ThresholdMetric, Threshold] = Field(default_factory=dict)
    queues: dict[str, dict[ThresholdMetric, Threshold]] = Field(default_factory=dict)

    _default = field_validator("default", mode="before")(lambda cls, v: _thresholds_of(v))

    @field_validator("queues", mode="before")
    @classmethod
    def _queues(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {queue: _thresholds_of(metrics) for queue, metrics in value.items()}


def _read_token_file(name: str, path: str | None) -> None:
    if path is not None and not Path(path).is_file():
        raise ValueError(f"{name}={path!r}: no such file")


class BoardSettings(_Strict):
    """A named board: ``/?board=NAME``. ``queues`` in the order shown (empty: every queue, document order)."""

    title: str | None = Field(default=None, max_length=80)
    queues: list[str] = Field(default_factory=list)
    metrics: list[TileMetric] = Field(default_factory=lambda: list(TILE_METRICS), min_length=1)
    display_names: dict[str, str] = Field(default_factory=dict)
    tile_size: Literal["auto", "large", "normal", "compact"] = "auto"
    token: SecretStr | None = Field(default=None, description="this board's access token (never logged)")
    token_file: str | None = Field(default=None, description="a file holding this board's token (first line)")

    @model_validator(mode="after")
    def _token_file(self) -> "BoardSettings":
        _read_token_file("token_file", self.token_file)
        if self.token is not None and self.token_file is not None:
            raise ValueError("set token or token_file, not both")
        return self


class WallboardSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8088, ge=1, le=65535)
    stale_after_seconds: float = Field(default=5.0, gt=0, description="the page shows 'stale' after this long without an update")
    thresholds: ThresholdSettings = Field(default_factory=ThresholdSettings)
    boards: dict[str, BoardSettings] = Field(default_factory=dict)
    token: SecretStr | None = Field(default=None, description="a token every board needs (never logged)")
    token_file: str | None = Field(default=None, description="a file holding the global token (first line)")
    admin_token: SecretStr | None = Field(default=None, description="needed to post messages over HTTP")
    allow_unauthenticated: bool = Field(
        default=False, description="bind beyond loopback although no token is configured")
    message_default_seconds: int = Field(default=3600, gt=0, description="a message without --until lasts this long; accepts 1h")
    show_agents: bool = Field(
        default=False, description="the agents panel: agents listed by state with their agent_name (off: no names anywhere)")

    _message_seconds = field_validator("message_default_seconds", mode="before")(lambda cls, v: parse_duration(v))

    @field_validator("boards")
    @classmethod
    def _board_names(cls, value: dict[str, BoardSettings]) -> dict[str, BoardSettings]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", name):
                raise ValueError(f"board name {name!r}: letters, digits, - and _ only (it goes in a URL)")
        return value

    @model_validator(mode="after")
    def _token_file(self) -> "WallboardSettings":
        _read_token_file("token_file", self.token_file)
        if self.token is not None and self.token_file is not None:
            raise ValueError("set token or token_file, not both")
        return self


class IngestSettings(_Strict):
    """``cxpulse ingest``: the HTTP door for webhook-based platforms (POST /api/v1/events)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=1, le=65535)
    tokens: list[SecretStr] = Field(default_factory=list, description="bearer tokens (never logged)")
    token_file: str | None = Field(default=None, description="a file of bearer tokens, one a line (# comments)")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576, description="larger bodies: 413")
    rate_limit_events_per_second: float = Field(default=2000.0, gt=0, description="per token, refilled continuously")
    rate_limit_burst_events: int = Field(default=10_000, ge=1, description="per token; a request needs its events")
    kafka_timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="no acknowledgement this long: 503")

    @field_validator("token_file")
    @classmethod
    def _token_file(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"no such file: {value!r}")
        return value


class SourceSettings(_Strict):
    """``cxpulse source``: where a following source keeps its position (file offset + converter state)."""

    state_dir: str = Field(default=".local/sources", description="position files of cxpulse source --follow")
    poll_seconds: float = Field(default=0.2, gt=0, le=10, description="--follow looks for new lines this often")


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_settings` to get readable errors."""

    model_config = SettingsConfigDict(
        env_prefix="CXPULSE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    kpi: KpiSettings = Field(default_factory=KpiSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    wallboard: WallboardSettings = Field(default_factory=WallboardSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    sources: SourceSettings = Field(default_factory=SourceSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # environment wins over the file (init_settings carries the file's content)
        return (env_settings, init_settings)


class ConfigError(Exception):
    """Bad configuration: the message names every bad key and value, one per line."""


def _format(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for err in exc.errors(include_url=False):
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        value = err.get("input")
        shown = repr(value) if not isinstance(value, dict) else "{...}"
        lines.append(f"  {key} = {shown[:80]}: {err['msg']}")
    return "\n".join(lines)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read the YAML file (``path``, else ``$CXPULSE_CONFIG``, else defaults) and the environment, and validate."""
    chosen = path or os.environ.get("CXPULSE_CONFIG")
    data: dict[str, Any] = {}
    source = "defaults and environment"
    if chosen:
        file = Path(chosen)
        source = f"{file} and environment"
        if not file.is_file():
            raise ConfigError(f"invalid configuration: settings file {str(file)!r} does not exist")
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"invalid configuration: {file} is not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"invalid configuration: {file} must hold a mapping at top level")
        data = loaded or {}
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format(exc, source)) from None
