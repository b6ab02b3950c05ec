"""Idempotent event handling with a dead-letter path (shared/consumer.py), on SQLite.

A valid event is applied once, in one transaction with its inbox row and the events it emits;
a redelivery has no second effect; poison goes to ``<topic>.dlq`` and the consumer moves on.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event

from shared.consumer import Arrival, Consumer, Delivery, HandlerRejected, Outcome
from shared.contracts import (
    FEEDBACK_RECORDED,
    MATCH_CONFIRMED,
    REGISTRY,
    SESSION_COMPLETED,
    MatchConfirmed,
    SessionCompleted,
)
from shared.db import Sessionmaker, make_engine, make_sessionmaker
from shared.events import Event, KafkaRecord, encode
from shared.outbox import Inbox, Outbox, inbox_table, outbox_table

SERVICE = "unittest"
TOPIC = "rapport.match.confirmed.v1"
HANDLER = "unittest.on_match_confirmed"
ACCEPTED = [MATCH_CONFIRMED.type]
CLIENT = "p1_" + "cd" * 16
POSITION = "2@117"


@dataclass
class Database:
    sessionmaker: Sessionmaker
    outbox: sa.Table
    inbox: sa.Table
    notes: sa.Table
    log: list[str]

    async def rows(self, table: sa.Table) -> list[Any]:
        async with self.sessionmaker() as session:
            return list((await session.execute(sa.select(table))).all())


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    metadata = sa.MetaData()
    outbox = outbox_table(SERVICE, metadata)
    inbox = inbox_table(SERVICE, metadata)
    notes = sa.Table(
        f"{SERVICE}_notes",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("episode_id", sa.String(64), nullable=False),
    )
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/consumer.db")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    log: list[str] = []
    sa_event.listen(engine.sync_engine, "commit", lambda _: log.append("commit"))
    sa_event.listen(engine.sync_engine, "rollback", lambda _: log.append("rollback"))
    yield Database(make_sessionmaker(engine), outbox, inbox, notes, log)
    await engine.dispose()


@dataclass
class FakeDlqProducer:
    sent: list[KafkaRecord] = field(default_factory=list)

    async def send_raw(self, record: KafkaRecord) -> None:
        self.sent.append(record)


@pytest.fixture
def dlq() -> FakeDlqProducer:
    return FakeDlqProducer()


@pytest.fixture
def consumer(db: Database, dlq: FakeDlqProducer) -> Consumer:
    return Consumer(
        SERVICE,
        db.sessionmaker,
        Inbox(db.inbox),
        Outbox(db.outbox, lambda e: f"rapport.{e.type.topic_name}", f"/rapport/{SERVICE}"),
        REGISTRY,
        dlq.send_raw,
    )


def match_confirmed(episode: str = "ep-1", event_id: str = "evt-1") -> Event[MatchConfirmed]:
    return Event(
        type=MATCH_CONFIRMED,
        data=MatchConfirmed(
            match_id="m-1",
            episode_id=episode,
            site_id="site-a",
            therapist_id="th-1",
            client=CLIENT,
            confirmed_at=datetime(2025, 1, 2, tzinfo=UTC),
        ),
        source="/rapport/intake",
        id=event_id,
    )


def session_completed(episode: str) -> Event[SessionCompleted]:
    return Event(
        type=SESSION_COMPLETED,
        data=SessionCompleted(
            episode_id=episode,
            site_id="site-a",
            therapist_id="th-1",
            session_number=1,
            attended=True,
            at=datetime(2025, 1, 9, tzinfo=UTC),
        ),
        source=f"/rapport/{SERVICE}",
    )


def raw(record: KafkaRecord) -> list[tuple[str, bytes]]:
    return [(k, v.encode()) for k, v in record.headers.items()]


async def deliver(consumer: Consumer, handler: Any, record: KafkaRecord | None = None) -> Outcome:
    record = record or encode(match_confirmed(), TOPIC)
    return await consumer.handle(HANDLER, handler, ACCEPTED, record, raw(record), POSITION)


@dataclass
class RecordingHandler:
    """Writes a note for the episode, emits a session.completed, and can fail on demand."""

    db: Database
    failures: list[BaseException] = field(default_factory=list)
    calls: int = 0
    emit: bool = True

    async def __call__(self, delivery: Delivery[Any]) -> Sequence[Event[Any]]:
        self.calls += 1
        episode = delivery.event.data.episode_id
        await delivery.session.execute(sa.insert(self.db.notes).values(episode_id=episode))
        if self.failures:
            raise self.failures.pop(0)
        return [session_completed(episode)] if self.emit else []


# -- applied once ------------------------------------------------------------------------------


async def test_a_valid_event_runs_the_handler_once_and_is_applied(
    consumer: Consumer, db: Database
) -> None:
    handler = RecordingHandler(db)

    outcome = await deliver(consumer, handler)

    assert outcome == Outcome("applied", emitted=1)
    assert handler.calls == 1
    assert [n.episode_id for n in await db.rows(db.notes)] == ["ep-1"]


async def test_the_handler_receives_the_decoded_event(consumer: Consumer, db: Database) -> None:
    seen: list[Event[Any]] = []

    async def handler(delivery: Delivery[Any]) -> Sequence[Event[Any]]:
        seen.append(delivery.event)
        return []

    await deliver(consumer, handler)

    assert [(e.id, e.type, e.data) for e in seen] == [
        ("evt-1", MATCH_CONFIRMED, match_confirmed().data)
    ]


async def test_a_valid_event_commits_the_emitted_events_to_the_outbox(
    consumer: Consumer, db: Database
) -> None:
    await deliver(consumer, RecordingHandler(db))

    (row,) = await db.rows(db.outbox)
    assert row.topic == "rapport.session.completed.v1"
    assert row.key == "ep-1"
    assert json.loads(row.headers)["ce_type"] == SESSION_COMPLETED.type
    assert row.published_at is None


async def test_a_valid_event_is_recorded_in_the_inbox_under_its_handler(
    consumer: Consumer, db: Database
) -> None:
    await deliver(consumer, RecordingHandler(db))

    assert [(r.handler, r.event_id) for r in await db.rows(db.inbox)] == [(HANDLER, "evt-1")]


async def test_emitted_events_carry_the_incoming_correlation_id_and_trace(
    consumer: Consumer, db: Database
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    record = encode(
        match_confirmed(),
        TOPIC,
        {"correlation_id": "corr-9", "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )

    await deliver(consumer, RecordingHandler(db), record)

    headers = json.loads((await db.rows(db.outbox))[0].headers)
    assert headers["correlation_id"] == "corr-9"
    assert headers["traceparent"].split("-")[1] == trace_id


async def test_on_emitted_is_called_when_the_handler_emitted_events(
    db: Database, dlq: FakeDlqProducer
) -> None:
    woken: list[str] = []
    consumer = Consumer(
        SERVICE,
        db.sessionmaker,
        Inbox(db.inbox),
        Outbox(db.outbox, lambda e: f"rapport.{e.type.topic_name}", f"/rapport/{SERVICE}"),
        REGISTRY,
        dlq.send_raw,
        on_emitted=lambda: woken.append("relay"),
    )

    await deliver(
        consumer, RecordingHandler(db, emit=False), encode(match_confirmed("ep-0"), TOPIC)
    )
    assert woken == []
    await deliver(consumer, RecordingHandler(db), encode(match_confirmed("ep-1", "evt-2"), TOPIC))
    assert woken == ["relay"]


# -- duplicates --------------------------------------------------------------------------------


async def test_the_same_event_again_is_a_duplicate_and_the_handler_is_not_called(
    consumer: Consumer, db: Database
) -> None:
    handler = RecordingHandler(db)
    await deliver(consumer, handler)

    outcome = await deliver(consumer, handler)

    assert outcome == Outcome("duplicate")
    assert handler.calls == 1
    assert len(await db.rows(db.notes)) == 1
    assert len(await db.rows(db.outbox)) == 1


async def test_the_same_event_for_another_handler_is_applied(
    consumer: Consumer, db: Database
) -> None:
    record = encode(match_confirmed(), TOPIC)
    await deliver(consumer, RecordingHandler(db), record)

    other = RecordingHandler(db, emit=False)
    outcome = await consumer.handle(
        "unittest.other_handler", other, ACCEPTED, record, raw(record), POSITION
    )

    assert outcome.status == "applied"
    assert other.calls == 1


# -- dead letters ------------------------------------------------------------------------------


async def test_an_invalid_message_is_dead_lettered_with_its_reason_and_origin(
    consumer: Consumer, db: Database, dlq: FakeDlqProducer
) -> None:
    good = encode(match_confirmed(), TOPIC)
    poison = KafkaRecord(topic=TOPIC, key=b"ep-1", value=b"{not json", headers=good.headers)
    handler = RecordingHandler(db)

    outcome = await deliver(consumer, handler, poison)

    assert outcome == Outcome("dead_lettered")
    assert handler.calls == 0
    (sent,) = dlq.sent
    assert sent.topic == f"{TOPIC}.dlq"
    assert sent.value == b"{not json"
    assert sent.key == b"ep-1"
    assert sent.headers["dlq_error"].startswith("body is not UTF-8 JSON")
    assert sent.headers["dlq_source_topic"] == TOPIC
    assert sent.headers["dlq_source_position"] == POSITION
    assert sent.headers["dlq_service"] == SERVICE
    assert sent.headers["dlq_handler"] == HANDLER


async def test_a_dead_letter_keeps_the_original_headers(
    consumer: Consumer, db: Database, dlq: FakeDlqProducer
) -> None:
    good = encode(match_confirmed(), TOPIC)
    poison = KafkaRecord(topic=TOPIC, key=b"ep-1", value=b"[]", headers=good.headers)

    await deliver(consumer, RecordingHandler(db), poison)

    (sent,) = dlq.sent
    assert {k: sent.headers[k] for k in good.headers} == good.headers


async def test_a_message_with_a_non_utf8_header_is_dead_lettered(
    consumer: Consumer, db: Database, dlq: FakeDlqProducer
) -> None:
    record = encode(match_confirmed(), TOPIC)
    headers = [*raw(record), ("x-origin", b"\xff\xfe")]

    outcome = await consumer.handle(
        HANDLER, RecordingHandler(db), ACCEPTED, record, headers, POSITION
    )

    assert outcome.status == "dead_lettered"
    assert dlq.sent[0].headers["dlq_error"] == "header 'x-origin' is not valid UTF-8"


async def test_an_event_of_a_type_not_accepted_by_the_handler_is_dead_lettered(
    consumer: Consumer, db: Database, dlq: FakeDlqProducer
) -> None:
    record = encode(match_confirmed(), TOPIC)

    outcome = await consumer.handle(
        HANDLER, RecordingHandler(db), [FEEDBACK_RECORDED.type], record, raw(record), POSITION
    )

    assert outcome.status == "dead_lettered"
    assert "not accepted on this topic" in dlq.sent[0].headers["dlq_error"]


async def test_a_dead_lettered_message_leaves_no_inbox_row(
    consumer: Consumer, db: Database
) -> None:
    poison = KafkaRecord(topic=TOPIC, key=b"k", value=b"{", headers={})

    await deliver(consumer, RecordingHandler(db), poison)

    assert await db.rows(db.inbox) == []


async def test_a_handler_rejecting_an_event_dead_letters_it_at_once(
    consumer: Consumer, db: Database, dlq: FakeDlqProducer
) -> None:
    handler = RecordingHandler(db, failures=[HandlerRejected("unknown instrument 'xyz'")])

    outcome = await deliver(consumer, handler)

    assert outcome.status == "dead_lettered"
    assert handler.calls == 1
    (sent,) = dlq.sent
    assert sent.headers["dlq_error"] == "rejected: unknown instrument 'xyz'"
    assert sent.headers["dlq_handler"] == HANDLER


@pytest.mark.parametrize("max_attempts", [1, 2, 4])
async def test_a_handler_failing_every_time_is_called_max_attempts_times_then_dead_lettered(
    db: Database, dlq: FakeDlqProducer, max_attempts: int
) -> None:
    consumer = Consumer(
        SERVICE,
        db.sessionmaker,
        Inbox(db.inbox),
        Outbox(db.outbox, lambda e: f"rapport.{e.type.topic_name}", f"/rapport/{SERVICE}"),
        REGISTRY,
        dlq.send_raw,
        max_handler_attempts=max_attempts,
    )
    handler = RecordingHandler(db, failures=[ValueError("bad data")] * 10)

    outcome = await deliver(consumer, handler)

    assert outcome.status == "dead_lettered"
    assert handler.calls == max_attempts
    (sent,) = dlq.sent
    assert sent.headers["dlq_error"] == f"handler failed {max_attempts} times: ValueError: bad data"


async def test_a_handler_failing_once_less_than_max_attempts_is_applied(
    consumer: Consumer, db: Database, dlq: FakeDlqProducer
) -> None:
    handler = RecordingHandler(db, failures=[ValueError("bad data")] * 2)

    outcome = await deliver(consumer, handler)

    assert outcome.status == "applied"
    assert handler.calls == 3
    assert dlq.sent == []


async def test_a_transient_failure_is_retried_until_the_handler_succeeds(
    consumer: Consumer, db: Database, dlq: FakeDlqProducer
) -> None:
    handler = RecordingHandler(db, failures=[OSError("database unreachable")] * 2)

    outcome = await deliver(consumer, handler)

    assert outcome == Outcome("applied", emitted=1)
    assert handler.calls == 3
    assert dlq.sent == []
    assert len(await db.rows(db.notes)) == 1
    assert len(await db.rows(db.inbox)) == 1


async def test_transient_failures_do_not_count_towards_max_attempts(
    consumer: Consumer, db: Database, dlq: FakeDlqProducer
) -> None:
    assert consumer.max_handler_attempts == 3
    failures: list[BaseException] = [OSError("down"), OSError("down"), ValueError("bad")]
    handler = RecordingHandler(db, failures=[*failures, ValueError("bad")])

    outcome = await deliver(consumer, handler)

    assert outcome.status == "applied"
    assert handler.calls == 5
    assert dlq.sent == []


# -- all or nothing ----------------------------------------------------------------------------


async def test_nothing_a_failing_handler_wrote_persists(
    consumer: Consumer, db: Database, dlq: FakeDlqProducer
) -> None:
    handler = RecordingHandler(db, failures=[ValueError("bad data")] * 3)

    await deliver(consumer, handler)

    assert handler.calls == 3  # each attempt inserted a note before raising
    assert await db.rows(db.notes) == []
    assert await db.rows(db.outbox) == []
    assert await db.rows(db.inbox) == []


async def test_nothing_a_rejecting_handler_wrote_persists(consumer: Consumer, db: Database) -> None:
    handler = RecordingHandler(db, failures=[HandlerRejected("never")])

    await deliver(consumer, handler)

    assert await db.rows(db.notes) == []
    assert await db.rows(db.inbox) == []


async def test_a_rejected_event_delivered_again_is_rejected_again_not_a_duplicate(
    consumer: Consumer, db: Database, dlq: FakeDlqProducer
) -> None:
    handler = RecordingHandler(db, failures=[HandlerRejected("never"), HandlerRejected("never")])
    await deliver(consumer, handler)

    outcome = await deliver(consumer, handler)

    assert outcome.status == "dead_lettered"
    assert handler.calls == 2


# -- after_commit ------------------------------------------------------------------------------


async def test_after_commit_callbacks_run_after_the_commit(
    consumer: Consumer, db: Database
) -> None:
    async def handler(delivery: Delivery[Any]) -> Sequence[Event[Any]]:
        delivery.after_commit.append(lambda: db.log.append("after_commit"))
        db.log.clear()
        return []

    await deliver(consumer, handler)

    assert db.log == ["commit", "after_commit"]


async def test_after_commit_callbacks_never_run_on_rollback(
    consumer: Consumer, db: Database
) -> None:
    ran: list[str] = []

    async def handler(delivery: Delivery[Any]) -> Sequence[Event[Any]]:
        delivery.after_commit.append(lambda: ran.append("after_commit"))
        raise HandlerRejected("no")

    await deliver(consumer, handler)

    assert ran == []


async def test_after_commit_callbacks_of_failed_attempts_never_run(
    consumer: Consumer, db: Database
) -> None:
    ran: list[int] = []
    attempts = 0

    async def handler(delivery: Delivery[Any]) -> Sequence[Event[Any]]:
        nonlocal attempts
        attempts += 1
        attempt = attempts
        delivery.after_commit.append(lambda: ran.append(attempt))
        if attempt == 1:
            raise OSError("database unreachable")
        return []

    await deliver(consumer, handler)

    assert ran == [2]


async def test_after_commit_callbacks_do_not_run_for_a_duplicate(
    consumer: Consumer, db: Database
) -> None:
    ran: list[str] = []

    async def handler(delivery: Delivery[Any]) -> Sequence[Event[Any]]:
        delivery.after_commit.append(lambda: ran.append("after_commit"))
        return []

    await deliver(consumer, handler)
    await deliver(consumer, handler)

    assert ran == ["after_commit"]


# -- batches (one Kafka poll) ------------------------------------------------------------------


def arrival(handler: Any, event: Event[Any] | None = None, *, name: str = HANDLER) -> Arrival:
    record = encode(event or match_confirmed(), TOPIC)
    return Arrival(name, handler, ACCEPTED, record, raw(record), POSITION)


@dataclass
class FailingFor:
    """A handler writing a note per event, raising for the episodes named."""

    db: Database
    poison: set[str]
    error: BaseException = field(default_factory=lambda: ValueError("bad data"))
    calls: list[str] = field(default_factory=list)

    async def __call__(self, delivery: Delivery[Any]) -> Sequence[Event[Any]]:
        episode = delivery.event.data.episode_id
        self.calls.append(episode)
        await delivery.session.execute(sa.insert(self.db.notes).values(episode_id=episode))
        if episode in self.poison:
            raise self.error
        return [session_completed(episode)]


async def notes(db: Database) -> list[str]:
    return [row.episode_id for row in await db.rows(db.notes)]


async def test_a_batch_is_applied_in_order_in_one_transaction(
    consumer: Consumer, db: Database
) -> None:
    handler = FailingFor(db, poison=set())
    batch = [arrival(handler, match_confirmed(f"ep-{n}", f"evt-{n}")) for n in range(5)]

    outcomes = await consumer.handle_batch(batch)

    assert db.log == ["commit"]
    assert outcomes == [Outcome("applied", emitted=1)] * 5
    assert await notes(db) == [f"ep-{n}" for n in range(5)]
    emitted = sorted(await db.rows(db.outbox), key=lambda row: row.id)
    assert [json.loads(row.value)["episode_id"] for row in emitted] == [f"ep-{n}" for n in range(5)]
    assert len(await db.rows(db.inbox)) == 5


async def test_an_event_twice_in_a_batch_is_applied_once(consumer: Consumer, db: Database) -> None:
    handler = FailingFor(db, poison=set())
    first = match_confirmed("ep-1", "evt-1")

    second = match_confirmed("ep-2", "evt-2")

    outcomes = await consumer.handle_batch(
        [arrival(handler, first), arrival(handler, second), arrival(handler, first)]
    )

    assert [o.status for o in outcomes] == ["applied", "applied", "duplicate"]
    assert await notes(db) == ["ep-1", "ep-2"]


async def test_an_event_applied_before_is_a_duplicate_in_a_batch(
    consumer: Consumer, db: Database
) -> None:
    handler = FailingFor(db, poison=set())
    await consumer.handle_batch(
        [arrival(handler, match_confirmed("ep-1", "evt-1")), arrival(handler, match_confirmed())]
    )

    outcomes = await consumer.handle_batch(
        [arrival(handler, match_confirmed("ep-1", "evt-1")), arrival(handler, match_confirmed())]
    )

    assert [o.status for o in outcomes] == ["duplicate", "duplicate"]
    assert await notes(db) == ["ep-1"]


async def test_one_record_for_two_handlers_in_a_batch_is_applied_by_each(
    consumer: Consumer, db: Database
) -> None:
    handler = FailingFor(db, poison=set())
    event = match_confirmed("ep-1", "evt-1")

    other = match_confirmed("ep-2", "evt-2")

    outcomes = await consumer.handle_batch(
        [
            arrival(handler, event),
            arrival(handler, event, name="unittest.other"),
            arrival(handler, other),
        ]
    )

    assert [o.status for o in outcomes] == ["applied"] * 3
    assert await notes(db) == ["ep-1", "ep-1", "ep-2"]


async def test_a_failing_event_is_dead_lettered_alone_and_the_rest_applied_once(
    consumer: Consumer, db: Database, dlq: FakeDlqProducer
) -> None:
    handler = FailingFor(db, poison={"ep-2"})
    batch = [arrival(handler, match_confirmed(f"ep-{n}", f"evt-{n}")) for n in range(5)]

    outcomes = await consumer.handle_batch(batch)

    assert [o.status for o in outcomes] == ["applied"] * 2 + ["dead_lettered"] + ["applied"] * 2
    assert await notes(db) == ["ep-0", "ep-1", "ep-3", "ep-4"]  # the failed batch left nothing
    assert sorted(r.event_id for r in await db.rows(db.inbox)) == [
        "evt-0",
        "evt-1",
        "evt-3",
        "evt-4",
    ]
    assert len(await db.rows(db.outbox)) == 4
    (sent,) = dlq.sent
    assert sent.headers["dlq_error"] == "handler failed 3 times: ValueError: bad data"
    # Once in the batch, then one at a time: three attempts for the poison, one more for each
    # of the others.
    assert handler.calls.count("ep-2") == 1 + consumer.max_handler_attempts
    assert handler.calls.count("ep-0") == 2


async def test_a_rejected_event_in_a_batch_is_dead_lettered_at_once(
    consumer: Consumer, db: Database, dlq: FakeDlqProducer
) -> None:
    handler = FailingFor(db, poison={"ep-1"}, error=HandlerRejected("unknown instrument"))
    batch = [arrival(handler, match_confirmed(f"ep-{n}", f"evt-{n}")) for n in range(3)]

    outcomes = await consumer.handle_batch(batch)

    assert [o.status for o in outcomes] == ["applied", "dead_lettered", "applied"]
    (sent,) = dlq.sent
    assert sent.headers["dlq_error"] == "rejected: unknown instrument"


async def test_an_undecodable_record_in_a_batch_is_dead_lettered_once_and_the_rest_applied(
    consumer: Consumer, db: Database, dlq: FakeDlqProducer
) -> None:
    handler = FailingFor(db, poison={"ep-2"})
    poison = KafkaRecord(topic=TOPIC, key=b"k", value=b"{not json", headers={})
    batch = [
        arrival(handler, match_confirmed("ep-0", "evt-0")),
        Arrival(HANDLER, handler, ACCEPTED, poison, [], "0@5"),
        arrival(handler, match_confirmed("ep-2", "evt-2")),
        arrival(handler, match_confirmed("ep-3", "evt-3")),
    ]

    outcomes = await consumer.handle_batch(batch)

    assert [o.status for o in outcomes] == ["applied", "dead_lettered", "dead_lettered", "applied"]
    assert [r.headers["dlq_source_position"] for r in dlq.sent] == ["0@5", POSITION]
    assert await notes(db) == ["ep-0", "ep-3"]


async def test_a_transient_failure_in_a_batch_is_retried_without_dead_lettering(
    consumer: Consumer, db: Database, dlq: FakeDlqProducer
) -> None:
    outage = [OSError("database unreachable")]

    async def flaky(delivery: Delivery[Any]) -> Sequence[Event[Any]]:
        if outage:
            raise outage.pop()
        episode = delivery.event.data.episode_id
        await delivery.session.execute(sa.insert(db.notes).values(episode_id=episode))
        return []

    batch = [arrival(flaky, match_confirmed(f"ep-{n}", f"evt-{n}")) for n in range(3)]

    outcomes = await consumer.handle_batch(batch)

    assert [o.status for o in outcomes] == ["applied"] * 3
    assert dlq.sent == []
    assert await notes(db) == ["ep-0", "ep-1", "ep-2"]


async def test_each_event_of_a_batch_reads_what_the_ones_before_it_wrote(
    consumer: Consumer, db: Database
) -> None:
    seen: list[int] = []

    async def counting(delivery: Delivery[Any]) -> Sequence[Event[Any]]:
        count = await delivery.session.scalar(sa.select(sa.func.count()).select_from(db.notes))
        seen.append(int(count or 0))
        await delivery.session.execute(sa.insert(db.notes).values(episode_id="ep"))
        return []

    batch = [arrival(counting, match_confirmed(f"ep-{n}", f"evt-{n}")) for n in range(3)]
    await consumer.handle_batch(batch)

    assert seen == [0, 1, 2]


async def test_an_event_the_handler_does_not_want_is_ignored_without_a_transaction(
    consumer: Consumer, db: Database
) -> None:
    handler = FailingFor(db, poison=set())
    record = encode(match_confirmed("ep-1", "evt-1"), TOPIC)

    def only_ep_2(event: Event[Any]) -> bool:
        return bool(event.data.episode_id == "ep-2")

    unwanted = Arrival(HANDLER, handler, ACCEPTED, record, raw(record), POSITION, only_ep_2)

    outcomes = await consumer.handle_batch([unwanted])

    assert outcomes == [Outcome("ignored")]
    assert handler.calls == []
    assert db.log == []
    assert await db.rows(db.inbox) == []
