"""Analytics' time-driven checks on the real stack (Kafka, PostgreSQL): two ``rapport serve
analytics`` processes in one consumer group and on one database, episodes whose last contact is
weeks old (so their ``no_contact`` check falls due as soon as it is pended), and a SIGKILL of
one process while the checks fall due: every episode's ``no_contact`` alert is opened exactly
once (one row, one ``alliance.alert`` "opened" of one alert id on Kafka), and no check is left
pending for it."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.contracts import (
    ALLIANCE_ALERT,
    EPISODE_PHASE_CHANGED,
    SESSION_ATTENDED,
    EpisodePhaseChanged,
    SessionAttended,
)
from shared.events import Event
from shared.settings import Settings
from tests.integration.test_delivery_guarantees import read_topic
from tests.support.notify import Publisher
from tests.support.processes import ServiceProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.asyncio

EPISODES = 60
SITE = "site-clock"
# Sweep often, so that the checks fall due while the events are still being consumed.
FAST_CLOCK = {"RAPPORT_CLOCK_SWEEP_SECONDS": "0.2"}


@pytest.fixture
async def database(real_settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(real_settings.migration_database_url_for("analytics"))
    yield engine
    await engine.dispose()


async def count(engine: AsyncEngine, sql: str) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text(sql))).scalar_one())


def silent_episode(episode_id: str, last_contact: datetime) -> list[Event[object]]:
    """An active episode whose last contact, an attended session 3, is ``last_contact``."""
    return [
        Event(
            EPISODE_PHASE_CHANGED,
            EpisodePhaseChanged(
                episode_id=episode_id,
                site_id=SITE,
                therapist_id="th-1",
                from_phase="matched",
                to_phase="active",
                reason="first_attended_session",
                at=last_contact - timedelta(days=14),
            ),
            source="/tests",
        ),
        Event(
            SESSION_ATTENDED,
            SessionAttended(
                episode_id=episode_id,
                site_id=SITE,
                therapist_id="th-1",
                session_number=3,
                at=last_contact,
            ),
            source="/tests",
        ),
    ]


async def test_two_replicas_and_a_kill_while_checks_fall_due_open_each_alert_once(
    real_settings: Settings, database: AsyncEngine, tmp_path: Path
) -> None:
    first = ServiceProcess("analytics", real_settings, tmp_path / "a1.log", extra_env=FAST_CLOCK)
    second = ServiceProcess("analytics", real_settings, tmp_path / "a2.log", extra_env=FAST_CLOCK)
    publisher = Publisher(real_settings)
    await publisher.start()
    try:
        await first.start()
        await second.start()
        weeks_ago = datetime.now(UTC) - timedelta(days=30)
        episodes = [f"ep-{uuid.uuid4().hex[:12]}" for _ in range(EPISODES)]
        half = EPISODES // 2
        for episode_id in episodes[:half]:
            await publisher.publish(*silent_episode(episode_id, weeks_ago))

        async def some_fired() -> bool:
            return await count(database, NO_CONTACT_ALERTS) >= 1

        await eventually(some_fired, timeout=90, interval=0.05, what="a first no_contact alert")
        first.kill()  # while checks fall due: its open transaction commits nothing
        fired_at_kill = await count(database, NO_CONTACT_ALERTS)
        for episode_id in episodes[half:]:  # and more fall due after the kill
            await publisher.publish(*silent_episode(episode_id, weeks_ago))

        async def all_fired() -> bool:
            return await count(database, NO_CONTACT_ALERTS) == EPISODES

        await eventually(all_fired, timeout=120, what=f"{EPISODES} no_contact alerts")
        await first.start()  # back, with the same group and database: fires nothing again

        async def all_published() -> bool:
            return (
                await count(
                    database, "select count(*) from analytics_outbox where published_at is null"
                )
                == 0
            )

        await eventually(all_published, timeout=60, what="analytics' outbox to drain")
        assert first.terminate() and second.terminate()
    finally:
        await publisher.stop()
        first.ensure_stopped()
        second.ensure_stopped()

    assert fired_at_kill <= half  # the kill came while checks were falling due
    # One alert row per episode ...
    per_episode = await count(
        database,
        "select count(*) from (select episode_id from analytics_alerts where kind = 'no_contact'"
        " group by episode_id having count(*) = 1) as once",
    )
    assert per_episode == EPISODES
    # ... no check of it left pending (fired, and no contact since) ...
    assert (
        await count(database, "select count(*) from analytics_due_checks where kind = 'no_contact'")
        == 0
    )
    # ... and on Kafka one "opened" per episode, of one alert id, at the latest session.
    records = await read_topic(
        real_settings, real_settings.topic(ALLIANCE_ALERT.topic_name), EPISODES
    )
    opened = [
        (r["ce_id"], json.loads(r["value"]))
        for r in records
        if json.loads(r["value"])["kind"] == "no_contact"
    ]
    assert all(data["status"] == "opened" for _, data in opened)
    alert_ids: dict[str, set[str]] = {data["episode_id"]: set() for _, data in opened}
    for _, data in opened:
        alert_ids[data["episode_id"]].add(data["alert_id"])
    assert set(alert_ids) == set(episodes)
    assert all(len(ids) == 1 for ids in alert_ids.values())
    # (a record sent twice, by a relay killed between sending and marking it, has one id)
    assert len({ce_id for ce_id, _ in opened}) == EPISODES
    assert {data["session_number"] for _, data in opened} == {3}
    assert {data["severity"] for _, data in opened} == {"high"}


NO_CONTACT_ALERTS = "select count(*) from analytics_alerts where kind = 'no_contact'"
