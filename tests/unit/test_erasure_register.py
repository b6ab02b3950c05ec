"""The erasure register: a client's events up to the erasure are skipped (late ones, or all of
them when the topics are read again); a client who comes back afterwards is a new history; an
erased episode's events are skipped whenever they were emitted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.consumer import BATCH_EVENTS
from shared.erasure import ErasureRegister, erasure_tables

CLIENT = "p1_" + "c" * 32
ERASED_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


@pytest.fixture
async def session() -> AsyncIterator[AsyncSession]:
    metadata = MetaData()
    erasures, erased = erasure_tables("svc", metadata)
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    async with AsyncSession(engine) as session, session.begin():
        session.info["register"] = ErasureRegister(erasures, erased)
        yield session
    await engine.dispose()


def register_of(session: AsyncSession) -> ErasureRegister:
    register: ErasureRegister = session.info["register"]
    return register


async def test_a_clients_events_up_to_the_erasure_are_skipped_and_later_ones_are_not(
    session: AsyncSession,
) -> None:
    register = register_of(session)
    await register.register(session, "req-1", [CLIENT], ["ep-1"], ERASED_AT)
    assert await register.any_erased(session, [CLIENT], ERASED_AT - SECOND)
    assert await register.any_erased(session, [CLIENT], ERASED_AT)
    assert not await register.any_erased(session, [CLIENT], ERASED_AT + SECOND)


async def test_an_erased_episodes_events_are_always_skipped(session: AsyncSession) -> None:
    register = register_of(session)
    await register.register(session, "req-1", [CLIENT], ["ep-1"], ERASED_AT)
    assert await register.any_erased(session, ["ep-1"], ERASED_AT + timedelta(days=30))
    assert not await register.any_erased(session, ["ep-2", "p1_" + "d" * 32], ERASED_AT)


async def test_a_second_erasure_of_a_returning_client_moves_the_boundary(
    session: AsyncSession,
) -> None:
    register = register_of(session)
    await register.register(session, "req-1", [CLIENT], [], ERASED_AT)
    later = ERASED_AT + timedelta(days=10)
    await register.register(session, "req-2", [CLIENT], [], later)
    assert await register.any_erased(session, [CLIENT], later - SECOND)
    assert not await register.any_erased(session, [CLIENT], later + SECOND)


def batch_of(*subjects: tuple[str, str]) -> list[SimpleNamespace]:
    """Events (as far as the register looks at them) of a consumer batch."""
    return [SimpleNamespace(data=SimpleNamespace(client=c, episode_id=e)) for c, e in subjects]


CASES = [
    ([CLIENT], ERASED_AT - SECOND),
    ([CLIENT], ERASED_AT),
    ([CLIENT], ERASED_AT + SECOND),
    (["ep-1"], ERASED_AT + timedelta(days=30)),
    (["ep-2", "p1_" + "d" * 32], ERASED_AT),
    (["ep-3"], ERASED_AT),  # not among the batch's subjects: asked of the database
]


async def test_in_a_consumer_batch_the_register_answers_as_the_database_does(
    session: AsyncSession,
) -> None:
    register = register_of(session)
    await register.register(session, "req-1", [CLIENT], ["ep-1"], ERASED_AT)
    expected = [await register.any_erased(session, s, at) for s, at in CASES]

    session.info[BATCH_EVENTS] = batch_of((CLIENT, "ep-1"), ("p1_" + "d" * 32, "ep-2"))
    assert [await register.any_erased(session, s, at) for s, at in CASES] == expected
    assert expected == [True, True, False, True, False, False]


async def test_an_erasure_earlier_in_the_batch_applies_to_the_events_after_it(
    session: AsyncSession,
) -> None:
    register = register_of(session)
    session.info[BATCH_EVENTS] = batch_of((CLIENT, "ep-1"))
    assert not await register.any_erased(session, [CLIENT, "ep-1"], ERASED_AT)

    await register.register(session, "req-1", [CLIENT], ["ep-1"], ERASED_AT)

    assert await register.any_erased(session, [CLIENT], ERASED_AT - SECOND)
    assert await register.any_erased(session, ["ep-1"], ERASED_AT + SECOND)
