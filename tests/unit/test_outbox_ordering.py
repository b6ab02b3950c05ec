"""Per-key order across topics: Kafka orders records within a partition only, so the relay
sends a record only after every earlier record of the same key on another topic has been
acknowledged (e.g. ``risk.flagged`` is on Kafka before the ``feedback.recorded`` of the same
response), while records of one topic are pipelined."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shared.contracts import FEEDBACK_RECORDED, RISK_FLAGGED, FeedbackRecorded, RiskFlagged
from shared.db import Sessionmaker, make_engine, make_sessionmaker
from shared.events import Event, KafkaRecord
from shared.outbox import Outbox, OutboxRelay, outbox_table

CLIENT = "p1_" + "cd" * 16
AT = datetime(2026, 1, 1, tzinfo=UTC)


def risk(episode: str) -> Event[RiskFlagged]:
    return Event(
        RISK_FLAGGED,
        RiskFlagged(
            response_id=f"r-{episode}",
            episode_id=episode,
            site_id="s",
            therapist_id="t",
            session_number=1,
            respondent=CLIENT,
            respondent_role="client",
            instrument="phq-9",
            risk_items={"9": 1.0},
            answered_at=AT,
        ),
        source="/tests",
    )


def recorded(episode: str) -> Event[FeedbackRecorded]:
    return Event(
        FEEDBACK_RECORDED,
        FeedbackRecorded(
            response_id=f"r-{episode}",
            episode_id=episode,
            site_id="s",
            therapist_id="t",
            session_number=1,
            respondent=CLIENT,
            respondent_role="client",
            instrument="phq-9",
            instrument_version=1,
            items={"9": 1.0},
            total=1.0,
            in_concern_or_clinical_range=False,
            answered_at=AT,
        ),
        source="/tests",
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[tuple[sa.Table, Sessionmaker]]:
    table = outbox_table("ordering", sa.MetaData())
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/o.db")
    async with engine.begin() as connection:
        await connection.run_sync(table.metadata.create_all)
    yield table, make_sessionmaker(engine)
    await engine.dispose()


async def test_a_later_record_of_the_same_key_on_another_topic_waits_for_the_earlier_ack(
    store: tuple[sa.Table, Sessionmaker],
) -> None:
    table, sessionmaker = store
    outbox = Outbox(table, lambda e: e.type.topic_name, source="/tests")
    async with sessionmaker() as session, session.begin():
        await outbox.add(
            session,
            [risk("ep-1"), recorded("ep-1"), recorded("ep-2"), risk("ep-3"), recorded("ep-3")],
        )
    log: list[str] = []

    async def publish(record: KafkaRecord) -> Callable[[], Awaitable[None]]:
        name = f"{record.topic.split('.')[0]}:{(record.key or b'').decode()}"
        log.append(f"send {name}")

        async def ack() -> None:
            log.append(f"ack {name}")

        return ack

    relay = OutboxRelay("ordering", table, sessionmaker, publish)
    assert await relay.relay_once() == 5
    assert log.index("ack risk:ep-1") < log.index("send feedback:ep-1")
    assert log.index("ack risk:ep-3") < log.index("send feedback:ep-3")
    # Same topic, or other keys: pipelined (sent before earlier acks are awaited).
    assert log.index("send feedback:ep-2") < log.index("ack feedback:ep-1")
    sends: list[Any] = [e for e in log if e.startswith("send")]
    assert sends == [
        "send risk:ep-1",
        "send feedback:ep-1",
        "send feedback:ep-2",
        "send risk:ep-3",
        "send feedback:ep-3",
    ]
