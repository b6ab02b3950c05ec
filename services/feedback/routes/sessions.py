"""Sessions the front-end reports, and the Encounter identifier it gives a session (so a FHIR
QuestionnaireResponse whose ``encounter`` names it is about that session)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from services.feedback import mapping
from services.feedback.dependencies import Deps
from services.feedback.mapping import EncounterOut, SessionOut
from services.feedback.routes.parameters import STAFF_WHO_RECORD
from services.feedback.usecases import encounters, sessions
from shared.audit import audited
from shared.auth import CurrentStaff
from shared.contracts import Id

router = APIRouter()


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    episode_id: Id
    session_number: int = Field(ge=1, le=1000)
    at: datetime
    attended: bool = True


@router.post(
    "/sessions",
    status_code=201,
    response_model=SessionOut,
    summary="Report a session (schedules the client's feedback invitation)",
    responses={200: {"model": SessionOut, "description": "Already reported"}},
    dependencies=[audited("feedback", "session.report", "session")],
)
async def report_session(
    response: Response, deps: Deps, body: SessionIn, staff: CurrentStaff
) -> SessionOut:
    staff.require_role(*STAFF_WHO_RECORD)
    row, already = await sessions.report_session(
        deps, staff, body.episode_id, body.session_number, body.at, body.attended
    )
    if already:
        response.status_code = 200
    return mapping.session_out(row)


class EncounterIn(BaseModel):
    """An Encounter identifier as the EHR gives it (``Encounter.identifier``)."""

    model_config = ConfigDict(extra="forbid")
    system: str = Field(min_length=1, max_length=255, pattern=r"^\S+$")
    value: str = Field(min_length=1, max_length=128, pattern=r"^\S(.*\S)?$")


@router.put(
    "/episodes/{episode_id}/sessions/{session_number}/encounter",
    response_model=EncounterOut,
    summary="Register the session's Encounter identifier (a QuestionnaireResponse naming it "
    "is about this session)",
    dependencies=[audited("feedback", "encounter.register", "episode", "episode_id")],
)
async def register_encounter(
    deps: Deps,
    episode_id: Id,
    session_number: Annotated[int, Path(ge=1, le=1000)],
    body: EncounterIn,
    staff: CurrentStaff,
) -> EncounterOut:
    staff.require_role(*STAFF_WHO_RECORD)
    row = await encounters.register_encounter(
        deps, staff, episode_id, session_number, body.system, body.value
    )
    return mapping.encounter_out(row)
