"""Alembic, one migration history per service; each service hands its folder to the kernel
(``ServiceDefinition.migrations``), so the kernel knows no service by name or path.

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
from sqlalchemy import Connection, pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_engine_from_config, create_async_engine
from sqlmodel import SQLModel

from shared.deployment import check_tables, claim_tables_at


def alembic_config(service: str, migrations: Path, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("sqlalchemy.url", url)
    config.attributes["service"] = service
    return config


def upgrade(service: str, migrations: Path, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(service, migrations, url), revision)


# -- row-level security and the application role --------------------------------------------

# A row is visible when its site is one of the transaction's ``rapport.sites`` (see
# shared/db.py), or to the service's own cross-site work ("*"). No setting: nothing visible.
SITE_POLICY = (
    "site_id = ANY (string_to_array(current_setting('rapport.sites', true), ','))"
    " OR current_setting('rapport.sites', true) = '*'"
)


def site_rls(table: str) -> list[str]:
    """SQL (PostgreSQL) protecting a site-scoped table: RLS enabled, forced (the owner too),
    one policy for reads and writes. For ``op.execute`` in a migration."""
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS {table}_site_scope ON {table}",
        f"CREATE POLICY {table}_site_scope ON {table} USING ({SITE_POLICY}) "
        f"WITH CHECK ({SITE_POLICY})",
    ]


def no_site_rls(table: str) -> list[str]:
    return [
        f"DROP POLICY IF EXISTS {table}_site_scope ON {table}",
        f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
    ]


READ_WRITE = "SELECT, INSERT, UPDATE, DELETE"
# Audit logs are append-only for the services: no UPDATE or DELETE, whatever a bug tries.
APPEND_ONLY = "SELECT, INSERT"
APPEND_ONLY_SUFFIXES = ("_audit",)


def migrate(
    service: str,
    migrations: Path,
    migration_url: str,
    app_url: str,
    topic_prefix: str | None = None,
) -> None:
    """``rapport migrate`` for one service: upgrade as the owner, then let the application
    role (the user of ``app_url``, when it is not the owner) read and write the service's
    tables — no DDL, no ownership, so row-level security applies to it.

    With ``topic_prefix`` (the deployment's), tables that belong to another deployment are
    refused before anything changes (:class:`shared.deployment.DeploymentMismatch`), and
    tables that belong to none yet are recorded as this deployment's."""
    if topic_prefix is not None:
        asyncio.run(check_tables(migration_url, service, topic_prefix))
    upgrade(service, migrations, migration_url)
    if topic_prefix is not None:
        asyncio.run(claim_tables_at(migration_url, service, topic_prefix))
    owner, app = make_url(migration_url), make_url(app_url)
    if owner.get_backend_name() == "postgresql" and app.username and app.username != owner.username:
        asyncio.run(grant_app_role(service, migration_url, app.username))


async def grant_app_role(service: str, owner_url: str, role: str) -> None:
    engine = create_async_engine(owner_url, poolclass=pool.NullPool)
    try:
        async with engine.begin() as connection:
            quoted = connection.dialect.identifier_preparer.quote(role)
            tables = (
                await connection.execute(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                        "AND tablename LIKE :prefix"
                    ),
                    {"prefix": f"{service}\\_%"},
                )
            ).scalars()
            for table in tables:
                rights = APPEND_ONLY if table.endswith(APPEND_ONLY_SUFFIXES) else READ_WRITE
                await connection.execute(text(f'GRANT {rights} ON "{table}" TO {quoted}'))
            sequences = (
                await connection.execute(
                    text(
                        "SELECT sequencename FROM pg_sequences "
                        "WHERE schemaname = current_schema() AND sequencename LIKE :prefix"
                    ),
                    {"prefix": f"{service}\\_%"},
                )
            ).scalars()
            for sequence in sequences:
                await connection.execute(
                    text(f'GRANT USAGE, SELECT ON SEQUENCE "{sequence}" TO {quoted}')
                )
    finally:
        await engine.dispose()


def include_only(service: str) -> Any:
    """Alembic's filter: only the service's own ``<service>_…`` tables."""

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
        include_object=include_only(service),
        version_table=f"alembic_version_{service}",
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_env(service: str) -> None:
    """Body of every service's ``migrations/env.py``, which first builds its service's
    definition (so that every table the service owns is on ``SQLModel.metadata``)."""
    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(
            url=url,
            target_metadata=SQLModel.metadata,
            include_object=include_only(service),
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
