"""Kafka security settings (``kafka.security_protocol``, SASL, TLS) as options for every client we make.

Why one place: the worker (Faust), its breach-log reader, the topic creator, the simulator and ``produce`` all
talk to the same brokers; one mapping keeps them from disagreeing, and the password only ever leaves the
settings object here (it is a ``SecretStr`` everywhere else, so it never reaches a log).
"""

from __future__ import annotations

import ssl
from typing import Any

from cxpulse.settings import KafkaSettings


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    """A TLS context for SSL / SASL_SSL (system CAs unless ``ssl_cafile``; a client certificate if given)."""
    if kafka.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    from aiokafka.helpers import create_ssl_context

    return create_ssl_context(cafile=kafka.ssl_cafile, certfile=kafka.ssl_certfile, keyfile=kafka.ssl_keyfile)


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for aiokafka's producer, consumer and admin client."""
    options: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    context = ssl_context(kafka)
    if context is not None:
        options["ssl_context"] = context
    if kafka.security_protocol.startswith("SASL_"):
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
    return options


def faust_credentials(kafka: KafkaSettings) -> Any:
    """``broker_credentials`` for the Faust app (None for PLAINTEXT)."""
    import faust

    if kafka.security_protocol == "PLAINTEXT":
        return None
    context = ssl_context(kafka)
    if kafka.security_protocol.startswith("SASL_"):
        password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
        return faust.SASLCredentials(
            username=kafka.sasl_username, password=password, mechanism=kafka.sasl_mechanism, ssl_context=context
        )
    return faust.SSLCredentials(context)
