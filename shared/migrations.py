"""Alembic, one migration history per service (``services/<name>/migrations``).

Each service's history touches only its own ``<service>_…`` tables and keeps its own version
table (``alembic_version_<service>``), so services migrate independently even when they share a
PostgreSQL database.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, pool
from sqlalchemy.ext.asyncio import async_engine_from_config
from sqlmodel import SQLModel

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"


def alembic_config(service: str, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    config.set_main_option("sqlalchemy.url", url)
    config.attributes["service"] = service
    return config


def upgrade(service: str, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(service, url), revision)


def _include(service: str) -> Any:
    def include_object(
        obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        if type_ == "table":
            return bool(name and name.startswith(f"{service}_"))
        table = getattr(obj, "table", None)
        return table is None or str(table.name).startswith(f"{service}_")

    return include_object


def _configure(connection: Connection, service: str) -> None:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        include_object=_include(service),
        version_table=f"alembic_version_{service}",
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_env(service: str) -> None:
    """Body of every service's ``migrations/env.py``."""
    import services

    services.definitions([service])
    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(
            url=url,
            target_metadata=SQLModel.metadata,
            include_object=_include(service),
            version_table=f"alembic_version_{service}",
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return

    async def online() -> None:
        engine = async_engine_from_config(
            {"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool
        )
        async with engine.connect() as connection:
            await connection.run_sync(_configure, service)
        await engine.dispose()

    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection, service)
    else:
        asyncio.run(online())
