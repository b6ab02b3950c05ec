"""Notify HTTP routes: webhook endpoints and the delivery log, per site."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from services.notify import domain, signing
from services.notify.dispatch import secret_key
from services.notify.models import NotifyDelivery, NotifyWebhook
from shared.auth import CurrentStaff
from shared.contracts import Id
from shared.crypto import seal
from shared.problems import Problem
from shared.runtime import ServiceRuntime, runtime_of

router = APIRouter(prefix="/notify", tags=["notify"])


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site_id: Id
    url: str = Field(min_length=8, max_length=2000)


class WebhookOut(BaseModel):
    id: str
    site_id: str
    url: str
    active: bool
    secret: str | None = Field(default=None, description="Shown once, at registration.")


class DeliveryOut(BaseModel):
    id: str
    source_event_id: str
    site_id: str
    channel: str
    recipient_role: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def _runtime(request: Request) -> ServiceRuntime:
    return runtime_of(request, "notify")


async def _check_target(url: str, allow_private: bool) -> None:
    def refuse(rule: str, why: str) -> Problem:
        return Problem(
            422, "Webhook URL refused", f"url: {why}", errors=[{"field": "url", "rule": rule}]
        )

    parts = urlsplit(url)
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        raise refuse("scheme", "must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise refuse("credentials", "must not carry credentials")
    if allow_private:
        return
    try:
        addresses = {
            info[4][0]
            for info in await asyncio.get_running_loop().getaddrinfo(
                parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
            )
        }
    except OSError:
        raise refuse("unresolvable", f"host {parts.hostname!r} does not resolve") from None
    for address in addresses:
        if domain.is_private_address(str(ipaddress.ip_address(str(address).split("%")[0]))):
            raise refuse(
                "private_address",
                f"{parts.hostname} resolves to a private, loopback or link-local "
                "address; webhooks must reach a public endpoint",
            )


@router.post(
    "/webhooks",
    status_code=201,
    response_model=WebhookOut,
    summary="Register a site's webhook endpoint (the signing secret is shown once)",
)
async def register_webhook(request: Request, body: WebhookIn, staff: CurrentStaff) -> WebhookOut:
    staff.require_role("site_admin")
    staff.require_site(body.site_id)
    runtime = _runtime(request)
    await _check_target(body.url, runtime.settings.allow_private_webhooks)
    webhook_id = str(uuid.uuid4())
    secret = signing.new_secret()
    row = NotifyWebhook(
        id=webhook_id,
        site_id=body.site_id,
        url=body.url,
        secret_sealed=seal(secret_key(runtime), secret, associated=webhook_id),
        created_at=datetime.now(UTC),
    )
    async with runtime.transaction() as session:
        session.add(row)
    return WebhookOut(id=row.id, site_id=row.site_id, url=row.url, active=row.active, secret=secret)


@router.get("/deliveries", response_model=list[DeliveryOut], summary="A site's delivery log")
async def list_deliveries(
    request: Request,
    staff: CurrentStaff,
    site_id: Id,
    limit: int = Query(default=100, ge=1, le=500),
) -> list[DeliveryOut]:
    staff.require_role("site_admin", "clinical_lead", "supervisor")
    staff.require_site(site_id)
    async with _runtime(request).sessionmaker() as session:
        rows = (
            await session.exec(
                select(NotifyDelivery)
                .where(NotifyDelivery.site_id == site_id)
                .order_by(col(NotifyDelivery.created_at).desc())
                .limit(limit)
            )
        ).all()
    return [DeliveryOut.model_validate(r, from_attributes=True) for r in rows]
