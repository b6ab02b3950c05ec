"""Kafka TLS/SASL settings: what the Helm chart sets becomes the broker's and clients' security,
and an incomplete combination stops start-up with one line naming the variable."""

from __future__ import annotations

import pytest
from faststream.security import SASLScram512

from shared.kafka_security import broker_security, client_options
from shared.settings import SettingsError, load_settings


def test_plaintext_by_default() -> None:
    settings = load_settings()
    assert broker_security(settings) is None
    assert client_options(settings) == {"security_protocol": "PLAINTEXT"}


def test_sasl_scram_over_plaintext() -> None:
    settings = load_settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password="pw",
    )
    security = broker_security(settings)
    assert isinstance(security, SASLScram512)
    assert security.username == "svc" and not security.use_ssl
    assert client_options(settings)["sasl_mechanism"] == "SCRAM-SHA-512"


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "RAPPORT_KAFKA_SASL_MECHANISM"),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "PLAIN"},
            "RAPPORT_KAFKA_SASL_USERNAME",
        ),
        ({"kafka_security_protocol": "TLS"}, "RAPPORT_KAFKA_SECURITY_PROTOCOL"),
        ({"kafka_ca_file": "/nonexistent/ca.pem"}, "RAPPORT_KAFKA_CA_FILE"),
    ],
)
def test_incomplete_security_names_the_variable(overrides: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(**overrides)
    assert str(caught.value).startswith(variable)
    assert "\n" not in str(caught.value)
