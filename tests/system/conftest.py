"""System tests: all four services in one host on the real Kafka, PostgreSQL and Redis, with
two sites whose staff must never see each other's data."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from shared.settings import Settings, load_settings
from tests.support.infra import Infra, app_url, create_database, drop_database
from tests.system.world import World, build_world


@pytest.fixture(scope="module")
async def module_settings(infra: Infra, migrated_template: str) -> AsyncIterator[Settings]:
    """Like ``real_settings``, but one database and topic prefix per test module, so a module's
    tests share one two-site world (building it on Kafka takes seconds). The database is a
    copy of the migrated template: tables migrated as the owner, served as the application role
    under row-level security, as ``rapport migrate`` and the services do."""
    url = await create_database(infra.database_url, template=migrated_template)
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
    yield settings
    await drop_database(infra.database_url, url)


@pytest.fixture(scope="module")
async def world(module_settings: Settings) -> AsyncIterator[World]:
    async with build_world(module_settings) as built:
        yield built
