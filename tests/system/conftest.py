"""System tests: all four services in one host on the real Kafka, PostgreSQL and Redis, with
two sites whose staff must never see each other's data."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from services import migrate
from shared.settings import Settings, load_settings
from tests.conftest import _plain_dsn
from tests.support.infra import Infra, app_url
from tests.system.world import World, build_world


@pytest.fixture(scope="module")
async def module_settings(infra: Infra) -> AsyncIterator[Settings]:
    """Like ``real_settings``, but one database and topic prefix per test module, so a module's
    tests share one two-site world (building it on Kafka takes seconds)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_plain_dsn(infra.database_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(infra.database_url).set(database=name).render_as_string(hide_password=False)
    settings = load_settings(
        kafka_bootstrap=infra.kafka_bootstrap,
        database_url=app_url(url),
        migration_database_url=url,
        redis_url=infra.redis_url,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        topic_partitions=1,
        # The test receiver listens on loopback.
        allow_private_webhooks=True,
        relay_idle_seconds=0.05,
    )
    # Migrated as the owner, served as the application role under row-level security, as
    # ``rapport migrate`` and the services do.
    for service in ("intake", "feedback", "analytics", "notify"):
        await asyncio.to_thread(
            migrate,
            service,
            settings.migration_database_url_for(service),
            settings.database_url_for(service),
        )
    yield settings
    admin = await asyncpg.connect(_plain_dsn(infra.database_url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="module")
async def world(module_settings: Settings) -> AsyncIterator[World]:
    async with build_world(module_settings) as built:
        yield built
