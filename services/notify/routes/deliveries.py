"""``/notify/deliveries``: a site's delivery log (site admins, clinical leads, supervisors),
acknowledgement by the staff it concerns, and sending a failed one again (site admins)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from services.notify.dependencies import Deps
from services.notify.mapping import AckOut, DeliveryOut, delivery_out
from services.notify.routes.params import PathId
from services.notify.usecases import deliveries
from shared.audit import audited
from shared.auth import CurrentStaff
from shared.contracts import Id
from shared.http import DEFAULT_PAGE_SIZE, PageLimit, PageOffset

router = APIRouter()
LOG_READERS = ("site_admin", "clinical_lead", "supervisor")
ACKNOWLEDGERS = ("therapist", "supervisor", "clinical_lead", "site_admin", "intake_coordinator")
DeliveryStatus = Literal[
    "pending", "sending", "digest", "batched", "delivered", "failed", "cancelled"
]
DeliveryKind = Literal["alert", "escalation", "digest", "invitation", "reminder", "results"]


@router.get(
    "/deliveries",
    dependencies=[audited("notify", "deliveries.read", "deliveries")],
    response_model=list[DeliveryOut],
    summary="A site's delivery log",
)
async def list_deliveries(
    deps: Deps,
    staff: CurrentStaff,
    site_id: Id,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
    status: DeliveryStatus | None = None,
    kind: Annotated[DeliveryKind | None, Query()] = None,
) -> list[DeliveryOut]:
    staff.require_role(*LOG_READERS)
    staff.require_site(site_id)
    async with deps.runtime.sessionmaker() as session:
        rows = await deliveries.list_deliveries(session, site_id, limit, offset, status, kind)
    return [delivery_out(r) for r in rows]


@router.get(
    "/deliveries/{delivery_id}",
    dependencies=[audited("notify", "delivery.read", "delivery", "delivery_id")],
    response_model=DeliveryOut,
    summary="One delivery",
)
async def get_delivery(deps: Deps, delivery_id: PathId, staff: CurrentStaff) -> DeliveryOut:
    staff.require_role(*LOG_READERS)
    async with deps.runtime.sessionmaker() as session:
        return delivery_out(await deliveries.visible_delivery(session, delivery_id, staff))


@router.post(
    "/deliveries/{delivery_id}/ack",
    dependencies=[audited("notify", "delivery.ack", "delivery", "delivery_id")],
    response_model=AckOut,
    summary="Acknowledge a delivery (the front-end, when a clinician has seen it): an urgent "
    "notice acknowledged in time is not escalated",
)
async def acknowledge(deps: Deps, delivery_id: PathId, staff: CurrentStaff) -> AckOut:
    staff.require_role(*ACKNOWLEDGERS)
    async with deps.runtime.transaction() as session:
        row, escalation = await deliveries.acknowledge(deps, session, staff, delivery_id)
    assert row.acknowledged_at is not None and row.acknowledged_by is not None
    return AckOut(
        delivery_id=row.id,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        notice_id=row.notice_id,
        escalation=escalation,
    )


@router.post(
    "/deliveries/{delivery_id}/retry",
    dependencies=[audited("notify", "delivery.retry", "delivery", "delivery_id")],
    response_model=DeliveryOut,
    summary="Send a failed (dead-lettered) delivery again, with a fresh retry schedule",
)
async def retry_delivery(deps: Deps, delivery_id: PathId, staff: CurrentStaff) -> DeliveryOut:
    staff.require_role("site_admin")
    async with deps.runtime.transaction() as session:
        row = await deliveries.retry_delivery(session, staff, delivery_id)
    deps.wake_dispatcher()  # after the commit: the dispatcher finds it
    return delivery_out(row)
