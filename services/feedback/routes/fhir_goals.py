"""The client's goals as FHIR R4 ``Goal`` resources: search by episode, read one, create one.
Errors answer as OperationOutcome (every ``/fhir/`` path does). The translation is
``services.feedback.fhir_goals``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.feedback import fhir_goals
from services.feedback.dependencies import Deps
from services.feedback.routes.fhir import FHIR_BODY, FhirJSONResponse, fhir_body
from services.feedback.routes.parameters import STAFF_WHO_READ, STAFF_WHO_RECORD
from services.feedback.usecases import goals
from shared.audit import audited
from shared.auth import CurrentStaff
from shared.contracts import Id

router = APIRouter()


def _view(goal: goals.Goal, client: str) -> fhir_goals.GoalView:
    row = goal.row
    return fhir_goals.GoalView(
        goal_id=row.goal_id,
        revision=row.revision,
        episode_id=row.episode_id,
        client=client,
        position=row.position,
        status=row.status,
        text=goal.text,
        changed_at=row.changed_at,
    )


@router.get(
    "/fhir/Goal",
    response_class=FhirJSONResponse,
    summary="An episode's goals as FHIR R4 Goal resources (a searchset Bundle)",
    dependencies=[audited("feedback", "goals.read_fhir", "episode")],
)
async def search_goals(
    deps: Deps,
    staff: CurrentStaff,
    episode: Annotated[Id, Query(description="The episode whose goals to read")],
    count: Annotated[int, Query(alias="_count", ge=1, le=500)] = 100,
) -> FhirJSONResponse:
    staff.require_role(*STAFF_WHO_READ)
    client = await goals.client_of(deps, staff, episode)
    found = await goals.episode_goals(deps, staff, episode)
    resources = [fhir_goals.goal_resource(_view(g, client)) for g in found[:count]]
    return FhirJSONResponse(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(resources),
            "entry": [
                {"fullUrl": f"Goal/{r['id']}", "resource": r, "search": {"mode": "match"}}
                for r in resources
            ],
        }
    )


@router.get(
    "/fhir/Goal/{goal_id}",
    response_class=FhirJSONResponse,
    summary="One of the client's goals as a FHIR R4 Goal",
    dependencies=[audited("feedback", "goal.read_fhir", "goal", "goal_id")],
)
async def read_goal(deps: Deps, goal_id: Id, staff: CurrentStaff) -> FhirJSONResponse:
    staff.require_role(*STAFF_WHO_READ)
    goal, client = await goals.goal_by_id(deps, staff, goal_id)
    return FhirJSONResponse(fhir_goals.goal_resource(_view(goal, client)))


@router.post(
    "/fhir/Goal",
    status_code=201,
    response_class=FhirJSONResponse,
    summary="Set one of the client's goals from a FHIR R4 Goal (at most 5 active)",
    dependencies=[audited("feedback", "goal.set_fhir", "goal")],
    openapi_extra=FHIR_BODY,
)
async def create_goal(request: Request, deps: Deps, staff: CurrentStaff) -> FhirJSONResponse:
    resource = await fhir_body(request)
    staff.require_role(*STAFF_WHO_RECORD)
    asked = fhir_goals.new_goal(resource, goals.TEXT_LIMIT)
    goal = await goals.set_goal(deps, staff, asked.episode_id, asked.text)
    client = await goals.client_of(deps, staff, asked.episode_id)
    return FhirJSONResponse(fhir_goals.goal_resource(_view(goal, client)), status_code=201)
