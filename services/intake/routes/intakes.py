"""Intakes and their proposals: submit an intake, propose again, read, confirm or decline a
proposal, rematch an open episode, assign a site's waiting list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import Field, TypeAdapter

from services.intake.dependencies import Deps
from services.intake.mapping import (
    AssignmentOut,
    ConfirmIn,
    DeclineIn,
    EpisodeOut,
    IntakeIn,
    IntakeOut,
    MatchOut,
    WaitingListImportOut,
    episode_out,
    match_out,
)
from services.intake.routes.bodies import DryRun
from services.intake.usecases import decisions, imports, proposals
from shared.audit import audited
from shared.auth import CurrentStaff
from shared.contracts import Id
from shared.csv_table import CSV_MEDIA_TYPE
from shared.request_bodies import is_csv, json_body

router = APIRouter(prefix="/intake", tags=["intake"])

MATCHING_ROLES = ("intake_coordinator", "site_admin")
MAX_WAITING_LIST = 5000
WAITING_LIST = TypeAdapter(Annotated[list[IntakeIn], Field(max_length=MAX_WAITING_LIST)])
READ_MATCHES = ("intake_coordinator", "site_admin", "clinical_lead")
NOBODY_TO_OFFER = (
    "No therapist can be offered at all (none registered, or every one inactive, conflicted or "
    "a past therapist of the episode): nothing is stored; the problem names the reasons."
)


@router.post(
    "/intakes",
    dependencies=[audited("intake", "intake.submit", "intake")],
    status_code=201,
    response_model=IntakeOut,
    summary="Submit an intake and get the top therapist options, each explained",
    responses={409: {"description": NOBODY_TO_OFFER}},
)
async def submit_intake(deps: Deps, body: IntakeIn, staff: CurrentStaff) -> IntakeOut:
    staff.require_role(*MATCHING_ROLES)
    staff.require_site(body.site_id)
    row = proposals.new_intake(deps, body)
    async with deps.runtime.transaction() as session:
        match = await proposals.submit_intake(deps, session, row, body)
    return IntakeOut(
        intake_id=row.id, site_id=row.site_id, client=row.client, match=match_out(match)
    )


@router.post(
    "/intakes/{intake_id}/propose",
    dependencies=[audited("intake", "intake.propose", "intake", "intake_id")],
    status_code=201,
    response_model=MatchOut,
    summary="Propose again (therapists declined for this intake only as the last resort)",
    responses={409: {"description": NOBODY_TO_OFFER}},
)
async def propose_again(deps: Deps, intake_id: Id, staff: CurrentStaff) -> MatchOut:
    staff.require_role(*MATCHING_ROLES)
    async with deps.runtime.transaction() as session:
        match = await proposals.propose_again(deps, session, staff, intake_id)
    return match_out(match)


@router.get(
    "/matches/{match_id}",
    dependencies=[audited("intake", "match.read", "match", "match_id")],
    response_model=MatchOut,
    summary="One proposal",
)
async def get_match(deps: Deps, match_id: Id, staff: CurrentStaff) -> MatchOut:
    staff.require_role(*READ_MATCHES)
    async with deps.runtime.sessionmaker() as session:
        return match_out(await proposals.match_at_site(session, staff, match_id))


@router.post(
    "/matches/{match_id}/confirm",
    dependencies=[audited("intake", "match.confirm", "match", "match_id")],
    status_code=201,
    response_model=EpisodeOut,
    summary="Confirm the client's choice: the episode opens (or, on rematch, is transferred)",
    responses={409: {"description": "The place was just taken, or the match already decided"}},
)
async def confirm_match(
    deps: Deps, match_id: Id, body: ConfirmIn, staff: CurrentStaff
) -> EpisodeOut:
    staff.require_role(*MATCHING_ROLES)
    async with deps.runtime.transaction() as session:
        match = await proposals.match_at_site(session, staff, match_id)
        episode = await decisions.confirm_match(deps, session, match, body.therapist_id)
    return episode_out(episode)


@router.post(
    "/matches/{match_id}/decline",
    dependencies=[audited("intake", "match.decline", "match", "match_id")],
    response_model=MatchOut,
    summary="Decline a proposal; the next proposal for the intake excludes these therapists",
)
async def decline_match(deps: Deps, match_id: Id, body: DeclineIn, staff: CurrentStaff) -> MatchOut:
    staff.require_role(*MATCHING_ROLES)
    async with deps.runtime.transaction() as session:
        match = await proposals.match_at_site(session, staff, match_id)
        await decisions.decline_match(deps, session, match, body.reason_code, body.therapist_ids)
    async with deps.runtime.sessionmaker() as session:
        return match_out(await proposals.match_at_site(session, staff, match_id))


@router.post(
    "/episodes/{episode_id}/rematch",
    dependencies=[audited("intake", "episode.rematch", "episode", "episode_id")],
    status_code=201,
    response_model=MatchOut,
    summary="Propose new therapists for an open episode, excluding its past therapists",
    responses={409: {"description": NOBODY_TO_OFFER}},
)
async def rematch_episode(deps: Deps, episode_id: Id, staff: CurrentStaff) -> MatchOut:
    staff.require_role(*MATCHING_ROLES, "clinical_lead")
    async with deps.runtime.transaction() as session:
        match = await proposals.rematch_episode(deps, session, staff, episode_id)
    return match_out(match)


@router.post(
    "/sites/{site_id}/waiting-list/assign",
    dependencies=[audited("intake", "waiting_list.assign", "site", "site_id")],
    response_model=AssignmentOut,
    summary="Assign the site's waiting list optimally (proposals only; nothing is confirmed)",
)
async def assign_waiting_list(deps: Deps, site_id: Id, staff: CurrentStaff) -> AssignmentOut:
    staff.require_role(*MATCHING_ROLES)
    staff.require_site(site_id)
    async with deps.runtime.transaction() as session:
        return await proposals.assign_waiting_list(deps, session, site_id)


WAITING_LIST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            CSV_MEDIA_TYPE: {
                "schema": {"type": "string"},
                "example": "client_reference,domains,languages,preferred_times\n"
                "MRN-1001,depression:severe; anxiety,en,required: mon-fri 17:00-20:00\n",
            },
            "application/json": {
                "schema": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/IntakeIn"},
                    "maxItems": MAX_WAITING_LIST,
                }
            },
        },
    }
}


@router.post(
    "/sites/{site_id}/waiting-list/import",
    dependencies=[audited("intake", "waiting_list.import", "site", "site_id")],
    response_model=WaitingListImportOut,
    response_model_exclude_none=True,
    summary="Import a site's waiting list (CSV or JSON; intakes wait, nothing is proposed)",
    description="`text/csv` with a header row (`client_reference`, `domains` as "
    "`code[:severity]; …`, `languages`, optional `risk`, `unit`, `age_group`, `members` as "
    "`role:reference; …`, `prior_therapy`, `difficult_past_relationships`, `preferred_gender`, "
    "`preferred_language`, `preferred_culture_faith`, `preferred_modality`, `preferred_format`, "
    "`preferred_site` as codes, `preferred_times` as weekly times; a preference cell starting "
    "`required:` is a hard constraint), or a JSON list of intakes (as `POST /intake/intakes` "
    "takes them, each at this site). Every bad row is named (line and column) before anything "
    "is stored; a client already waiting at "
    "the site is left as they are; `dry_run=true` checks and counts without storing.",
    openapi_extra=WAITING_LIST_BODY,
)
async def import_waiting_list(
    deps: Deps, site_id: Id, request: Request, staff: CurrentStaff, dry_run: DryRun = False
) -> WaitingListImportOut:
    staff.require_role(*MATCHING_ROLES)
    staff.require_site(site_id)
    body = await request.body()
    if is_csv(request):
        intakes = imports.intakes_from_csv(deps, site_id, body)
    else:
        clients = json_body(WAITING_LIST, body)
        intakes = imports.intakes_from_json(deps, site_id, clients)
    if dry_run:
        async with deps.runtime.sessionmaker() as session:
            done = await imports.import_waiting_list(deps, session, site_id, intakes)
            await session.rollback()
        return WaitingListImportOut(
            site_id=site_id,
            created=len(done.created),
            intake_ids=[],
            already_waiting=done.already_waiting,
            dry_run=True,
        )
    async with deps.runtime.transaction() as session:
        done = await imports.import_waiting_list(deps, session, site_id, intakes)
    return WaitingListImportOut(
        site_id=site_id,
        created=len(done.created),
        intake_ids=done.created,
        already_waiting=done.already_waiting,
    )
