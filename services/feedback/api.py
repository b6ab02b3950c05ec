"""Feedback HTTP routes: staff front-ends (JSON and FHIR R4) and clients' one-time links."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from services.feedback import fhir
from services.feedback.models import (
    FeedbackEpisode,
    FeedbackResponse,
    FeedbackSession,
    FeedbackTokenUse,
)
from services.feedback.recording import (
    Recorded,
    Submission,
    already_answered,
    fingerprint,
    instruments_of,
    record,
    replay,
    standing_answer,
    use_episode_site,
)
from shared.audit import audited, note_site
from shared.auth import CurrentStaff, Staff
from shared.contracts import SESSION_COMPLETED, Id, SessionCompleted
from shared.events import Event
from shared.http import DEFAULT_PAGE_SIZE, PageLimit, PageOffset
from shared.problems import Problem
from shared.runtime import ServiceRuntime, runtime_of
from shared.tokens import TokenError, verify

router = APIRouter(prefix="/feedback", tags=["feedback"])


class FhirJSONResponse(JSONResponse):
    media_type = "application/fhir+json"


STAFF_WHO_RECORD = ("therapist", "supervisor", "clinical_lead", "intake_coordinator")
STAFF_WHO_READ = ("therapist", "supervisor", "clinical_lead")
FHIR_JSON = "application/fhir+json"
Role = Literal["client", "partner", "family", "therapist"]
ItemValue = Annotated[float, Field(allow_inf_nan=False)] | int


def _content_type(*allowed: str) -> Any:
    async def check(request: Request) -> None:
        given = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if given not in allowed:
            raise Problem(
                415,
                "Unsupported media type",
                f"Send the body as {' or '.join(allowed)}, not {given or 'nothing'}.",
                errors=[{"field": "Content-Type", "rule": "media_type"}],
            )

    return Depends(check)


JsonBody = _content_type("application/json")


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
    first_total: float | None
    change_from_first: float | None
    reliable_change: str | None
    clinically_significant_change: bool | None
    amends: str | None = Field(
        default=None, description="The response this amendment replaced (None: a first answer)."
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


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    episode_id: Id
    session_number: int = Field(ge=1, le=1000)
    at: datetime
    attended: bool = True


class SessionOut(BaseModel):
    session_id: str
    episode_id: str
    session_number: int
    at: datetime
    attended: bool


class LinkAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instrument: str = Field(min_length=1, max_length=64)
    items: dict[Annotated[str, Field(max_length=64)], ItemValue] = Field(max_length=100)


class LinkSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid")
    responses: list[LinkAnswer] = Field(min_length=1, max_length=5)
    comment: str | None = Field(default=None, max_length=4000)


class LinkForm(BaseModel):
    session_number: int
    respondent_role: str
    instruments: list[InstrumentOut]
    expires_at: datetime


class StoredResponse(BaseModel):
    response_id: str
    session_number: int
    respondent: str
    respondent_role: str
    instrument: str
    total: float
    items: dict[str, float]
    late: bool
    source: str
    answered_at: datetime
    amends: str | None = None
    replaced_by: str | None = Field(
        default=None, description="Set when an amendment replaced this answer: it no longer counts."
    )


def _runtime(request: Request) -> ServiceRuntime:
    return runtime_of(request, "feedback")


def _may_see(staff: Staff) -> Any:
    def check(episode: FeedbackEpisode) -> bool:
        if not staff.can_access_site(episode.site_id):
            return False
        return staff.role != "therapist" or staff.subject == episode.therapist_id

    return check


def _out(result: Recorded) -> ResponseOut:
    event = result.event
    return ResponseOut(
        response_id=event.response_id,
        episode_id=event.episode_id,
        session_number=event.session_number,
        instrument=event.instrument,
        instrument_version=event.instrument_version,
        respondent=event.respondent,
        total=event.total,
        subscales=dict(event.subscales),
        band=event.band,
        in_concern_or_clinical_range=event.in_concern_or_clinical_range,
        risk_items=list(event.risk_items),
        late=event.late,
        first_total=event.first_total,
        change_from_first=event.change_from_first,
        reliable_change=event.reliable_change,
        clinically_significant_change=event.clinically_significant_change,
        amends=event.amends,
    )


def _instrument_out(runtime: ServiceRuntime, ids: list[str] | None = None) -> list[InstrumentOut]:
    known = instruments_of(runtime)
    chosen = [known[i] for i in ids] if ids is not None else list(known.values())
    return [InstrumentOut.model_validate(i.model_dump()) for i in chosen]


@router.get(
    "/instruments",
    response_model=list[InstrumentOut],
    summary="The questionnaires this deployment scores",
)
async def list_instruments(
    request: Request,
    staff: CurrentStaff,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
) -> list[InstrumentOut]:
    del staff
    return _instrument_out(_runtime(request))[offset : offset + limit]


@router.get(
    "/fhir/Questionnaire",
    summary="Every instrument as a FHIR R4 Bundle of Questionnaires",
    response_class=FhirJSONResponse,
)
async def fhir_questionnaires(request: Request, staff: CurrentStaff) -> FhirJSONResponse:
    del staff
    resources = [fhir.questionnaire(i) for i in instruments_of(_runtime(request)).values()]
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }
    return FhirJSONResponse(bundle)


@router.get(
    "/fhir/Questionnaire/{instrument_id}",
    response_class=FhirJSONResponse,
    summary="One instrument as a FHIR R4 Questionnaire",
)
async def fhir_questionnaire(
    request: Request, instrument_id: Annotated[str, Field(max_length=64)], staff: CurrentStaff
) -> FhirJSONResponse:
    del staff
    instrument = instruments_of(_runtime(request)).get(instrument_id)
    if instrument is None:
        raise Problem(404, "Questionnaire not found", f"No questionnaire {instrument_id!r}.")
    return FhirJSONResponse(fhir.questionnaire(instrument))


async def _record_one(
    request: Request, response: Response, staff: Staff, submission: Submission
) -> ResponseOut:
    staff.require_role(*STAFF_WHO_RECORD)
    runtime = _runtime(request)
    if submission.idempotency_key is not None:
        earlier = await _by_idempotency_key(runtime, staff, submission)
        if earlier is not None:
            response.status_code = 200
            return earlier
    try:
        async with runtime.transaction() as session:
            result = await record(runtime, session, submission, _may_see(staff))
    except IntegrityError:
        # A concurrent request won: the same Idempotency-Key (a retry), or another answer for
        # the same episode, session, respondent and instrument (the unique index held).
        if submission.idempotency_key is not None:
            earlier = await _by_idempotency_key(runtime, staff, submission)
            if earlier is not None:
                response.status_code = 200
                return earlier
        async with runtime.sessionmaker() as session:
            standing = await standing_answer(runtime, session, submission)
        if standing is None:
            raise
        raise already_answered(standing) from None
    return _out(result)


async def _by_idempotency_key(
    runtime: ServiceRuntime, staff: Staff, submission: Submission
) -> ResponseOut | None:
    """The original answer to a retry (None: the key is new). The key must come with the same
    request: another request under a used key is refused (422), not answered with the first."""
    async with runtime.sessionmaker() as session:
        row = (
            await session.exec(
                select(FeedbackResponse).where(
                    FeedbackResponse.idempotency_key == submission.idempotency_key
                )
            )
        ).first()
        if row is None:
            return None
        episode = await session.get(FeedbackEpisode, row.episode_id)
        if episode is None or not _may_see(staff)(episode):
            # Not yours (another site, or another therapist's client): say nothing about it.
            raise Problem(
                409,
                "Idempotency key in use",
                "This Idempotency-Key was already used for another request.",
                errors=[{"field": "Idempotency-Key", "rule": "reused"}],
            )
        if row.request_fingerprint not in (None, fingerprint(runtime, submission)):
            raise Problem(
                422,
                "Idempotency key reused for a different request",
                "Idempotency-Key: this key was used for a request with other content; a retry "
                "must repeat the same request, and a new request needs a new key.",
                errors=[{"field": "Idempotency-Key", "rule": "same_key_same_request"}],
            )
        return _out((await replay(runtime, session, [row]))[0])


IdempotencyKey = Annotated[
    str | None, Header(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
]


@router.post(
    "/responses",
    status_code=201,
    response_model=ResponseOut,
    summary="Record and score one questionnaire response",
    responses={200: {"model": ResponseOut, "description": "Idempotent replay"}},
    dependencies=[audited("feedback", "response.record", "response"), JsonBody],
)
async def record_response(
    request: Request,
    response: Response,
    body: ResponseIn,
    staff: CurrentStaff,
    idempotency_key: IdempotencyKey = None,
) -> ResponseOut:
    return await _record_one(
        request,
        response,
        staff,
        Submission(
            episode_id=body.episode_id,
            session_number=body.session_number,
            respondent_role=body.respondent_role,
            respondent_ref=body.respondent_ref,
            instrument=body.instrument,
            items=dict(body.items),
            answered_at=body.answered_at,
            comment=body.comment,
            idempotency_key=idempotency_key,
        ),
    )


@router.post(
    "/fhir/QuestionnaireResponse",
    status_code=201,
    response_model=ResponseOut,
    summary="Record a FHIR R4 QuestionnaireResponse (LOINC-coded PHQ-9/GAD-7 too)",
    dependencies=[
        audited("feedback", "response.record_fhir", "response"),
        _content_type(FHIR_JSON, "application/json"),
    ],
    openapi_extra={
        "requestBody": {"required": True, "content": {FHIR_JSON: {"schema": {"type": "object"}}}}
    },
)
async def record_fhir_response(
    request: Request,
    response: Response,
    staff: CurrentStaff,
    idempotency_key: IdempotencyKey = None,
) -> ResponseOut:
    try:
        resource = json.loads(await request.body())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Problem(
            400,
            "Malformed JSON",
            "The body is not valid JSON.",
            errors=[{"field": "(body)", "rule": "json"}],
        ) from None
    try:
        parsed = fhir.parse_questionnaire_response(resource, instruments_of(_runtime(request)))
    except fhir.FhirError as error:
        raise Problem(
            422,
            "Invalid QuestionnaireResponse",
            f"{error.field}: {error.message}",
            errors=[{"field": error.field, "rule": error.rule}],
        ) from None
    answered_at = None
    if parsed.authored:
        try:
            answered_at = datetime.fromisoformat(parsed.authored.replace("Z", "+00:00"))
        except ValueError:
            raise Problem(
                422,
                "Invalid QuestionnaireResponse",
                "authored: not an ISO 8601 date-time",
                errors=[{"field": "authored", "rule": "datetime"}],
            ) from None
    submission = Submission(
        episode_id=parsed.episode_id,
        session_number=parsed.session_number,
        respondent_role=parsed.respondent_role,
        respondent_ref=parsed.respondent_ref,
        instrument=parsed.instrument,
        items=parsed.items,
        answered_at=answered_at,
        idempotency_key=idempotency_key,
        source="fhir",
        amends_standing=parsed.amended,
        amended_by=staff.subject if parsed.amended else None,
    )
    try:
        return await _record_one(request, response, staff, submission)
    except Problem as problem:
        if problem.status != 409:
            raise
        existing = problem.extensions.get("existing_response_id")
        raise Problem(
            409,
            problem.title,
            problem.detail,
            errors=problem.errors,
            extensions=problem.extensions,
            media_type=FHIR_JSON,
            content=fhir.operation_outcome(409, problem.title, problem.detail, existing),
        ) from None


@router.get(
    "/responses/{response_id}",
    dependencies=[audited("feedback", "response.read", "response", "response_id")],
    response_model=StoredResponse,
    summary="One stored response (also the one a 409 names)",
)
async def stored_response(request: Request, response_id: Id, staff: CurrentStaff) -> StoredResponse:
    staff.require_role(*STAFF_WHO_READ)
    row, episode = await _response_and_episode(_runtime(request), staff, response_id)
    note_site(request, episode.site_id)
    return _stored(row)


@router.post(
    "/responses/{response_id}/amend",
    status_code=201,
    response_model=ResponseOut,
    summary="Amend a response: the new answers replace it and the episode is re-evaluated",
    responses={200: {"model": ResponseOut, "description": "Idempotent replay"}},
    dependencies=[audited("feedback", "response.amend", "response", "response_id"), JsonBody],
)
async def amend_response(
    request: Request,
    response: Response,
    response_id: Id,
    body: AmendmentIn,
    staff: CurrentStaff,
    idempotency_key: IdempotencyKey = None,
) -> ResponseOut:
    staff.require_role(*STAFF_WHO_RECORD)
    original, episode = await _response_and_episode(_runtime(request), staff, response_id)
    note_site(request, episode.site_id)
    return await _record_one(
        request,
        response,
        staff,
        Submission(
            episode_id=original.episode_id,
            session_number=original.session_number,
            respondent_role=original.respondent_role,
            respondent=original.respondent,
            instrument=original.instrument,
            items=dict(body.items),
            answered_at=body.answered_at,
            comment=body.comment,
            idempotency_key=idempotency_key,
            amends=original.id,
            amended_by=staff.subject,
        ),
    )


async def _response_and_episode(
    runtime: ServiceRuntime, staff: Staff, response_id: str
) -> tuple[FeedbackResponse, FeedbackEpisode]:
    async with runtime.sessionmaker() as session:
        row = await session.get(FeedbackResponse, response_id)
        episode = await session.get(FeedbackEpisode, row.episode_id) if row else None
    if row is None or episode is None or not _may_see(staff)(episode):
        raise Problem(
            404,
            "Response not found",
            f"No response {response_id!r} that you may see.",
            errors=[{"field": "response_id", "rule": "not_found"}],
        )
    return row, episode


def _stored(r: FeedbackResponse) -> StoredResponse:
    return StoredResponse(
        response_id=r.id,
        session_number=r.session_number,
        respondent=r.respondent,
        respondent_role=r.respondent_role,
        instrument=r.instrument,
        total=float(r.total),
        items={k: float(v) for k, v in r.items.items()},
        late=r.late,
        source=r.source,
        answered_at=r.answered_at,
        amends=r.amends,
        replaced_by=r.replaced_by,
    )


@router.post(
    "/sessions",
    status_code=201,
    response_model=SessionOut,
    summary="Report a session (schedules the client's feedback invitation)",
    responses={200: {"model": SessionOut, "description": "Already reported"}},
    dependencies=[audited("feedback", "session.report", "session"), JsonBody],
)
async def report_session(
    request: Request, response: Response, body: SessionIn, staff: CurrentStaff
) -> SessionOut:
    staff.require_role(*STAFF_WHO_RECORD)
    runtime = _runtime(request)
    may_see = _may_see(staff)
    try:
        async with runtime.transaction() as session:
            episode = await session.get(FeedbackEpisode, body.episode_id)
            if episode is None or not may_see(episode):
                raise Problem(
                    404,
                    "Episode not found",
                    f"No episode {body.episode_id!r} that you may report for.",
                    errors=[{"field": "episode_id", "rule": "not_found"}],
                )
            row = FeedbackSession(
                id=str(uuid.uuid4()),
                episode_id=episode.episode_id,
                site_id=episode.site_id,
                session_number=body.session_number,
                at=body.at,
                attended=body.attended,
            )
            session.add(row)
            await session.flush()
            await runtime.emit(
                session,
                Event(
                    SESSION_COMPLETED,
                    SessionCompleted(
                        episode_id=episode.episode_id,
                        site_id=episode.site_id,
                        therapist_id=episode.therapist_id,
                        session_number=body.session_number,
                        attended=body.attended,
                        at=body.at,
                    ),
                    source=runtime.outbox.source,
                ),
            )
    except IntegrityError:
        async with runtime.sessionmaker() as session:
            existing = (
                await session.exec(
                    select(FeedbackSession).where(
                        FeedbackSession.episode_id == body.episode_id,
                        FeedbackSession.session_number == body.session_number,
                    )
                )
            ).one()
        response.status_code = 200
        row = existing
    return SessionOut(
        session_id=row.id,
        episode_id=row.episode_id,
        session_number=row.session_number,
        at=row.at,
        attended=row.attended,
    )


async def _grant(runtime: ServiceRuntime, token: str) -> Any:
    try:
        grant = verify(runtime.settings.encryption_key.get_secret_value(), token)
        await use_episode_site(runtime, grant.episode_id)
        return grant
    except TokenError as error:
        status = 410 if error.rule == "expired" else 403
        raise Problem(
            status,
            "Feedback link not valid",
            str(error),
            errors=[{"field": "token", "rule": error.rule}],
        ) from None


@router.get(
    "/r/{token}",
    response_model=LinkForm,
    summary="What a one-time feedback link asks (for the client's front-end)",
)
async def link_form(request: Request, token: Annotated[str, Field(max_length=2048)]) -> LinkForm:
    runtime = _runtime(request)
    grant = await _grant(runtime, token)
    async with runtime.sessionmaker() as session:
        used = await session.get(FeedbackTokenUse, grant.token_id)
    if used is not None:
        raise Problem(
            410,
            "Feedback link already used",
            "This link has already been used; thank you for your answers.",
            errors=[{"field": "token", "rule": "used"}],
        )
    known = [i for i in grant.instruments if i in instruments_of(runtime)]
    return LinkForm(
        session_number=grant.session_number,
        respondent_role=grant.role,
        instruments=_instrument_out(runtime, known),
        expires_at=datetime.fromtimestamp(grant.expires_at, UTC),
    )


@router.post(
    "/r/{token}",
    status_code=201,
    response_model=list[ResponseOut],
    summary="Answer through a one-time feedback link (no login)",
    responses={200: {"model": list[ResponseOut], "description": "Already answered"}},
    dependencies=[JsonBody],
)
async def answer_link(
    request: Request,
    response: Response,
    token: Annotated[str, Field(max_length=2048)],
    body: LinkSubmission,
) -> list[ResponseOut]:
    runtime = _runtime(request)
    grant = await _grant(runtime, token)
    for index, answer in enumerate(body.responses):
        if answer.instrument not in grant.instruments:
            raise Problem(
                422,
                "Invalid answers",
                f"responses.{index}.instrument: this link does not ask for {answer.instrument!r}",
                errors=[{"field": f"responses.{index}.instrument", "rule": "not_in_link"}],
            )
    submissions = [
        Submission(
            episode_id=grant.episode_id,
            session_number=grant.session_number,
            respondent_role=grant.role,
            respondent=grant.respondent,
            instrument=answer.instrument,
            items=dict(answer.items),
            comment=body.comment if index == 0 else None,
            source="link",
            token_id=grant.token_id,
        )
        for index, answer in enumerate(body.responses)
    ]
    try:
        async with runtime.transaction() as session:
            if await session.get(FeedbackTokenUse, grant.token_id) is None:
                results = [
                    await record(runtime, session, submission, lambda _: True)
                    for submission in submissions
                ]
                session.add(
                    FeedbackTokenUse(
                        token_id=grant.token_id,
                        episode_id=grant.episode_id,
                        response_ids=[r.row.id for r in results],
                        used_at=datetime.now(UTC),
                    )
                )
                return [_out(r) for r in results]
    except IntegrityError:
        # Answered concurrently through the same link: return what was recorded. Or another
        # answer for the same session landed first (the unique index held): 409, link unused.
        async with runtime.sessionmaker() as session:
            if await session.get(FeedbackTokenUse, grant.token_id) is None:
                for submission in submissions:
                    standing = await standing_answer(runtime, session, submission)
                    if standing is not None:
                        raise already_answered(standing) from None
                raise
    response.status_code = 200
    async with runtime.sessionmaker() as session:
        rows = (
            await session.exec(
                select(FeedbackResponse).where(FeedbackResponse.token_id == grant.token_id)
            )
        ).all()
        return [_out(r) for r in await replay(runtime, session, rows)]


@router.get(
    "/episodes/{episode_id}/responses",
    dependencies=[audited("feedback", "responses.read", "episode", "episode_id")],
    response_model=list[StoredResponse],
    summary="An episode's responses, oldest session first",
)
async def episode_responses(
    request: Request,
    episode_id: Id,
    staff: CurrentStaff,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
    include_replaced: Annotated[
        bool, Query(description="Also list answers an amendment replaced (they do not count).")
    ] = False,
) -> list[StoredResponse]:
    staff.require_role(*STAFF_WHO_READ)
    runtime = _runtime(request)
    async with runtime.sessionmaker() as session:
        episode = await session.get(FeedbackEpisode, episode_id)
        if episode is None or not _may_see(staff)(episode):
            raise Problem(404, "Episode not found", f"No episode {episode_id!r} that you may see.")
        note_site(request, episode.site_id)
        query = select(FeedbackResponse).where(FeedbackResponse.episode_id == episode_id)
        if not include_replaced:
            query = query.where(col(FeedbackResponse.replaced_by).is_(None))
        rows = (
            await session.exec(
                query.order_by(
                    col(FeedbackResponse.session_number), col(FeedbackResponse.recorded_at)
                )
                .offset(offset)
                .limit(limit)
            )
        ).all()
    return [_stored(r) for r in rows]
