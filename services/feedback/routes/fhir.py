"""FHIR R4 routes: instruments as Questionnaires, answers as QuestionnaireResponses. Errors
answer as OperationOutcome (the kernel does so for every ``/fhir/`` path; a duplicate answer
composes its own, naming the standing response). The translation is ``services.feedback.fhir``."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from services.feedback import fhir, mapping
from services.feedback.dependencies import Deps
from services.feedback.errors import QuestionnaireNotFound
from services.feedback.mapping import ResponseOut
from services.feedback.routes.parameters import STAFF_WHO_RECORD, IdempotencyKey
from services.feedback.usecases import responses
from shared.audit import audited
from shared.auth import CurrentStaff
from shared.errors import Conflict
from shared.problems import FHIR_JSON, Problem

router = APIRouter()


class FhirJSONResponse(JSONResponse):
    media_type = FHIR_JSON


@router.get(
    "/fhir/Questionnaire",
    summary="Every instrument as a FHIR R4 Bundle of Questionnaires",
    response_class=FhirJSONResponse,
)
async def fhir_questionnaires(deps: Deps, staff: CurrentStaff) -> FhirJSONResponse:
    del staff
    resources = [fhir.questionnaire(i) for i in deps.instruments.values()]
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
    deps: Deps, instrument_id: Annotated[str, Field(max_length=64)], staff: CurrentStaff
) -> FhirJSONResponse:
    del staff
    instrument = deps.instruments.get(instrument_id)
    if instrument is None:
        raise QuestionnaireNotFound(f"No questionnaire {instrument_id!r}.")
    return FhirJSONResponse(fhir.questionnaire(instrument))


@router.post(
    "/fhir/QuestionnaireResponse",
    status_code=201,
    response_model=ResponseOut,
    summary="Record a FHIR R4 QuestionnaireResponse (LOINC-coded PHQ-9/GAD-7 too)",
    dependencies=[audited("feedback", "response.record_fhir", "response")],
    openapi_extra={
        "requestBody": {"required": True, "content": {FHIR_JSON: {"schema": {"type": "object"}}}}
    },
)
async def record_fhir_response(
    request: Request,
    response: Response,
    deps: Deps,
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
    parsed = fhir.parse_questionnaire_response(resource, deps.instruments)
    submission = responses.Submission(
        episode_id=parsed.episode_id,
        session_number=parsed.session_number,
        respondent_role=parsed.respondent_role,
        respondent_ref=parsed.respondent_ref,
        instrument=parsed.instrument,
        items=parsed.items,
        answered_at=parsed.answered_at(),
        idempotency_key=idempotency_key,
        source="fhir",
        amends_standing=parsed.amended,
        amended_by=staff.subject if parsed.amended else None,
    )
    staff.require_role(*STAFF_WHO_RECORD)
    try:
        result, replayed = await responses.record_response(deps, staff, submission)
    except Conflict as conflict:
        existing = conflict.extensions.get("existing_response_id")
        raise Problem(
            409,
            conflict.title,
            conflict.detail,
            errors=conflict.errors,
            extensions=conflict.extensions,
            media_type=FHIR_JSON,
            content=fhir.operation_outcome(409, conflict.title, conflict.detail, existing),
        ) from None
    if replayed:
        response.status_code = 200
    return mapping.response_out(result.event)
