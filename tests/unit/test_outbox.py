"""The transactional outbox, its relay and the idempotent inbox (shared/outbox.py), on SQLite."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.contracts import MATCH_CONFIRMED, MatchConfirmed
from shared.db import Sessionmaker, make_engine, make_sessionmaker
from shared.events import Event, KafkaRecord
from shared.outbox import Inbox, Outbox, OutboxRelay, inbox_table, outbox_table
from shared.tracing import bound, parse_traceparent

SERVICE = "unittest"
CLIENT = "p1_" + "ab" * 16
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@dataclass
class Database:
    engine: AsyncEngine
    sessionmaker: Sessionmaker
    outbox_table: sa.Table
    inbox_table: sa.Table

    async def outbox_rows(self) -> list[Any]:
        async with self.sessionmaker() as session:
            result = await session.execute(
                sa.select(self.outbox_table).order_by(self.outbox_table.c.id)
            )
            return list(result.all())

    async def pending_keys(self) -> list[str]:
        return [r.key for r in await self.outbox_rows() if r.published_at is None]

    async def published_keys(self) -> list[str]:
        return [r.key for r in await self.outbox_rows() if r.published_at is not None]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    metadata = sa.MetaData()
    outbox = outbox_table(SERVICE, metadata)
    inbox = inbox_table(SERVICE, metadata)
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/outbox.db")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield Database(engine, make_sessionmaker(engine), outbox, inbox)
    await engine.dispose()


def topic_for(event: Event[Any]) -> str:
    return f"test.{event.type.topic_name}"


@pytest.fixture
def outbox(db: Database) -> Outbox:
    return Outbox(db.outbox_table, topic_for, source=f"/rapport/{SERVICE}")


def confirmed(episode: str) -> Event[MatchConfirmed]:
    return Event(
        type=MATCH_CONFIRMED,
        data=MatchConfirmed(
            match_id=f"m-{episode}",
            episode_id=episode,
            site_id="site-a",
            therapist_id="th-1",
            client=CLIENT,
            confirmed_at=datetime(2025, 1, 2, tzinfo=UTC),
        ),
        source=f"/rapport/{SERVICE}",
    )


async def add_events(db: Database, outbox: Outbox, *episodes: str) -> list[Event[Any]]:
    events = [confirmed(e) for e in episodes]
    async with db.sessionmaker() as session, session.begin():
        await outbox.add(session, events)
    return events


Ack = Callable[[], Awaitable[None]]


@dataclass
class FakeProducer:
    """Stands in for the Kafka producer: ``publish`` hands a record over and returns the
    acknowledgement to await. Records whose key is in ``failing_acks`` are not acknowledged."""

    handed_over: list[KafkaRecord] = field(default_factory=list)
    acknowledged: list[KafkaRecord] = field(default_factory=list)
    failing_acks: set[bytes] = field(default_factory=set)

    async def publish(self, record: KafkaRecord) -> Ack:
        self.handed_over.append(record)

        async def ack() -> None:
            if record.key in self.failing_acks:
                raise OSError(f"broker did not acknowledge {record.key!r}")
            self.acknowledged.append(record)

        return ack

    @property
    def acknowledged_keys(self) -> list[str]:
        return [r.key.decode() for r in self.acknowledged if r.key is not None]


def relay_for(db: Database, producer: FakeProducer, **options: Any) -> OutboxRelay:
    return OutboxRelay(SERVICE, db.outbox_table, db.sessionmaker, producer.publish, **options)


# -- Outbox.add -------------------------------------------------------------------------------


async def test_add_writes_one_row_per_event_in_order(db: Database, outbox: Outbox) -> None:
    events = await add_events(db, outbox, "ep-1", "ep-2", "ep-3")

    rows = await db.outbox_rows()

    assert [r.event_id for r in rows] == [e.id for e in events]
    assert [r.published_at for r in rows] == [None, None, None]


async def test_add_stores_topic_key_and_body_of_the_encoded_event(
    db: Database, outbox: Outbox
) -> None:
    (event,) = await add_events(db, outbox, "ep-7")

    (row,) = await db.outbox_rows()

    assert row.topic == "test.match.confirmed.v1"
    assert row.key == "ep-7"
    assert json.loads(row.value) == json.loads(event.data.model_dump_json())


async def test_add_stores_cloudevents_headers(db: Database, outbox: Outbox) -> None:
    (event,) = await add_events(db, outbox, "ep-7")

    headers = json.loads((await db.outbox_rows())[0].headers)

    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_id"] == event.id
    assert headers["ce_type"] == "org.rapport.match.confirmed.v1"
    assert headers["ce_source"] == "/rapport/unittest"
    assert headers["ce_subject"] == "ep-7"
    assert headers["content-type"] == "application/json"


async def test_add_stores_the_current_correlation_id_and_a_child_of_the_current_trace(
    db: Database, outbox: Outbox
) -> None:
    incoming = parse_traceparent(f"00-{TRACE_ID}-00f067aa0ba902b7-01")
    assert incoming is not None
    with bound("corr-123", incoming):
        await add_events(db, outbox, "ep-7")

    headers = json.loads((await db.outbox_rows())[0].headers)
    outgoing = parse_traceparent(headers["traceparent"])

    assert headers["correlation_id"] == "corr-123"
    assert outgoing is not None
    assert outgoing.trace_id == TRACE_ID
    assert outgoing.parent_id != incoming.parent_id


async def test_add_outside_any_request_still_writes_correlation_and_trace_headers(
    db: Database, outbox: Outbox
) -> None:
    await add_events(db, outbox, "ep-7")

    headers = json.loads((await db.outbox_rows())[0].headers)

    assert headers["correlation_id"]
    assert parse_traceparent(headers["traceparent"]) is not None


async def test_add_of_no_events_writes_nothing(db: Database, outbox: Outbox) -> None:
    async with db.sessionmaker() as session, session.begin():
        await outbox.add(session, [])

    assert await db.outbox_rows() == []


async def test_a_rolled_back_transaction_leaves_no_outbox_row(db: Database, outbox: Outbox) -> None:
    with pytest.raises(RuntimeError):
        async with db.sessionmaker() as session, session.begin():
            await outbox.add(session, [confirmed("ep-1")])
            raise RuntimeError("the state change failed")

    assert await db.outbox_rows() == []


# -- OutboxRelay.relay_once ------------------------------------------------------------------


async def test_relay_once_publishes_pending_rows_in_id_order(db: Database, outbox: Outbox) -> None:
    await add_events(db, outbox, "ep-1", "ep-2")
    await add_events(db, outbox, "ep-3")
    producer = FakeProducer()

    await relay_for(db, producer).relay_once()

    assert [r.key for r in producer.handed_over] == [b"ep-1", b"ep-2", b"ep-3"]
    assert producer.acknowledged_keys == ["ep-1", "ep-2", "ep-3"]


async def test_relay_once_publishes_the_stored_topic_headers_and_body(
    db: Database, outbox: Outbox
) -> None:
    await add_events(db, outbox, "ep-1")
    producer = FakeProducer()

    await relay_for(db, producer).relay_once()

    (row,) = await db.outbox_rows()
    (record,) = producer.handed_over
    assert record.topic == row.topic
    assert record.value == row.value
    assert record.headers == json.loads(row.headers)


async def test_relay_once_returns_how_many_it_published(db: Database, outbox: Outbox) -> None:
    await add_events(db, outbox, "ep-1", "ep-2", "ep-3")

    assert await relay_for(db, FakeProducer()).relay_once() == 3


async def test_relay_once_marks_published_rows(db: Database, outbox: Outbox) -> None:
    await add_events(db, outbox, "ep-1", "ep-2")

    await relay_for(db, FakeProducer()).relay_once()

    assert await db.pending_keys() == []
    assert await db.published_keys() == ["ep-1", "ep-2"]


async def test_relay_once_publishes_nothing_the_second_time(db: Database, outbox: Outbox) -> None:
    await add_events(db, outbox, "ep-1", "ep-2")
    producer = FakeProducer()
    relay = relay_for(db, producer)
    await relay.relay_once()

    assert await relay.relay_once() == 0
    assert len(producer.handed_over) == 2


async def test_relay_once_publishes_at_most_one_batch(db: Database, outbox: Outbox) -> None:
    await add_events(db, outbox, "ep-1", "ep-2", "ep-3")
    producer = FakeProducer()
    relay = relay_for(db, producer, batch_size=2)

    assert await relay.relay_once() == 2
    assert await db.pending_keys() == ["ep-3"]


async def test_relay_once_with_an_empty_outbox_publishes_nothing(db: Database) -> None:
    producer = FakeProducer()

    assert await relay_for(db, producer).relay_once() == 0
    assert producer.handed_over == []


async def test_when_the_third_ack_fails_the_first_two_are_marked_and_the_rest_stay_pending(
    db: Database, outbox: Outbox
) -> None:
    await add_events(db, outbox, "ep-1", "ep-2", "ep-3", "ep-4", "ep-5")
    producer = FakeProducer(failing_acks={b"ep-3"})

    with pytest.raises(OSError):
        await relay_for(db, producer).relay_once()

    assert producer.acknowledged_keys == ["ep-1", "ep-2"]
    assert await db.published_keys() == ["ep-1", "ep-2"]
    assert await db.pending_keys() == ["ep-3", "ep-4", "ep-5"]


async def test_after_a_failed_ack_the_next_relay_publishes_exactly_the_unacknowledged_rows(
    db: Database, outbox: Outbox
) -> None:
    await add_events(db, outbox, "ep-1", "ep-2", "ep-3", "ep-4", "ep-5")
    producer = FakeProducer(failing_acks={b"ep-3"})
    relay = relay_for(db, producer)
    with pytest.raises(OSError):
        await relay.relay_once()
    producer.failing_acks.clear()
    producer.acknowledged.clear()

    published = await relay.relay_once()

    assert producer.acknowledged_keys == ["ep-3", "ep-4", "ep-5"]
    assert published == 3
    assert await db.pending_keys() == []


async def test_pending_counts_unpublished_rows(db: Database, outbox: Outbox) -> None:
    relay = relay_for(db, FakeProducer(), batch_size=2)
    assert await relay.pending() == 0
    await add_events(db, outbox, "ep-1", "ep-2", "ep-3")
    assert await relay.pending() == 3

    await relay.relay_once()

    assert await relay.pending() == 1


# -- OutboxRelay.run ---------------------------------------------------------------------------


@dataclass
class FlakyProducer:
    """Fails the first ``outage`` hand-overs (the broker is down), then works; records the
    relay's failure count seen at every hand-over."""

    outage: int
    relay: OutboxRelay | None = None
    failures_seen: list[int] = field(default_factory=list)
    acknowledged: list[bytes | None] = field(default_factory=list)
    all_published: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0

    async def publish(self, record: KafkaRecord) -> Ack:
        assert self.relay is not None
        self.failures_seen.append(self.relay.consecutive_failures)
        if len(self.failures_seen) <= self.outage:
            raise ConnectionError("broker unavailable")

        async def ack() -> None:
            self.acknowledged.append(record.key)
            if len(self.acknowledged) >= self.expected:
                self.all_published.set()

        return ack


