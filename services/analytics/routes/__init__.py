"""Analytics' HTTP routes, one module per resource: alerts, episodes (timelines and charts),
therapists' effectiveness and sites' summaries and reports. Every read is scoped to the caller's
sites; therapists see their own clients only; data analysts get aggregates only. ``router`` is
what the service definition mounts."""

from __future__ import annotations

from fastapi import APIRouter

from services.analytics.routes import alerts, episodes, sites, therapists

router = APIRouter(prefix="/analytics", tags=["analytics"])
for resource in (alerts, episodes, therapists, sites):
    router.include_router(resource.router)

__all__ = ["router"]
