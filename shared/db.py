"""Async database engine and sessions (PostgreSQL in production, SQLite for the embedded default).

Each service owns its tables (all named ``<service>_…``) and never reads another's.

*Site scope* (defence in depth under the application's own checks): on PostgreSQL every table
with a ``site_id`` column has row-level security, forced, with a policy that shows a row only
when its site is in the transaction's ``rapport.sites`` setting. Every transaction a session
begins gets ``set_config('rapport.sites', <sites>, true)`` (transaction-local, like ``SET
LOCAL``) from the task's current scope: the staff token's sites for an HTTP request
(:func:`use_sites`, set by the authentication dependency), the event's site for a consumer
(:func:`site_scope` around each event's transaction, or :func:`rescope` per event inside a
batch's transaction), every site (:data:`ALL_SITES`) for the
service's own background work (dispatcher, scheduler, backfill; the outbox relay touches only
the outbox, which is not site-scoped). No scope set: nothing is set and the transaction sees no
site-scoped row at all. SQLite has no row-level security.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, event, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as SQLAlchemyAsyncSession
from sqlalchemy.orm import Session as SyncSession
from sqlmodel import Session as SQLModelSession
from sqlmodel.ext.asyncio.session import AsyncSession

Sessionmaker = async_sessionmaker[AsyncSession]

SITES_SETTING = "rapport.sites"
ALL_SITES = "*"  # the service's own background work; never granted to a staff token
_sites: ContextVar[str | None] = ContextVar("rapport_sites", default=None)


def _joined(sites: Iterable[str]) -> str:
    # Site ids are [A-Za-z0-9._:-]: no comma and never "*", so the joined form is unambiguous.
    return ",".join(sorted({s for s in sites if s and s != ALL_SITES and "," not in s}))


def _scope_value(sites: Iterable[str] | str) -> str:
    """The ``rapport.sites`` value for a site, several sites, or :data:`ALL_SITES`."""
    if sites == ALL_SITES:
        return ALL_SITES
    return _joined([sites] if isinstance(sites, str) else sites)


# Transaction-local (like ``SET LOCAL``): it ends with the transaction.
_SET_SCOPE = text("SELECT set_config(:name, :sites, true)")


def use_sites(sites: Iterable[str]) -> None:
    """Scope the rest of the current task (e.g. one HTTP request) to these sites."""
    _sites.set(_joined(sites))


@contextmanager
def site_scope(sites: Iterable[str] | str) -> Iterator[None]:
    """Scope the transactions begun inside the block to these sites (or :data:`ALL_SITES`)."""
    token = _sites.set(_scope_value(sites))
    try:
        yield
    finally:
        _sites.reset(token)


def all_sites() -> AbstractContextManager[None]:
    """Scope for the service's own work across sites (dispatcher, scheduler, backfill)."""
    return site_scope(ALL_SITES)


async def rescope(session: AsyncSession, sites: Iterable[str] | str) -> None:
    """Change the site scope inside an open transaction (PostgreSQL): for a consumer that
    applies several events, of different sites, in one transaction — call it before each."""
    if dialect_of(session) != "postgresql":
        return
    await session.execute(_SET_SCOPE, {"name": SITES_SETTING, "sites": _scope_value(sites)})


class ScopedSession(SQLModelSession):
    """A session whose every PostgreSQL transaction carries the task's site scope."""


@event.listens_for(ScopedSession, "after_begin")
def _apply_site_scope(session: SyncSession, transaction: Any, connection: Any) -> None:
    sites = _sites.get()
    if sites is not None and connection.dialect.name == "postgresql":
        connection.execute(_SET_SCOPE, {"name": SITES_SETTING, "sites": sites})


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, *, pool_size: int = 10, name: str = "rapport") -> AsyncEngine:
    """The engine for ``url``; on PostgreSQL its connections carry ``name`` as their
    ``application_name`` (so ``pg_stat_activity`` and the server's log say which service)."""
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip per transaction. A dropped connection surfaces
        # as a transient error that handlers and routes retry or answer 503 for.
        pool_recycle=1800,
        connect_args={
            "timeout": 5,
            "command_timeout": 30,
            # Each connection keeps its prepared statements (parsed and planned once): a
            # service issues a few hundred distinct ones, more than the default 100 hold, and a
            # statement evicted is prepared again (one more round trip and parse).
            "prepared_statement_cache_size": 1000,
            "server_settings": {"application_name": name},
        },
    )


class RapportSession(AsyncSession):
    """SQLModel's async session. Its ``execute`` (SQLAlchemy's, for Core statements) is marked
    deprecated in favour of ``exec`` and issues a warning on every call (a stack walk each
    time, a few percent of a busy consumer's CPU): the same method without the warning."""

    execute = SQLAlchemyAsyncSession.execute


def make_sessionmaker(engine: AsyncEngine) -> Sessionmaker:
    return async_sessionmaker(
        engine, class_=RapportSession, sync_session_class=ScopedSession, expire_on_commit=False
    )


def is_transient(error: BaseException) -> bool:
    """Errors worth retrying: the database (or the network to it) is briefly unavailable."""
    if isinstance(error, (OperationalError, InterfaceError)):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, (OSError, TimeoutError, ConnectionError))


def dialect_of(session: Any) -> str:
    """The SQL dialect a session talks to ("postgresql" or "sqlite")."""
    bind = getattr(session, "bind", None)
    return str(bind.dialect.name) if bind is not None else "postgresql"


def upsert(session: Any, table: Any) -> Any:
    """An INSERT that can say what to do on a conflict (``on_conflict_do_nothing`` /
    ``on_conflict_do_update``), for the dialect the session talks to."""
    if dialect_of(session) == "sqlite":
        return sqlite_insert(table)
    return postgresql_insert(table)


def insert_or_ignore(session: Any, table: Any, index_elements: Sequence[Any] | None = None) -> Any:
    """The insert-or-skip statement: rows that would break a unique key are left as they are
    (a redelivered event, two replicas racing). ``index_elements`` names the key where the
    table has several."""
    return upsert(session, table).on_conflict_do_nothing(index_elements=index_elements)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


def serial_key() -> Column[int]:
    """A table's own increasing ``id``: BIGSERIAL in PostgreSQL, SQLite's rowid alias there
    (only an INTEGER primary key autoincrements in SQLite)."""
    return Column(
        "id",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    )
