"""`RAPPORT_STACK_HOST`: the local stack answers on an address of this machine besides
loopback (a container bridge's, for `make cluster-test`'s pods), Kafka advertises it, and the
endpoints name it (rapport/stack/config.py, kafka.py, postgres.py, redis.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rapport.stack import postgres
from rapport.stack.config import endpoints, listen_addresses, stack_host
from rapport.stack.errors import StackError
from rapport.stack.kafka import server_properties

BRIDGE = "10.244.0.1"


def test_without_a_stack_host_everything_stays_on_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RAPPORT_STACK_HOST", raising=False)
    assert stack_host() == "127.0.0.1"
    assert listen_addresses() == ["127.0.0.1"]
    properties = server_properties(19092, Path("/data"))
    assert "advertised.listeners=PLAINTEXT://127.0.0.1:19092\n" in properties


def test_a_stack_host_is_where_kafka_listens_and_what_it_advertises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAPPORT_STACK_HOST", BRIDGE)
    properties = server_properties(19092, Path("/data")).splitlines()
    assert f"advertised.listeners=PLAINTEXT://{BRIDGE}:19092" in properties
    # Clients reach the broker there; its KRaft controller stays on loopback.
    assert f"listeners=PLAINTEXT://{BRIDGE}:19092,CONTROLLER://127.0.0.1:19093" in properties
    assert "controller.quorum.voters=1@127.0.0.1:19093" in properties


def test_a_stack_host_is_named_by_every_endpoint_and_added_to_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAPPORT_STACK_HOST", BRIDGE)
    monkeypatch.setenv("RAPPORT_STACK_KAFKA_PORT", "19192")
    monkeypatch.setenv("RAPPORT_STACK_PG_PORT", "55532")
    monkeypatch.setenv("RAPPORT_STACK_REDIS_PORT", "56479")
    assert listen_addresses() == ["127.0.0.1", BRIDGE]
    env = endpoints().as_env()
    assert env["RAPPORT_KAFKA_BOOTSTRAP"] == f"{BRIDGE}:19192"
    assert env["RAPPORT_DATABASE_URL"].endswith(f"@{BRIDGE}:55532/rapport")
    assert env["RAPPORT_MIGRATION_DATABASE_URL"].endswith(f"@{BRIDGE}:55532/rapport")
    assert env["RAPPORT_REDIS_URL"] == f"redis://{BRIDGE}:56479/0"


@pytest.mark.parametrize("given", ["bridge", "10.244.0", "::1", "10.244.0.1:80"])
def test_a_stack_host_that_is_not_an_ipv4_address_is_refused(
    monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.setenv("RAPPORT_STACK_HOST", given)
    with pytest.raises(StackError, match="RAPPORT_STACK_HOST"):
        stack_host()


def test_postgres_lets_the_stack_hosts_networks_log_in_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    paths = postgres.PgPaths(
        root=tmp_path, data=tmp_path, sock=tmp_path, done=tmp_path / "d", pid=tmp_path / "p",
        log=tmp_path / "l",
    )  # fmt: skip
    initdb = "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
    (tmp_path / "pg_hba.conf").write_text(initdb)
    monkeypatch.delenv("RAPPORT_STACK_HOST", raising=False)
    postgres.allow_same_networks(paths)
    assert (tmp_path / "pg_hba.conf").read_text() == initdb  # loopback only: unchanged
    monkeypatch.setenv("RAPPORT_STACK_HOST", BRIDGE)
    postgres.allow_same_networks(paths)
    postgres.allow_same_networks(paths)
    assert (tmp_path / "pg_hba.conf").read_text() == initdb + postgres.SAME_NETWORKS + "\n"
