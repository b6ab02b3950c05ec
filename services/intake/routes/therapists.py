"""The therapist registry (site_admin of every site the therapist works at)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from services.intake.dependencies import Deps
from services.intake.mapping import (
    ImportOut,
    TherapistFields,
    TherapistIn,
    TherapistOut,
    therapist_out,
)
from services.intake.usecases import registry
from shared.auth import CurrentStaff
from shared.contracts import Id
from shared.http import DEFAULT_PAGE_SIZE, PageLimit, PageOffset

router = APIRouter(prefix="/intake", tags=["intake"])

MANAGE_THERAPISTS = ("site_admin",)
READ_THERAPISTS = ("site_admin", "intake_coordinator", "clinical_lead", "supervisor")


@router.post(
    "/therapists", status_code=201, response_model=TherapistOut, summary="Register a therapist"
)
async def create_therapist(deps: Deps, body: TherapistIn, staff: CurrentStaff) -> TherapistOut:
    staff.require_role(*MANAGE_THERAPISTS)
    registry.require_sites(staff, body.sites)
    row = registry.checked_therapist(body, body.id)
    async with deps.runtime.transaction() as session:
        await registry.register_therapist(session, row)
    return therapist_out(row)


@router.put("/therapists/{therapist_id}", response_model=TherapistOut, summary="Update a therapist")
async def update_therapist(
    deps: Deps, therapist_id: Id, body: TherapistFields, staff: CurrentStaff
) -> TherapistOut:
    staff.require_role(*MANAGE_THERAPISTS)
    registry.require_sites(staff, body.sites)
    registry.checked_therapist(body, therapist_id)
    async with deps.runtime.transaction() as session:
        row = await registry.update_therapist(session, staff, therapist_id, body)
    return therapist_out(row)


@router.post(
    "/therapists/{therapist_id}/deactivate",
    response_model=TherapistOut,
    summary="Deactivate a therapist (never offered again; episodes stay)",
)
async def deactivate_therapist(deps: Deps, therapist_id: Id, staff: CurrentStaff) -> TherapistOut:
    staff.require_role(*MANAGE_THERAPISTS)
    async with deps.runtime.transaction() as session:
        row = await registry.deactivate_therapist(session, staff, therapist_id)
    return therapist_out(row)


@router.get("/therapists", response_model=list[TherapistOut], summary="Therapists of a site")
async def list_therapists(
    deps: Deps,
    site_id: Id,
    staff: CurrentStaff,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
) -> list[TherapistOut]:
    staff.require_role(*READ_THERAPISTS)
    staff.require_site(site_id)
    async with deps.runtime.sessionmaker() as session:
        rows = await registry.therapists_at(session, site_id, offset, limit)
    return [therapist_out(r) for r in rows]


@router.post(
    "/therapists/import",
    response_model=ImportOut,
    summary="Register or update a whole site's therapists (JSON list; all or nothing)",
)
async def import_therapists(
    deps: Deps,
    body: Annotated[list[TherapistIn], Body(max_length=5000)],
    staff: CurrentStaff,
) -> ImportOut:
    staff.require_role(*MANAGE_THERAPISTS)
    registry.check_import(staff, body)
    async with deps.runtime.transaction() as session:
        created, updated = await registry.import_therapists(session, staff, body)
    return ImportOut(created=created, updated=updated)
