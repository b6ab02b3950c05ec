"""``/notify/webhooks``: a site's webhook endpoints (site admins), behind the SSRF guard; the
signing secret is shown once, at registration and at each rotation."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from services.notify.dependencies import Deps
from services.notify.mapping import WebhookOut, webhook_out
from services.notify.routes.params import PathId
from services.notify.usecases import webhooks
from shared.auth import CurrentStaff
from shared.contracts import Id
from shared.http import DEFAULT_PAGE_SIZE, PageLimit, PageOffset

router = APIRouter()


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site_id: Id
    url: str = Field(min_length=8, max_length=2000)


@router.post(
    "/webhooks",
    status_code=201,
    response_model=WebhookOut,
    summary="Register a site's webhook endpoint (the signing secret is shown once)",
)
async def register_webhook(deps: Deps, body: WebhookIn, staff: CurrentStaff) -> WebhookOut:
    staff.require_role("site_admin")
    staff.require_site(body.site_id)
    row, secret = await webhooks.register_webhook(deps, body.site_id, body.url)
    return webhook_out(row, secret)


@router.get("/webhooks", response_model=list[WebhookOut], summary="A site's webhook endpoints")
async def list_webhooks(
    deps: Deps,
    staff: CurrentStaff,
    site_id: Id,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
) -> list[WebhookOut]:
    staff.require_role("site_admin")
    staff.require_site(site_id)
    async with deps.runtime.sessionmaker() as session:
        rows = await webhooks.list_webhooks(session, site_id, limit, offset)
    return [webhook_out(r) for r in rows]


@router.post(
    "/webhooks/{webhook_id}/rotate-secret",
    response_model=WebhookOut,
    summary="Rotate an endpoint's signing secret: the new one is shown once; the old one keeps "
    "signing too (two signatures per message) until previous_secret_valid_until",
)
async def rotate_secret(deps: Deps, webhook_id: PathId, staff: CurrentStaff) -> WebhookOut:
    staff.require_role("site_admin")
    async with deps.runtime.transaction() as session:
        row, secret = await webhooks.rotate_secret(deps, session, staff, webhook_id)
    return webhook_out(row, secret)


@router.post(
    "/webhooks/{webhook_id}/enable",
    response_model=WebhookOut,
    summary="Re-enable an endpoint that was disabled (e.g. after answering 410 Gone)",
)
async def enable_webhook(deps: Deps, webhook_id: PathId, staff: CurrentStaff) -> WebhookOut:
    staff.require_role("site_admin")
    return webhook_out(await webhooks.enable_webhook(deps, staff, webhook_id))
