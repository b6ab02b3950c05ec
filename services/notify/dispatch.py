"""Sends due deliveries with bounded concurrency; each outcome recorded and published once.

How a delivery moves, and why nothing is lost or doubled:

1. **Claim** (one short transaction): due ``pending`` rows — and ``sending`` rows whose lease
   ran out, i.e. whose dispatcher died mid-send — become ``sending`` under a new lease
   (``FOR UPDATE SKIP LOCKED``: replicas never claim the same row). No transaction is held
   while sending, so a slow endpoint holds nothing but its own slots.
2. **Send**, concurrently: at most ``notify_concurrency`` at once and
   ``notify_endpoint_concurrency`` per endpoint, each bounded by ``notify_send_timeout_seconds``.
   A success is marked in Redis at once (``sent:<delivery id>``).
3. **Record** (batched transactions): the row's new state — delivered, retry at the next
   jittered time, failed (a dead letter: ``status = failed`` with the reason) — and its
   ``notification.delivered`` / ``notification.failed`` event through the outbox, together. A
   row whose lease was taken over meanwhile is not touched.

**The window**: a kill after the endpoint accepted a message but before step 3 committed leaves
the row ``sending``; after its lease expires it is claimed again. If the Redis mark was written
it is recorded as delivered without sending again; only a kill in the microseconds between the
endpoint's answer and the Redis write sends it a second time — with the same ``webhook-id``
(and the same email ``Message-ID``), so receivers can drop it. At-least-once, never lost.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from prometheus_client import Counter as MetricCounter
from prometheus_client import Histogram
from sqlalchemy import and_, func, or_, select, tuple_, union_all, update
from sqlmodel import SQLModel, col
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify import domain
from services.notify.channels import Attempt, Channels, webhook_secrets
from services.notify.context import NotifyContext, contact_point, fallback_owner
from services.notify.invitations import client_quiet
from services.notify.models import (
    NotifyClientContact,
    NotifyDelivery,
    NotifyNotice,
    NotifySiteFallback,
    NotifyStaffContact,
    NotifyWebhook,
)
from services.notify.notices import tell_site_admins
from services.notify.policy import RoutingPolicy
from shared.contracts import (
    NOTIFICATION_DELIVERED,
    NOTIFICATION_FAILED,
    NotificationDelivered,
    NotificationFailed,
)
from shared.crypto import derive_key
from shared.db import dialect_of
from shared.events import Event
from shared.logs import get_logger
from shared.runtime import ServiceRuntime

log = get_logger(__name__)
SOURCE = "/rapport/notify"
DELIVERIES = SQLModel.metadata.tables[NotifyDelivery.__tablename__]

ATTEMPTS = MetricCounter(
    "rapport_notify_attempts_total", "Delivery attempts", ["channel", "outcome"]
)
SEND_SECONDS = Histogram("rapport_notify_send_seconds", "Time of one delivery attempt", ["channel"])


def secret_key(runtime: ServiceRuntime) -> bytes:
    return derive_key(runtime.settings.encryption_key.get_secret_value(), "notify-webhook-secret")


def _code(text: str | None) -> str:
    cleaned = re.sub(r"[^a-z0-9_.\-]", "_", (text or "unknown").lower()).strip("_.-")
    return (cleaned or "unknown")[:64]


@dataclass
class Outcome:
    row: NotifyDelivery
    lease_id: str
    action: Literal["attempted", "deferred", "cancelled", "released"]
    attempt: Attempt | None = None
    defer_until: datetime | None = None
    reason: str | None = None
    quiet: domain.QuietHours | None = None


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


_STOP: Any = object()
HOLD_ROUNDS = 4
CLAIM_GATHER_SECONDS = 0.005
RECORD_GATHER_SECONDS = 0.02


class Dispatcher:
    def __init__(self, runtime: ServiceRuntime, ctx: NotifyContext) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.ctx = ctx
        self.concurrency = settings.notify_concurrency
        self.per_endpoint = settings.notify_endpoint_concurrency
        self.timeout = settings.notify_send_timeout_seconds
        # Rows claimed and held here (queued or being sent): per endpoint and in all. Holding
        # a few rounds' worth amortises the claim over many sends.
        self.endpoint_cap = self.per_endpoint * HOLD_ROUNDS
        self.total_cap = self.concurrency * HOLD_ROUNDS
        self.delays = settings.notify_retry_delays
        self.jitter = settings.notify_retry_jitter
        self.inflight: dict[str, asyncio.Task[None]] = {}
        self.by_endpoint: Counter[str] = Counter()
        self.sending = asyncio.Semaphore(self.concurrency)
        self.endpoint_slots: dict[str, asyncio.Semaphore] = {}
        self.results: asyncio.Queue[Outcome] = asyncio.Queue()
        self.channels = Channels(settings, self.concurrency)
        self.idle_seconds = min(0.5, settings.notify_scheduler_seconds)
        self.slot_freed = asyncio.Event()
        self._last_claim = 0.0
        # Endpoints (with their sealed secrets) for a moment, so a busy dispatcher does not
        # read them for every batch; a 410 here forgets at once.
        self._hooks: dict[str, tuple[float, NotifyWebhook]] = {}

    # -- the loop ------------------------------------------------------------------------
    async def run(self) -> None:
        recorder = asyncio.create_task(self._record_forever(), name="notify-recorder")
        stopping = self.runtime.stopping
        backoff = 0.1
        try:
            while not stopping.is_set():
                free = self.total_cap - len(self.inflight)
                self.ctx.wake.clear()
                self.slot_freed.clear()
                claimed = 0
                if free > 0:
                    try:
                        batch = await self.claim(free)
                    except Exception as error:
                        log.warning(
                            "claiming deliveries failed; retrying",
                            error=f"{type(error).__name__}: {error}"[:300],
                        )
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 5.0)
                        continue
                    backoff = 0.1
                    claimed = len(batch.rows)
                    await self._start(batch)
                    if claimed == free:
                        continue  # more may be due: claim again while slots are free
                # Nothing more due now, or every slot busy: a new delivery (handlers wake
                # us), the next due time or — when slots were what held us back — a finished
                # send ends the wait.
                blocked = len(self.inflight) > self.total_cap // 2 or bool(self._saturated())
                await self._idle(await self._next_due() if claimed == 0 else None, blocked)
        finally:
            # Finish the batch in hand: sends under way complete and are recorded; rows not
            # yet started are handed back at once (see _deliver), nothing is abandoned.
            if self.inflight:
                await asyncio.gather(*self.inflight.values(), return_exceptions=True)
            await self.results.put(_STOP)
            await recorder
            await self.channels.aclose()

    async def _idle(self, next_due: float | None, blocked: bool) -> None:
        timeout = (
            self.idle_seconds if next_due is None else max(0.0, min(self.idle_seconds, next_due))
        )
        waits = [
            asyncio.ensure_future(self.ctx.wake.wait()),
            asyncio.ensure_future(self.runtime.stopping.wait()),
        ]
        if blocked:
            waits.append(asyncio.ensure_future(self.slot_freed.wait()))
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    def _saturated(self) -> list[str]:
        """Endpoints not to claim for now: those still holding more than half their share.
        Refilling in halves (not a row per finished send) keeps claims few and large."""
        return [e for e, n in self.by_endpoint.items() if n > self.endpoint_cap // 2]

    def _lease_for(self, rows: list[NotifyDelivery]) -> timedelta:
        """Long enough for every row of the batch to be sent where it queues: behind what this
        dispatcher already holds for its endpoint (``per_endpoint`` at a time) and in all
        (``concurrency`` at a time), each send cut at the timeout; plus one spare round."""
        fresh = Counter(r.endpoint_id for r in rows)
        rounds = max(
            [-(-(self.by_endpoint[e] + n) // self.per_endpoint) for e, n in fresh.items()]
            + [-(-(len(self.inflight) + len(rows)) // self.concurrency)]
        )
        return timedelta(seconds=(rounds + 1) * self.timeout + 1)

    async def _next_due(self) -> float | None:
        """Seconds until the next delivery this dispatcher could claim is due (so retries go
        on time). Rows of endpoints already at their limit do not count: a finished send
        wakes the loop for those."""
        statement = select(func.min(DELIVERIES.c.next_attempt_at)).where(
            DELIVERIES.c.status == "pending"
        )
        saturated = self._saturated()
        if saturated:
            statement = statement.where(DELIVERIES.c.endpoint_id.not_in(saturated))
        try:
            async with self.runtime.sessionmaker() as session:
                due = await session.scalar(statement)
        except Exception:
            return None
        if due is None:
            return None
        # Never spin: something due but not claimable (locked by another replica) waits a bit.
        return max(0.01, float((due - datetime.now(UTC)).total_seconds()))

    # -- claim -----------------------------------------------------------------------------
    async def claim(self, limit: int) -> Batch:
        # Under a stream of single deliveries, claim a few milliseconds' worth at once rather
        # than one row per transaction.
        since = time.monotonic() - self._last_claim
        if since < CLAIM_GATHER_SECONDS:
            await asyncio.sleep(CLAIM_GATHER_SECONDS - since)
        self._last_claim = time.monotonic()
        now = datetime.now(UTC)
        lease_id = uuid.uuid4().hex
        due = or_(
            and_(DELIVERIES.c.status == "pending", DELIVERIES.c.next_attempt_at <= now),
            and_(DELIVERIES.c.status == "sending", DELIVERIES.c.lease_until < now),
        )
        # The oldest due rows, at most ``per_endpoint`` of any one endpoint (a busy endpoint
        # cannot crowd out the others, nor be claimed far beyond what it can take).
        # Two index range scans (status, next_attempt_at), never a walk past the history of
        # delivered rows: due pending rows, and sending rows whose lease ran out.
        columns = (DELIVERIES.c.id, DELIVERIES.c.endpoint_id, DELIVERIES.c.next_attempt_at)
        scan = max(limit * 4, 200)
        pending = (
            select(*columns)
            .where(DELIVERIES.c.status == "pending", DELIVERIES.c.next_attempt_at <= now)
            .order_by(DELIVERIES.c.next_attempt_at)
            .limit(scan)
        )
        abandoned = (
            select(*columns)
            .where(DELIVERIES.c.status == "sending", DELIVERIES.c.lease_until < now)
            .limit(scan)
        )
        saturated = self._saturated()
        if saturated:
            pending = pending.where(DELIVERIES.c.endpoint_id.not_in(saturated))
            abandoned = abandoned.where(DELIVERIES.c.endpoint_id.not_in(saturated))
        window_rows = union_all(
            pending.subquery().select(), abandoned.subquery().select()
        ).subquery()
        ranked = select(
            window_rows.c.id,
            func.row_number()
            .over(
                partition_by=window_rows.c.endpoint_id,
                order_by=window_rows.c.next_attempt_at,
            )
            .label("rank"),
        ).subquery()
        chosen = select(ranked.c.id).where(ranked.c.rank <= self.endpoint_cap)
        candidates = (
            select(DELIVERIES.c.id)
            .where(DELIVERIES.c.id.in_(chosen), due)
            .order_by(DELIVERIES.c.next_attempt_at)
            .limit(limit)
        )
        async with self.runtime.sessionmaker() as session, session.begin():
            if dialect_of(session) == "postgresql":
                candidates = candidates.with_for_update(skip_locked=True)
            # The lease is sized for the most this dispatcher could hold (refined below).
            provisional = timedelta(
                seconds=(self.total_cap // self.concurrency + 2) * self.timeout + 1
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
                lease_until = now + self._lease_for(rows)
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
        """Keep at most the free slots of each endpoint; hand the rest back at once."""
        taken: Counter[str] = Counter()
        kept, released = [], []
        for row in rows:
            if self.by_endpoint[row.endpoint_id] + taken[row.endpoint_id] < self.endpoint_cap:
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
        hook_ids = {r.endpoint_id for r in batch.rows if r.channel == "webhook"}
        staff_ids = {
            r.endpoint_id
            for r in batch.rows
            if r.channel != "webhook" and r.recipient.startswith("staff:")
        }
        client_ids = {r.endpoint_id for r in batch.rows if r.recipient.startswith("client:")}
        if hook_ids:
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
                    self._hooks[hook.id] = (now + 2.0, hook)
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
            batch.client_keys = await self.ctx.client_keys().existing_many(
                session, [c.respondent for c in batch.clients.values()]
            )
        fallback_sites = {r.site_id for r in batch.rows if r.recipient == "fallback:site"}
        if fallback_sites:
            found = await session.execute(
                select(NotifySiteFallback).where(
                    col(NotifySiteFallback.site_id).in_(fallback_sites)
                )
            )
            batch.fallbacks = {f.site_id: f for f in found.scalars().all()}
        for site in {r.site_id for r in batch.rows if r.channel != "webhook"}:
            batch.policies[site] = await self.ctx.policies.for_site(session, site)

    # -- send ------------------------------------------------------------------------------
    async def _start(self, batch: Batch) -> None:
        if not batch.rows:
            return
        sent = await self.ctx.fast.already_sent([r.id for r in batch.rows])
        for row in batch.rows:
            self.by_endpoint[row.endpoint_id] += 1
            task = asyncio.create_task(self._deliver(row, batch, row.id in sent))
            self.inflight[row.id] = task

    async def _deliver(self, row: NotifyDelivery, batch: Batch, sent_before: bool) -> None:
        started = time.perf_counter()
        slots = self.endpoint_slots.setdefault(
            row.endpoint_id, asyncio.Semaphore(self.per_endpoint)
        )
        try:
            if sent_before:  # reached its endpoint before a crash: record, do not resend
                outcome = Outcome(row, batch.lease_id, "attempted", Attempt("delivered"))
            else:
                async with slots, self.sending:
                    outcome = await self._attempt_within_lease(row, batch)
                if outcome.attempt is not None and outcome.attempt.verdict == "delivered":
                    await self.ctx.fast.mark_sent(row.id)
        except Exception as error:  # a bug or a bad row must not stop the dispatcher
            log.exception("delivery attempt failed unexpectedly", delivery_id=row.id)
            outcome = Outcome(
                row, batch.lease_id, "attempted", Attempt("retry", None, type(error).__name__)
            )
        finally:
            SEND_SECONDS.labels(row.channel).observe(time.perf_counter() - started)
            self.inflight.pop(row.id, None)
            self.by_endpoint[row.endpoint_id] -= 1
            held = self.by_endpoint[row.endpoint_id]
            if held <= 0:
                del self.by_endpoint[row.endpoint_id]
                self.endpoint_slots.pop(row.endpoint_id, None)
            if held == self.endpoint_cap // 2 or len(self.inflight) == self.total_cap // 2:
                self.slot_freed.set()  # room to refill: claim again
        if outcome.attempt is not None:
            ATTEMPTS.labels(row.channel, outcome.attempt.verdict).inc()
        await self.results.put(outcome)

    async def _attempt_within_lease(self, row: NotifyDelivery, batch: Batch) -> Outcome:
        """Send unless stopping or unless the lease could run out during the send (another
        dispatcher may then take the row): either way it is handed back, not attempted."""
        assert row.lease_until is not None
        remaining = (row.lease_until - datetime.now(UTC)).total_seconds()
        if self.runtime.stopping.is_set() or remaining < self.timeout + 0.5:
            return Outcome(row, batch.lease_id, "released")
        return await self._attempt(row, batch)

    async def _attempt(self, row: NotifyDelivery, batch: Batch) -> Outcome:
        lease = batch.lease_id
        if row.channel == "webhook":
            hook = batch.hooks.get(row.endpoint_id)
            if hook is None:
                return Outcome(row, lease, "attempted", Attempt("failed", None, "endpoint_removed"))
            secrets = webhook_secrets(hook, self.ctx.webhook_secret_key(), datetime.now(UTC))
            attempt = await self.channels.webhook(row.id, row.payload.encode(), hook, secrets)
            return Outcome(row, lease, "attempted", attempt)
        address, quiet, refusal = self._address(row, batch)
        if refusal is not None:
            return Outcome(row, lease, "cancelled", reason=refusal)
        if address is None:
            return Outcome(row, lease, "attempted", Attempt("failed", None, "contact_removed"))
        if not row.urgent:
            held = await self._rate_limited(row, batch)
            if held is not None:
                return Outcome(row, lease, "deferred", defer_until=held, quiet=quiet)
        content = json.loads(row.payload)
        text = str(content["text"])
        if row.sealed and row.notice_id:
            text = text.replace("{link}", self.ctx.unseal_link(row.sealed, row.notice_id))
        if row.channel == "email":
            attempt = await self.channels.email(row.id, address, str(content["subject"]), text)
        else:
            attempt = await self.channels.sms(row.id, address, text)
        return Outcome(row, lease, "attempted", attempt, quiet=quiet)

    def _address(
        self, row: NotifyDelivery, batch: Batch
    ) -> tuple[str | None, domain.QuietHours | None, str | None]:
        """The address to use, the person's quiet hours, and why not to send at all."""
        if row.recipient == "fallback:ops":
            return self.ctx.settings.notify_ops_fallback_email, None, None
        if row.recipient == "fallback:site":
            fallback = batch.fallbacks.get(row.site_id)
            if fallback is None:
                return None, None, None
            owner = fallback_owner(row.site_id)
            return self.ctx.unseal_address(fallback.email_sealed, owner), None, None
        if row.recipient.startswith("client:"):
            client = batch.clients.get(row.endpoint_id)
            if client is None:
                return None, None, None
            if not client.consent:
                return None, None, "consent_withdrawn"
            sealed = client.email_sealed if row.channel == "email" else client.phone_sealed
            quiet = client_quiet(client)
            owner = client.id
            if sealed is None:
                return None, quiet, None
            key = batch.client_keys.get(client.respondent)
            return self.ctx.unseal_address(sealed, owner, key), quiet, None
        staff = batch.staff.get(row.endpoint_id)
        if staff is None or not staff.active:
            return None, None, None
        sealed = staff.email_sealed if row.channel == "email" else staff.phone_sealed
        quiet = contact_point(staff).quiet
        owner = staff.id
        if sealed is None:
            return None, quiet, None
        return self.ctx.unseal_address(sealed, owner), quiet, None

    async def _rate_limited(self, row: NotifyDelivery, batch: Batch) -> datetime | None:
        policy = batch.policies.get(row.site_id)
        if policy is None:
            return None
        window, ends = domain.rate_window(datetime.now(UTC))
        count = await self.ctx.fast.count_towards_limit(
            f"{row.site_id}:{row.recipient}", row.channel, window
        )
        if count is not None and count > policy.rate_limit.per_recipient_per_hour:
            return ends
        return None

    # -- record ----------------------------------------------------------------------------
    async def _record_forever(self) -> None:
        finished = False
        while not finished:
            first = await self.results.get()
            if first is _STOP:
                return
            # Outcomes are off the latency path (the message is already out): gather a few
            # milliseconds' worth into one transaction.
            await asyncio.sleep(RECORD_GATHER_SECONDS)
            batch = [first]
            while len(batch) < 500 and not self.results.empty():
                item = self.results.get_nowait()
                if item is _STOP:
                    finished = True
                    break
                batch.append(item)
            backoff = 0.1
            while True:
                try:
                    await self.record(batch)
                    break
                except Exception as error:  # the database is briefly away: keep the results
                    log.warning(
                        "recording delivery outcomes failed; retrying",
                        error=f"{type(error).__name__}: {error}"[:300],
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)

    async def record(self, outcomes: list[Outcome]) -> None:
        now = datetime.now(UTC)
        events: list[Event[Any]] = []
        wake_soon = False
        delivered = [
            o for o in outcomes if o.attempt is not None and o.attempt.verdict == "delivered"
        ]
        async with self.runtime.sessionmaker() as session, session.begin():
            events.extend(await self._record_delivered(session, delivered, now))
            batched = {id(o) for o in delivered}
            for outcome in outcomes:
                if id(outcome) in batched:
                    continue
                event, retry_soon = await self._record_one(session, outcome, now)
                wake_soon = wake_soon or retry_soon
                if event is not None:
                    events.append(event)
            await self.runtime.emit(session, *events)
        if events:
            self.runtime.relay.wake()
        if wake_soon:
            self.ctx.wake.set()

    async def _record_delivered(
        self, session: AsyncSession, outcomes: list[Outcome], now: datetime
    ) -> list[Event[Any]]:
        """The common case in one statement: rows still under our lease become delivered."""
        if not outcomes:
            return []
        mine = [(o.row.id, o.lease_id) for o in outcomes]
        done = await session.execute(
            update(DELIVERIES)
            .where(
                tuple_(DELIVERIES.c.id, DELIVERIES.c.lease_id).in_(mine),
                DELIVERIES.c.status == "sending",
            )
            .values(
                status="delivered",
                attempts=DELIVERIES.c.attempts + 1,
                delivered_at=now,
                last_error=None,
                lease_id=None,
                lease_until=None,
            )
            .returning(DELIVERIES.c.id, DELIVERIES.c.attempts)
        )
        attempts = {r.id: r.attempts for r in done.all()}
        return [
            self._delivered(o.row, attempts[o.row.id], now)
            for o in outcomes
            if o.row.id in attempts
        ]

    async def _record_one(
        self, session: AsyncSession, outcome: Outcome, now: datetime
    ) -> tuple[Event[Any] | None, bool]:
        row = outcome.row
        mine = update(DELIVERIES).where(
            DELIVERIES.c.id == row.id,
            DELIVERIES.c.lease_id == outcome.lease_id,
            DELIVERIES.c.status == "sending",
        )
        release: dict[str, Any] = {"lease_id": None, "lease_until": None}
        if outcome.action == "deferred":
            await session.execute(
                mine.values(status="pending", next_attempt_at=outcome.defer_until, **release)
            )
            return None, False
        if outcome.action == "released":
            await session.execute(mine.values(status="pending", **release))
            return None, True
        if outcome.action == "cancelled":
            await session.execute(
                mine.values(status="cancelled", last_error=outcome.reason, **release)
            )
            return None, False
        attempt = outcome.attempt
        assert attempt is not None
        attempts = row.attempts + 1
        if attempt.verdict == "delivered":
            result = await session.execute(
                mine.values(
                    status="delivered",
                    attempts=attempts,
                    delivered_at=now,
                    last_error=None,
                    **release,
                )
            )
            if not _changed(result):
                return None, False
            return self._delivered(row, attempts, now), False
        retry_at = None
        if attempt.verdict == "retry":
            retry_at = domain.next_attempt_with_jitter(
                attempts, now, self.delays, self.jitter, random.random()
            )
            if retry_at is not None and not row.urgent:
                retry_at = domain.quiet_until(retry_at, outcome.quiet) or retry_at
        if retry_at is not None:
            await session.execute(
                mine.values(
                    status="pending",
                    attempts=attempts,
                    next_attempt_at=retry_at,
                    last_error=attempt.error,
                    **release,
                )
            )
            return None, (retry_at - now).total_seconds() < self.idle_seconds
        reason = _code(
            "endpoint_gone"
            if attempt.verdict == "gone"
            else f"retries_exhausted_{attempt.error}"
            if attempt.verdict == "retry"
            else attempt.error
        )
        result = await session.execute(
            mine.values(
                status="failed", attempts=attempts, failed_at=now, last_error=reason, **release
            )
        )
        if not _changed(result):
            return None, False
        if attempt.verdict == "gone":
            await self._disable_endpoint(session, row, now)
        if row.urgent and row.notice_id and row.kind not in {"escalation", "fallback"}:
            # When no way of telling the urgent notice's recipients is left, escalate now
            # rather than after the timeout.
            still_going = await session.scalar(
                select(func.count())
                .select_from(DELIVERIES)
                .where(
                    DELIVERIES.c.notice_id == row.notice_id,
                    DELIVERIES.c.id != row.id,
                    DELIVERIES.c.kind != "escalation",
                    DELIVERIES.c.status.in_(["pending", "sending", "delivered"]),
                )
            )
            if not still_going:
                await session.execute(
                    update(NotifyNotice)
                    .where(
                        col(NotifyNotice.id) == row.notice_id,
                        col(NotifyNotice.acknowledged_at).is_(None),
                        col(NotifyNotice.escalated_at).is_(None),
                    )
                    .values(escalate_at=now)
                )
        log.warning(
            "delivery failed permanently",
            delivery_id=row.id,
            channel=row.channel,
            reason=reason,
            attempts=attempts,
        )
        return self._failed(row, attempts, reason, now), False

    async def _disable_endpoint(
        self, session: AsyncSession, row: NotifyDelivery, now: datetime
    ) -> None:
        """410 Gone: the endpoint is disabled, and the site's admins are told (by email, and
        by the flag ``GET /notify/webhooks`` shows)."""
        disabled = await session.execute(
            update(NotifyWebhook)
            .where(col(NotifyWebhook.id) == row.endpoint_id, col(NotifyWebhook.active).is_(True))
            .values(active=False, disabled_at=now, disabled_reason="gone")
        )
        self._hooks.pop(row.endpoint_id, None)
        if _changed(disabled):
            self.ctx.policies.forget(row.site_id)
            log.warning("webhook endpoint disabled: 410 Gone", endpoint_id=row.endpoint_id)
            await tell_site_admins(
                self.ctx,
                session,
                row.site_id,
                "endpoint_disabled",
                key=f"endpoint_disabled:{row.endpoint_id}:{now.isoformat()}",
                event_id=f"endpoint-{row.endpoint_id}",
            )
            self.ctx.wake.set()

    def _delivered(self, row: NotifyDelivery, attempts: int, now: datetime) -> Event[Any]:
        return Event(
            NOTIFICATION_DELIVERED,
            NotificationDelivered(
                delivery_id=row.id,
                source_event_id=row.source_event_id,
                site_id=row.site_id,
                channel=row.channel,
                recipient_role=_code(row.recipient_role),
                attempts=attempts,
                delivered_at=now,
            ),
            source=SOURCE,
        )

    def _failed(self, row: NotifyDelivery, attempts: int, reason: str, now: datetime) -> Event[Any]:
        return Event(
            NOTIFICATION_FAILED,
            NotificationFailed(
                delivery_id=row.id,
                source_event_id=row.source_event_id,
                site_id=row.site_id,
                channel=row.channel,
                recipient_role=_code(row.recipient_role),
                attempts=attempts,
                reason_code=reason,
                failed_at=now,
            ),
            source=SOURCE,
        )


def _changed(result: Any) -> bool:
    return bool(getattr(result, "rowcount", 0))


async def dispatch_forever(runtime: ServiceRuntime) -> None:
    ctx: NotifyContext = runtime.state["notify"]
    await Dispatcher(runtime, ctx).run()
