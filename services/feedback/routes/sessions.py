"""Sessions the front-end reports."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from services.feedback import mapping
from services.feedback.dependencies import Deps
from services.feedback.mapping import SessionOut
from services.feedback.routes.parameters import STAFF_WHO_RECORD
from services.feedback.usecases import sessions
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
