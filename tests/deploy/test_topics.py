"""`python -m rapport.topics`: the computed topic list matches what the services use, and
`create` is idempotent against the real Kafka."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

import services
from rapport import topics
from shared.contracts import REGISTRY
from tests.deploy.chart import REPO
from tests.support.infra import Infra


def run_topics(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rapport.topics", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- the list -------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["rapport.", "", "acme-prod_"])
def test_topic_list_covers_every_topic_the_services_use(prefix: str) -> None:
    names = topics.topic_names(prefix)
    assert names == sorted(set(names))
    used: set[str] = set()
    consumed: set[str] = set()
    for definition in services.definitions():
        # Exactly what ServiceRuntime.topics() ensures at start-up for each service.
        sub = {prefix + s.event_type.topic_name for s in definition.subscriptions}
        produced = {prefix + t.topic_name for t in definition.produces}
        used |= sub | produced | {f"{t}.dlq" for t in sub}
        consumed |= sub
    assert used <= set(names), used - set(names)
    registered = {prefix + t.topic_name for t in REGISTRY}
    assert set(names) == registered | {f"{t}.dlq" for t in consumed}
    assert all(n.startswith(prefix) for n in names)
    assert {n for n in names if n.endswith(".dlq")} == {f"{t}.dlq" for t in consumed}


def test_consumers_name_each_services_group_and_topics() -> None:
    found = topics.consumers("p.")
    assert set(found) == set(services.NAMES)
    for definition in services.definitions():
        assert found[definition.name]["group"] == f"p.{definition.name}"
        assert found[definition.name]["topics"] == sorted(
            f"p.{s.event_type.topic_name}" for s in definition.subscriptions
        )


def test_list_command_prints_the_names() -> None:
    result = run_topics("list", env={"RAPPORT_TOPIC_PREFIX": "x."})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == topics.topic_names("x.")
    result = run_topics("list", "--prefix", "y.", "--json")
    assert result.returncode == 0, result.stderr
    assert '"y.feedback"' in result.stdout and '"y.match.confirmed.v1"' in result.stdout


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"RAPPORT_TOPIC_PARTITIONS": "six"}, "RAPPORT_TOPIC_PARTITIONS"),
        ({"RAPPORT_TOPIC_REPLICATION": "0"}, "RAPPORT_TOPIC_REPLICATION"),
        ({"RAPPORT_TOPIC_PREFIX": "bad prefix"}, "RAPPORT_TOPIC_PREFIX"),
        (
            {"RAPPORT_TOPIC_REPLICATION": "2", "RAPPORT_TOPIC_MIN_INSYNC_REPLICAS": "3"},
            "min-insync-replicas",
        ),
        ({"RAPPORT_KAFKA_SECURITY_PROTOCOL": "TLS"}, "RAPPORT_KAFKA_SECURITY_PROTOCOL"),
        ({"RAPPORT_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "RAPPORT_KAFKA_SASL_MECHANISM"),
        (
            {
                "RAPPORT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "RAPPORT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            },
            "RAPPORT_KAFKA_SASL_PASSWORD",
        ),
        (
            {"RAPPORT_KAFKA_SECURITY_PROTOCOL": "SSL", "RAPPORT_KAFKA_CA_FILE": "/nonexistent"},
            "no such file",
        ),
    ],
)
def test_bad_settings_stop_with_one_line(
    env: dict[str, str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert topics.main(["create", "--bootstrap", "127.0.0.1:1"], env=env) == 2
    error = capsys.readouterr().err
    assert complaint in error
    assert len(error.strip().splitlines()) == 1, error


def test_security_settings_become_client_options(tmp_path: Path) -> None:
    """The Kafka SASL/TLS environment contract the chart renders, as aiokafka options."""
    import ssl

    ca = tmp_path / "ca.crt"
    # Any valid PEM certificate will do as a trust anchor for building the context.
    ca.write_text(ssl.DER_cert_to_PEM_cert(_self_signed_der()))
    options = topics.kafka_security(
        {
            "RAPPORT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "RAPPORT_KAFKA_SASL_MECHANISM": "scram-sha-512",
            "RAPPORT_KAFKA_SASL_USERNAME": "rapport",
            "RAPPORT_KAFKA_SASL_PASSWORD": "s3cret",
            "RAPPORT_KAFKA_CA_FILE": str(ca),
            "RAPPORT_KAFKA_SSL_CHECK_HOSTNAME": "false",
        }
    )
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "rapport"
    assert options["sasl_plain_password"] == "s3cret"
    context = options["ssl_context"]
    assert context.check_hostname is False
    assert context.cert_store_stats()["x509_ca"] == 1
    assert topics.kafka_security({}) == {"security_protocol": "PLAINTEXT"}


def _self_signed_der() -> bytes:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


# -- creating on the real Kafka -------------------------------------------------------------


@pytest.fixture
async def admin(infra: Infra) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def test_create_is_idempotent_on_the_real_kafka(
    infra: Infra, admin: AIOKafkaAdminClient
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    expected = topics.topic_names(prefix)
    env = {
        "RAPPORT_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
        "RAPPORT_TOPIC_PREFIX": prefix,
        "RAPPORT_TOPIC_PARTITIONS": "2",
        "RAPPORT_TOPIC_REPLICATION": "1",
        "RAPPORT_TOPIC_RETENTION_MS": "3600000",
        "RAPPORT_TOPIC_DLQ_RETENTION_MS": "7200000",
    }
    try:
        first = run_topics("create", env=env)
        assert first.returncode == 0, first.stderr
        assert f"topics: {len(expected)} created, 0 kept" in first.stdout
        assert (
            sorted(
                line.split()[1] for line in first.stdout.splitlines() if line.startswith("created ")
            )
            == expected
        )

        again = run_topics("create", "--partitions", "3", env=env)
        assert again.returncode == 0, again.stderr
        assert f"topics: 0 created, {len(expected)} kept" in again.stdout
        # Nothing is changed; fewer partitions than asked for is reported, not "fixed".
        assert again.stdout.count("fewer partitions") == len(expected)

        existing = set(await admin.list_topics())
        assert set(expected) <= existing
        described = await admin.describe_topics(expected)
        assert {t["topic"]: len(t["partitions"]) for t in described} == dict.fromkeys(expected, 2)

        event_topic = f"{prefix}feedback.recorded.v1"
        dlq_topic = f"{event_topic}.dlq"
        responses = await admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, event_topic, {"retention.ms": None}),
                ConfigResource(ConfigResourceType.TOPIC, dlq_topic, {"retention.ms": None}),
            ]
        )
        retention = {
            resource[3]: {entry[0]: entry[1] for entry in resource[4]}["retention.ms"]
            for response in responses
            for resource in response.resources
        }
        assert retention == {event_topic: "3600000", dlq_topic: "7200000"}
    finally:
        present = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if present:
            await admin.delete_topics(present)


async def test_create_reports_what_kafka_refuses(infra: Infra) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    result = run_topics(
        "create",
        "--replication",
        "7",
        env={"RAPPORT_KAFKA_BOOTSTRAP": infra.kafka_bootstrap, "RAPPORT_TOPIC_PREFIX": prefix},
    )
    assert result.returncode == 1
    assert "could not create" in result.stderr and "replication" in result.stderr.lower()
