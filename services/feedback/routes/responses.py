"""Responses recorded by staff (JSON), read back, and amended."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from services.feedback import mapping
from services.feedback.dependencies import Deps
from services.feedback.mapping import ResponseOut, StoredResponse
from services.feedback.routes.parameters import (
    STAFF_WHO_READ,
    STAFF_WHO_RECORD,
    IdempotencyKey,
    ItemValue,
)
from services.feedback.usecases import episodes, responses
from shared.audit import audited, note_site
from shared.auth import CurrentStaff
from shared.contracts import Id
from shared.http import DEFAULT_PAGE_SIZE, PageLimit, PageOffset

router = APIRouter()

Role = Literal["client", "partner", "family", "therapist"]


class ResponseIn(BaseModel):
    """One completed questionnaire."""

    model_config = ConfigDict(extra="forbid")
    episode_id: Id
    session_number: int = Field(ge=1, le=1000)
    respondent_role: Role
    respondent_ref: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^\S(.*\S)?$",
        description="The front-end's own reference for a partner or family member "
        "(pseudonymised before it is stored or published).",
    )
    instrument: str = Field(min_length=1, max_length=64)
    items: dict[Annotated[str, Field(max_length=64)], ItemValue] = Field(max_length=100)
    answered_at: datetime | None = None
    comment: str | None = Field(
        default=None, max_length=4000, description="Free text; stored encrypted, never published."
    )


class AmendmentIn(BaseModel):
    """New answers for a response already recorded: they replace it (same episode, session,
    respondent and instrument) and the episode's alerts are re-evaluated."""

    model_config = ConfigDict(extra="forbid")
    items: dict[Annotated[str, Field(max_length=64)], ItemValue] = Field(max_length=100)
    answered_at: datetime | None = None
    comment: str | None = Field(
        default=None,
        max_length=4000,
        description="Free text for the amended answer (the replaced answer keeps its own); "
        "stored encrypted, never published.",
    )


@router.post(
    "/responses",
    status_code=201,
    response_model=ResponseOut,
    summary="Record and score one questionnaire response",
    responses={200: {"model": ResponseOut, "description": "Idempotent replay"}},
    dependencies=[audited("feedback", "response.record", "response")],
)
async def record_response(
    response: Response,
    deps: Deps,
    body: ResponseIn,
    staff: CurrentStaff,
    idempotency_key: IdempotencyKey = None,
) -> ResponseOut:
    staff.require_role(*STAFF_WHO_RECORD)
    submission = responses.Submission(
        episode_id=body.episode_id,
        session_number=body.session_number,
        respondent_role=body.respondent_role,
        respondent_ref=body.respondent_ref,
        instrument=body.instrument,
        items=dict(body.items),
        answered_at=body.answered_at,
        comment=body.comment,
        idempotency_key=idempotency_key,
    )
    result, replayed = await responses.record_response(deps, staff, submission)
    if replayed:
        response.status_code = 200
    return mapping.response_out(result.event)


@router.get(
    "/responses/{response_id}",
    dependencies=[audited("feedback", "response.read", "response", "response_id")],
    response_model=StoredResponse,
    summary="One stored response (also the one a 409 names)",
)
async def stored_response(
    request: Request, deps: Deps, response_id: Id, staff: CurrentStaff
) -> StoredResponse:
    staff.require_role(*STAFF_WHO_READ)
    row, episode = await responses.response_and_episode(deps, staff, response_id)
    note_site(request, episode.site_id)
    return mapping.stored_response(row)


@router.post(
    "/responses/{response_id}/amend",
    status_code=201,
    response_model=ResponseOut,
    summary="Amend a response: the new answers replace it and the episode is re-evaluated",
    responses={200: {"model": ResponseOut, "description": "Idempotent replay"}},
    dependencies=[audited("feedback", "response.amend", "response", "response_id")],
)
async def amend_response(
    request: Request,
    response: Response,
    deps: Deps,
    response_id: Id,
    body: AmendmentIn,
    staff: CurrentStaff,
    idempotency_key: IdempotencyKey = None,
) -> ResponseOut:
    staff.require_role(*STAFF_WHO_RECORD)
    original, episode = await responses.response_and_episode(deps, staff, response_id)
    note_site(request, episode.site_id)
    submission = responses.amendment(
        original, staff, dict(body.items), body.answered_at, body.comment, idempotency_key
    )
    result, replayed = await responses.record_response(deps, staff, submission)
    if replayed:
        response.status_code = 200
    return mapping.response_out(result.event)


@router.get(
    "/episodes/{episode_id}/responses",
    dependencies=[audited("feedback", "responses.read", "episode", "episode_id")],
    response_model=list[StoredResponse],
    summary="An episode's responses, oldest session first",
)
async def episode_responses(
    request: Request,
    deps: Deps,
    episode_id: Id,
    staff: CurrentStaff,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
    include_replaced: Annotated[
        bool, Query(description="Also list answers an amendment replaced (they do not count).")
    ] = False,
) -> list[StoredResponse]:
    staff.require_role(*STAFF_WHO_READ)
    async with deps.runtime.sessionmaker() as session:
        episode, rows = await episodes.episode_responses(
            session,
            staff,
            episode_id,
            include_replaced=include_replaced,
            offset=offset,
            limit=limit,
        )
        note_site(request, episode.site_id)
    return [mapping.stored_response(r) for r in rows]
