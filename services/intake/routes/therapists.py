"""The therapist registry (site_admin of every site the therapist works at)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import Field, TypeAdapter

from services.intake.dependencies import Deps
from services.intake.mapping import (
    ImportOut,
    TherapistFields,
    TherapistIn,
    TherapistOut,
    therapist_out,
)
from services.intake.routes.bodies import DryRun
from services.intake.usecases import imports, registry
from shared.auth import CurrentStaff
from shared.contracts import Id
from shared.csv_table import CSV_MEDIA_TYPE
from shared.http import DEFAULT_PAGE_SIZE, PageLimit, PageOffset
from shared.request_bodies import is_csv, json_body

router = APIRouter(prefix="/intake", tags=["intake"])

MANAGE_THERAPISTS = ("site_admin",)
READ_THERAPISTS = ("site_admin", "intake_coordinator", "clinical_lead", "supervisor")
MAX_IMPORT = 5000
THERAPIST_LIST = TypeAdapter(Annotated[list[TherapistIn], Field(max_length=MAX_IMPORT)])


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


IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/TherapistIn"},
                    "maxItems": MAX_IMPORT,
                }
            },
            CSV_MEDIA_TYPE: {
                "schema": {"type": "string"},
                "example": "id,sites,languages,capacity,modalities,availability\n"
                "th-1,site-a,en;fr,12,cbt;ipt,mon 09:00-17:00; wed 13:00-18:00\n",
            },
        },
    }
}


@router.post(
    "/therapists/import",
    response_model=ImportOut,
    response_model_exclude_none=True,
    summary="Register or update a whole site's therapists (JSON list or CSV; all or nothing)",
    description="A JSON list of therapists, or `text/csv` with a header row (columns as the "
    "JSON fields; lists separated by `;`; availability as `mon 09:00-17:00; wed 13:00-18:00`). "
    "Every bad row is named (line and column) before anything is stored; `dry_run=true` "
    "checks and counts without storing.",
    openapi_extra=IMPORT_BODY,
)
async def import_therapists(
    deps: Deps, request: Request, staff: CurrentStaff, dry_run: DryRun = False
) -> ImportOut:
    staff.require_role(*MANAGE_THERAPISTS)
    body = await request.body()
    if is_csv(request):
        items = [read.item for read in imports.therapists_from_csv(body)]
        for item in items:
            registry.require_sites(staff, item.sites)
    else:
        items = json_body(THERAPIST_LIST, body)
        registry.check_import(staff, items)
    if dry_run:
        async with deps.runtime.sessionmaker() as session:
            created, updated = await registry.import_therapists(session, staff, items)
            await session.rollback()
        return ImportOut(created=created, updated=updated, dry_run=True)
    async with deps.runtime.transaction() as session:
        created, updated = await registry.import_therapists(session, staff, items)
    return ImportOut(created=created, updated=updated)