async def test_run_keeps_relaying_through_publish_failures_until_everything_is_published(
    db: Database, outbox: Outbox
) -> None:
    await add_events(db, outbox, "ep-1", "ep-2", "ep-3")
    producer = FlakyProducer(outage=2, expected=3)
    relay = OutboxRelay(
        SERVICE, db.outbox_table, db.sessionmaker, producer.publish, idle_seconds=0.01
    )
    producer.relay = relay

    task = asyncio.create_task(relay.run())
    try:
        await asyncio.wait_for(producer.all_published.wait(), timeout=10)
    finally:
        relay.stop()
        await asyncio.wait_for(task, timeout=10)

    assert producer.failures_seen[:3] == [0, 1, 2]  # each failed attempt was counted
    assert producer.acknowledged == [b"ep-1", b"ep-2", b"ep-3"]
    assert relay.consecutive_failures == 0  # reset once publishing works again
    assert await relay.pending() == 0


async def test_run_publishes_events_added_while_it_runs_and_stops_when_asked(
    db: Database, outbox: Outbox
) -> None:
    producer = FlakyProducer(outage=0, expected=2)
    relay = OutboxRelay(
        SERVICE, db.outbox_table, db.sessionmaker, producer.publish, idle_seconds=0.01
    )
    producer.relay = relay
    task = asyncio.create_task(relay.run())
    try:
        await add_events(db, outbox, "ep-1", "ep-2")
        relay.wake()
        await asyncio.wait_for(producer.all_published.wait(), timeout=10)
    finally:
        relay.stop()
        await asyncio.wait_for(task, timeout=10)

    assert task.done() and task.exception() is None
    assert producer.acknowledged == [b"ep-1", b"ep-2"]


