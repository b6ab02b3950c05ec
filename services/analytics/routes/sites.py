"""A site's summary (alerts, repairs, outcomes, therapist estimates) and the HTML report a
supervisor opens in a browser."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from services.analytics.dependencies import Deps
from services.analytics.mapping import SiteSummaryOut
from services.analytics.routes.roles import AGGREGATES
from services.analytics.usecases import sites
from shared.auth import CurrentStaff
from shared.contracts import Id

router = APIRouter()


@router.get(
    "/sites/{site_id}/summary",
    response_model=SiteSummaryOut,
    summary="A site's alerts, repairs, outcomes and therapist estimates",
)
async def site_summary(deps: Deps, site_id: Id, staff: CurrentStaff) -> SiteSummaryOut:
    staff.require_role(*AGGREGATES)
    staff.require_site(site_id)
    async with deps.runtime.sessionmaker() as session:
        return await sites.site_summary(session, site_id)


@router.get(
    "/sites/{site_id}/report",
    response_class=HTMLResponse,
    summary="A site report (HTML with charts) for supervisors",
)
async def site_report(deps: Deps, site_id: Id, staff: CurrentStaff) -> HTMLResponse:
    staff.require_role("supervisor", "clinical_lead")
    staff.require_site(site_id)
    async with deps.runtime.sessionmaker() as session:
        html = await sites.site_report(deps, session, site_id)
    return HTMLResponse(html)
