"""Sessions the front-end reports (issue 16: one route per fact, and ``POST
/feedback/sessions`` as before, now an attended or missed fact), the episode's sessions read
back, and the Encounter identifier it gives a session (so a FHIR QuestionnaireResponse whose
``encounter`` names it is about that session). The day's diary is routes/diary.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.feedback import attendance, mapping
from services.feedback.dependencies import Deps
from services.feedback.mapping import EncounterOut, SessionFactOut, SessionOut
from services.feedback.routes import diary
from services.feedback.routes.parameters import STAFF_WHO_RECORD
from services.feedback.usecases import encounters, sessions
from shared.audit import audited, note_site
from shared.auth import CurrentStaff, Staff
from shared.contracts import Id
from shared.http import DEFAULT_PAGE_SIZE, PageLimit, PageOffset

router = APIRouter()
router.include_router(diary.router)  # the day's diary: the same facts, in bulk

SessionNumber = Annotated[int, Path(ge=1, le=1000)]
FACT_ANSWERS = {
    200: {"model": SessionFactOut, "description": "Already so: the stored session"},
    404: {"description": "No such episode that you may report for (`episode_id`/`not_found`)"},
    409: {
        "description": "The fact disagrees with the stored outcome (`status`/"
        "`disagrees_with_stored`), goes back to scheduled (`status`/`goes_backwards`), "
        "reschedules (`scheduled_for`/`differs_from_stored`), or the episode has ended "
        "(`episode_id`/`episode_ended`)"
    },
}


class ScheduledIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scheduled_for: AwareDatetime = Field(
        description="When the session is to take place, with its UTC offset (the site-local "
        "time as the front-end shows it, e.g. 2026-12-08T17:00:00+01:00)."
    )


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: AwareDatetime | None = Field(
        default=None,
        description="When the session took place, with its UTC offset; may be left out when "
        "the session was scheduled (its scheduled time).",
    )


class CancelledIn(OutcomeIn):
    by: Literal["client", "clinic"]
    notice_hours: int | None = Field(
        default=None, ge=0, le=100_000, description="Hours of notice the cancellation gave."
    )
    cancelled_at: AwareDatetime | None = Field(
        default=None,
        description="When it was cancelled (default: now); gives notice_hours when not given.",
    )


async def _reported(
    request: Request,
    response: Response,
    deps: Deps,
    staff: Staff,
    episode_id: str,
    session_number: int,
    fact: attendance.Fact,
) -> SessionFactOut:
    staff.require_role(*STAFF_WHO_RECORD)
    reported = await sessions.report_fact(deps, staff, episode_id, session_number, fact)
    note_site(request, reported.row.site_id)
    if not reported.recorded:
        response.status_code = 200
    return mapping.session_fact_out(reported.row)


@router.post(
    "/episodes/{episode_id}/sessions/{session_number}/scheduled",
    status_code=201,
    response_model=SessionFactOut,
    summary="A session was scheduled (session.scheduled)",
    responses=FACT_ANSWERS,  # type: ignore[arg-type]
    dependencies=[audited("feedback", "session.scheduled", "episode", "episode_id")],
)
async def session_scheduled(
    request: Request,
    response: Response,
    deps: Deps,
    episode_id: Id,
    session_number: SessionNumber,
    body: ScheduledIn,
    staff: CurrentStaff,
) -> SessionFactOut:
    fact = attendance.Fact("scheduled", body.scheduled_for)
    return await _reported(request, response, deps, staff, episode_id, session_number, fact)


def _outcome_route(status: Literal["attended", "missed"], summary: str) -> None:
    """The attended and the missed fact: the same route but for the outcome."""

    @router.post(
        f"/episodes/{{episode_id}}/sessions/{{session_number}}/{status}",
        status_code=201,
        response_model=SessionFactOut,
        summary=summary,
        responses=FACT_ANSWERS,  # type: ignore[arg-type]
        dependencies=[audited("feedback", f"session.{status}", "episode", "episode_id")],
        name=f"session_{status}",
    )
    async def session_outcome(
        request: Request,
        response: Response,
        deps: Deps,
        episode_id: Id,
        session_number: SessionNumber,
        staff: CurrentStaff,
        body: OutcomeIn | None = None,
    ) -> SessionFactOut:
        fact = attendance.Fact(status, body.at if body else None)
        return await _reported(request, response, deps, staff, episode_id, session_number, fact)


_outcome_route("attended", "The client attended a session (session.attended, session.completed)")
_outcome_route(
    "missed", "The client did not attend and did not cancel (session.missed, session.completed)"
)


@router.post(
    "/episodes/{episode_id}/sessions/{session_number}/cancelled",
    status_code=201,
    response_model=SessionFactOut,
    summary="A session was cancelled by the client or the clinic (session.cancelled)",
    responses=FACT_ANSWERS,  # type: ignore[arg-type]
    dependencies=[audited("feedback", "session.cancelled", "episode", "episode_id")],
)
async def session_cancelled(
    request: Request,
    response: Response,
    deps: Deps,
    episode_id: Id,
    session_number: SessionNumber,
    body: CancelledIn,
    staff: CurrentStaff,
) -> SessionFactOut:
    status: Literal["cancelled_by_client", "cancelled_by_clinic"] = (
        "cancelled_by_client" if body.by == "client" else "cancelled_by_clinic"
    )
    fact = attendance.Fact(status, body.at, body.notice_hours, body.cancelled_at)
    return await _reported(request, response, deps, staff, episode_id, session_number, fact)


@router.get(
    "/episodes/{episode_id}/sessions",
    response_model=list[SessionFactOut],
    summary="An episode's sessions as reported (and implied by feedback), by session number",
    dependencies=[audited("feedback", "sessions.read", "episode", "episode_id")],
)
async def episode_sessions(
    request: Request,
    deps: Deps,
    episode_id: Id,
    staff: CurrentStaff,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
) -> list[SessionFactOut]:
    staff.require_role(*STAFF_WHO_RECORD)
    async with deps.runtime.sessionmaker() as session:
        rows = await sessions.episode_sessions(
            session, staff, episode_id, offset=offset, limit=limit
        )
    if rows:
        note_site(request, rows[0].site_id)
    return [mapping.session_fact_out(r) for r in rows]


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
    summary="Report that a session took place or was missed (schedules the client's feedback "
    "invitation); the same as the attended or missed fact",
    responses={
        200: {"model": SessionOut, "description": "Already reported"},
        409: {"description": "The session's stored outcome is another one"},
    },
    dependencies=[audited("feedback", "session.report", "session")],
)
async def report_session(
    response: Response, deps: Deps, body: SessionIn, staff: CurrentStaff
) -> SessionOut:
    staff.require_role(*STAFF_WHO_RECORD)
    fact = attendance.Fact("attended" if body.attended else "missed", body.at)
    reported = await sessions.report_fact(deps, staff, body.episode_id, body.session_number, fact)
    if not reported.recorded:
        response.status_code = 200
    return mapping.session_out(reported.row)


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