async def test_a_commit_while_a_batch_is_published_is_relayed_without_waiting_for_the_idle_look(
    db: Database,
) -> None:
    """Rows committed while the relay publishes a batch (not in it) wake it again: the wake is
    not lost, so they go out long before the relay's idle look (an hour here)."""
    producer = FakeProducer()
    relay = relay_for(db, producer, idle_seconds=3600, linger_seconds=0)
    woken = Outbox(db.outbox_table, topic_for, source="/rapport/test", on_commit=relay.wake)
    second_sent = asyncio.Event()
    publish = producer.publish

    async def publishing(record: KafkaRecord) -> Ack:
        if record.key == b"ep-1":  # while the first batch is out, another commit comes
            await add_events(db, woken, "ep-2")
        if record.key == b"ep-2":
            second_sent.set()
        return await publish(record)

    relay.publish = publishing
    await add_events(db, woken, "ep-1")
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.wait_for(second_sent.wait(), timeout=60)
    finally:
        relay.stop()
        await asyncio.wait_for(task, timeout=10)
    assert producer.acknowledged_keys == ["ep-1", "ep-2"]


async def test_every_commit_that_adds_rows_wakes_the_relay_once(db: Database) -> None:
    wakes: list[int] = []
    woken = Outbox(
        db.outbox_table, topic_for, source="/rapport/test", on_commit=lambda: wakes.append(1)
    )
    await add_events(db, woken, "ep-1", "ep-2")
    async with db.sessionmaker() as session, session.begin():
        await woken.add(session, [confirmed("ep-3")])
        await woken.add(session, [confirmed("ep-4")])
    async with db.sessionmaker() as session:
        async with session.begin():
            await woken.add(session, [confirmed("ep-5")])
            await session.rollback()
    assert wakes == [1, 1]


