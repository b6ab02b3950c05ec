"""FHIR R4 routes: instruments as Questionnaires, answers as QuestionnaireResponses (alone, in a
batch or transaction Bundle, or checked with ``$validate``), scores back as Observations, and
the CapabilityStatement. Errors answer as OperationOutcome (the kernel does so for every FHIR
path; a duplicate answer composes its own, naming the standing response). The translation is
``services.feedback.fhir`` and ``services.feedback.fhir_results``."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from services.feedback import fhir, fhir_results, mapping
from services.feedback.dependencies import Deps, FeedbackDependencies
from services.feedback.errors import QuestionnaireNotFound
from services.feedback.mapping import FhirResponseOut
from services.feedback.routes.parameters import STAFF_WHO_READ, STAFF_WHO_RECORD, IdempotencyKey
from services.feedback.usecases import fhir as fhir_usecases
from shared.audit import audited
from shared.auth import CurrentStaff, Staff
from shared.errors import Conflict, DomainError
from shared.problems import FHIR_JSON, Problem, operation_outcome, problem_from_domain_error

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


MAX_BUNDLE_ENTRIES = 100
FHIR_BODY: dict[str, Any] = {
    "requestBody": {"required": True, "content": {FHIR_JSON: {"schema": {"type": "object"}}}}
}


async def fhir_body(request: Request) -> object:
    try:
        return json.loads(await request.body())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Problem(
            400,
            "Malformed JSON",
            "The body is not valid JSON.",
            errors=[{"field": "(body)", "rule": "json"}],
        ) from None


def _conflict(conflict: Conflict) -> Problem:
    """A second answer for the same session as an OperationOutcome naming the standing one."""
    existing = conflict.extensions.get("existing_response_id")
    return Problem(
        409,
        conflict.title,
        conflict.detail,
        errors=conflict.errors,
        extensions=conflict.extensions,
        media_type=FHIR_JSON,
        content=fhir.operation_outcome(409, conflict.title, conflict.detail, existing),
    )


@router.post(
    "/fhir/QuestionnaireResponse",
    status_code=201,
    response_model=FhirResponseOut,
    summary="Record a FHIR R4 QuestionnaireResponse (LOINC-coded PHQ-9/GAD-7 too)",
    dependencies=[audited("feedback", "response.record_fhir", "response")],
    openapi_extra=FHIR_BODY,
)
async def record_fhir_response(
    request: Request,
    response: Response,
    deps: Deps,
    staff: CurrentStaff,
    idempotency_key: IdempotencyKey = None,
) -> FhirResponseOut:
    resource = await fhir_body(request)
    staff.require_role(*STAFF_WHO_RECORD)
    try:
        result, replayed, warnings = await fhir_usecases.record(
            deps, staff, resource, idempotency_key
        )
    except Conflict as conflict:
        raise _conflict(conflict) from None
    if replayed:
        response.status_code = 200
    return FhirResponseOut(**mapping.response_out(result.event).model_dump(), warnings=warnings)


@router.post(
    "/fhir/QuestionnaireResponse/$validate",
    response_class=FhirJSONResponse,
    summary="Check a FHIR R4 QuestionnaireResponse without storing it (OperationOutcome)",
    dependencies=[audited("feedback", "response.validate_fhir", "response")],
    openapi_extra=FHIR_BODY,
)
async def validate_fhir_response(
    request: Request, deps: Deps, staff: CurrentStaff
) -> FhirJSONResponse:
    resource = await fhir_body(request)
    staff.require_role(*STAFF_WHO_RECORD)
    checked = await fhir_usecases.check(deps, staff, resource, None)
    return FhirJSONResponse(fhir_results.warning_outcome(checked.warnings))


async def _entry(
    deps: FeedbackDependencies, staff: Staff, entry: object, key: str | None
) -> dict[str, Any]:
    """One entry of a Bundle, recorded in its own transaction and answered with its outcome."""
    resource = entry.get("resource") if isinstance(entry, dict) else None
    try:
        result, replayed, warnings = await fhir_usecases.record(deps, staff, resource, key)
    except Conflict as conflict:
        problem = _conflict(conflict)
        return fhir_results.entry_response(409, problem.content or {})
    except DomainError as refused:
        problem = problem_from_domain_error(refused)
        return fhir_results.entry_response(problem.status, operation_outcome(problem))
    return fhir_results.entry_response(
        200 if replayed else 201,
        fhir_results.warning_outcome(warnings),
        f"QuestionnaireResponse/{result.row.id}",
    )


def _entry_key(idempotency_key: str | None, index: int) -> str | None:
    """Each entry's own Idempotency-Key, from the Bundle's (a retried Bundle replays each)."""
    if idempotency_key is None:
        return None
    return f"bundle:{hashlib.sha256(idempotency_key.encode()).hexdigest()[:48]}:{index}"


@router.post(
    "/fhir",
    response_class=FhirJSONResponse,
    summary="Record a batch or transaction Bundle of QuestionnaireResponses, each entry alone",
    dependencies=[audited("feedback", "response.record_fhir_bundle", "response")],
    openapi_extra=FHIR_BODY,
)
async def record_fhir_bundle(
    request: Request, deps: Deps, staff: CurrentStaff, idempotency_key: IdempotencyKey = None
) -> FhirJSONResponse:
    """Each entry is answered with its own status and OperationOutcome; one bad entry does not
    stop the others, and each entry is stored whole or not at all (a ``transaction`` too)."""
    bundle = await fhir_body(request)
    staff.require_role(*STAFF_WHO_RECORD)
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise fhir.FhirError("resourceType", "not_bundle", "the body must be a FHIR R4 Bundle")
    kind = bundle.get("type")
    if kind not in {"batch", "transaction"}:
        raise fhir.FhirError("type", "not_batch", "the Bundle must be a batch or a transaction")
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise fhir.FhirError("entry", "required", "the Bundle has no entry")
    if len(entries) > MAX_BUNDLE_ENTRIES:
        raise fhir.FhirError(
            "entry", "too_many", f"a Bundle may carry at most {MAX_BUNDLE_ENTRIES} entries"
        )
    answered = [
        await _entry(deps, staff, entry, _entry_key(idempotency_key, i))
        for i, entry in enumerate(entries)
    ]
    refused = fhir_results.all_refused(answered)
    if refused is not None:  # nothing recorded: the shared refusal (403/404 for another site)
        status, outcome = refused
        raise Problem(
            status,
            "Bundle refused",
            "No entry was recorded.",
            content=outcome,
            media_type=FHIR_JSON,
        )
    return FhirJSONResponse(
        {"resourceType": "Bundle", "type": f"{kind}-response", "entry": answered}
    )


@router.get(
    "/fhir/Observation",
    response_class=FhirJSONResponse,
    summary="Scored responses as FHIR R4 Observations (by episode and/or time range)",
    dependencies=[audited("feedback", "observation.search", "episode")],
)
async def search_observations(
    deps: Deps,
    staff: CurrentStaff,
    episode: Annotated[str | None, Query(max_length=64)] = None,
    date: Annotated[list[str] | None, Query(max_length=2)] = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=500)] = 100,
) -> FhirJSONResponse:
    staff.require_role(*STAFF_WHO_READ)
    since, until = fhir_results.date_range(date or [])
    if episode is None and since is None and until is None:
        raise fhir.FhirError("episode", "required", "search by episode, date range, or both")
    resources = await fhir_usecases.observations(deps, staff, episode, since, until, count)
    return FhirJSONResponse(fhir_results.searchset(resources))


@router.get(
    "/fhir/metadata",
    response_class=FhirJSONResponse,
    summary="The FHIR R4 CapabilityStatement: what this FHIR edge supports",
)
async def capability_statement(deps: Deps, staff: CurrentStaff) -> FhirJSONResponse:
    del staff
    return FhirJSONResponse(fhir_results.capability_statement(deps.instruments, datetime.now(UTC)))
