"""Transactional outbox and inbox.

*Outbox*: a service never publishes directly. It writes the events it emits into its own
``<service>_outbox`` table in the same database transaction as the state change; the
:class:`OutboxRelay` publishes them to Kafka in order and marks them published. A crash between
commit and publish loses nothing (the relay publishes on restart); a crash between publish and
mark publishes twice, which consumers absorb.

*Inbox*: ``<service>_inbox`` records (handler, event id) in the same transaction as the effect of
handling the event, so a redelivered event is recognised and has no second effect.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession as SAAsyncSession

from shared.db import Sessionmaker, dialect_of, is_transient, serial_key
from shared.events import Event, KafkaRecord, encode
from shared.logs import get_logger
from shared.metrics import OUTBOX_PENDING, PUBLISHED
from shared.tracing import outgoing_headers

log = get_logger(__name__)

_WAKE_ON_COMMIT = "rapport.outbox_wake_on_commit"

# How soon a relay that found another replica relaying tries again.
BUSY_RETRY_SECONDS = 0.05

Publish = Callable[[KafkaRecord], Awaitable[Callable[[], Awaitable[None]]]]
"""Hand a record to the producer; returns a callable awaiting the broker's acknowledgement."""


def outbox_table(service: str, metadata: MetaData) -> Table:
    return Table(
        f"{service}_outbox",
        metadata,
        serial_key(),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("topic", String(255), nullable=False),
        Column("key", String(255), nullable=True),
        Column("headers", Text, nullable=False),
        Column("value", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Index(f"ix_{service}_outbox_pending", "published_at", "id"),
    )


def inbox_table(service: str, metadata: MetaData) -> Table:
    return Table(
        f"{service}_inbox",
        metadata,
        Column("handler", String(100), primary_key=True),
        Column("event_id", String(200), primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )


class Outbox:
    """Where a service's handlers and routes put the events they emit."""

    def __init__(
        self,
        table: Table,
        topic_for: Callable[[Event[Any]], str],
        source: str,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.table = table
        self._topic_for = topic_for
        self.source = source
        # Called once a transaction that added rows has committed (wakes the relay), whatever
        # path the rows came by: the relay's idle poll is only a safety net.
        self.on_commit = on_commit

    async def add(self, session: SAAsyncSession, events: Sequence[Event[Any]]) -> None:
        await self.insert(session, self.rows(events))

    def rows(self, events: Sequence[Event[Any]]) -> list[dict[str, Any]]:
        """The outbox rows of ``events``, with the current correlation and trace headers (a
        consumer applying a batch renders each event's rows under its own, then inserts all
        of them with :meth:`insert`)."""
        headers = outgoing_headers()
        now = datetime.now(UTC)
        rows = []
        for event in events:
            record = encode(event, self._topic_for(event), headers)
            rows.append(
                {
                    "event_id": event.id,
                    "topic": record.topic,
                    "key": record.key.decode() if record.key else None,
                    "headers": json.dumps(record.headers),
                    "value": record.value,
                    "created_at": now,
                }
            )
        return rows

    async def insert(self, session: SAAsyncSession, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rendered rows in order (the relay publishes in id order)."""
        if rows:
            await session.execute(insert(self.table), list(rows))
            self._wake_after_commit(session)

    def _wake_after_commit(self, session: SAAsyncSession) -> None:
        if self.on_commit is None:
            return
        sync = session.sync_session
        if sync.info.get(_WAKE_ON_COMMIT):
            return
        sync.info[_WAKE_ON_COMMIT] = True
        on_commit = self.on_commit

        def committed(committed_session: Any) -> None:
            committed_session.info.pop(_WAKE_ON_COMMIT, None)
            on_commit()

        sqlalchemy_event.listen(sync, "after_commit", committed, once=True)


class Inbox:
    def __init__(self, table: Table) -> None:
        self.table = table

    async def claim(self, session: SAAsyncSession, handler: str, event_id: str) -> bool:
        """Record that this handler is applying this event; False if it already did."""
        return bool(await self.claim_many(session, [(handler, event_id)]))

    async def claim_many(
        self, session: SAAsyncSession, keys: Sequence[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        """:meth:`claim` for many (handler, event id) at once, in one statement; returns those
        not applied before."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            return set()
        now = datetime.now(UTC)
        rows = [{"handler": h, "event_id": e, "processed_at": now} for h, e in unique]
        dialect = sqlite if dialect_of(session) == "sqlite" else postgresql
        statement = (
            dialect.insert(self.table)
            .values(rows)
            .on_conflict_do_nothing()
            .returning(self.table.c.handler, self.table.c.event_id)
        )
        result = await session.execute(statement)
        return {(row.handler, row.event_id) for row in result}


@dataclass
class _InFlight:
    row_id: int
    topic: str
    ack: Callable[[], Awaitable[None]]
    done: bool = False


class OutboxRelay:
    """Publishes a service's outbox in order; one relay at a time per service (advisory lock)."""

    def __init__(
        self,
        service: str,
        table: Table,
        sessionmaker: Sessionmaker,
        publish: Publish,
        *,
        batch_size: int = 200,
        idle_seconds: float = 0.2,
        retention: timedelta = timedelta(days=7),
        linger_seconds: float = 0.005,
    ) -> None:
        self.service = service
        self.table = table
        self.sessionmaker = sessionmaker
        self.publish = publish
        self.batch_size = batch_size
        self.idle_seconds = idle_seconds
        self.retention = retention
        # Woken by a commit, the relay waits this long for the commits right behind it, so
        # under load one relay transaction publishes several events rather than one each.
        self.linger_seconds = linger_seconds
        self._wake = asyncio.Event()
        self._stopping = False
        self._lock_id = zlib.crc32(f"rapport-outbox-{table.name}".encode())
        self.consecutive_failures = 0
        self._last_purge = datetime.min.replace(tzinfo=UTC)
        # The pending gauge costs a count query: refreshed at most once a second while
        # publishing, and once more when the relay goes idle (so it ends exact).
        self._gauge_due = 0.0
        self._gauge_stale = False
        # Another replica held the lock on the last try: what woke this one (its own commit)
        # may not be in the other's batch, so it tries again after the linger, not the idle.
        self.lock_busy = False

    def wake(self) -> None:
        self._wake.set()

    async def relay_once(self) -> int:
        """Publish one batch; returns how many events were published.

        PostgreSQL: one transaction holds the service's advisory lock from read to mark, so
        replicas never interleave and order is kept. SQLite (embedded, one process): the read
        and the mark are separate short transactions, so a handler run inline by the
        in-process broker never waits on this one.
        """
        async with self.sessionmaker() as session:
            holding = dialect_of(session) == "postgresql"
            transaction = await session.begin()
            try:
                if holding:
                    locked = await session.scalar(
                        select(func.pg_try_advisory_xact_lock(self._lock_id))
                    )
                    if not locked:  # another replica of this service is relaying
                        await transaction.rollback()
                        self.lock_busy = True
                        return 0
                self.lock_busy = False
                rows = (
                    await session.execute(
                        select(
                            self.table.c.id,
                            self.table.c.topic,
                            self.table.c.key,
                            self.table.c.headers,
                            self.table.c.value,
                        )
                        .where(self.table.c.published_at.is_(None))
                        .order_by(self.table.c.id)
                        .limit(self.batch_size)
                    )
                ).all()
                if not holding:
                    await transaction.commit()
                sent, failure = await self._publish_in_order(rows)
                if sent:
                    if not holding:
                        transaction = await session.begin()
                    await session.execute(
                        update(self.table)
                        .where(self.table.c.id.in_(sent))
                        .values(published_at=datetime.now(UTC))
                    )
                if transaction.is_active:
                    await transaction.commit()
            except BaseException:
                if transaction.is_active:
                    await transaction.rollback()
                raise
        if failure is not None:  # what was acknowledged is marked; the rest is retried
            raise failure
        return len(sent)

    async def _publish_in_order(self, rows: Sequence[Any]) -> tuple[list[int], Exception | None]:
        """Publish rows in id order; returns the ids acknowledged and the failure, if any.

        Kafka orders records per partition only. Records of the same key on different topics
        (risk.flagged, then feedback.recorded) are ordered here: the later one is sent only
        once the earlier one is acknowledged.
        """
        sent: list[int] = []
        inflight: list[_InFlight] = []
        unsettled: dict[str | None, list[_InFlight]] = {}

        async def settle(entry: _InFlight) -> None:
            if not entry.done:
                await entry.ack()
                entry.done = True
                sent.append(entry.row_id)
                PUBLISHED.labels(self.service, entry.topic).inc()

        try:
            for row in rows:
                for earlier in unsettled.get(row.key, ()):
                    if earlier.topic != row.topic:
                        await settle(earlier)
                record = KafkaRecord(
                    topic=row.topic,
                    key=row.key.encode() if row.key else None,
                    value=row.value,
                    headers=json.loads(row.headers),
                )
                entry = _InFlight(row.id, row.topic, await self.publish(record))
                inflight.append(entry)
                unsettled.setdefault(row.key, []).append(entry)
            for entry in inflight:
                await settle(entry)
        except Exception as error:
            return sent, error
        return sent, None

    async def pending(self) -> int:
        async with self.sessionmaker() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(self.table)
                .where(self.table.c.published_at.is_(None))
            )
            return int(count or 0)

    async def _refresh_gauge(self) -> None:
        OUTBOX_PENDING.labels(self.service).set(await self.pending())
        self._gauge_due = time.monotonic() + 1.0
        self._gauge_stale = False

    async def _purge(self) -> None:
        now = datetime.now(UTC)
        if now - self._last_purge < timedelta(hours=1):
            return
        self._last_purge = now
        async with self.sessionmaker() as session, session.begin():
            await session.execute(
                delete(self.table).where(self.table.c.published_at < now - self.retention)
            )

    async def run(self) -> None:
        backoff = 0.1
        while not self._stopping:
            try:
                # Cleared before the batch is read, never after: a commit while this batch is
                # published (its rows not in it) leaves the wake set, and is relayed at once.
                self._wake.clear()
                published = await self.relay_once()
                self.consecutive_failures = 0
                backoff = 0.1
                if published:
                    self._gauge_stale = True
                    if time.monotonic() >= self._gauge_due:
                        await self._refresh_gauge()
                if published < self.batch_size:
                    await self._purge()
                    wait = self.idle_seconds
                    if self.lock_busy:
                        wait = min(wait, max(self.linger_seconds, BUSY_RETRY_SECONDS))
                    try:
                        await asyncio.wait_for(self._wake.wait(), wait)
                        if self.linger_seconds and not self._stopping:
                            await asyncio.sleep(self.linger_seconds)
                    except TimeoutError:
                        if self._gauge_stale:
                            await self._refresh_gauge()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the relay must outlive any outage
                self.consecutive_failures += 1
                log.warning(
                    "outbox relay failed; retrying",
                    service=self.service,
                    error=f"{type(error).__name__}: {error}"[:300],
                    transient=is_transient(error),
                    retry_in_s=backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def drain(self, seconds: float = 10.0) -> None:
        """Publish what is pending (best effort, for graceful shutdown)."""
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            try:
                if await self.relay_once() == 0:
                    return
            except Exception:
                return

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()


__all__ = ["Inbox", "Outbox", "OutboxRelay", "inbox_table", "outbox_table"]
