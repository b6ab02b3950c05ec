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


async def _create_database(infra: Infra, template: str | None = None) -> str:
    """A new PostgreSQL database (a copy of ``template`` when given); its owner's URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    copy_of = f' TEMPLATE "{template}"' if template else ""
    admin = await asyncpg.connect(_plain_dsn(infra.database_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"{copy_of}')
    finally:
        await admin.close()
    return make_url(infra.database_url).set(database=name).render_as_string(hide_password=False)


async def _drop_database(infra: Infra, url: str) -> None:
    admin = await asyncpg.connect(_plain_dsn(infra.database_url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def pg_database(infra: Infra) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for one test; dropped afterwards."""
    url = await _create_database(infra)
    yield url
    await _drop_database(infra, url)


@pytest.fixture(scope="session")
def migrated_template(infra: Infra) -> Iterator[str]:
    """A database with the four services' tables migrated with Alembic as the owner and
    granted to the application role, as ``rapport migrate`` leaves them (no deployment has
    claimed them yet), made once per run: each test's database is a copy of it, which
    PostgreSQL makes in a tenth of the time the migrations take."""
    url = asyncio.run(_create_database(infra))
    for service in ("intake", "feedback", "analytics", "notify"):
        migrate(service, url, app_url(url))
    yield str(make_url(url).database)
    asyncio.run(_drop_database(infra, url))


@pytest.fixture
async def real_settings(infra: Infra, migrated_template: str) -> AsyncIterator[Settings]:
    """Settings for the real stack, with this test's own topics, groups and database
    (migrated with Alembic as the owner, as ``rapport migrate`` does: a copy of the migrated
    template); the services connect as the application role, under row-level security. The
    test's topics and database are deleted after it."""
    pg_database = await _create_database(infra, template=migrated_template)
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
    await _drop_database(infra, pg_database)


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
