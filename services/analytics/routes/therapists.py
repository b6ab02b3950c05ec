"""A therapist's effectiveness per problem domain: for those who see aggregates, and for the
therapist themself."""

from __future__ import annotations

from fastapi import APIRouter

from services.analytics.dependencies import Deps
from services.analytics.mapping import DomainEffectivenessOut
from services.analytics.routes.roles import AGGREGATES
from services.analytics.usecases import sites
from shared.auth import CurrentStaff
from shared.contracts import Id
from shared.http import DEFAULT_PAGE_SIZE, PageLimit, PageOffset

router = APIRouter()


@router.get(
    "/therapists/{therapist_id}/effectiveness",
    response_model=list[DomainEffectivenessOut],
    summary="A therapist's shrunken effectiveness per problem domain, with intervals",
)
async def therapist_summary(
    deps: Deps,
    therapist_id: Id,
    site_id: Id,
    staff: CurrentStaff,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
) -> list[DomainEffectivenessOut]:
    if not (
        staff.role in AGGREGATES or (staff.role == "therapist" and staff.subject == therapist_id)
    ):
        staff.require_role(*AGGREGATES)
    staff.require_site(site_id)
    async with deps.runtime.sessionmaker() as session:
        return await sites.therapist_effectiveness_at_site(
            session, site_id, therapist_id, limit, offset
        )
