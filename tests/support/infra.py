"""Where the real Kafka, PostgreSQL and Redis for the tests come from, in this order:

1. ``RAPPORT_TEST_KAFKA_BOOTSTRAP``, ``RAPPORT_TEST_DATABASE_URL`` and ``RAPPORT_TEST_REDIS_URL``
   (services somebody already runs);
2. testcontainers, when a Docker engine answers;
3. the project's own stack script (``rapport stack up``): Kafka from Apache's jars, PostgreSQL
   and Redis from the OS packages.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

import asyncpg
from sqlalchemy.engine import make_url

# The role the services connect as in the tests: not the tables' owner, no BYPASSRLS, so
# PostgreSQL's row-level security applies to everything the tests run (as in production).
APP_ROLE = "rapport_app"
APP_PASSWORD = "rapport_app"


@dataclass
class Infra:
    kafka_bootstrap: str
    database_url: str  # postgresql+asyncpg://…/<admin database>, as an owner/administrator
    redis_url: str
    origin: str
    # Outage controls, where this origin allows them (own stack: SIGSTOP/SIGCONT).
    pause_kafka: Callable[[], None] | None = None
    resume_kafka: Callable[[], None] | None = None
    # Stop and start the broker again (same data); None where this origin cannot.
    restart_kafka: Callable[[], None] | None = None
    cleanup: ExitStack = field(default_factory=ExitStack)


def _docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def provide() -> Infra:
    env = {
        k: os.environ.get(f"RAPPORT_TEST_{k}")
        for k in ("KAFKA_BOOTSTRAP", "DATABASE_URL", "REDIS_URL")
    }
    if all(env.values()):
        return Infra(
            env["KAFKA_BOOTSTRAP"] or "",
            env["DATABASE_URL"] or "",
            env["REDIS_URL"] or "",
            origin="environment",
        )
    if _docker_answers():
        return _containers()
    from rapport import stack

    endpoints = stack.up()
    return Infra(
        endpoints.kafka_bootstrap,
        endpoints.database_url,
        endpoints.redis_url,
        origin="rapport stack",
        pause_kafka=stack.pause_kafka,
        resume_kafka=stack.resume_kafka,
        restart_kafka=stack.restart_kafka,
    )


def _containers() -> Infra:  # pragma: no cover - only where a Docker engine runs
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    stack = ExitStack()
    kafka = stack.enter_context(KafkaContainer("apache/kafka:4.1.0").with_kraft())
    postgres = stack.enter_context(PostgresContainer("postgres:16", driver="asyncpg"))
    redis = stack.enter_context(RedisContainer("redis:7"))
    redis_url = f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0"
    kafka_container = kafka.get_wrapped_container()
    infra = Infra(
        kafka.get_bootstrap_server(),
        postgres.get_connection_url(),
        redis_url,
        origin="testcontainers",
        pause_kafka=kafka_container.pause,
        resume_kafka=kafka_container.unpause,
        restart_kafka=kafka_container.restart,
    )
    infra.cleanup = stack
    return infra


def plain_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def create_database(admin_url: str, template: str | None = None) -> str:
    """A new PostgreSQL database (a copy of the database ``template`` when given) on the
    server of ``admin_url``; its URL as that owner."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    copy_of = f' TEMPLATE "{template}"' if template else ""
    admin = await asyncpg.connect(plain_dsn(admin_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"{copy_of}')
    finally:
        await admin.close()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(admin_url: str, url: str) -> None:
    """Drop the database of ``url``, whoever is still connected to it."""
    admin = await asyncpg.connect(plain_dsn(admin_url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await admin.close()


async def ensure_app_role(admin_url: str) -> None:
    """Create (or reset) the application role: login, not superuser, no BYPASSRLS."""
    admin = await asyncpg.connect(plain_dsn(admin_url))
    try:
        await admin.execute(
            f"""DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
    CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{APP_PASSWORD}';
  END IF;
  ALTER ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE
    PASSWORD '{APP_PASSWORD}';
EXCEPTION WHEN unique_violation OR duplicate_object THEN NULL;  -- created concurrently
END $$;"""
        )
    finally:
        await admin.close()


def app_url(owner_url: str) -> str:
    """The same database, as the application role."""
    return (
        make_url(owner_url)
        .set(username=APP_ROLE, password=APP_PASSWORD)
        .render_as_string(hide_password=False)
    )
