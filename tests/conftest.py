"""Shared fixtures: the real stack (see tests/support/infra.py), a fresh PostgreSQL database
per test, and settings with a per-test topic prefix so tests never see each other's events."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from services import migrate
from shared.logs import configure_logging
from shared.settings import Settings, load_settings
from tests.support.infra import Infra, app_url, ensure_app_role, provide
from tests.support.topics import delete_topics

configure_logging("tests", "info", json=True)


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    provided = provide()
    with provided.cleanup:
        asyncio.run(ensure_app_role(provided.database_url))
        yield provided


def _plain_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture
async def pg_database(infra: Infra) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for one test; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_plain_dsn(infra.database_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield make_url(infra.database_url).set(database=name).render_as_string(hide_password=False)
    admin = await asyncpg.connect(_plain_dsn(infra.database_url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def real_settings(infra: Infra, pg_database: str) -> AsyncIterator[Settings]:
    """Settings for the real stack, with this test's own topics, groups and database
    (migrated with Alembic as the owner, as ``rapport migrate`` does); the services connect as
    the application role, under row-level security. The test's topics are deleted after it."""
    settings = load_settings(
        kafka_bootstrap=infra.kafka_bootstrap,
        database_url=app_url(pg_database),
        migration_database_url=pg_database,
        redis_url=infra.redis_url,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        topic_partitions=3,
        allow_private_webhooks=True,
        relay_idle_seconds=0.05,
    )
    for service in ("intake", "feedback", "analytics", "notify"):
        await asyncio.to_thread(
            migrate,
            service,
            settings.migration_database_url_for(service),
            settings.database_url_for(service),
        )
    yield settings
    try:
        await delete_topics(infra.kafka_bootstrap, settings.topic_prefix)
    except Exception as error:  # the broker away (a test that stopped it): nothing to free
        logging.getLogger(__name__).warning("could not delete the test's topics: %s", error)


@pytest.fixture
def embedded_settings(tmp_path: object) -> Settings:
    return load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/{{service}}.db",
        redis_url="memory://",
        topic_prefix="rapport.",
        allow_private_webhooks=True,
        relay_idle_seconds=0.05,
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if {"integration", "system"} & set(item.nodeid.split("/")):
            item.add_marker(pytest.mark.integration)
