"""Notify HTTP routes: webhook endpoints, the delivery log and acknowledgements, per site.
(Routing policies and contacts: ``api_routing``.)"""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from services.notify import api_routing, api_undelivered, domain, signing
from services.notify.context import NotifyContext
from services.notify.models import NotifyDelivery, NotifyNotice, NotifyWebhook
from shared.audit import audited
from shared.auth import CurrentStaff, Staff
from shared.contracts import Id
from shared.crypto import seal
from shared.http import DEFAULT_PAGE_SIZE, PageLimit, PageOffset
from shared.problems import Problem
from shared.runtime import ServiceRuntime, runtime_of

router = APIRouter(prefix="/notify", tags=["notify"])
router.include_router(api_routing.router)
router.include_router(api_undelivered.router)

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$"
PathId = Annotated[str, Path(pattern=ID_PATTERN, max_length=64)]
LOG_READERS = ("site_admin", "clinical_lead", "supervisor")
ACKNOWLEDGERS = ("therapist", "supervisor", "clinical_lead", "site_admin", "intake_coordinator")
DeliveryStatus = Literal[
    "pending", "sending", "digest", "batched", "delivered", "failed", "cancelled"
]
DeliveryKind = Literal["alert", "escalation", "digest", "invitation", "reminder"]


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
    disabled_at: datetime | None = None
    disabled_reason: str | None = Field(
        default=None, description="gone: the endpoint answered 410 and was disabled"
    )
    previous_secret_valid_until: datetime | None = Field(
        default=None, description="During a rotation, until when the old secret also signs."
    )


class DeliveryOut(BaseModel):
    """One message in the log. No personal data: recipients are roles with staff ids or
    pseudonyms, never addresses; no message bodies."""

    id: str
    source_event_id: str
    site_id: str
    kind: str
    channel: str
    recipient_role: str
    recipient: str
    urgent: bool
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    notice_id: str | None
    digest_id: str | None


class AckOut(BaseModel):
    delivery_id: str
    acknowledged_at: datetime
    acknowledged_by: str
    notice_id: str | None
    escalation: Literal["none", "cancelled", "already_escalated"]


def _runtime(request: Request) -> ServiceRuntime:
    return runtime_of(request, "notify")


def _ctx(request: Request) -> NotifyContext:
    ctx: NotifyContext = _runtime(request).state["notify"]
    return ctx


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
    try:
        port = parts.port
    except ValueError:
        raise refuse("port", "has an invalid port") from None
    if allow_private:
        return
    try:
        addresses = {
            info[4][0]
            for info in await asyncio.get_running_loop().getaddrinfo(
                parts.hostname, port or (443 if parts.scheme == "https" else 80)
            )
        }
    except (OSError, UnicodeError):
        raise refuse("unresolvable", f"host {parts.hostname!r} does not resolve") from None
    for address in addresses:
        if domain.is_private_address(str(ipaddress.ip_address(str(address).split("%")[0]))):
            raise refuse(
                "private_address",
                f"{parts.hostname} resolves to a private, loopback or link-local "
                "address; webhooks must reach a public endpoint",
            )


