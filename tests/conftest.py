"""Shared fixtures: the real stack (see tests/support/infra.py), a fresh PostgreSQL database
per test, and settings with a per-test topic prefix so tests never see each other's events."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.engine import make_url

from services import migrate
from shared.logs import configure_logging
from shared.settings import Settings, load_settings
from tests.support.infra import (
    Infra,
    app_url,
    create_database,
    drop_database,
    ensure_app_role,
    provide,
)
from tests.support.topics import delete_topics

configure_logging("tests", "info", json=True)


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    provided = provide()
    with provided.cleanup:
        asyncio.run(ensure_app_role(provided.database_url))
        yield provided


@pytest.fixture
async def pg_database(infra: Infra) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for one test; dropped afterwards."""
    url = await create_database(infra.database_url)
    yield url
    await drop_database(infra.database_url, url)


@pytest.fixture(scope="session")
def migrated_template(infra: Infra) -> Iterator[str]:
    """A database with the four services' tables migrated with Alembic as the owner and
    granted to the application role, as ``rapport migrate`` leaves them (no deployment has
    claimed them yet), made once per run: each test's database is a copy of it, which
    PostgreSQL makes in a tenth of the time the migrations take."""
    url = asyncio.run(create_database(infra.database_url))
    for service in ("intake", "feedback", "analytics", "notify"):
        migrate(service, url, app_url(url))
    yield str(make_url(url).database)
    asyncio.run(drop_database(infra.database_url, url))


@pytest.fixture
async def real_settings(infra: Infra, migrated_template: str) -> AsyncIterator[Settings]:
    """Settings for the real stack, with this test's own topics, groups and database
    (migrated with Alembic as the owner, as ``rapport migrate`` does: a copy of the migrated
    template); the services connect as the application role, under row-level security. The
    test's topics and database are deleted after it."""
    pg_database = await create_database(infra.database_url, template=migrated_template)
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
    yield settings
    try:
        await delete_topics(infra.kafka_bootstrap, settings.topic_prefix)
    except Exception as error:  # the broker away (a test that stopped it): nothing to free
        logging.getLogger(__name__).warning("could not delete the test's topics: %s", error)
    await drop_database(infra.database_url, pg_database)


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
