"""Defence in depth in the database: PostgreSQL row-level security on every site-scoped table,
for an application role that is neither the tables' owner nor allowed to bypass it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import func, select

import services
from services.intake.models import IntakeEffectiveness
from shared.db import make_engine, make_sessionmaker, rescope, site_scope
from shared.settings import Settings
from tests.support.infra import APP_ROLE, plain_dsn


@pytest.fixture
async def owner(real_settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(plain_dsn(real_settings.migration_database_url_for("")))
    yield connection
    await connection.close()


@pytest.fixture
async def app(real_settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(plain_dsn(real_settings.database_url_for("")))
    yield connection
    await connection.close()


async def test_every_site_scoped_table_has_forced_row_level_security_and_a_policy(
    owner: asyncpg.Connection,
) -> None:
    rows = await owner.fetch(
        """
        SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
               (SELECT count(*) FROM pg_policies p
                 WHERE p.schemaname = n.nspname AND p.tablename = c.relname) AS policies
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'site_id' AND NOT a.attisdropped
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
        """
    )
    tables = {r["relname"] for r in rows}
    # Every service's site-scoped tables were found (the query is not vacuous).
    assert {name.split("_")[0] for name in tables} == set(services.NAMES)
    unprotected = [
        r["relname"]
        for r in rows
        if not (r["relrowsecurity"] and r["relforcerowsecurity"] and r["policies"] >= 1)
    ]
    assert unprotected == []


async def test_the_application_role_is_not_the_owner_and_cannot_bypass_row_level_security(
    owner: asyncpg.Connection, app: asyncpg.Connection
) -> None:
    assert await app.fetchval("SELECT current_user") == APP_ROLE
    role = await owner.fetchrow(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1", APP_ROLE
    )
    assert role is not None and (role["rolsuper"], role["rolbypassrls"]) == (False, False)
    owned = await owner.fetchval(
        "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tableowner = $1",
        APP_ROLE,
    )
    assert owned == 0
    # And it may not change the schema.
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await app.execute("ALTER TABLE intake_effectiveness DISABLE ROW LEVEL SECURITY")


async def _seed_two_sites(owner: asyncpg.Connection) -> None:
    await owner.execute(
        """
        INSERT INTO intake_effectiveness (therapist_id, site_id, domain, n, classification,
                                          estimates, updated_at)
        SELECT 'th-' || s || '-' || i, s, 'depression', i, 'neutral', '{}', now()
          FROM unnest(ARRAY['site-a', 'site-b']) AS s, generate_series(1, 3) AS i
        """
    )


async def test_a_transaction_set_to_site_a_sees_no_site_b_row_without_any_where_clause(
    owner: asyncpg.Connection, app: asyncpg.Connection
) -> None:
    await _seed_two_sites(owner)
    async with app.transaction():
        await app.execute("SELECT set_config('rapport.sites', 'site-a', true)")
        sites = await app.fetch("SELECT site_id FROM intake_effectiveness")
        assert sorted({r["site_id"] for r in sites}) == ["site-a"] and len(sites) == 3
        # Nor can it write a row for another site.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app.execute(
                "INSERT INTO intake_effectiveness VALUES "
                "('th-x', 'site-b', 'anxiety', 1, 'neutral', '{}', now())"
            )
    # SET LOCAL semantics: the next transaction on the same connection starts unscoped.
    async with app.transaction():
        assert await app.fetchval("SELECT count(*) FROM intake_effectiveness") == 0


async def test_a_transaction_with_no_site_set_sees_nothing(
    owner: asyncpg.Connection, app: asyncpg.Connection
) -> None:
    await _seed_two_sites(owner)
    assert await owner.fetchval("SELECT count(*) FROM intake_effectiveness") == 6
    assert await app.fetchval("SELECT count(*) FROM intake_effectiveness") == 0


async def test_the_services_sessions_carry_the_scope_of_their_task(
    owner: asyncpg.Connection, real_settings: Settings
) -> None:
    await _seed_two_sites(owner)
    engine = make_engine(real_settings.database_url_for("intake"), pool_size=1)
    sessions = make_sessionmaker(engine)
    count = select(func.count()).select_from(IntakeEffectiveness)
    try:
        async with sessions() as session:
            assert await session.scalar(count) == 0
        with site_scope(["site-b"]):
            async with sessions() as session:
                rows = (await session.execute(select(IntakeEffectiveness.site_id))).scalars()
                assert set(rows) == {"site-b"}
        with site_scope(["site-a", "site-b"]):
            async with sessions() as session:
                assert await session.scalar(count) == 6
        # A scope does not outlive its block, even on the same pooled connection.
        async with sessions() as session:
            assert await session.scalar(count) == 0
    finally:
        await engine.dispose()


async def test_a_transaction_can_be_rescoped_event_by_event(
    owner: asyncpg.Connection, real_settings: Settings
) -> None:
    """What a consumer applying a batch of events in one transaction does before each event."""
    await _seed_two_sites(owner)
    engine = make_engine(real_settings.database_url_for("intake"), pool_size=1)
    sessions = make_sessionmaker(engine)
    sites = select(IntakeEffectiveness.site_id)
    try:
        with site_scope(["site-a"]):
            async with sessions() as session, session.begin():
                assert set((await session.execute(sites)).scalars()) == {"site-a"}
                await rescope(session, "site-b")
                assert set((await session.execute(sites)).scalars()) == {"site-b"}
    finally:
        await engine.dispose()
