"""Notify's HTTP routes, one module per resource, under ``/notify``."""

from __future__ import annotations

from fastapi import APIRouter

from services.notify.routes import contacts, deliveries, policies, undelivered, webhooks

router = APIRouter(prefix="/notify", tags=["notify"])
# The order of the OpenAPI document (docs/openapi): policies, contacts, undelivered notices and
# fallbacks, webhooks, deliveries.
for resource in (policies, contacts, undelivered, webhooks, deliveries):
    router.include_router(resource.router)
