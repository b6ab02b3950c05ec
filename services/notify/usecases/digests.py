"""Digests: routine notices a policy batches are sent as one message per recipient, channel and
window once the window closes, carrying the count of what it batches and how long each has
been open (no clinical detail). An alert that ended (resolved or closed) before its digest is
left out (its delivery cancelled)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify import domain, mapping
from services.notify.delivery_rows import message_payload, message_row
from services.notify.dependencies import NotifyDependencies
from services.notify.models import (
    NotifyAlertLife,
    NotifyDelivery,
    NotifyNotice,
    NotifyStaffContact,
)
from services.notify.open_alerts import digest_message
from services.notify.usecases.notices import insert_deliveries
from shared.db import dialect_of


async def alerts_opened_at(session: AsyncSession, notice_ids: list[str]) -> dict[str, datetime]:
    """When each of these notices was made, for those still open: a notice of an alert that
    ended (notify_alert_lives) is left out."""
    if not notice_ids:
        return {}
    notices = (
        await session.exec(select(NotifyNotice).where(col(NotifyNotice.id).in_(set(notice_ids))))
    ).all()
    alert_of = {
        n.id: json.loads(n.data).get("alert_id")
        for n in notices
        if n.source_type == "alliance.alert"
    }
    ended = set(
        (
            await session.exec(
                select(NotifyAlertLife.alert_id).where(
                    col(NotifyAlertLife.alert_id).in_({a for a in alert_of.values() if a}),
                    col(NotifyAlertLife.ended_at).is_not(None),
                )
            )
        ).all()
    )
    return {
        n.id: n.created_at
        for n in notices
        if alert_of.get(n.id) not in ended or not alert_of.get(n.id)
    }


async def digests_due(deps: NotifyDependencies, limit: int = 2000) -> int:
    """Close the digest windows that ended (one transaction); the digests created."""
    now = datetime.now(UTC)
    async with deps.runtime.sessionmaker() as session, session.begin():
        statement = (
            select(NotifyDelivery)
            .where(NotifyDelivery.status == "digest", col(NotifyDelivery.next_attempt_at) <= now)
            .order_by(col(NotifyDelivery.next_attempt_at))
            .limit(limit)
        )
        if dialect_of(session) == "postgresql":
            statement = statement.with_for_update(skip_locked=True)
        batch = (await session.exec(statement)).all()
        if not batch:
            return 0
        opened = await alerts_opened_at(session, [i.notice_id for i in batch if i.notice_id])
        ended = [i.id for i in batch if i.notice_id and i.notice_id not in opened]
        if ended:  # resolved or closed since: no longer worth a line in a digest
            await session.execute(
                update(NotifyDelivery)
                .where(col(NotifyDelivery.id).in_(ended))
                .values(status="cancelled")
            )
        items = [i for i in batch if i.id not in set(ended)]
        if not items:
            return 0
        opened_of = {i.id: opened.get(i.notice_id or "", i.created_at) for i in items}
        groups = domain.group_digest(
            domain.DigestItem(
                i.id, i.site_id, i.recipient, i.channel, i.endpoint_id, i.next_attempt_at
            )
            for i in items
        )
        contacts = {
            c.id: mapping.contact_point(c)
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
            batch_hash = hashlib.sha256(",".join(sorted(ids)).encode()).hexdigest()[:16]
            rows.append(
                message_row(
                    delivery_id=digest_id,
                    key=f"{domain.digest_notice_key(group)}:{batch_hash}",
                    recipient=recipient,
                    channel=channel,
                    endpoint_id=endpoint_id,
                    recipient_role=contact.role if contact else "staff",
                    payload=message_payload(digest_message([opened_of[i] for i in ids], now)),
                    source_event_id=f"digest-{digest_id}",
                    site_id=site_id,
                    kind="digest",
                    due=domain.not_before(now, False, contact.quiet if contact else None),
                    now=now,
                )
            )
            await session.execute(
                update(NotifyDelivery)
                .where(col(NotifyDelivery.id).in_(ids))
                .values(status="batched", digest_id=digest_id)
            )
        return await insert_deliveries(session, rows)