# -- Inbox -------------------------------------------------------------------------------------


async def claim(db: Database, handler: str, event_id: str) -> bool:
    async with db.sessionmaker() as session, session.begin():
        return await Inbox(db.inbox_table).claim(session, handler, event_id)


async def test_inbox_claims_an_event_the_first_time(db: Database) -> None:
    assert await claim(db, "feedback.on_match", "evt-1") is True


async def test_inbox_refuses_the_same_event_for_the_same_handler(db: Database) -> None:
    await claim(db, "feedback.on_match", "evt-1")

    assert await claim(db, "feedback.on_match", "evt-1") is False


async def test_inbox_claims_the_same_event_for_another_handler(db: Database) -> None:
    await claim(db, "feedback.on_match", "evt-1")

    assert await claim(db, "analytics.on_match", "evt-1") is True


async def test_inbox_claims_another_event_for_the_same_handler(db: Database) -> None:
    await claim(db, "feedback.on_match", "evt-1")

    assert await claim(db, "feedback.on_match", "evt-2") is True


async def test_an_inbox_claim_in_a_rolled_back_transaction_does_not_count(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.sessionmaker() as session, session.begin():
            await Inbox(db.inbox_table).claim(session, "feedback.on_match", "evt-1")
            raise RuntimeError("the handler failed")

    assert await claim(db, "feedback.on_match", "evt-1") is True