def _webhook_out(row: NotifyWebhook, secret: str | None = None) -> WebhookOut:
    rotating = row.previous_secret_until
    return WebhookOut(
        id=row.id,
        site_id=row.site_id,
        url=row.url,
        active=row.active,
        secret=secret,
        disabled_at=row.disabled_at,
        disabled_reason=row.disabled_reason,
        previous_secret_valid_until=rotating
        if rotating is not None and rotating > datetime.now(UTC)
        else None,
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
    ctx = _ctx(request)
    await _check_target(body.url, runtime.settings.allow_private_webhooks)
    webhook_id = str(uuid.uuid4())
    secret = signing.new_secret()
    row = NotifyWebhook(
        id=webhook_id,
        site_id=body.site_id,
        url=body.url,
        secret_sealed=seal(ctx.webhook_secret_key(), secret, associated=webhook_id),
        created_at=datetime.now(UTC),
    )
    async with runtime.transaction() as session:
        session.add(row)
    ctx.policies.forget(body.site_id)
    return _webhook_out(row, secret)


@router.get("/webhooks", response_model=list[WebhookOut], summary="A site's webhook endpoints")
async def list_webhooks(
    request: Request,
    staff: CurrentStaff,
    site_id: Id,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
) -> list[WebhookOut]:
    staff.require_role("site_admin")
    staff.require_site(site_id)
    async with _runtime(request).sessionmaker() as session:
        rows = (
            await session.exec(
                select(NotifyWebhook)
                .where(NotifyWebhook.site_id == site_id)
                .order_by(col(NotifyWebhook.created_at))
                .offset(offset)
                .limit(limit)
            )
        ).all()
    return [_webhook_out(r) for r in rows]


async def _own_webhook(
    session: object, webhook_id: str, staff: Staff, runtime: ServiceRuntime
) -> NotifyWebhook:
    row = await session.get(NotifyWebhook, webhook_id)  # type: ignore[attr-defined]
    if row is None or not staff.can_access_site(row.site_id):
        raise Problem(
            404,
            "Webhook not found",
            f"No webhook endpoint {webhook_id!r} at your sites.",
            errors=[{"field": "webhook_id", "rule": "not_found"}],
        )
    assert isinstance(row, NotifyWebhook)
    return row


@router.post(
    "/webhooks/{webhook_id}/rotate-secret",
    response_model=WebhookOut,
    summary="Rotate an endpoint's signing secret: the new one is shown once; the old one keeps "
    "signing too (two signatures per message) until previous_secret_valid_until",
)
async def rotate_secret(request: Request, webhook_id: PathId, staff: CurrentStaff) -> WebhookOut:
    staff.require_role("site_admin")
    runtime = _runtime(request)
    ctx = _ctx(request)
    secret = signing.new_secret()
    async with runtime.transaction() as session:
        row = await _own_webhook(session, webhook_id, staff, runtime)
        row.previous_secret_sealed = row.secret_sealed
        row.previous_secret_until = datetime.now(UTC) + timedelta(
            seconds=runtime.settings.notify_secret_rotation_seconds
        )
        row.secret_sealed = seal(ctx.webhook_secret_key(), secret, associated=row.id)
        session.add(row)
    return _webhook_out(row, secret)


@router.post(
    "/webhooks/{webhook_id}/enable",
    response_model=WebhookOut,
    summary="Re-enable an endpoint that was disabled (e.g. after answering 410 Gone)",
)
async def enable_webhook(request: Request, webhook_id: PathId, staff: CurrentStaff) -> WebhookOut:
    staff.require_role("site_admin")
    runtime = _runtime(request)
    async with runtime.sessionmaker() as session:
        row = await _own_webhook(session, webhook_id, staff, runtime)
    await _check_target(row.url, runtime.settings.allow_private_webhooks)
    async with runtime.transaction() as session:
        row = await _own_webhook(session, webhook_id, staff, runtime)
        row.active, row.disabled_at, row.disabled_reason = True, None, None
        session.add(row)
    _ctx(request).policies.forget(row.site_id)
    return _webhook_out(row)


def _delivery_out(row: NotifyDelivery) -> DeliveryOut:
    return DeliveryOut.model_validate(row, from_attributes=True)


@router.get(
    "/deliveries",
    dependencies=[audited("notify", "deliveries.read", "deliveries")],
    response_model=list[DeliveryOut],
    summary="A site's delivery log",
)
async def list_deliveries(
    request: Request,
    staff: CurrentStaff,
    site_id: Id,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
    status: DeliveryStatus | None = None,
    kind: Annotated[DeliveryKind | None, Query()] = None,
) -> list[DeliveryOut]:
    staff.require_role(*LOG_READERS)
    staff.require_site(site_id)
    statement = select(NotifyDelivery).where(NotifyDelivery.site_id == site_id)
    if status is not None:
        statement = statement.where(NotifyDelivery.status == status)
    if kind is not None:
        statement = statement.where(NotifyDelivery.kind == kind)
    async with _runtime(request).sessionmaker() as session:
        rows = (
            await session.exec(
                statement.order_by(col(NotifyDelivery.created_at).desc(), col(NotifyDelivery.id))
                .offset(offset)
                .limit(limit)
            )
        ).all()
    return [_delivery_out(r) for r in rows]


def _delivery_not_found(delivery_id: str) -> Problem:
    return Problem(
        404,
        "Delivery not found",
        f"No delivery {delivery_id!r} at your sites.",
        errors=[{"field": "delivery_id", "rule": "not_found"}],
    )


async def _visible_delivery(session: object, delivery_id: str, staff: Staff) -> NotifyDelivery:
    row = await session.get(NotifyDelivery, delivery_id)  # type: ignore[attr-defined]
    if row is None or not staff.can_access_site(row.site_id):
        raise _delivery_not_found(delivery_id)
    assert isinstance(row, NotifyDelivery)
    return row


async def _addressed_to_therapist(session: object, row: NotifyDelivery, staff: Staff) -> bool:
    """A therapist acknowledges only what concerns their own clients: a message to them, or a
    site webhook about an episode they treat."""
    if row.recipient == f"staff:therapist:{staff.subject}":
        return True
    if not row.recipient.startswith("endpoint:") or row.notice_id is None:
        return False
    notice = await session.get(NotifyNotice, row.notice_id)  # type: ignore[attr-defined]
    return notice is not None and notice.therapist_id == staff.subject


@router.get(
    "/deliveries/{delivery_id}",
    dependencies=[audited("notify", "delivery.read", "delivery", "delivery_id")],
    response_model=DeliveryOut,
    summary="One delivery",
)
async def get_delivery(request: Request, delivery_id: PathId, staff: CurrentStaff) -> DeliveryOut:
    staff.require_role(*LOG_READERS)
    async with _runtime(request).sessionmaker() as session:
        return _delivery_out(await _visible_delivery(session, delivery_id, staff))


@router.post(
    "/deliveries/{delivery_id}/ack",
    dependencies=[audited("notify", "delivery.ack", "delivery", "delivery_id")],
    response_model=AckOut,
    summary="Acknowledge a delivery (the front-end, when a clinician has seen it): an urgent "
    "notice acknowledged in time is not escalated",
)
async def acknowledge(request: Request, delivery_id: PathId, staff: CurrentStaff) -> AckOut:
    staff.require_role(*ACKNOWLEDGERS)
    now = datetime.now(UTC)
    escalation: Literal["none", "cancelled", "already_escalated"] = "none"
    async with _runtime(request).transaction() as session:
        row = await _visible_delivery(session, delivery_id, staff)
        if staff.role == "therapist" and not await _addressed_to_therapist(session, row, staff):
            raise _delivery_not_found(delivery_id)
        if row.acknowledged_at is None:
            row.acknowledged_at, row.acknowledged_by = now, staff.subject[:128]
            session.add(row)
        if row.notice_id is not None:
            notice = await session.get(NotifyNotice, row.notice_id)
            if notice is not None and notice.urgent:
                if notice.escalated_at is not None:
                    escalation = "already_escalated"
                elif notice.acknowledged_at is None:
                    escalation = "cancelled"
                if notice.acknowledged_at is None:
                    notice.acknowledged_at, notice.acknowledged_by = now, staff.subject[:128]
                    notice.escalate_at = None  # nothing left to escalate
                    session.add(notice)
    assert row.acknowledged_at is not None and row.acknowledged_by is not None
    return AckOut(
        delivery_id=row.id,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        notice_id=row.notice_id,
        escalation=escalation,
    )


@router.post(
    "/deliveries/{delivery_id}/retry",
    dependencies=[audited("notify", "delivery.retry", "delivery", "delivery_id")],
    response_model=DeliveryOut,
    summary="Send a failed (dead-lettered) delivery again, with a fresh retry schedule",
)
async def retry_delivery(request: Request, delivery_id: PathId, staff: CurrentStaff) -> DeliveryOut:
    staff.require_role("site_admin")
    async with _runtime(request).transaction() as session:
        row = await _visible_delivery(session, delivery_id, staff)
        if row.status != "failed":
            raise Problem(
                409,
                "Delivery not failed",
                f"Only failed deliveries can be retried; this one is {row.status}.",
                errors=[{"field": "delivery_id", "rule": "not_failed"}],
            )
        row.status, row.attempts, row.next_attempt_at = "pending", 0, datetime.now(UTC)
        row.failed_at = None
        session.add(row)
    _ctx(request).wake_dispatcher()
    return _delivery_out(row)
