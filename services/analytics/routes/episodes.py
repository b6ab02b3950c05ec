"""An episode's timeline (scores and alerts by session) and its chart, for clinicians who may
see the client."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from services.analytics.dependencies import Deps
from services.analytics.mapping import TimelineOut
from services.analytics.routes.roles import CLINICAL
from services.analytics.usecases import episodes
from shared.audit import audited
from shared.auth import CurrentStaff
from shared.contracts import Id

router = APIRouter()


@router.get(
    "/episodes/{episode_id}/timeline",
    dependencies=[audited("analytics", "timeline.read", "episode", "episode_id")],
    response_model=TimelineOut,
    summary="An episode's scores, alerts, ruptures and repairs, by session",
)
async def episode_timeline(deps: Deps, episode_id: Id, staff: CurrentStaff) -> TimelineOut:
    staff.require_role(*CLINICAL)
    async with deps.runtime.sessionmaker() as session:
        episode = await episodes.visible_episode(session, staff, episode_id)
        return await episodes.timeline(session, episode, deps)


@router.get(
    "/episodes/{episode_id}/chart.svg",
    dependencies=[audited("analytics", "chart.read", "episode", "episode_id")],
    response_class=Response,
    summary="Alliance and outcome by session (SVG)",
    responses={200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}}}},
)
async def episode_chart_svg(deps: Deps, episode_id: Id, staff: CurrentStaff) -> Response:
    staff.require_role(*CLINICAL)
    async with deps.runtime.sessionmaker() as session:
        episode = await episodes.visible_episode(session, staff, episode_id)
        svg = await episodes.episode_chart_svg(deps, session, episode)
    return Response(svg, media_type="image/svg+xml")
