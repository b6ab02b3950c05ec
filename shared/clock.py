"""Time-driven checks: work that falls due with time rather than with an event.

A service that must act when nothing happens (no contact for 21 days, no session for 28) stores
one row per pending check — what it is about (``subject``, e.g. an episode id), its ``kind`` and
when it falls due — in its own ``<service>_due_checks`` table, in the same transaction as the
state that made it due. A sweep on every replica takes the rows that fell due with
``FOR UPDATE SKIP LOCKED`` (so two replicas never take the same row), deletes each and calls the
service's ``fire`` in the same transaction, whose state changes and outbox rows commit together
with the deletion. So a check fires exactly once: a replica that dies mid-firing commits nothing,
its rows unlock and another replica fires them; a fired check is gone and cannot fire again.

Rules for ``fire``: the due time is only a hint, so it re-reads the state and decides again
(a contact may have arrived since); it may schedule the next check of the same subject and kind.
A clock that jumps neither fires twice (a fired row is deleted) nor skips (a row stays until some
sweep at or after its due time takes it); with PostgreSQL the sweep reads the database's clock,
so replicas whose own clocks disagree still agree on what is due.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Column, DateTime, MetaData, String, Table, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import dialect_of, upsert
from shared.events import Event
from shared.logs import get_logger
from shared.site_time import aware

log = get_logger(__name__)

# A check whose ``fire`` raised is tried again this much later (a bug must not spin a replica).
RETRY_AFTER = timedelta(minutes=5)


def due_checks_table(service: str, metadata: MetaData) -> Table:
    """The service's table of pending checks (under row-level security by ``site_id``)."""
    return Table(
        f"{service}_due_checks",
        metadata,
        Column("subject", String(64), primary_key=True),
        Column("kind", String(40), primary_key=True),
        Column("site_id", String(64), nullable=False, index=True),
        Column("due_at", DateTime(timezone=True), nullable=False, index=True),
        Column("scheduled_at", DateTime(timezone=True), nullable=False),
    )


@dataclass(frozen=True)
class DueCheck:
    subject: str
    kind: str
    site_id: str
    due_at: datetime


Fire = Callable[[AsyncSession, DueCheck, datetime], Awaitable[Sequence[Event[Any]]]]


async def schedule(session: AsyncSession, table: Table, check: DueCheck) -> None:
    """Pend ``check``, replacing the due time of the same subject and kind if one is pending."""
    await schedule_many(session, table, [check])


async def schedule_many(session: AsyncSession, table: Table, checks: Sequence[DueCheck]) -> None:
    """:func:`schedule` for several checks, in one statement (each of its own subject and
    kind: a multi-row upsert may not touch one row twice)."""
    if not checks:
        return
    now = datetime.now(UTC)
    rows = [
        {
            "subject": check.subject,
            "kind": check.kind,
            "site_id": check.site_id,
            "due_at": check.due_at,
            "scheduled_at": now,
        }
        for check in checks
    ]
    insert = upsert(session, table).values(rows)
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=["subject", "kind"],
            set_={
                "site_id": insert.excluded.site_id,
                "due_at": insert.excluded.due_at,
                "scheduled_at": insert.excluded.scheduled_at,
            },
        )
    )


async def cancel(
    session: AsyncSession, table: Table, subject: str, kinds: Iterable[str] | None = None
) -> None:
    """Drop the subject's pending checks (of ``kinds``, or all)."""
    statement = delete(table).where(table.c.subject == subject)
    if kinds is not None:
        statement = statement.where(table.c.kind.in_(list(kinds)))
    await session.execute(statement)


async def pending(session: AsyncSession, table: Table, subject: str) -> list[DueCheck]:
    rows = (await session.execute(select(table).where(table.c.subject == subject))).all()
    return [DueCheck(r.subject, r.kind, r.site_id, aware(r.due_at)) for r in rows]


async def clock_now(session: AsyncSession) -> datetime:
    """The time every replica agrees on: the database's clock (PostgreSQL), else this host's."""
    if dialect_of(session) == "postgresql":
        value = (await session.execute(select(func.clock_timestamp()))).scalar_one()
        return aware(value)
    return datetime.now(UTC)


@dataclass
class Clock:
    """Fires a service's due checks; ``sweep`` is one round, ``run`` sweeps until stopped."""

    runtime: Any  # shared.runtime.ServiceRuntime (transaction, emit, stopping)
    table: Table
    fire: Fire
    batch: int = 200
    # Tests and the replay set the time; None: the database's clock.
    now: Callable[[], datetime] | None = None

    async def sweep(self) -> int:
        """Fire what is due, batch after batch, until nothing due is left unlocked; how many."""
        fired = 0
        while True:
            taken = await self._one_batch()
            fired += taken
            if taken < self.batch:
                return fired

    async def _one_batch(self) -> int:
        async with self.runtime.transaction() as session:
            now = self.now() if self.now is not None else await clock_now(session)
            statement = (
                select(self.table)
                .where(self.table.c.due_at <= now)
                .order_by(self.table.c.due_at)
                .limit(self.batch)
            )
            if dialect_of(session) == "postgresql":
                statement = statement.with_for_update(skip_locked=True)
            rows = (await session.execute(statement)).all()
            for row in rows:
                check = DueCheck(row.subject, row.kind, row.site_id, aware(row.due_at))
                await self._fire_one(session, check, now)
            return len(rows)

    async def _fire_one(self, session: AsyncSession, check: DueCheck, now: datetime) -> None:
        table = self.table
        await cancel(session, table, check.subject, [check.kind])
        try:
            async with session.begin_nested():
                events = await self.fire(session, check, now)
                await self.runtime.emit(session, *events)
        except Exception as error:  # one bad check must not block the others
            log.warning(
                "a due check failed; tried again later",
                kind=check.kind,
                site_id=check.site_id,
                error=f"{type(error).__name__}: {error}"[:300],
            )
            later = DueCheck(check.subject, check.kind, check.site_id, now + RETRY_AFTER)
            await schedule(session, table, later)

    async def run(self, interval_seconds: float) -> None:
        """Sweep every ``interval_seconds`` until the service stops."""
        stopping: asyncio.Event = self.runtime.stopping
        while not stopping.is_set():
            try:
                await self.sweep()
            except Exception as error:  # the database away: try again next round
                log.warning(
                    "due-check sweep failed; retrying",
                    table=self.table.name,
                    error=f"{type(error).__name__}: {error}"[:300],
                )
            try:
                await asyncio.wait_for(stopping.wait(), interval_seconds)
            except TimeoutError:
                pass
