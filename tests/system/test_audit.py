"""The audit trail (shared/audit.py) on PostgreSQL: records are append-only for everyone (a
trigger refuses UPDATE, DELETE and TRUNCATE), hash-chained so that a row changed or removed
behind the trigger's back is found by the verifier at exactly that row, and never forked by
concurrent appends from separate processes. What one staff request records is checked on the
embedded default.

That every client-level route writes exactly one record (and other routes none) is proven
route by route in test_isolation.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import SQLModel

from services import upgrade
from shared.audit import GENESIS, AuditEntry, AuditTrail, BrokenLink, record_hash, verify_chain
from shared.db import all_sites, make_engine
from shared.settings import Settings
from tests.support.feedback import FeedbackDesk, feedback_desk

TABLE = "intake_audit"


def entry(n: int, outcome: str = "allowed") -> AuditEntry:
    return AuditEntry(
        at=datetime.now(UTC),
        actor=f"staff-{n}",
        actor_role="clinical_lead",
        site_id="site-a",
        action="episode.read",
        resource=f"episode/ep-{n}",
        outcome=outcome,
        status=200 if outcome == "allowed" else 404,
    )


@pytest.fixture
async def engine(pg_database: str) -> AsyncIterator[AsyncEngine]:
    await asyncio.to_thread(upgrade, "intake", pg_database)
    created = make_engine(pg_database)
    yield created
    await created.dispose()


def trail() -> AuditTrail:
    return AuditTrail("intake", SQLModel.metadata.tables[TABLE])


async def filled(engine: AsyncEngine, n: int) -> async_sessionmaker:  # type: ignore[type-arg]
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    chain = trail()
    for i in range(n):
        await chain.record(sessions, entry(i))
    return sessions


async def as_owner_behind_the_trigger(engine: AsyncEngine, statement: str) -> None:
    """What only a database owner could do: switch the guard off, tamper, switch it back."""
    async with engine.begin() as connection:
        await connection.execute(text(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER"))
        await connection.execute(text(statement))
        await connection.execute(text(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER"))


async def test_a_chain_of_appends_verifies(engine: AsyncEngine) -> None:
    sessions = await filled(engine, 5)

    assert await trail().verify(sessions) is None


@pytest.mark.parametrize(
    "statement",
    [
        f"UPDATE {TABLE} SET outcome = 'allowed' WHERE seq = 2",
        f"DELETE FROM {TABLE} WHERE seq = 2",
        f"TRUNCATE {TABLE}",
    ],
)
async def test_the_database_refuses_to_change_or_remove_audit_records(
    engine: AsyncEngine, statement: str
) -> None:
    await filled(engine, 3)

    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as connection:
            await connection.execute(text(statement))

    async with engine.connect() as connection:
        assert (await connection.execute(text(f"SELECT count(*) FROM {TABLE}"))).scalar() == 3


async def test_a_changed_record_is_found_at_its_own_link(engine: AsyncEngine) -> None:
    sessions = await filled(engine, 6)

    await as_owner_behind_the_trigger(
        engine, f"UPDATE {TABLE} SET actor = 'someone-else' WHERE seq = 4"
    )

    broken = await trail().verify(sessions)
    assert broken is not None
    assert (broken.seq, broken.reason) == (4, "hash_mismatch")


async def test_a_changed_record_with_a_recomputed_hash_breaks_the_next_link(
    engine: AsyncEngine,
) -> None:
    sessions = await filled(engine, 6)
    async with sessions() as session:
        row = (
            await session.execute(select(SQLModel.metadata.tables[TABLE]).where(text("seq = 3")))
        ).one()
    forged = AuditEntry(
        at=row.at,
        actor="someone-else",
        actor_role=row.actor_role,
        site_id=row.site_id,
        action=row.action,
        resource=row.resource,
        outcome=row.outcome,
        status=row.status,
    )
    digest = record_hash("intake", 3, row.prev_hash, forged)

    await as_owner_behind_the_trigger(
        engine, f"UPDATE {TABLE} SET actor = 'someone-else', hash = '{digest}' WHERE seq = 3"
    )

    broken = await trail().verify(sessions)
    assert broken is not None
    assert (broken.seq, broken.reason) == (4, "prev_hash_mismatch")


async def test_a_removed_record_is_found_as_a_gap(engine: AsyncEngine) -> None:
    sessions = await filled(engine, 5)

    await as_owner_behind_the_trigger(engine, f"DELETE FROM {TABLE} WHERE seq = 2")

    broken = await trail().verify(sessions)
    assert broken is not None
    assert (broken.seq, broken.reason) == (2, "gap")


async def test_concurrent_appends_from_separate_processes_never_fork_the_chain(
    engine: AsyncEngine,
) -> None:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    # Two trails with their own in-process locks stand for two replicas: only the database's
    # advisory lock keeps them apart.
    first, second = trail(), trail()

    await asyncio.gather(
        *((first if i % 2 else second).record(sessions, entry(i)) for i in range(60))
    )

    async with sessions() as session:
        seqs = (
            (await session.execute(text(f"SELECT seq FROM {TABLE} ORDER BY seq"))).scalars().all()
        )
    assert seqs == list(range(1, 61))
    assert await first.verify(sessions) is None


# -- pure ------------------------------------------------------------------------------------


class Row:
    def __init__(self, seq: int, prev_hash: str, e: AuditEntry) -> None:
        self.id, self.seq, self.prev_hash = seq, seq, prev_hash
        self.hash = record_hash("c", seq, prev_hash, e)
        self.__dict__.update(e.__dict__)


def chain_of(n: int) -> list[Row]:
    rows, previous = [], GENESIS
    for i in range(1, n + 1):
        rows.append(Row(i, previous, entry(i)))
        previous = rows[-1].hash
    return rows


def test_an_empty_chain_verifies() -> None:
    assert verify_chain("c", []) is None


def test_a_chain_not_starting_at_the_genesis_is_broken_at_its_first_link() -> None:
    rows = chain_of(3)[1:]

    assert verify_chain("c", rows) == BrokenLink("c", 1, 2, "gap")


def test_a_reordered_chain_is_broken() -> None:
    rows = chain_of(4)
    rows[1], rows[2] = rows[2], rows[1]

    broken = verify_chain("c", rows)

    assert broken is not None and broken.seq == 2


# -- what a request records (embedded) ------------------------------------------------------


@pytest.fixture
async def desk(embedded_settings: object) -> AsyncIterator[FeedbackDesk]:
    async with feedback_desk(embedded_settings) as opened:  # type: ignore[arg-type]
        yield opened


async def audit_rows(desk: FeedbackDesk) -> list[object]:
    runtime = desk.host.runtimes["feedback"]
    with all_sites():  # the whole trail (on PostgreSQL it is under row-level security)
        async with runtime.sessionmaker() as session:
            return list(
                (
                    await session.execute(
                        select(SQLModel.metadata.tables["feedback_audit"]).order_by(text("seq"))
                    )
                ).all()
            )


async def test_a_denied_read_records_actor_site_action_resource_and_outcome(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode(site="site-a")
    before = len(await audit_rows(desk))

    denied = await desk.http.get(
        f"/feedback/episodes/{episode_id}/responses",
        headers=desk.auth("therapist", sub="th-9"),
    )

    rows = await audit_rows(desk)
    assert denied.status_code == 404
    assert len(rows) == before + 1
    last = rows[-1]
    assert (last.actor, last.actor_role, last.action) == (  # type: ignore[attr-defined]
        "th-9",
        "therapist",
        "responses.read",
    )
    assert last.resource == f"episode/{episode_id}"  # type: ignore[attr-defined]
    assert (last.outcome, last.status) == ("not_found", 404)  # type: ignore[attr-defined]
    assert last.at is not None  # type: ignore[attr-defined]


async def test_an_allowed_read_records_the_site_it_read(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode(site="site-a")

    read = await desk.http.get(
        f"/feedback/episodes/{episode_id}/responses", headers=desk.auth("therapist")
    )

    last = (await audit_rows(desk))[-1]
    assert read.status_code == 200
    assert (last.outcome, last.site_id) == ("allowed", "site-a")  # type: ignore[attr-defined]


async def test_an_overlong_site_in_a_refused_request_is_recorded_on_postgresql(
    real_settings: Settings,
) -> None:
    """The record keeps what was asked for, cut to the column's size (PostgreSQL, unlike
    SQLite, would refuse a longer value and fail the request with it)."""
    async with feedback_desk(real_settings) as desk:
        before = len(await audit_rows(desk))

        refused = await desk.http.get(
            "/feedback/episodes/ep-1/responses",
            params={"site_id": "s" * 300},
            headers=desk.auth("therapist"),
        )

        rows = await audit_rows(desk)
    assert refused.status_code == 404
    assert len(rows) == before + 1
    assert rows[-1].site_id == "s" * 64  # type: ignore[attr-defined]
