"""Notices no channel of their site could carry (``undelivered``): the list site admins and
clinical leads act on, and a site's fallback address for urgent ones (sealed, never shown)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from services.notify.api_routing import Email, SiteId, _ctx, _runtime
from services.notify.context import fallback_owner
from services.notify.models import NotifyNotice, NotifySiteFallback
from shared.audit import audited
from shared.auth import CurrentStaff
from shared.contracts import Id
from shared.http import DEFAULT_PAGE_SIZE, PageLimit, PageOffset

router = APIRouter()

UNDELIVERED_READERS = ("site_admin", "clinical_lead")
WaitingStatus = Literal["waiting", "routed"]


class UndeliveredOut(BaseModel):
    """A notice no channel of its site could carry. Episode, therapist and session are shown
    to clinical leads (who act on the client's behalf); site admins see what to set up."""

    notice_id: str
    site_id: str
    kind: str
    severity: str
    urgent: bool
    source_type: str
    reason: str = Field(
        description="site_not_set_up: no policy, webhook or contact for the site; "
        "no_channel_for_recipients: nothing reaches the people this notice is for"
    )
    status: WaitingStatus = Field(
        description="waiting: for a webhook or contact; routed: delivered once one existed"
    )
    since: datetime
    routed_at: datetime | None
    fallback: Literal["site", "ops"] | None = Field(
        description="who was told of an urgent one: the site's fallback address or ops"
    )
    fallback_at: datetime | None
    acknowledged_at: datetime | None
    episode_id: str | None = None
    therapist_id: str | None = None
    session_number: int | None = None


def _undelivered_out(row: NotifyNotice, clinical: bool) -> UndeliveredOut:
    session_number = json.loads(row.data).get("session_number") if clinical else None
    return UndeliveredOut(
        notice_id=row.id,
        site_id=row.site_id,
        kind=row.kind,
        severity=row.severity,
        urgent=row.urgent,
        source_type=row.source_type,
        reason=row.undeliverable_reason or "",
        status="waiting" if row.awaiting_route_since is not None else "routed",
        since=row.created_at,
        routed_at=row.routed_at,
        fallback=row.fallback_to,
        fallback_at=row.fallback_at,
        acknowledged_at=row.acknowledged_at,
        episode_id=row.episode_id if clinical else None,
        therapist_id=row.therapist_id if clinical else None,
        session_number=session_number if isinstance(session_number, int) else None,
    )


@router.get(
    "/undelivered",
    dependencies=[audited("notify", "undelivered.read", "undelivered")],
    response_model=list[UndeliveredOut],
    summary="A site's notices no webhook or contact could carry: waiting for one (default), or "
    "routed once one existed; urgent first, oldest first",
)
async def list_undelivered(
    request: Request,
    staff: CurrentStaff,
    site_id: Id,
    status: WaitingStatus = "waiting",
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
) -> list[UndeliveredOut]:
    staff.require_role(*UNDELIVERED_READERS)
    staff.require_site(site_id)
    statement = select(NotifyNotice).where(NotifyNotice.site_id == site_id)
    if status == "waiting":
        statement = statement.where(col(NotifyNotice.awaiting_route_since).is_not(None))
    else:
        statement = statement.where(
            col(NotifyNotice.undeliverable_reason).is_not(None),
            col(NotifyNotice.routed_at).is_not(None),
        )
    async with _runtime(request).sessionmaker() as session:
        rows = (
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
    clinical = staff.role == "clinical_lead"
    return [_undelivered_out(r, clinical) for r in rows]


# -- a site's fallback address -------------------------------------------------------------------


class FallbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email = Field(max_length=254, description="e.g. the clinic's on-call mailbox")


class FallbackOut(BaseModel):
    site_id: str
    has_email: bool = Field(description="the site has a fallback address (never shown)")
    ops_fallback: bool = Field(
        description="the deployment's ops fallback hears of it when the site has none"
    )
    updated_at: datetime | None = None
    updated_by: str | None = None


def _fallback_out(request: Request, site_id: str, row: NotifySiteFallback | None) -> FallbackOut:
    return FallbackOut(
        site_id=site_id,
        has_email=row is not None,
        ops_fallback=_ctx(request).ops_fallback is not None,
        updated_at=row.updated_at if row else None,
        updated_by=row.updated_by if row else None,
    )


@router.put(
    "/fallbacks/{site_id}",
    response_model=FallbackOut,
    summary="Set the address that hears of a site's urgent notices no webhook or contact can "
    "carry (stored sealed, never returned)",
)
async def put_fallback(
    request: Request, site_id: SiteId, body: FallbackIn, staff: CurrentStaff
) -> FallbackOut:
    staff.require_role("site_admin")
    staff.require_site(site_id)
    ctx = _ctx(request)
    now = datetime.now(UTC)
    async with _runtime(request).transaction() as session:
        row = await session.get(NotifySiteFallback, site_id)
        row = row or NotifySiteFallback(
            site_id=site_id, email_sealed="", updated_at=now, updated_by=""
        )
        row.email_sealed = ctx.seal_address(body.email, fallback_owner(site_id))
        row.updated_at, row.updated_by = now, staff.subject[:128]
        session.add(row)
    return _fallback_out(request, site_id, row)


@router.get(
    "/fallbacks/{site_id}",
    response_model=FallbackOut,
    summary="Whether a site has a fallback address, and whether the ops fallback applies",
)
async def get_fallback(request: Request, site_id: SiteId, staff: CurrentStaff) -> FallbackOut:
    staff.require_role(*UNDELIVERED_READERS)
    staff.require_site(site_id)
    async with _runtime(request).sessionmaker() as session:
        row = await session.get(NotifySiteFallback, site_id)
    return _fallback_out(request, site_id, row)


@router.delete(
    "/fallbacks/{site_id}",
    status_code=204,
    response_class=Response,
    summary="Remove a site's fallback address (the ops fallback applies again)",
)
async def delete_fallback(request: Request, site_id: SiteId, staff: CurrentStaff) -> Response:
    staff.require_role("site_admin")
    staff.require_site(site_id)
    async with _runtime(request).transaction() as session:
        row = await session.get(NotifySiteFallback, site_id)
        if row is not None:
            await session.delete(row)
    return Response(status_code=204)
