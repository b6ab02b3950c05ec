"""Routing policies and contacts, per site. Email addresses and phone numbers are personal
data: they are sealed on arrival and never returned (answers say only whether one is on file)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlmodel import col, select

from services.notify.context import NotifyContext
from services.notify.models import (
    NotifyClientContact,
    NotifyEpisode,
    NotifyPolicy,
    NotifyStaffContact,
)
from services.notify.policy import ClockTime, Recipient, RoutingPolicy, _zone
from shared.audit import audited
from shared.auth import CurrentStaff, Staff
from shared.contracts import Id
from shared.http import DEFAULT_PAGE_SIZE, PageLimit, PageOffset
from shared.problems import Problem
from shared.runtime import ServiceRuntime, runtime_of

router = APIRouter()

SiteId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$", max_length=64)]
StaffId = SiteId
RespondentPath = Annotated[str, Path(pattern=r"^p1_[0-9a-f]{32}$")]
Email = Annotated[
    str, StringConstraints(pattern=r"^[^@\s<>,;]{1,64}@[^@\s<>,;]{1,190}\.[^@\s<>,;]{1,63}$")
]
Phone = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]
POLICY_READERS = ("site_admin", "clinical_lead", "supervisor")
CLIENT_CONTACT_EDITORS = ("intake_coordinator", "therapist", "clinical_lead", "site_admin")


def _runtime(request: Request) -> ServiceRuntime:
    return runtime_of(request, "notify")


def _ctx(request: Request) -> NotifyContext:
    ctx: NotifyContext = _runtime(request).state["notify"]
    return ctx


# -- policies ----------------------------------------------------------------------------------


class PolicyOut(BaseModel):
    site_id: str
    source: Literal["site", "configured", "default"] = Field(
        description="site: stored for this site through the API; configured: the deployment's "
        "policy file; default: the checked-in default"
    )
    policy: RoutingPolicy
    updated_at: datetime | None = None
    updated_by: str | None = None


@router.get(
    "/policies/{site_id}", response_model=PolicyOut, summary="The routing policy a site uses"
)
async def get_policy(request: Request, site_id: SiteId, staff: CurrentStaff) -> PolicyOut:
    staff.require_role(*POLICY_READERS)
    staff.require_site(site_id)
    book = _ctx(request).policies.book
    async with _runtime(request).sessionmaker() as session:
        row = await session.get(NotifyPolicy, site_id)
    if row is not None:
        return PolicyOut(
            site_id=site_id,
            source="site",
            policy=RoutingPolicy.model_validate_json(row.document),
            updated_at=row.updated_at,
            updated_by=row.updated_by,
        )
    return PolicyOut(
        site_id=site_id,
        source="configured" if book.knows(site_id) else "default",
        policy=book.configured_for(site_id),
    )


@router.put(
    "/policies/{site_id}",
    response_model=PolicyOut,
    summary="Store a site's routing policy (a malformed one is refused, naming the field)",
)
async def put_policy(
    request: Request, site_id: SiteId, body: RoutingPolicy, staff: CurrentStaff
) -> PolicyOut:
    staff.require_role("site_admin")
    staff.require_site(site_id)
    now = datetime.now(UTC)
    async with _runtime(request).transaction() as session:
        row = await session.get(NotifyPolicy, site_id)
        row = row or NotifyPolicy(site_id=site_id, document="", updated_at=now, updated_by="")
        row.document = body.model_dump_json()
        row.updated_at, row.updated_by = now, staff.subject[:128]
        session.add(row)
    _ctx(request).policies.forget(site_id)
    return PolicyOut(
        site_id=site_id, source="site", policy=body, updated_at=now, updated_by=row.updated_by
    )


@router.delete(
    "/policies/{site_id}",
    status_code=204,
    response_class=Response,
    summary="Drop a site's stored policy (the configured or default one applies again)",
)
async def delete_policy(request: Request, site_id: SiteId, staff: CurrentStaff) -> Response:
    staff.require_role("site_admin")
    staff.require_site(site_id)
    async with _runtime(request).transaction() as session:
        row = await session.get(NotifyPolicy, site_id)
        if row is not None:
            await session.delete(row)
    _ctx(request).policies.forget(site_id)
    return Response(status_code=204)


# -- contacts ----------------------------------------------------------------------------------


class QuietHoursIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: ClockTime = Field(description="local time quiet hours begin, HH:MM (22:00)")
    end: ClockTime = Field(description="local time they end, HH:MM (07:00; may be next day)")


class ContactBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email | None = Field(default=None, max_length=254)
    phone: Phone | None = Field(default=None, description="E.164, e.g. +4915112345678")
    timezone: str = Field(default="UTC", max_length=64, description="IANA name")
    quiet_hours: QuietHoursIn | None = None

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _zone(value)


class StaffContactIn(ContactBase):
    active: bool = True


class StaffContactOut(BaseModel):
    id: str
    site_id: str
    role: str
    staff_id: str
    has_email: bool
    has_phone: bool
    timezone: str
    quiet_hours: QuietHoursIn | None
    active: bool
    updated_at: datetime


def _quiet_out(start: str | None, end: str | None) -> QuietHoursIn | None:
    return QuietHoursIn(start=start, end=end) if start and end else None


def _staff_out(row: NotifyStaffContact) -> StaffContactOut:
    return StaffContactOut(
        id=row.id,
        site_id=row.site_id,
        role=row.role,
        staff_id=row.staff_id,
        has_email=row.email_sealed is not None,
        has_phone=row.phone_sealed is not None,
        timezone=row.timezone,
        quiet_hours=_quiet_out(row.quiet_start, row.quiet_end),
        active=row.active,
        updated_at=row.updated_at,
    )


@router.put(
    "/contacts/{site_id}/{role}/{staff_id}",
    response_model=StaffContactOut,
    summary="Set how a staff member of a site is reached in a role (email/phone are stored "
    "sealed and never returned)",
)
async def put_staff_contact(
    request: Request,
    site_id: SiteId,
    role: Recipient,
    staff_id: StaffId,
    body: StaffContactIn,
    staff: CurrentStaff,
) -> StaffContactOut:
    staff.require_role("site_admin")
    staff.require_site(site_id)
    ctx = _ctx(request)
    now = datetime.now(UTC)
    async with _runtime(request).transaction() as session:
        row = (
            await session.exec(
                select(NotifyStaffContact).where(
                    NotifyStaffContact.site_id == site_id,
                    NotifyStaffContact.role == role,
                    NotifyStaffContact.staff_id == staff_id,
                )
            )
        ).first()
        if row is None:
            row = NotifyStaffContact(
                id=str(uuid.uuid4()),
                site_id=site_id,
                role=role,
                staff_id=staff_id,
                created_at=now,
                updated_at=now,
            )
        row.email_sealed = ctx.seal_address(body.email, row.id) if body.email else None
        row.phone_sealed = ctx.seal_address(body.phone, row.id) if body.phone else None
        row.timezone = body.timezone
        row.quiet_start = body.quiet_hours.start if body.quiet_hours else None
        row.quiet_end = body.quiet_hours.end if body.quiet_hours else None
        row.active, row.updated_at = body.active, now
        session.add(row)
    ctx.policies.forget(site_id)
    return _staff_out(row)


@router.get("/contacts", response_model=list[StaffContactOut], summary="A site's staff contacts")
async def list_staff_contacts(
    request: Request,
    site_id: Id,
    staff: CurrentStaff,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
) -> list[StaffContactOut]:
    staff.require_role("site_admin")
    staff.require_site(site_id)
    async with _runtime(request).sessionmaker() as session:
        rows = (
            await session.exec(
                select(NotifyStaffContact)
                .where(NotifyStaffContact.site_id == site_id)
                .order_by(col(NotifyStaffContact.role), col(NotifyStaffContact.staff_id))
                .offset(offset)
                .limit(limit)
            )
        ).all()
    return [_staff_out(r) for r in rows]


@router.delete(
    "/contacts/{site_id}/{role}/{staff_id}",
    status_code=204,
    response_class=Response,
    summary="Remove a staff contact (its sealed addresses are deleted)",
)
async def delete_staff_contact(
    request: Request, site_id: SiteId, role: Recipient, staff_id: StaffId, staff: CurrentStaff
) -> Response:
    staff.require_role("site_admin")
    staff.require_site(site_id)
    async with _runtime(request).transaction() as session:
        row = (
            await session.exec(
                select(NotifyStaffContact).where(
                    NotifyStaffContact.site_id == site_id,
                    NotifyStaffContact.role == role,
                    NotifyStaffContact.staff_id == staff_id,
                )
            )
        ).first()
        if row is not None:
            await session.delete(row)
    _ctx(request).policies.forget(site_id)
    return Response(status_code=204)


# -- client contacts (feedback invitations) ----------------------------------------------------


class ClientContactIn(ContactBase):
    channel: Literal["email", "sms"] = "email"
    consent: bool = Field(
        description="The person agreed to receive feedback invitations on this channel."
    )


class ClientContactOut(BaseModel):
    site_id: str
    respondent: str
    channel: str
    consent: bool
    consent_at: datetime | None
    has_email: bool
    has_phone: bool
    timezone: str
    quiet_hours: QuietHoursIn | None
    updated_at: datetime


def _client_out(row: NotifyClientContact) -> ClientContactOut:
    return ClientContactOut(
        site_id=row.site_id,
        respondent=row.respondent,
        channel=row.channel,
        consent=row.consent,
        consent_at=row.consent_at,
        has_email=row.email_sealed is not None,
        has_phone=row.phone_sealed is not None,
        timezone=row.timezone,
        quiet_hours=_quiet_out(row.quiet_start, row.quiet_end),
        updated_at=row.updated_at,
    )


async def _client_row(session: object, site_id: str, respondent: str) -> NotifyClientContact | None:
    result = await session.exec(  # type: ignore[attr-defined]
        select(NotifyClientContact).where(
            NotifyClientContact.site_id == site_id, NotifyClientContact.respondent == respondent
        )
    )
    row = result.first()
    assert row is None or isinstance(row, NotifyClientContact)
    return row


async def _require_own_client(
    request: Request, staff: Staff, site_id: str, respondent: str
) -> None:
    """Therapists reach only the members of their own episodes (other roles: the site)."""
    if staff.role != "therapist":
        return
    async with _runtime(request).sessionmaker() as session:
        episodes = (
            await session.exec(
                select(NotifyEpisode).where(
                    NotifyEpisode.site_id == site_id, NotifyEpisode.therapist_id == staff.subject
                )
            )
        ).all()
    if not any(m.get("respondent") == respondent for e in episodes for m in e.members):
        raise Problem(
            404,
            "Contact not found",
            "No client of yours with this pseudonym at this site.",
            errors=[{"field": "respondent", "rule": "not_found"}],
        )


@router.put(
    "/client-contacts/{site_id}/{respondent}",
    dependencies=[
        audited("notify", "client_contact.write", "client_contact", "site_id", "respondent")
    ],
    response_model=ClientContactOut,
    summary="Record how a client, partner or family member (by pseudonym, as intake shows it) "
    "wants feedback invitations, and their consent (addresses stored sealed)",
)
async def put_client_contact(
    request: Request,
    site_id: SiteId,
    respondent: RespondentPath,
    body: ClientContactIn,
    staff: CurrentStaff,
) -> ClientContactOut:
    staff.require_role(*CLIENT_CONTACT_EDITORS)
    staff.require_site(site_id)
    await _require_own_client(request, staff, site_id, respondent)
    address = body.email if body.channel == "email" else body.phone
    if body.consent and not address:
        raise Problem(
            422,
            "Invalid request",
            f"{body.channel}: needed to send invitations by {body.channel}",
            errors=[{"field": "email" if body.channel == "email" else "phone", "rule": "missing"}],
        )
    ctx = _ctx(request)
    now = datetime.now(UTC)
    async with _runtime(request).transaction() as session:
        row = await _client_row(session, site_id, respondent)
        if row is None:
            row = NotifyClientContact(
                id=str(uuid.uuid4()),
                site_id=site_id,
                respondent=respondent,
                channel=body.channel,
                updated_at=now,
                updated_by="",
            )
        if body.consent and not row.consent:
            row.consent_at = now
        elif not body.consent:
            row.consent_at = None
        row.consent, row.channel = body.consent, body.channel
        # Under the client's own data key: erasure destroys it (crypto-shredding).
        row.email_sealed = (
            await ctx.seal_client_address(session, respondent, body.email, row.id)
            if body.email
            else None
        )
        row.phone_sealed = (
            await ctx.seal_client_address(session, respondent, body.phone, row.id)
            if body.phone
            else None
        )
        row.timezone = body.timezone
        row.quiet_start = body.quiet_hours.start if body.quiet_hours else None
        row.quiet_end = body.quiet_hours.end if body.quiet_hours else None
        row.updated_at, row.updated_by = now, staff.subject[:128]
        session.add(row)
    return _client_out(row)


@router.get(
    "/client-contacts/{site_id}/{respondent}",
    dependencies=[
        audited("notify", "client_contact.read", "client_contact", "site_id", "respondent")
    ],
    response_model=ClientContactOut,
    summary="A respondent's invitation preferences and consent (no addresses)",
)
async def get_client_contact(
    request: Request, site_id: SiteId, respondent: RespondentPath, staff: CurrentStaff
) -> ClientContactOut:
    staff.require_role(*CLIENT_CONTACT_EDITORS)
    staff.require_site(site_id)
    await _require_own_client(request, staff, site_id, respondent)
    async with _runtime(request).sessionmaker() as session:
        row = await _client_row(session, site_id, respondent)
    if row is None:
        raise Problem(
            404,
            "Contact not found",
            "No invitation preferences are recorded for this respondent at this site.",
            errors=[{"field": "respondent", "rule": "not_found"}],
        )
    return _client_out(row)


@router.delete(
    "/client-contacts/{site_id}/{respondent}",
    dependencies=[
        audited("notify", "client_contact.delete", "client_contact", "site_id", "respondent")
    ],
    status_code=204,
    response_class=Response,
    summary="Forget a respondent's contact details (no further invitations)",
)
async def delete_client_contact(
    request: Request, site_id: SiteId, respondent: RespondentPath, staff: CurrentStaff
) -> Response:
    staff.require_role(*CLIENT_CONTACT_EDITORS)
    staff.require_site(site_id)
    await _require_own_client(request, staff, site_id, respondent)
    async with _runtime(request).transaction() as session:
        row = await _client_row(session, site_id, respondent)
        if row is not None:
            await session.delete(row)
    return Response(status_code=204)
