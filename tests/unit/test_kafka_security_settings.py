"""Kafka security settings: validated at start, mapped to aiokafka and Faust, the password never printed."""

from __future__ import annotations

import pytest

from cxpulse.kafka_security import client_options, faust_credentials, ssl_context
from cxpulse.settings import ConfigError, KafkaSettings, Settings, load_settings


def test_plaintext_by_default() -> None:
    kafka = KafkaSettings()
    assert client_options(kafka) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(kafka) is None and ssl_context(kafka) is None


def test_sasl_scram_over_tls_maps_to_both_clients_and_hides_the_password() -> None:
    kafka = KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                          sasl_username="svc", sasl_password="s3cret")
    options = client_options(kafka)
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("svc", "s3cret")
    assert options["ssl_context"] is not None  # system CAs
    credentials = faust_credentials(kafka)
    assert credentials.username == "svc" and credentials.ssl_context is not None
    assert "s3cret" not in repr(kafka) and "s3cret" not in str(Settings(kafka=kafka))


def test_incomplete_security_fails_at_start_naming_what_is_missing(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CXPULSE_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CXPULSE_KAFKA__SASL_USERNAME", "svc")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "kafka" in str(caught.value) and "sasl_mechanism, sasl_password" in str(caught.value)
    monkeypatch.setenv("CXPULSE_KAFKA__SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("CXPULSE_KAFKA__SSL_CAFILE", str(tmp_path / "missing-ca.pem"))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "missing-ca.pem" in str(caught.value) and "no such file" in str(caught.value)
