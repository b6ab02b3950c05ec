"""A site's summary (alerts, repairs, outcomes, therapist estimates), its follow-up figures
and the HTML report a supervisor opens in a browser."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from services.analytics.dependencies import Deps
from services.analytics.mapping import FollowUpOut, SiteSummaryOut
from services.analytics.routes.roles import AGGREGATES
from services.analytics.usecases import sites
from services.analytics.usecases.follow_up_figures import follow_up_at_site
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


@router.get(
    "/sites/{site_id}/follow-up",
    response_model=FollowUpOut,
    summary="What followed each action on a site's alerts, and the alerts nobody acted on",
)
async def site_follow_up(deps: Deps, site_id: Id, staff: CurrentStaff) -> FollowUpOut:
    staff.require_role(*AGGREGATES)
    staff.require_site(site_id)
    async with deps.runtime.sessionmaker() as session:
        return await follow_up_at_site(deps, session, site_id, datetime.now(UTC))
