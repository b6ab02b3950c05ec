"""The kernel's time-driven checks on a real PostgreSQL: two sweepers racing over the same due
rows fire each check exactly once, a sweeper that dies mid-batch commits nothing and another
fires its checks, and a clock that jumps back and forth neither fires twice nor skips."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from shared.clock import Clock, DueCheck, due_checks_table, schedule
from shared.events import Event

pytestmark = pytest.mark.asyncio

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class Runtime:
    """What the clock needs of a service runtime: transactions, emit, a stopping flag."""

    def __init__(self, maker: async_sessionmaker[AsyncSession]) -> None:
        self.maker = maker
        self.stopping = asyncio.Event()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.maker() as session, session.begin():
            yield session

    async def emit(self, session: AsyncSession, *events: Event[Any]) -> None:
        return None


@pytest.fixture
async def tables(pg_database: str) -> AsyncIterator[tuple[Any, Table, Table]]:
    metadata = MetaData()
    checks = due_checks_table("clocktest", metadata)
    fired = Table(
        "clocktest_fired",
        metadata,
        Column("n", Integer, primary_key=True, autoincrement=True),
        Column("subject", String(64)),
        Column("kind", String(40)),
    )
    engine = create_async_engine(pg_database)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    yield maker, checks, fired
    await engine.dispose()


def recorder(fired: Table, die_on: set[str] | None = None) -> Any:
    async def fire(session: AsyncSession, check: DueCheck, now: datetime) -> Sequence[Event[Any]]:
        await session.execute(insert(fired).values(subject=check.subject, kind=check.kind))
        if die_on is not None and check.subject in die_on:
            die_on.discard(check.subject)
            raise asyncio.CancelledError  # the process dies here: nothing of this batch commits
        await asyncio.sleep(0)  # let the other sweeper run between checks
        return []

    return fire


async def pend(maker: Any, checks: Table, n: int, due: datetime) -> None:
    async with maker() as session, session.begin():
        for i in range(n):
            await schedule(session, checks, DueCheck(f"ep-{i}", "no_contact", "site-a", due))


async def fired_counts(maker: Any, fired: Table) -> dict[str, int]:
    async with maker() as session:
        rows = await session.execute(
            select(fired.c.subject, func.count()).group_by(fired.c.subject)
        )
        return {subject: count for subject, count in rows.all()}


async def test_two_sweepers_fire_each_check_once(tables: tuple[Any, Table, Table]) -> None:
    maker, checks, fired = tables
    await pend(maker, checks, 300, T0)
    one = Clock(Runtime(maker), checks, recorder(fired), batch=20, now=lambda: T0)
    two = Clock(Runtime(maker), checks, recorder(fired), batch=20, now=lambda: T0)
    taken = await asyncio.gather(one.sweep(), two.sweep())
    counts = await fired_counts(maker, fired)
    assert sum(taken) == 300
    assert len(counts) == 300 and set(counts.values()) == {1}


async def test_a_sweeper_that_dies_mid_batch_leaves_its_checks_to_another(
    tables: tuple[Any, Table, Table],
) -> None:
    maker, checks, fired = tables
    await pend(maker, checks, 10, T0)
    dying = Clock(
        Runtime(maker), checks, recorder(fired, die_on={"ep-5"}), batch=50, now=lambda: T0
    )
    with pytest.raises(asyncio.CancelledError):
        await dying.sweep()
    assert await fired_counts(maker, fired) == {}  # its whole batch rolled back
    survivor = Clock(Runtime(maker), checks, recorder(fired), batch=50, now=lambda: T0)
    assert await survivor.sweep() == 10
    assert set((await fired_counts(maker, fired)).values()) == {1}
    assert await survivor.sweep() == 0


async def test_a_clock_jump_neither_fires_twice_nor_skips(tables: tuple[Any, Table, Table]) -> None:
    maker, checks, fired = tables
    await pend(maker, checks, 5, T0 + timedelta(days=1))
    times = iter([T0, T0 + timedelta(days=2), T0 - timedelta(days=30), T0 + timedelta(days=3)])
    clock = Clock(Runtime(maker), checks, recorder(fired), now=lambda: next(times))
    assert await clock.sweep() == 0  # not due yet
    assert await clock.sweep() == 5  # jumped forward past the due time: all fire
    assert await clock.sweep() == 0  # jumped back: nothing again
    assert await clock.sweep() == 0
    assert set((await fired_counts(maker, fired)).values()) == {1}


async def test_rescheduling_moves_the_due_time(tables: tuple[Any, Table, Table]) -> None:
    maker, checks, fired = tables
    await pend(maker, checks, 1, T0)
    async with maker() as session, session.begin():
        later = DueCheck("ep-0", "no_contact", "site-a", T0 + timedelta(days=21))
        await schedule(session, checks, later)
    clock = Clock(Runtime(maker), checks, recorder(fired), now=lambda: T0 + timedelta(days=20))
    assert await clock.sweep() == 0
    clock.now = lambda: T0 + timedelta(days=21)
    assert await clock.sweep() == 1


async def test_a_failing_check_is_tried_later_and_does_not_block_others(
    tables: tuple[Any, Table, Table],
) -> None:
    maker, checks, fired = tables
    await pend(maker, checks, 3, T0)

    async def fire(session: AsyncSession, check: DueCheck, now: datetime) -> Sequence[Event[Any]]:
        if check.subject == "ep-1":
            raise RuntimeError("a bug")
        await session.execute(insert(fired).values(subject=check.subject, kind=check.kind))
        return []

    clock = Clock(Runtime(maker), checks, fire, now=lambda: T0)
    assert await clock.sweep() == 3
    assert set(await fired_counts(maker, fired)) == {"ep-0", "ep-2"}
    async with maker() as session:
        (due,) = (await session.execute(select(checks.c.due_at))).scalars().all()
    assert due == T0 + timedelta(minutes=5)
