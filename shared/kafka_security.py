"""Kafka TLS and SASL from settings (``RAPPORT_KAFKA_SECURITY_PROTOCOL``, ``…_SASL_*``,
``…_CA_FILE``, ``…_CERT_FILE``/``…_KEY_FILE``): the same connection for the services' broker,
their admin client and the topics job."""

from __future__ import annotations

from ssl import SSLContext
from typing import Any

from aiokafka.helpers import create_ssl_context
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from shared.settings import Settings


def _ssl(settings: Settings) -> SSLContext | None:
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    password = settings.kafka_key_password
    context: SSLContext = create_ssl_context(
        cafile=settings.kafka_ca_file,
        certfile=settings.kafka_cert_file,
        keyfile=settings.kafka_key_file,
        password=password.get_secret_value() if password else None,
    )
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


def broker_security(settings: Settings) -> BaseSecurity | None:
    """FastStream's security object for the broker (None: plaintext)."""
    context = _ssl(settings)
    protocol = settings.kafka_security_protocol
    if not protocol.startswith("SASL_"):
        return BaseSecurity(ssl_context=context) if context else None
    username = settings.kafka_sasl_username or ""
    password = (
        settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    )
    kinds = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
    security: BaseSecurity = kinds[settings.kafka_sasl_mechanism or "PLAIN"](
        username, password, ssl_context=context, use_ssl=context is not None
    )
    return security


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka clients (admin, plain consumers)."""
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = _ssl(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL_"):
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value()
            if settings.kafka_sasl_password
            else None,
        )
    return options
