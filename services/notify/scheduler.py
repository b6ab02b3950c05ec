"""Work that falls due with time rather than with an event: escalations of unacknowledged urgent
notices, undeliverable notices whose site has a route now (or whose fallback must hear of
them), digests whose window closed, and reminders of unanswered feedback invitations. Each
kind runs in its own short transaction; PostgreSQL's ``SKIP LOCKED`` lets replicas share it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from datetime import UTC, datetime

from sqlalchemy import update
from sqlmodel import col, select

from services.notify import domain, invitations, rerouting
from services.notify.context import NotifyContext, contact_point
from services.notify.models import NotifyDelivery, NotifyNotice, NotifyStaffContact
from services.notify.notices import escalate, insert_deliveries
from shared.db import dialect_of
from shared.logs import get_logger
from shared.runtime import ServiceRuntime

log = get_logger(__name__)


async def escalations_due(ctx: NotifyContext, runtime: ServiceRuntime, limit: int = 100) -> int:
    now = datetime.now(UTC)
    created = 0
    async with runtime.sessionmaker() as session, session.begin():
        statement = (
            select(NotifyNotice)
            .where(
                col(NotifyNotice.escalate_at) <= now,
                col(NotifyNotice.acknowledged_at).is_(None),
                col(NotifyNotice.escalated_at).is_(None),
            )
            .order_by(col(NotifyNotice.escalate_at))
            .limit(limit)
        )
        if dialect_of(session) == "postgresql":
            statement = statement.with_for_update(skip_locked=True)
        for notice in (await session.exec(statement)).all():
            policy = await ctx.policies.for_site(session, notice.site_id)
            created += await escalate(ctx, session, notice, policy)
            notice.escalated_at = now
            notice.escalate_at = None  # out of the index of escalations to come
            session.add(notice)
            log.warning(
                "urgent notice not acknowledged: escalated",
                notice_id=notice.id,
                site_id=notice.site_id,
                kind=notice.kind,
            )
    return created


async def digests_due(ctx: NotifyContext, runtime: ServiceRuntime, limit: int = 2000) -> int:
    """Close the digest windows that ended: one message per recipient, channel and window,
    carrying the count of what it batches (no clinical detail)."""
    now = datetime.now(UTC)
    async with runtime.sessionmaker() as session, session.begin():
        statement = (
            select(NotifyDelivery)
            .where(NotifyDelivery.status == "digest", col(NotifyDelivery.next_attempt_at) <= now)
            .order_by(col(NotifyDelivery.next_attempt_at))
            .limit(limit)
        )
        if dialect_of(session) == "postgresql":
            statement = statement.with_for_update(skip_locked=True)
        items = (await session.exec(statement)).all()
        if not items:
            return 0
        groups = domain.group_digest(
            domain.DigestItem(
                i.id, i.site_id, i.recipient, i.channel, i.endpoint_id, i.next_attempt_at
            )
            for i in items
        )
        contacts = {
            c.id: contact_point(c)
            for c in (
                await session.exec(
                    select(NotifyStaffContact).where(
                        col(NotifyStaffContact.id).in_({g[3] for g in groups})
                    )
                )
            ).all()
        }
        rows = []
        for group, ids in groups.items():
            site_id, recipient, channel, endpoint_id, _ = group
            contact = contacts.get(endpoint_id)
            digest_id = str(uuid.uuid4())
            message = domain.staff_message("digest", False, len(ids))
            batch_hash = hashlib.sha256(",".join(sorted(ids)).encode()).hexdigest()[:16]
            rows.append(
                {
                    "id": digest_id,
                    "delivery_key": domain.delivery_key(
                        f"{domain.digest_notice_key(group)}:{batch_hash}", recipient, channel
                    ),
                    "source_event_id": f"digest-{digest_id}",
                    "site_id": site_id,
                    "channel": channel,
                    "endpoint_id": endpoint_id,
                    "recipient_role": contact.role if contact else "staff",
                    "recipient": recipient,
                    "payload": json.dumps({"subject": message.subject, "text": message.text}),
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": domain.not_before(
                        now, False, contact.quiet if contact else None
                    ),
                    "created_at": now,
                    "kind": "digest",
                    "notice_id": None,
                    "urgent": False,
                }
            )
            await session.execute(
                update(NotifyDelivery)
                .where(col(NotifyDelivery.id).in_(ids))
                .values(status="batched", digest_id=digest_id)
            )
        return await insert_deliveries(session, rows)


async def reminders_due(ctx: NotifyContext, runtime: ServiceRuntime) -> int:
    async with runtime.sessionmaker() as session, session.begin():
        return await invitations.remind_due(ctx, session)


async def run_due(ctx: NotifyContext, runtime: ServiceRuntime) -> int:
    created = 0
    for work in (rerouting.route_waiting, escalations_due, digests_due, reminders_due):
        try:
            created += await work(ctx, runtime)
        except Exception as error:  # one failing kind must not stop the others
            log.warning(
                "scheduled notify work failed; retrying",
                work=work.__name__,
                error=f"{type(error).__name__}: {error}"[:300],
            )
    return created


async def schedule_forever(runtime: ServiceRuntime) -> None:
    ctx: NotifyContext = runtime.state["notify"]
    interval = runtime.settings.notify_scheduler_seconds
    while not runtime.stopping.is_set():
        if await run_due(ctx, runtime):
            ctx.wake_dispatcher()
        try:
            await asyncio.wait_for(runtime.stopping.wait(), interval)
        except TimeoutError:
            pass
