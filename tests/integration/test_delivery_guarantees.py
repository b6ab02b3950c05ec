"""At-least-once delivery, exactly-once effects: on the real Kafka and PostgreSQL, an event
that one service's outbox publishes is applied once by another, across a SIGKILLed consumer
and a complete redelivery of the topic."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import services
from shared.auth import mint_token
from shared.contracts import ALLIANCE_ASSESSED, FEEDBACK_RECORDED
from shared.host import Host
from shared.settings import Settings
from tests.support.processes import ServiceProcess
from tests.support.waiting import eventually

EPISODES = 4
SESSIONS = 12
TOTAL = EPISODES * SESSIONS
HANDLER = "analytics.alliance_from_feedback"


@pytest.fixture
async def database(real_settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(real_settings.migration_database_url_for("analytics"))
    yield engine
    await engine.dispose()


async def count(engine: AsyncEngine, sql: str) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text(sql))).scalar_one())


async def produce_feedback(settings: Settings) -> None:
    """Open episodes and record SRS responses through the intake and feedback services."""
    host = Host(settings, services.definitions(["intake", "feedback"]))
    await host.start()
    try:
        transport = httpx.ASGITransport(app=host.http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://rapport") as http:
            coordinator = {
                "Authorization": "Bearer "
                + mint_token(settings, "c-1", "intake_coordinator", ["site-a"])
            }
            for episode in range(EPISODES):
                opened = await http.post(
                    "/intake/episodes",
                    headers=coordinator,
                    json={
                        "site_id": "site-a",
                        "therapist_id": f"th-{episode}",
                        "client_reference": f"client-{episode}",
                    },
                )
                assert opened.status_code == 201, opened.text
                episode_id = opened.json()["episode_id"]
                therapist = {
                    "Authorization": "Bearer "
                    + mint_token(settings, f"th-{episode}", "therapist", ["site-a"])
                }

                async def known(eid: str = episode_id, auth: dict[str, str] = therapist) -> bool:
                    got = await http.get(f"/feedback/episodes/{eid}/responses", headers=auth)
                    return got.status_code == 200

                await eventually(known, what="feedback to learn the episode")
                for session_number in range(1, SESSIONS + 1):
                    recorded = await http.post(
                        "/feedback/responses",
                        headers=therapist,
                        json={
                            "episode_id": episode_id,
                            "session_number": session_number,
                            "respondent_role": "client",
                            "instrument": "srs",
                            "items": {
                                "relationship": 9.5,
                                "goals": 9.5,
                                "approach": 9.5,
                                "overall": 9.5,
                            },
                        },
                    )
                    assert recorded.status_code == 201, recorded.text

            async def all_published() -> bool:
                return await host.runtimes["feedback"].relay.pending() == 0

            await eventually(all_published, what="feedback's outbox to drain")
    finally:
        await host.stop()


async def rewind_group(settings: Settings, topic: str, group: str) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for p in consumer.partitions_for_topic(topic) or await _partitions(consumer, topic)
        ]
        consumer.assign(partitions)
        await consumer.commit({tp: OffsetAndMetadata(0, "") for tp in partitions})
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer._client.cluster.partitions_for_topic(topic) or set()


async def read_topic(
    settings: Settings, topic: str, expected: int, timeout: float = 30.0
) -> list[dict[str, str]]:
    """Every record of a topic from the beginning: waits for ``expected`` of them (at most
    ``timeout`` seconds), then for 2 quiet seconds so that extra records are seen too."""
    deadline = time.monotonic() + timeout
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[dict[str, str]] = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=2000)
            if not batch:
                if len(records) >= expected or time.monotonic() > deadline:
                    break
                continue
            for messages in batch.values():
                for message in messages:
                    headers = {k: v.decode() for k, v in message.headers}
                    records.append(
                        {
                            **headers,
                            "value": message.value.decode(),
                            "timestamp": str(message.timestamp),
                        }
                    )
    finally:
        await consumer.stop()
    return records


async def test_outbox_event_is_applied_once_despite_kill_and_full_redelivery(
    real_settings: Settings, database: AsyncEngine, tmp_path: Path
) -> None:
    await produce_feedback(real_settings)
    analytics = ServiceProcess("analytics", real_settings, tmp_path / "analytics.log")
    try:
        await _kill_restart_and_rewind(real_settings, database, analytics)
    finally:
        analytics.ensure_stopped()


async def _kill_restart_and_rewind(
    real_settings: Settings, database: AsyncEngine, analytics: ServiceProcess
) -> None:
    await analytics.start()

    async def some_applied() -> bool:
        return await count(database, "select count(*) from analytics_scores") >= TOTAL // 4

    await eventually(some_applied, timeout=60, what="analytics to apply some events")
    analytics.kill()  # mid-stream, without a graceful shutdown
    await analytics.start()

    async def all_applied() -> bool:
        return await count(database, "select count(*) from analytics_scores") == TOTAL

    await eventually(all_applied, timeout=60, what="analytics to apply every event")

    # Now redeliver everything: rewind the consumer group to the start of the topic.
    assert analytics.terminate(), "graceful shutdown"
    topic = real_settings.topic(FEEDBACK_RECORDED.topic_name)
    await rewind_group(real_settings, topic, f"{real_settings.topic_prefix}analytics")
    await analytics.start()

    async def all_redelivered() -> bool:
        return (
            await analytics.metric(
                "rapport_events_consumed_total", handler=HANDLER, outcome="duplicate"
            )
            == TOTAL
        )

    await eventually(all_redelivered, timeout=60, what="every event to be redelivered")
    assert analytics.terminate()

    # Exactly one effect per event: one score, one inbox row, one emitted event each.
    assert await count(database, "select count(*) from analytics_scores") == TOTAL
    assert (
        await count(database, "select count(distinct response_id) from analytics_scores") == TOTAL
    )
    assert (
        await count(database, f"select count(*) from analytics_inbox where handler = '{HANDLER}'")
        == TOTAL
    )
    assert await count(database, "select count(*) from analytics_outbox") == TOTAL
    assert (
        await count(database, "select count(*) from analytics_outbox where published_at is null")
        == 0
    )

    # What data teams read: every assessment on Kafka, none missing (duplicates of the same
    # CloudEvents id are allowed by at-least-once delivery and absorbed by consumers).
    published = await read_topic(
        real_settings, real_settings.topic(ALLIANCE_ASSESSED.topic_name), TOTAL
    )
    response_ids = {json.loads(r["value"])["response_id"] for r in published}
    assert len({r["ce_id"] for r in published}) == TOTAL
    assert len(response_ids) == TOTAL
    assert all(r["ce_type"] == ALLIANCE_ASSESSED.type for r in published)
