"""Step 3: recording what happened, in batched transactions. Each outcome sets the row's new
state — delivered, retry at the next jittered time (not inside the person's quiet hours),
failed (a dead letter, ``status = failed`` with the reason) — and its ``notification.delivered``
/ ``notification.failed`` event goes through the outbox in the same transaction. A row whose
lease was taken over meanwhile is not touched. A 410 disables the endpoint and tells the
site's admins; an urgent notice nobody can be told of any more is escalated at once."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify import domain, mapping
from services.notify.dependencies import NotifyDependencies
from services.notify.dispatch.claiming import DELIVERIES
from services.notify.dispatch.sending import Outcome
from services.notify.models import NotifyDelivery, NotifyNotice, NotifyWebhook
from services.notify.usecases.notices import tell_site_admins
from shared.contracts import (
    NOTIFICATION_DELIVERED,
    NOTIFICATION_FAILED,
    NotificationDelivered,
    NotificationFailed,
)
from shared.events import Event
from shared.logs import get_logger

log = get_logger(__name__)
SOURCE = "/rapport/notify"
RELEASE: dict[str, Any] = {"lease_id": None, "lease_until": None}


def reason_code(text: str | None) -> str:
    """A short code for an event or a metric, never free text."""
    cleaned = re.sub(r"[^a-z0-9_.\-]", "_", (text or "unknown").lower()).strip("_.-")
    return (cleaned or "unknown")[:64]


def changed(result: Any) -> bool:
    return bool(getattr(result, "rowcount", 0))


def _the_delivery(row: NotifyDelivery, attempts: int) -> dict[str, Any]:
    """What both outcome events say of the delivery: ids, channel, attempts and the recipient's
    role as a code (never free text)."""
    return {
        "delivery_id": row.id,
        "source_event_id": row.source_event_id,
        "site_id": row.site_id,
        "channel": row.channel,
        "recipient_role": reason_code(row.recipient_role),
        "attempts": attempts,
    }


def delivered_event(
    row: NotifyDelivery, attempts: int, now: datetime, notice: NotifyNotice | None = None
) -> Event[Any]:
    """``notification.delivered``; one about an alert names it (for the episode's timeline)."""
    identity = mapping.alert_identity(notice)
    about = {} if identity is None else {"delivery_kind": reason_code(row.kind), **identity}
    return Event(
        NOTIFICATION_DELIVERED,
        NotificationDelivered(**_the_delivery(row, attempts), delivered_at=now, **about),
        source=SOURCE,
    )


async def notices_of(session: AsyncSession, outcomes: list[Outcome]) -> dict[str, NotifyNotice]:
    """The notices of the deliveries that went, by id (one statement)."""
    ids = {
        o.row.notice_id
        for o in outcomes
        if o.row.notice_id and o.attempt is not None and o.attempt.verdict == "delivered"
    }
    if not ids:
        return {}
    rows = await session.execute(select(NotifyNotice).where(col(NotifyNotice.id).in_(ids)))
    return {n.id: n for n in rows.scalars().all()}


def failed_event(row: NotifyDelivery, attempts: int, reason: str, now: datetime) -> Event[Any]:
    return Event(
        NOTIFICATION_FAILED,
        NotificationFailed(**_the_delivery(row, attempts), reason_code=reason, failed_at=now),
        source=SOURCE,
    )


class Recorder:
    def __init__(
        self,
        deps: NotifyDependencies,
        idle_seconds: float,
        forget_endpoint: Callable[[str], None],
    ) -> None:
        self.deps = deps
        self.delays = deps.settings.notify_retry_delays
        self.jitter = deps.settings.notify_retry_jitter
        self.idle_seconds = idle_seconds
        self.forget_endpoint = forget_endpoint
        # The notices of the outcomes being recorded (read once per batch).
        self.notices: dict[str, NotifyNotice] = {}

    def notice_of(self, row: NotifyDelivery) -> NotifyNotice | None:
        return self.notices.get(row.notice_id) if row.notice_id else None

    async def record(self, outcomes: list[Outcome]) -> None:
        now = datetime.now(UTC)
        runtime = self.deps.runtime
        events: list[Event[Any]] = []
        wake_soon = False
        delivered = [
            o for o in outcomes if o.attempt is not None and o.attempt.verdict == "delivered"
        ]
        async with runtime.sessionmaker() as session, session.begin():
            self.notices = await notices_of(session, outcomes)
            events.extend(await self._record_delivered(session, delivered, now))
            batched = {id(o) for o in delivered}
            for outcome in outcomes:
                if id(outcome) in batched:
                    continue
                event, retry_soon = await self._record_one(session, outcome, now)
                wake_soon = wake_soon or retry_soon
                if event is not None:
                    events.append(event)
            await runtime.emit(session, *events)
        if wake_soon:
            self.deps.wake_dispatcher()

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
                **RELEASE,
            )
            .returning(DELIVERIES.c.id, DELIVERIES.c.attempts)
        )
        attempts = {r.id: r.attempts for r in done.all()}
        return [
            delivered_event(o.row, attempts[o.row.id], now, self.notice_of(o.row))
            for o in outcomes
            if o.row.id in attempts
        ]

    async def _record_one(
        self, session: AsyncSession, outcome: Outcome, now: datetime
    ) -> tuple[Event[Any] | None, bool]:
        """One outcome; its event, and whether the dispatcher should look again soon."""
        row = outcome.row
        mine = update(DELIVERIES).where(
            DELIVERIES.c.id == row.id,
            DELIVERIES.c.lease_id == outcome.lease_id,
            DELIVERIES.c.status == "sending",
        )
        if outcome.action == "deferred":
            await session.execute(
                mine.values(status="pending", next_attempt_at=outcome.defer_until, **RELEASE)
            )
            return None, False
        if outcome.action == "released":
            await session.execute(mine.values(status="pending", **RELEASE))
            return None, True
        if outcome.action == "cancelled":
            await session.execute(
                mine.values(status="cancelled", last_error=outcome.reason, **RELEASE)
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
                    **RELEASE,
                )
            )
            if not changed(result):
                return None, False
            return delivered_event(row, attempts, now, self.notice_of(row)), False
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
                    **RELEASE,
                )
            )
            return None, (retry_at - now).total_seconds() < self.idle_seconds
        reason = reason_code(
            "endpoint_gone"
            if attempt.verdict == "gone"
            else f"retries_exhausted_{attempt.error}"
            if attempt.verdict == "retry"
            else attempt.error
        )
        result = await session.execute(
            mine.values(
                status="failed", attempts=attempts, failed_at=now, last_error=reason, **RELEASE
            )
        )
        if not changed(result):
            return None, False
        await self._failed_for_good(session, row, attempt.verdict == "gone", now)
        log.warning(
            "delivery failed permanently",
            delivery_id=row.id,
            channel=row.channel,
            reason=reason,
            attempts=attempts,
        )
        return failed_event(row, attempts, reason, now), False

    async def _failed_for_good(
        self, session: AsyncSession, row: NotifyDelivery, gone: bool, now: datetime
    ) -> None:
        if gone:
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
        self.forget_endpoint(row.endpoint_id)
        if changed(disabled):
            self.deps.policies.forget(row.site_id)
            log.warning("webhook endpoint disabled: 410 Gone", endpoint_id=row.endpoint_id)
            await tell_site_admins(
                self.deps,
                session,
                row.site_id,
                "endpoint_disabled",
                key=f"endpoint_disabled:{row.endpoint_id}:{now.isoformat()}",
                event_id=f"endpoint-{row.endpoint_id}",
            )
            self.deps.wake_dispatcher()
