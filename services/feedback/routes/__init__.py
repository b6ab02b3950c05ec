"""Feedback's HTTP routes, one module per resource: staff front-ends (JSON and FHIR R4) and
clients' one-time links. ``router`` is what the service definition mounts."""

from __future__ import annotations

from fastapi import APIRouter

from services.feedback.routes import (
    consents,
    fhir,
    fhir_goals,
    goals,
    instruments,
    links,
    responses,
    sessions,
)

router = APIRouter(prefix="/feedback", tags=["feedback"])
for resource in (instruments, fhir, fhir_goals, responses, sessions, links, goals, consents):
    router.include_router(resource.router)
