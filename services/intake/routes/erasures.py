"""Erasure of a client's data in every service, on request."""

from __future__ import annotations

from fastapi import APIRouter

from services.intake import erasure
from services.intake.dependencies import Deps
from services.intake.mapping import ErasureIn, ErasureOut
from shared.audit import audited
from shared.auth import CurrentStaff

router = APIRouter(prefix="/intake", tags=["intake"])
REQUEST_ERASURE = ("site_admin", "clinical_lead")


@router.post(
    "/erasures",
    status_code=202,
    response_model=ErasureOut,
    summary="Erase a client's data in every service (site admin or clinical lead)",
    dependencies=[audited("intake", "client.erase", "client")],
)
async def request_erasure(deps: Deps, body: ErasureIn, staff: CurrentStaff) -> ErasureOut:
    staff.require_role(*REQUEST_ERASURE)
    staff.require_site(body.site_id)
    async with deps.runtime.transaction() as session:
        return await erasure.request_erasure(deps, session, staff, body)
