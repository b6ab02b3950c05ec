"""The delivery log of a site, acknowledging a delivery (and its notice: no escalation
then) and sending a failed one again."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify import mapping
from services.notify.dependencies import NotifyDependencies
from services.notify.errors import DeliveryNotFailed, delivery_not_found
from services.notify.mapping import Escalation
from services.notify.models import NotifyDelivery, NotifyNotice
from shared.auth import Staff


async def list_deliveries(
    session: AsyncSession,
    site_id: str,
    limit: int,
    offset: int,
    status: str | None = None,
    kind: str | None = None,
) -> Sequence[NotifyDelivery]:
    statement = select(NotifyDelivery).where(NotifyDelivery.site_id == site_id)
    if status is not None:
        statement = statement.where(NotifyDelivery.status == status)
    if kind is not None:
        statement = statement.where(NotifyDelivery.kind == kind)
    return (
        await session.exec(
            statement.order_by(col(NotifyDelivery.created_at).desc(), col(NotifyDelivery.id))
            .offset(offset)
            .limit(limit)
        )
    ).all()


async def visible_delivery(session: AsyncSession, delivery_id: str, staff: Staff) -> NotifyDelivery:
    row = await session.get(NotifyDelivery, delivery_id)
    if row is None or not staff.can_access_site(row.site_id):
        raise delivery_not_found(delivery_id)
    return row


async def addressed_to_therapist(session: AsyncSession, row: NotifyDelivery, staff: Staff) -> bool:
    """A therapist acknowledges only what concerns their own clients: a message to them, or a
    site webhook about an episode they treat."""
    if row.recipient == f"staff:therapist:{staff.subject}":
        return True
    if not row.recipient.startswith("endpoint:") or row.notice_id is None:
        return False
    notice = await session.get(NotifyNotice, row.notice_id)
    return notice is not None and notice.therapist_id == staff.subject


async def acknowledge(
    deps: NotifyDependencies, session: AsyncSession, staff: Staff, delivery_id: str
) -> tuple[NotifyDelivery, Escalation]:
    """The delivery is acknowledged, and its notice with it (an urgent one is not escalated
    then). The first acknowledgement of an alert's notice tells analytics the alert was seen
    (``notification.acknowledged``, through the outbox)."""
    now = datetime.now(UTC)
    escalation: Escalation = "none"
    row = await visible_delivery(session, delivery_id, staff)
    if staff.role == "therapist" and not await addressed_to_therapist(session, row, staff):
        raise delivery_not_found(delivery_id)
    if row.acknowledged_at is None:
        row.acknowledged_at, row.acknowledged_by = now, staff.subject[:128]
        session.add(row)
    notice = None if row.notice_id is None else await session.get(NotifyNotice, row.notice_id)
    if notice is None:
        return row, escalation
    if notice.urgent or notice.escalate_at is not None or notice.escalated_at is not None:
        if notice.escalated_at is not None:
            escalation = "already_escalated"
        elif notice.acknowledged_at is None:
            escalation = "cancelled"
    if notice.acknowledged_at is None:
        notice.acknowledged_at, notice.acknowledged_by = now, staff.subject[:128]
        notice.escalate_at = None  # nothing left to escalate
        session.add(notice)
        seen = mapping.alert_seen(row.id, notice, now)
        if seen is not None:
            await deps.runtime.emit(session, seen)
    return row, escalation


async def retry_delivery(session: AsyncSession, staff: Staff, delivery_id: str) -> NotifyDelivery:
    """A failed (dead-lettered) delivery is sent again, with a fresh retry schedule."""
    row = await visible_delivery(session, delivery_id, staff)
    if row.status != "failed":
        raise DeliveryNotFailed(
            f"Only failed deliveries can be retried; this one is {row.status}.",
            errors=[{"field": "delivery_id", "rule": "not_failed"}],
        )
    row.status, row.attempts, row.next_attempt_at = "pending", 0, datetime.now(UTC)
    row.failed_at = None
    session.add(row)
    return row
