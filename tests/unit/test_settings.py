"""Settings: the defaults are kpis.md's table; a YAML file plus ``CXPULSE_*`` variables; readable errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from cxpulse.settings import ConfigError, KpiSettings, Settings, load_settings, parse_duration


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CXPULSE_* variable of the machine running the tests may leak into these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("CXPULSE_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cxpulse.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_match_the_kpis_md_table() -> None:
    kpi = load_settings().kpi
    thresholds = {"voice": 20, "chat": 30, "sms": 120, "social": 3600, "email": 14400}
    for channel, seconds in thresholds.items():
        qs = kpi.for_queue("any-queue", channel)
        assert qs.sl_threshold_seconds == seconds
        assert qs.threshold_us == seconds * 1_000_000
        assert qs.sl_target == 0.80
        assert qs.short_abandon_seconds == (5 if channel == "voice" else 0)
        assert qs.sl_formula == "exclude_short_abandons"
        assert qs.timezone == "UTC"
    assert kpi.sl_formula == "exclude_short_abandons"
    assert kpi.fcr_window == 7 * 86400
    assert kpi.timezone == "UTC"
    assert kpi.allowed_disorder == 60
    assert kpi.windows == ("15m", "1h", "24h", "today")
    assert kpi.contact_retention >= 30 * 86400  # "contacts are remembered for at least 30 days"
    assert KpiSettings() == kpi


def test_yaml_file_then_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, """
kpi:
  timezone: Europe/Paris
  fcr_window: 3d
  allowed_disorder: 2m
  channels:
    voice:
      sl_threshold_seconds: 15
  queues:
    vip:
      sl_threshold_seconds: 10
      short_abandon_seconds: 0
      sl_formula: abandons_count_against
      timezone: America/New_York
kafka:
  bootstrap_servers: broker:9092
