"""Intake's HTTP routes, one module per resource: episodes, the therapist registry, intakes and
their proposals, erasures (registered in this order)."""

from __future__ import annotations

from fastapi import APIRouter

from services.intake.routes import episodes, erasures, intakes, members, therapists

router = APIRouter()
router.include_router(episodes.router)
router.include_router(members.router)
router.include_router(therapists.router)
router.include_router(intakes.router)
router.include_router(erasures.router)
