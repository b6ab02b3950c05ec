"""Step 1: claiming due deliveries under a lease, and loading what sending them needs.

Due ``pending`` rows, and ``sending`` rows whose lease ran out (their dispatcher died), become
``sending`` under a new lease in one short transaction (``FOR UPDATE SKIP LOCKED``: replicas
never claim the same row). A dispatcher holds a few rounds' worth of rows per endpoint and in
all (:class:`Holdings`); the lease is sized for the sends queued ahead of them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    exists,
    func,
    literal_column,
    or_,
    select,
    union,
    update,
)
from sqlmodel import SQLModel, col
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify.dependencies import NotifyDependencies
from services.notify.models import (
    UNSENT,
    NotifyClientContact,
    NotifyDelivery,
    NotifySiteFallback,
    NotifyStaffContact,
    NotifyWebhook,
)
from services.notify.policy import RoutingPolicy
from shared.db import dialect_of

DELIVERIES = SQLModel.metadata.tables[NotifyDelivery.__tablename__]
HOLD_ROUNDS = 4
CLAIM_GATHER_SECONDS = 0.005
HOOK_CACHE_SECONDS = 2.0
EARLIER = DELIVERIES.alias("earlier_step")


def in_turn() -> ColumnElement[bool]:
    """A delivery whose turn has come: not the webhook of an alert's step while an earlier
    step's webhook to the same endpoint is unsent (pending, sending or waiting for its retry),
    so an endpoint hears an alert's steps in order even when one is retried. One probe of a
    small partial index (unsent webhooks of alerts) per row; other rows never wait."""
    return ~exists().where(
        EARLIER.c.alert_id == DELIVERIES.c.alert_id,
        EARLIER.c.endpoint_id == DELIVERIES.c.endpoint_id,
        EARLIER.c.alert_position < DELIVERIES.c.alert_position,
        # Literal values, so the planner matches the partial index's own condition.
        EARLIER.c.alert_id.is_not(None),
        EARLIER.c.status.in_([literal_column(f"'{status}'") for status in UNSENT]),
    )


@dataclass
class Batch:
    """A claimed batch and what sending it needs (loaded in the claim's transaction)."""

    rows: list[NotifyDelivery]
    lease_id: str
    hooks: dict[str, NotifyWebhook] = field(default_factory=dict)
    staff: dict[str, NotifyStaffContact] = field(default_factory=dict)
    clients: dict[str, NotifyClientContact] = field(default_factory=dict)
    client_keys: dict[str, bytes] = field(default_factory=dict)  # by respondent pseudonym
    policies: dict[str, RoutingPolicy] = field(default_factory=dict)
    fallbacks: dict[str, NotifySiteFallback] = field(default_factory=dict)  # by site


@dataclass
class Holdings:
    """The rows this dispatcher has claimed and holds (queued or being sent): per endpoint and
    in all. Holding a few rounds' worth amortises the claim over many sends."""

    concurrency: int
    per_endpoint: int
    timeout: float
    inflight: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    by_endpoint: Counter[str] = field(default_factory=Counter)

    @property
    def endpoint_cap(self) -> int:
        return self.per_endpoint * HOLD_ROUNDS

    @property
    def total_cap(self) -> int:
        return self.concurrency * HOLD_ROUNDS

    def saturated(self) -> list[str]:
        """Endpoints not to claim for now: those still holding more than half their share.
        Refilling in halves (not a row per finished send) keeps claims few and large."""
        return [e for e, n in self.by_endpoint.items() if n > self.endpoint_cap // 2]

    def lease_for(self, rows: list[NotifyDelivery]) -> timedelta:
        """Long enough for every row of the batch to be sent where it queues: behind what this
        dispatcher already holds for its endpoint (``per_endpoint`` at a time) and in all
        (``concurrency`` at a time), each send cut at the timeout; plus one spare round."""
        fresh = Counter(r.endpoint_id for r in rows)
        rounds = max(
            [-(-(self.by_endpoint[e] + n) // self.per_endpoint) for e, n in fresh.items()]
            + [-(-(len(self.inflight) + len(rows)) // self.concurrency)]
        )
        return timedelta(seconds=(rounds + 1) * self.timeout + 1)


class Claimer:
    def __init__(self, deps: NotifyDependencies, holdings: Holdings) -> None:
        self.deps = deps
        self.holdings = holdings
        self._last_claim = 0.0
        # Endpoints (with their sealed secrets) for a moment, so a busy dispatcher does not
        # read them for every batch; a 410 here forgets at once.
        self._hooks: dict[str, tuple[float, NotifyWebhook]] = {}

    def forget_endpoint(self, endpoint_id: str) -> None:
        self._hooks.pop(endpoint_id, None)

    async def next_due(self) -> float | None:
        """Seconds until the next delivery this dispatcher could claim is due (so retries go
        on time). Rows of endpoints already at their limit do not count: a finished send
        wakes the loop for those."""
        statement = select(func.min(DELIVERIES.c.next_attempt_at)).where(
            DELIVERIES.c.status == "pending", in_turn()
        )
        saturated = self.holdings.saturated()
        if saturated:
            statement = statement.where(DELIVERIES.c.endpoint_id.not_in(saturated))
        try:
            async with self.deps.runtime.sessionmaker() as session:
                due = await session.scalar(statement)
        except Exception:
            return None
        if due is None:
            return None
        # Never spin: something due but not claimable (locked by another replica) waits a bit.
        return max(0.01, float((due - datetime.now(UTC)).total_seconds()))

    def _candidates(self, limit: int, now: datetime) -> Select[Any]:
        """The oldest due rows, at most ``endpoint_cap`` of any one endpoint (a busy endpoint
        cannot crowd out the others, nor be claimed far beyond what it can take), urgent ones
        first. Index range scans, never a walk past the history of delivered rows: due urgent
        rows, due pending rows, and sending rows whose lease ran out; each in its turn."""
        due = or_(
            and_(DELIVERIES.c.status == "pending", DELIVERIES.c.next_attempt_at <= now),
            and_(DELIVERIES.c.status == "sending", DELIVERIES.c.lease_until < now),
        )
        columns = (
            DELIVERIES.c.id,
            DELIVERIES.c.endpoint_id,
            DELIVERIES.c.next_attempt_at,
            DELIVERIES.c.urgent,
        )
        scan = max(limit * 4, 200)
        pending = (
            select(*columns)
            .where(DELIVERIES.c.status == "pending", DELIVERIES.c.next_attempt_at <= now, in_turn())
            .order_by(DELIVERIES.c.next_attempt_at)
            .limit(scan)
        )
        # Urgent rows first, however many routine ones wait before them (their own index).
        urgent = (
            select(*columns)
            .where(
                DELIVERIES.c.urgent.is_(True),
                DELIVERIES.c.status == "pending",
                DELIVERIES.c.next_attempt_at <= now,
                in_turn(),
            )
            .order_by(DELIVERIES.c.next_attempt_at)
            .limit(scan)
        )
        abandoned = (
            select(*columns)
            .where(DELIVERIES.c.status == "sending", DELIVERIES.c.lease_until < now, in_turn())
            .limit(scan)
        )
        saturated = self.holdings.saturated()
        if saturated:
            # (An urgent row is claimed even for a saturated endpoint: it waits for no one.)
            pending = pending.where(DELIVERIES.c.endpoint_id.not_in(saturated))
            abandoned = abandoned.where(DELIVERIES.c.endpoint_id.not_in(saturated))
        window_rows = union(
            urgent.subquery().select(),
            pending.subquery().select(),
            abandoned.subquery().select(),
        ).subquery()
        ranked = select(
            window_rows.c.id,
            func.row_number()
            .over(
                partition_by=window_rows.c.endpoint_id,
                order_by=(window_rows.c.urgent.desc(), window_rows.c.next_attempt_at),
            )
            .label("rank"),
        ).subquery()
        chosen = select(ranked.c.id).where(ranked.c.rank <= self.holdings.endpoint_cap)
        return (
            select(DELIVERIES.c.id)
            .where(DELIVERIES.c.id.in_(chosen), due)
            .order_by(DELIVERIES.c.urgent.desc(), DELIVERIES.c.next_attempt_at)
            .limit(limit)
        )

    async def claim(self, limit: int) -> Batch:
        # Under a stream of single deliveries, claim a few milliseconds' worth at once rather
        # than one row per transaction.
        since = time.monotonic() - self._last_claim
        if since < CLAIM_GATHER_SECONDS:
            await asyncio.sleep(CLAIM_GATHER_SECONDS - since)
        self._last_claim = time.monotonic()
        now = datetime.now(UTC)
        lease_id = uuid.uuid4().hex
        candidates = self._candidates(limit, now)
        holdings = self.holdings
        async with self.deps.runtime.sessionmaker() as session, session.begin():
            if dialect_of(session) == "postgresql":
                candidates = candidates.with_for_update(skip_locked=True)
            # The lease is sized for the most this dispatcher could hold (refined below).
            provisional = timedelta(
                seconds=(holdings.total_cap // holdings.concurrency + 2) * holdings.timeout + 1
            )
            claimed = (
                await session.execute(
                    update(DELIVERIES)
                    .where(DELIVERIES.c.id.in_(candidates.scalar_subquery()))
                    .values(status="sending", lease_id=lease_id, lease_until=now + provisional)
                    .returning(*DELIVERIES.c)
                )
            ).all()
            rows = [NotifyDelivery(**dict(r._mapping)) for r in claimed]
            rows.sort(key=lambda r: r.next_attempt_at)
            rows = await self._within_endpoint_limits(session, rows)
            if rows:
                lease_until = now + holdings.lease_for(rows)
                await session.execute(
                    update(DELIVERIES)
                    .where(DELIVERIES.c.lease_id == lease_id)
                    .values(lease_until=lease_until)
                )
                for row in rows:
                    row.lease_until = lease_until
            batch = Batch(rows, lease_id)
            await self._load(session, batch)
        return batch

    async def _within_endpoint_limits(
        self, session: AsyncSession, rows: list[NotifyDelivery]
    ) -> list[NotifyDelivery]:
        """Keep at most the free slots of each endpoint, and every urgent row; hand the rest
        back at once."""
        held, cap = self.holdings.by_endpoint, self.holdings.endpoint_cap
        taken: Counter[str] = Counter()
        kept, released = [], []
        for row in rows:
            if row.urgent:
                kept.append(row)
            elif held[row.endpoint_id] + taken[row.endpoint_id] < cap:
                taken[row.endpoint_id] += 1
                kept.append(row)
            else:
                released.append(row.id)
        if released:
            await session.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id.in_(released))
                .values(status="pending", lease_id=None, lease_until=None)
            )
        return kept

    async def _load(self, session: AsyncSession, batch: Batch) -> None:
        """The endpoints, contacts (with clients' keys), fallbacks and policies of the batch."""
        rows = batch.rows
        hook_ids = {r.endpoint_id for r in rows if r.channel == "webhook"}
        staff_ids = {
            r.endpoint_id
            for r in rows
            if r.channel != "webhook" and r.recipient.startswith("staff:")
        }
        client_ids = {r.endpoint_id for r in rows if r.recipient.startswith("client:")}
        if hook_ids:
            await self._load_hooks(session, batch, hook_ids)
        if staff_ids:
            found = await session.execute(
                select(NotifyStaffContact).where(col(NotifyStaffContact.id).in_(staff_ids))
            )
            batch.staff = {c.id: c for c in found.scalars().all()}
        if client_ids:
            found = await session.execute(
                select(NotifyClientContact).where(col(NotifyClientContact.id).in_(client_ids))
            )
            batch.clients = {c.id: c for c in found.scalars().all()}
            batch.client_keys = await self.deps.sealing.client_keys().existing_many(
                session, [c.respondent for c in batch.clients.values()]
            )
        fallback_sites = {r.site_id for r in rows if r.recipient == "fallback:site"}
        if fallback_sites:
            found = await session.execute(
                select(NotifySiteFallback).where(
                    col(NotifySiteFallback.site_id).in_(fallback_sites)
                )
            )
            batch.fallbacks = {f.site_id: f for f in found.scalars().all()}
        for site in {r.site_id for r in rows if r.channel != "webhook"}:
            batch.policies[site] = await self.deps.policies.for_site(session, site)

    async def _load_hooks(self, session: AsyncSession, batch: Batch, hook_ids: set[str]) -> None:
        now = time.monotonic()
        batch.hooks = {
            i: cached[1]
            for i in hook_ids
            if (cached := self._hooks.get(i)) is not None and cached[0] > now
        }
        missing = hook_ids - batch.hooks.keys()
        if missing:
            hooks = await session.execute(
                select(NotifyWebhook).where(col(NotifyWebhook.id).in_(missing))
            )
            for hook in hooks.scalars().all():
                batch.hooks[hook.id] = hook
                self._hooks[hook.id] = (now + HOOK_CACHE_SECONDS, hook)
