"""Episodes: open one with a chosen therapist, read one, plan its end, close one."""

from __future__ import annotations

from fastapi import APIRouter, Request

from services.intake.dependencies import Deps
from services.intake.mapping import CloseIn, EpisodeIn, EpisodeOut, episode_out
from services.intake.usecases import episodes
from shared.audit import audited, note_site
from shared.auth import CurrentStaff
from shared.contracts import Id

router = APIRouter(prefix="/intake", tags=["intake"])

MANAGE_EPISODES = ("intake_coordinator", "clinical_lead", "site_admin")
READ_EPISODES = ("intake_coordinator", "clinical_lead", "supervisor", "therapist")


@router.post(
    "/episodes",
    dependencies=[audited("intake", "episode.open", "episode")],
    status_code=201,
    response_model=EpisodeOut,
    summary="Open an episode with a chosen therapist",
)
async def open_episode(deps: Deps, body: EpisodeIn, staff: CurrentStaff) -> EpisodeOut:
    staff.require_role(*MANAGE_EPISODES)
    staff.require_site(body.site_id)
    async with deps.runtime.transaction() as session:
        row = await episodes.open_episode(deps, session, body)
    return episode_out(row)


@router.get(
    "/episodes/{episode_id}",
    dependencies=[audited("intake", "episode.read", "episode", "episode_id")],
    response_model=EpisodeOut,
    summary="One episode",
)
async def get_episode(
    request: Request, deps: Deps, episode_id: Id, staff: CurrentStaff
) -> EpisodeOut:
    staff.require_role(*READ_EPISODES)
    async with deps.runtime.sessionmaker() as session:
        row = await episodes.episode_for(session, staff, episode_id)
    note_site(request, row.site_id)
    return episode_out(row)


@router.post(
    "/episodes/{episode_id}/close",
    dependencies=[audited("intake", "episode.close", "episode", "episode_id")],
    response_model=EpisodeOut,
    summary="Close an episode (completed, dropped out or withdrawn)",
)
async def close_episode(
    deps: Deps, episode_id: Id, body: CloseIn, staff: CurrentStaff
) -> EpisodeOut:
    staff.require_role(*MANAGE_EPISODES, "therapist")
    async with deps.runtime.transaction() as session:
        row = await episodes.close_episode(deps, session, staff, episode_id, body.reason)
    return episode_out(row)


@router.post(
    "/episodes/{episode_id}/closing",
    dependencies=[audited("intake", "episode.closing", "episode", "episode_id")],
    response_model=EpisodeOut,
    summary="Plan the end of an active episode (phase closing)",
)
async def plan_ending(deps: Deps, episode_id: Id, staff: CurrentStaff) -> EpisodeOut:
    staff.require_role(*MANAGE_EPISODES, "therapist")
    async with deps.runtime.transaction() as session:
        row = await episodes.plan_ending(deps, session, staff, episode_id)
    return episode_out(row)
