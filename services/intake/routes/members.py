"""An episode's partners and family members, added or removed at any time while it is open."""

from __future__ import annotations

from fastapi import APIRouter, Response

from services.intake.dependencies import Deps
from services.intake.mapping import MemberIn
from services.intake.usecases import members
from shared.audit import audited
from shared.auth import CurrentStaff
from shared.contracts import EpisodeMember, Id, Pseudonym

router = APIRouter(prefix="/intake", tags=["intake"])

CHANGE_MEMBERS = ("intake_coordinator", "clinical_lead", "site_admin", "therapist")


@router.post(
    "/episodes/{episode_id}/members",
    dependencies=[audited("intake", "episode.member.add", "episode", "episode_id")],
    status_code=201,
    response_model=EpisodeMember,
    summary="Add a partner or family member to an open episode (their pseudonym is returned; "
    "the reference is neither stored nor published)",
)
async def add_member(
    deps: Deps, episode_id: Id, body: MemberIn, staff: CurrentStaff
) -> EpisodeMember:
    staff.require_role(*CHANGE_MEMBERS)
    async with deps.runtime.transaction() as session:
        return await members.add_member(deps, session, staff, episode_id, body)


@router.delete(
    "/episodes/{episode_id}/members/{respondent}",
    dependencies=[audited("intake", "episode.member.remove", "episode", "episode_id")],
    status_code=204,
    response_class=Response,
    summary="Remove a partner or family member from an open episode (no more invitations)",
)
async def remove_member(
    deps: Deps, episode_id: Id, respondent: Pseudonym, staff: CurrentStaff
) -> Response:
    staff.require_role(*CHANGE_MEMBERS)
    async with deps.runtime.transaction() as session:
        await members.remove_member(deps, session, staff, episode_id, respondent)
    return Response(status_code=204)
