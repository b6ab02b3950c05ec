"""``/notify/undelivered`` (site admins and clinical leads: notices no channel of their site
could carry) and ``/notify/fallbacks/{site_id}`` (the address that hears of urgent ones)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from services.notify.dependencies import Deps
from services.notify.mapping import (
    FallbackOut,
    UndeliveredOut,
    WaitingStatus,
    fallback_out,
    undelivered_out,
)
from services.notify.models import NotifySiteFallback
from services.notify.routes.params import Email, SiteId
from services.notify.usecases import undelivered
from shared.audit import audited
from shared.auth import CurrentStaff
from shared.contracts import Id
from shared.http import DEFAULT_PAGE_SIZE, PageLimit, PageOffset

router = APIRouter()
UNDELIVERED_READERS = ("site_admin", "clinical_lead")


@router.get(
    "/undelivered",
    dependencies=[audited("notify", "undelivered.read", "undelivered")],
    response_model=list[UndeliveredOut],
    summary="A site's notices no webhook or contact could carry: waiting for one (default), or "
    "routed once one existed; urgent first, oldest first",
)
async def list_undelivered(
    deps: Deps,
    staff: CurrentStaff,
    site_id: Id,
    status: WaitingStatus = "waiting",
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
) -> list[UndeliveredOut]:
    staff.require_role(*UNDELIVERED_READERS)
    staff.require_site(site_id)
    async with deps.runtime.sessionmaker() as session:
        rows = await undelivered.list_undelivered(session, site_id, status, limit, offset)
    clinical = staff.role == "clinical_lead"
    return [undelivered_out(r, clinical) for r in rows]


class FallbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email = Field(max_length=254, description="e.g. the clinic's on-call mailbox")


@router.put(
    "/fallbacks/{site_id}",
    response_model=FallbackOut,
    summary="Set the address that hears of a site's urgent notices no webhook or contact can "
    "carry (stored sealed, never returned)",
)
async def put_fallback(
    deps: Deps, site_id: SiteId, body: FallbackIn, staff: CurrentStaff
) -> FallbackOut:
    staff.require_role("site_admin")
    staff.require_site(site_id)
    async with deps.runtime.transaction() as session:
        row = await undelivered.set_fallback(deps, session, site_id, body.email, staff.subject)
    return fallback_out(site_id, row, deps.ops_fallback)


@router.get(
    "/fallbacks/{site_id}",
    response_model=FallbackOut,
    summary="Whether a site has a fallback address, and whether the ops fallback applies",
)
async def get_fallback(deps: Deps, site_id: SiteId, staff: CurrentStaff) -> FallbackOut:
    staff.require_role(*UNDELIVERED_READERS)
    staff.require_site(site_id)
    async with deps.runtime.sessionmaker() as session:
        row = await session.get(NotifySiteFallback, site_id)
    return fallback_out(site_id, row, deps.ops_fallback)


@router.delete(
    "/fallbacks/{site_id}",
    status_code=204,
    response_class=Response,
    summary="Remove a site's fallback address (the ops fallback applies again)",
)
async def delete_fallback(deps: Deps, site_id: SiteId, staff: CurrentStaff) -> Response:
    staff.require_role("site_admin")
    staff.require_site(site_id)
    async with deps.runtime.transaction() as session:
        await undelivered.remove_fallback(session, site_id)
    return Response(status_code=204)
