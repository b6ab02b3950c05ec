"""Digests: routine notices a policy batches are sent as one message per recipient, channel and
window once the window closes, carrying the count of what it batches (no clinical detail)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

from sqlalchemy import update
from sqlmodel import col, select

from services.notify import domain, mapping
from services.notify.delivery_rows import message_payload, message_row
from services.notify.dependencies import NotifyDependencies
from services.notify.models import NotifyDelivery, NotifyStaffContact
from services.notify.usecases.notices import insert_deliveries
from shared.db import dialect_of


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
                    payload=message_payload(domain.staff_message("digest", False, len(ids))),
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
