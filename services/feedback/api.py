"""Feedback HTTP routes for staff front-ends (thin: check, call the domain, store, emit)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from services.feedback import domain
from services.feedback.models import FeedbackEpisode, FeedbackResponse
from shared.auth import CurrentStaff, Staff
from shared.contracts import FEEDBACK_RECORDED, RISK_FLAGGED, FeedbackRecorded, Id, RiskFlagged
from shared.crypto import pseudonymise
from shared.events import Event
from shared.instruments import Instrument
from shared.problems import Problem
from shared.runtime import ServiceRuntime, runtime_of

router = APIRouter(prefix="/feedback", tags=["feedback"])

STAFF_WHO_RECORD = ("therapist", "supervisor", "clinical_lead", "intake_coordinator")
STAFF_WHO_READ = ("therapist", "supervisor", "clinical_lead")


class ResponseIn(BaseModel):
    """One completed questionnaire."""

    model_config = ConfigDict(extra="forbid")
    episode_id: Id
    session_number: int = Field(ge=1, le=1000)
    respondent_role: Literal["client", "partner", "family", "therapist"]
    respondent_ref: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="The front-end's own reference for a partner or family member "
        "(pseudonymised before it is stored or published).",
    )
    instrument: str = Field(min_length=1, max_length=64)
    items: dict[str, float | int] = Field(max_length=200)
    answered_at: datetime | None = None


class ResponseOut(BaseModel):
    response_id: str
    episode_id: str
    session_number: int
    instrument: str
    instrument_version: int
    respondent: str
    total: float
    subscales: dict[str, float]
    band: str | None
    in_concern_or_clinical_range: bool
    risk_items: list[str]
    late: bool


class InstrumentOut(BaseModel):
    id: str
    version: int
    title: str
    kind: str
    respondents: list[str]
    items: list[str]
    item_min: float
    item_max: float
    step: float
    total_min: float
    total_max: float
    subscales: dict[str, list[str]]
    reliable_change: float
    risk_items: list[str]
    free_to_use: bool


def _runtime(request: Request) -> ServiceRuntime:
    return runtime_of(request, "feedback")


def _instruments(runtime: ServiceRuntime) -> dict[str, Instrument]:
    loaded: dict[str, Instrument] = runtime.state["instruments"]
    return loaded


def _can_see_episode(staff: Staff, episode: FeedbackEpisode) -> bool:
    if not staff.can_access_site(episode.site_id):
        return False
    return staff.role != "therapist" or staff.subject == episode.therapist_id


def _respondent(settings_key: str, episode: FeedbackEpisode, body: ResponseIn) -> str:
    if body.respondent_role == "client":
        return episode.client
    if body.respondent_role == "therapist":
        return pseudonymise(settings_key, f"therapist:{episode.therapist_id}")
    if body.respondent_ref is None:
        raise Problem(
            422,
            "Invalid request",
            "respondent_ref: a partner or family member needs the front-end's reference for them",
            errors=[{"field": "respondent_ref", "rule": "required_for_role"}],
        )
    return pseudonymise(settings_key, f"{episode.episode_id}:{body.respondent_ref}")


def _out(row: FeedbackResponse, scored: FeedbackRecorded) -> ResponseOut:
    return ResponseOut(
        response_id=row.id,
        episode_id=row.episode_id,
        session_number=row.session_number,
        instrument=row.instrument,
        instrument_version=row.instrument_version,
        respondent=row.respondent,
        total=scored.total,
        subscales=dict(scored.subscales),
        band=scored.band,
        in_concern_or_clinical_range=scored.in_concern_or_clinical_range,
        risk_items=list(scored.risk_items),
        late=row.late,
    )


@router.get(
    "/instruments",
    response_model=list[InstrumentOut],
    summary="The questionnaires this deployment scores",
)
async def list_instruments(request: Request, staff: CurrentStaff) -> list[InstrumentOut]:
    del staff
    return [
        InstrumentOut.model_validate(i.model_dump())
        for i in _instruments(_runtime(request)).values()
    ]


@router.post(
    "/responses",
    status_code=201,
    response_model=ResponseOut,
    summary="Record and score one questionnaire response",
    responses={200: {"model": ResponseOut, "description": "Idempotent replay"}},
)
async def record_response(
    request: Request,
    response: Response,
    body: ResponseIn,
    staff: CurrentStaff,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> ResponseOut:
    staff.require_role(*STAFF_WHO_RECORD)
    runtime = _runtime(request)
    if idempotency_key is not None:
        replay = await _replay(runtime, staff, idempotency_key)
        if replay is not None:
            response.status_code = 200
            return replay
    instrument = _instruments(runtime).get(body.instrument)
    if instrument is None:
        raise Problem(
            422,
            "Invalid request",
            f"instrument: unknown instrument {body.instrument!r}",
            errors=[{"field": "instrument", "rule": "unknown_instrument"}],
        )
    raw: dict[str, object] = dict(body.items)
    problems = domain.check_answers(instrument, body.respondent_role, raw)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise Problem(
            422,
            "Invalid answers",
            f"{first.field}: {first.message}{more}",
            errors=[{"field": p.field, "rule": p.rule, "message": p.message} for p in problems],
        )
    scored = domain.score(instrument, raw)
    key = runtime.settings.pseudonym_key.get_secret_value()
    now = datetime.now(UTC)
    try:
        async with runtime.transaction() as session:
            episode = await session.get(FeedbackEpisode, body.episode_id)
            if episode is None or not _can_see_episode(staff, episode):
                raise Problem(
                    404,
                    "Episode not found",
                    f"No episode {body.episode_id!r} that you may record for.",
                    errors=[{"field": "episode_id", "rule": "not_found"}],
                )
            respondent = _respondent(key, episode, body)
            later = await session.scalar(
                select(FeedbackResponse.id)
                .where(
                    FeedbackResponse.episode_id == episode.episode_id,
                    FeedbackResponse.respondent == respondent,
                    FeedbackResponse.instrument == instrument.id,
                    col(FeedbackResponse.session_number) > body.session_number,
                )
                .limit(1)
            )
            row = FeedbackResponse(
                id=str(uuid.uuid4()),
                episode_id=episode.episode_id,
                site_id=episode.site_id,
                therapist_id=episode.therapist_id,
                session_number=body.session_number,
                respondent=respondent,
                respondent_role=body.respondent_role,
                instrument=instrument.id,
                instrument_version=instrument.version,
                items={k: str(v) for k, v in scored.items.items()},
                total=str(scored.total),
                late=later is not None,
                answered_at=body.answered_at or now,
                recorded_at=now,
                idempotency_key=idempotency_key,
            )
            session.add(row)
            recorded = _recorded(row, instrument, scored)
            events: list[Event[Any]] = []
            if scored.risk_items:  # the urgent event goes out first
                events.append(
                    Event(
                        RISK_FLAGGED,
                        RiskFlagged(
                            response_id=row.id,
                            episode_id=row.episode_id,
                            site_id=row.site_id,
                            therapist_id=row.therapist_id,
                            session_number=row.session_number,
                            respondent=respondent,
                            respondent_role=body.respondent_role,
                            instrument=instrument.id,
                            risk_items={k: float(v) for k, v in scored.risk_items.items()},
                            answered_at=row.answered_at,
                        ),
                        source=runtime.outbox.source,
                    )
                )
            events.append(Event(FEEDBACK_RECORDED, recorded, source=runtime.outbox.source))
            await runtime.emit(session, *events)
    except IntegrityError:
        if idempotency_key is None:
            raise
        replay = await _replay(runtime, staff, idempotency_key)
        if replay is None:
            raise
        response.status_code = 200
        return replay
    return _out(row, recorded)


def _recorded(
    row: FeedbackResponse, instrument: Instrument, scored: domain.Scored
) -> FeedbackRecorded:
    return FeedbackRecorded(
        response_id=row.id,
        episode_id=row.episode_id,
        site_id=row.site_id,
        therapist_id=row.therapist_id,
        session_number=row.session_number,
        respondent=row.respondent,
        respondent_role=row.respondent_role,
        instrument=instrument.id,
        instrument_version=instrument.version,
        items={k: float(v) for k, v in scored.items.items()},
        total=float(scored.total),
        subscales={k: float(v) for k, v in scored.subscales.items()},
        band=scored.band,
        in_concern_or_clinical_range=scored.in_concern_or_clinical_range,
        risk_items=sorted(scored.risk_items),
        late=row.late,
        answered_at=row.answered_at,
    )


async def _replay(runtime: ServiceRuntime, staff: Staff, key: str) -> ResponseOut | None:
    async with runtime.sessionmaker() as session:
        row = (
            await session.exec(
                select(FeedbackResponse).where(FeedbackResponse.idempotency_key == key)
            )
        ).first()
    if row is None:
        return None
    if not staff.can_access_site(row.site_id):
        raise Problem(
            409,
            "Idempotency key in use",
            "This Idempotency-Key was already used for another request.",
            errors=[{"field": "Idempotency-Key", "rule": "reused"}],
        )
    instrument = _instruments(runtime)[row.instrument]
    scored = domain.score(instrument, {k: Decimal(v) for k, v in row.items.items()})
    return _out(row, _recorded(row, instrument, scored))


class StoredResponse(BaseModel):
    response_id: str
    session_number: int
    respondent: str
    respondent_role: str
    instrument: str
    total: float
    items: dict[str, float]
    late: bool
    answered_at: datetime


@router.get(
    "/episodes/{episode_id}/responses",
    response_model=list[StoredResponse],
    summary="An episode's responses, oldest session first",
)
async def episode_responses(
    request: Request, episode_id: Id, staff: CurrentStaff
) -> list[StoredResponse]:
    staff.require_role(*STAFF_WHO_READ)
    runtime = _runtime(request)
    async with runtime.sessionmaker() as session:
        episode = await session.get(FeedbackEpisode, episode_id)
        if episode is None or not _can_see_episode(staff, episode):
            raise Problem(404, "Episode not found", f"No episode {episode_id!r} that you may see.")
        rows = (
            await session.exec(
                select(FeedbackResponse)
                .where(FeedbackResponse.episode_id == episode_id)
                .order_by(col(FeedbackResponse.session_number), col(FeedbackResponse.recorded_at))
            )
        ).all()
    return [
        StoredResponse(
            response_id=r.id,
            session_number=r.session_number,
            respondent=r.respondent,
            respondent_role=r.respondent_role,
            instrument=r.instrument,
            total=float(r.total),
            items={k: float(v) for k, v in r.items.items()},
            late=r.late,
            answered_at=r.answered_at,
        )
        for r in rows
    ]
