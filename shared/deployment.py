"""Which deployment a service's tables belong to.

A deployment is one set of topics (``RAPPORT_TOPIC_PREFIX``) with its own tables. Two
deployments must never share a service's tables: the second one's relay, consumers and notify
dispatcher would take the first one's rows (outbox rows published to its own topics, pending
deliveries claimed and sent or failed). Each deployment gets its own database (its own
``RAPPORT_DATABASE_URL``).

To hold to that, each service's tables record the topic prefix of the deployment they belong to,
in ``<service>_deployment`` (one row): written by ``rapport migrate`` (or by the first start on
tables that have none yet), and compared with the configured prefix by ``rapport migrate``, at
every start and by ``rapport backfill``. Another prefix stops the process before it reads or
claims anything, with one line naming the setting (:class:`DeploymentMismatch`).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, inspect, pool, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from shared.db import is_sqlite, is_transient
from shared.logs import get_logger
from shared.settings import SettingsError

log = get_logger(__name__)

ROW = 1  # the table's only row
PATIENCE_SECONDS = 60.0


def deployment_table(service: str, metadata: MetaData) -> Table:
    """``<service>_deployment``: the topic prefix of the deployment the tables belong to."""
    return Table(
        f"{service}_deployment",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("topic_prefix", String(255), nullable=False),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
    )


class DeploymentMismatch(SettingsError):
    """The tables belong to a deployment with another topic prefix."""


class NotMigrated(SettingsError):
    """The database has no deployment record table for the service: it is not migrated."""


def _mismatch(service: str, recorded: str, configured: str) -> DeploymentMismatch:
    return DeploymentMismatch(
        f"RAPPORT_TOPIC_PREFIX: the {service} tables in this database belong to the deployment "
        f"with topic prefix {recorded!r}, not {configured!r}; give each deployment its own "
        "database (RAPPORT_DATABASE_URL), or use that deployment's prefix"
    )


def _sqlite_file_exists(url: str) -> bool:
    database = make_url(url).database
    return not database or database == ":memory:" or Path(database).exists()


def _table(service: str) -> Table:
    # Its own metadata: ``rapport migrate`` checks before any service's models are loaded.
    return deployment_table(service, MetaData())


async def _has_table(connection: AsyncConnection, name: str) -> bool:
    return bool(await connection.run_sync(lambda sync: inspect(sync).has_table(name)))


async def recorded_prefix(connection: AsyncConnection, service: str) -> str | None:
    """The prefix the service's tables belong to (None: not recorded, or no table yet)."""
    table = _table(service)
    if not await _has_table(connection, table.name):
        return None
    found = await connection.execute(select(table.c.topic_prefix).where(table.c.id == ROW))
    value = found.scalar_one_or_none()
    return None if value is None else str(value)


async def _claim(connection: AsyncConnection, service: str, topic_prefix: str) -> None:
    table = _table(service)
    if not await _has_table(connection, table.name):
        raise NotMigrated(
            f"RAPPORT_DATABASE_URL: the database has no {service} tables of this version; "
            "run `rapport migrate` first"
        )
    values = {"id": ROW, "topic_prefix": topic_prefix, "recorded_at": datetime.now(UTC)}
    # The first to claim the tables records its prefix; the others read it.
    if connection.dialect.name == "postgresql":
        await connection.execute(
            pg_insert(table).values(values).on_conflict_do_nothing(index_elements=["id"])
        )
    else:
        await connection.execute(sqlite_insert(table).values(values).on_conflict_do_nothing())
    recorded = await recorded_prefix(connection, service)
    if recorded != topic_prefix:
        raise _mismatch(service, str(recorded), topic_prefix)


async def claim_tables(engine: AsyncEngine, service: str, topic_prefix: str) -> None:
    """Record ``topic_prefix`` as the owner of the service's tables if none is recorded yet,
    else check it is the recorded one. Raises :class:`DeploymentMismatch` (another prefix) or
    :class:`NotMigrated`; waits up to a minute for a database that is briefly unreachable."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    backoff = 0.5
    while True:
        try:
            async with engine.begin() as connection:
                await _claim(connection, service, topic_prefix)
            return
        except SettingsError:
            raise
        except Exception as error:
            if not is_transient(error) or time.monotonic() + backoff > deadline:
                raise
            log.warning(
                "database not reachable while checking the deployment; retrying",
                service=service,
                error=type(error).__name__,
                retry_in_s=backoff,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 8.0)


async def check_tables(url: str, service: str, topic_prefix: str) -> None:
    """Refuse (:class:`DeploymentMismatch`) when the tables at ``url`` belong to another
    prefix; tables not yet created or not yet claimed pass (read only, one connection)."""
    if is_sqlite(url) and not _sqlite_file_exists(url):
        return  # nothing created yet
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            recorded = await recorded_prefix(connection, service)
    finally:
        await engine.dispose()
    if recorded is not None and recorded != topic_prefix:
        raise _mismatch(service, recorded, topic_prefix)


async def claim_tables_at(url: str, service: str, topic_prefix: str) -> None:
    """:func:`claim_tables` over a connection of its own (``rapport migrate``)."""
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        await claim_tables(engine, service, topic_prefix)
    finally:
        await engine.dispose()
