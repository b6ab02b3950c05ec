"""Each service's Alembic history builds exactly the tables its models declare (PostgreSQL),
and touches no other service's tables."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import services
from shared.migrations import include_only
from shared.settings import Settings


def _diff(connection: Connection, service: str) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={
            "include_object": include_only(service),
            "compare_type": True,
            "version_table": f"alembic_version_{service}",
        },
    )
    return list(compare_metadata(context, SQLModel.metadata))


@pytest.mark.parametrize("service", services.NAMES)
async def test_migrations_match_the_models(real_settings: Settings, service: str) -> None:
    services.definitions([service])
    engine = create_async_engine(real_settings.database_url_for(service))
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(_diff, service)
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
    finally:
        await engine.dispose()
    assert diff == [], f"{service}: models and migrations differ; add a migration: {diff}"
    owned = {t for t in tables if t.startswith(f"{service}_")}
    assert owned == {t.name for t in next(d for d in services.definitions([service])).tables}
    assert f"alembic_version_{service}" in tables
