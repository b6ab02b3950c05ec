"""Notices no channel of their site could carry (see ``services.notify.undelivered``): the list
site admins and clinical leads act on, and a site's fallback address for urgent ones (sealed,
never shown)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify.dependencies import NotifyDependencies
from services.notify.models import NotifyNotice, NotifySiteFallback
from services.notify.sealing import fallback_owner


async def list_undelivered(
    session: AsyncSession, site_id: str, status: str, limit: int, offset: int
) -> Sequence[NotifyNotice]:
    """Waiting for a route, or routed once one existed; urgent first, oldest first."""
    statement = select(NotifyNotice).where(NotifyNotice.site_id == site_id)
    if status == "waiting":
        statement = statement.where(col(NotifyNotice.awaiting_route_since).is_not(None))
    else:
        statement = statement.where(
            col(NotifyNotice.undeliverable_reason).is_not(None),
            col(NotifyNotice.routed_at).is_not(None),
        )
    return (
        await session.exec(
            statement.order_by(
                col(NotifyNotice.urgent).desc(),
                col(NotifyNotice.created_at),
                col(NotifyNotice.id),
            )
            .offset(offset)
            .limit(limit)
        )
    ).all()


async def set_fallback(
    deps: NotifyDependencies, session: AsyncSession, site_id: str, email: str, author: str
) -> NotifySiteFallback:
    now = datetime.now(UTC)
    row = await session.get(NotifySiteFallback, site_id)
    row = row or NotifySiteFallback(site_id=site_id, email_sealed="", updated_at=now, updated_by="")
    row.email_sealed = deps.sealing.seal_address(email, fallback_owner(site_id))
    row.updated_at, row.updated_by = now, author[:128]
    session.add(row)
    return row


async def remove_fallback(session: AsyncSession, site_id: str) -> None:
    row = await session.get(NotifySiteFallback, site_id)
    if row is not None:
        await session.delete(row)
