"""``rapport backfill analytics`` rebuilds the same state from the topics, publishes nothing
again, and leaves the consumer group where the live service must continue."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import services
from rapport.backfill import backfill
from shared.host import Host
from shared.settings import Settings
from tests.integration.test_delivery_guarantees import TOTAL, count, produce_feedback
from tests.support.waiting import eventually

PHASE_CHANGES = (
    "select count(*) from intake_outbox"
    " where topic like '%episode.phase_changed%' and published_at is not null"
)
ALERTS = "select kind, episode_id, opened_session, status from analytics_alerts order by 1,2,3"


@pytest.fixture
async def database(real_settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(real_settings.migration_database_url_for("analytics"))
    yield engine
    await engine.dispose()


async def rows(engine: AsyncEngine, sql: str) -> list[tuple[object, ...]]:
    async with engine.connect() as connection:
        return [tuple(r) for r in (await connection.execute(text(sql))).all()]


async def run_analytics_until(settings: Settings, engine: AsyncEngine, scores: int) -> None:
    host = Host(settings, services.definitions(["analytics"]))
    await host.start()
    try:

        async def applied() -> bool:
            return await count(engine, "select count(*) from analytics_scores") == scores

        await eventually(applied, timeout=60, what=f"{scores} scores")
    finally:
        await host.stop()


async def test_backfill_rebuilds_the_same_state_without_publishing_again(
    real_settings: Settings, database: AsyncEngine
) -> None:
    await produce_feedback(real_settings)
    await run_analytics_until(real_settings, database, TOTAL)
    before_alerts = await rows(database, ALERTS)
    before_outbox = await count(database, "select count(*) from analytics_outbox")
    await database.dispose()

    counts = await backfill(real_settings)

    # The responses, the attendance each implied, the 4 match.confirmed and intake's phase
    # changes (matched, then active at the first answer) that reached Kafka.
    consumed = 2 * TOTAL + 4 + await count(database, PHASE_CHANGES)
    assert counts["applied"] == consumed
    assert await count(database, "select count(*) from analytics_scores") == TOTAL
    assert await rows(database, ALERTS) == before_alerts
    assert await count(database, "select count(*) from analytics_outbox") == before_outbox
    # The live service resumes after the snapshot: nothing is applied twice.
    await run_analytics_until(real_settings, database, TOTAL)
    assert await count(database, "select count(*) from analytics_inbox") == consumed