""")
    settings = load_settings(path)
    kpi = settings.kpi
    assert (kpi.timezone, kpi.fcr_window, kpi.allowed_disorder) == ("Europe/Paris", 3 * 86400, 120)
    assert kpi.for_queue("billing", "voice").sl_threshold_seconds == 15
    assert kpi.for_queue("billing", "voice").short_abandon_seconds == 5  # the other fields keep their defaults
    assert kpi.for_queue("billing", "chat").sl_threshold_seconds == 30  # and the other channels too
    vip = kpi.for_queue("vip", "voice")
    assert (vip.sl_threshold_seconds, vip.short_abandon_seconds, vip.sl_formula, vip.timezone) == (
        10, 0, "abandons_count_against", "America/New_York")
    assert kpi.for_queue("billing", "voice").timezone == "Europe/Paris"
    assert settings.kafka.bootstrap_servers == "broker:9092"

    monkeypatch.setenv("CXPULSE_KPI__TIMEZONE", "Asia/Tokyo")
    monkeypatch.setenv("CXPULSE_KAFKA__BOOTSTRAP_SERVERS", "other:19092")
    settings = load_settings(path)
    assert settings.kpi.timezone == "Asia/Tokyo"  # the environment wins ...
    assert settings.kpi.fcr_window == 3 * 86400  # ... and the rest of the file stays
    assert settings.kpi.for_queue("billing", "voice").sl_threshold_seconds == 15
    assert settings.kafka.bootstrap_servers == "other:19092"

    monkeypatch.setenv("CXPULSE_CONFIG", str(path))
    assert load_settings().kpi.fcr_window == 3 * 86400  # the file named by $CXPULSE_CONFIG


def test_environment_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXPULSE_KPI__TIMEZONE", "Europe/Paris")
    assert load_settings().kpi.timezone == "Europe/Paris"


@pytest.mark.parametrize(
    ("yaml_text", "key", "value"),
    [
        ("kpi:\n  channels:\n    voice:\n      sl_threshold_seconds: -1\n", "kpi.channels.voice.sl_threshold_seconds", "-1"),
        ("kpi:\n  channels:\n    chat:\n      sl_threshold_seconds: twenty\n", "kpi.channels.chat.sl_threshold_seconds", "twenty"),
        ("kpi:\n  channels:\n    voice:\n      sl_target: 1.5\n", "kpi.channels.voice.sl_target", "1.5"),
        ("kpi:\n  timezone: Mars/Olympus\n", "kpi.timezone", "Mars/Olympus"),
        ("kpi:\n  queues:\n    vip:\n      timezone: Nowhere/City\n", "kpi.queues.vip.timezone", "Nowhere/City"),
        ("kpi:\n  fcr_window: 7 days\n", "kpi.fcr_window", "7 days"),
        ("kpi:\n  allowed_disorder: -5s\n", "kpi.allowed_disorder", "-5s"),
        ("kpi:\n  windows: ['15m', 'fortnight']\n", "kpi.windows", "fortnight"),
        ("kpi:\n  sl_formula: best_effort\n", "kpi.sl_formula", "best_effort"),
        ("kpi:\n  queues:\n    vip:\n      sl_formula: whatever\n", "kpi.queues.vip.sl_formula", "whatever"),
        ("kpi:\n  queues:\n    vip:\n      short_abandon_seconds: -2\n", "kpi.queues.vip.short_abandon_seconds", "-2"),
        ("kpi:\n  channels:\n    fax:\n      sl_threshold_seconds: 20\n", "kpi.channels", "fax"),
        ("kpi:\n  contact_retention: 7d\n", "kpi", "contact_retention"),
        ("kpi:\n  sl_treshold: 20\n", "kpi.sl_treshold", "20"),
        ("redis:\n  url: http://localhost\n", "redis.url", "http://localhost"),
        ("worker:\n  framework_log_level: TRACE\n", "worker.framework_log_level", "TRACE"),
    ],
)
def test_bad_values_name_the_key_and_the_value(tmp_path: Path, yaml_text: str, key: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, yaml_text))
    message = str(info.value)
    assert key in message, message
    assert value in message, message


def test_bad_environment_value_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXPULSE_KPI__TIMEZONE", "Atlantis/Capital")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "kpi.timezone" in str(info.value) and "Atlantis/Capital" in str(info.value)


def test_every_bad_key_is_listed_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "kpi:\n  timezone: Mars/Olympus\n  fcr_window: soon\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    lines = str(info.value).splitlines()
    assert any("kpi.timezone" in line for line in lines) and any("kpi.fcr_window" in line for line in lines)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "kpi: [unclosed\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(write(tmp_path, "- a\n- b\n"))
    assert load_settings(write(tmp_path, "")).kpi == KpiSettings()


@pytest.mark.parametrize(("text", "seconds"), [("60s", 60), ("15m", 900), ("1h", 3600), ("7d", 604800), (90, 90), (" 2m ", 120)])
def test_parse_duration(text: object, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("7 days", "not a duration like 60s, 15m, 1h, 7d: '7 days'"),
        ("1w", "not a duration like 60s, 15m, 1h, 7d: '1w'"),
        ("-1s", "not a duration like 60s, 15m, 1h, 7d: '-1s'"),
        ("", "not a duration like 60s, 15m, 1h, 7d: ''"),
        (True, "not a duration: True"),  # a YAML ``yes`` must not become 1 s
        ("h", "not a duration like 60s, 15m, 1h, 7d: 'h'"),
    ],
)
def test_parse_duration_refuses(text: object, message: str) -> None:
    """The message quotes the value as written, so the loader's line (key = value: message) is actionable."""
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_duration(text)


def test_bucket_must_fit_the_windows() -> None:
    with pytest.raises(ValueError, match="bucket_seconds"):
        KpiSettings(bucket_seconds=120)  # more than 1/15 of 15 minutes
    with pytest.raises(ValueError, match="bucket_seconds"):
        KpiSettings(bucket_seconds=7)  # does not divide 15 minutes
    assert KpiSettings(bucket_seconds=30).bucket_seconds == 30


def test_settings_are_frozen() -> None:
    """One settings object is shared by the core, the worker and the sinks: none of them may change it."""
    kpi = Settings().kpi
    with pytest.raises(ValidationError, match=r"timezone\n  Instance is frozen") as info:
        kpi.timezone = "Europe/Paris"  # type: ignore[misc]
    assert [(e["type"], e["loc"], e["input"]) for e in info.value.errors()] == [("frozen_instance", ("timezone",), "Europe/Paris")]
    assert kpi.timezone == "UTC"
