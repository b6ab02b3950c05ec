"""``/notify/contacts`` (staff, site admins) and ``/notify/client-contacts`` (clients, partners,
family by pseudonym: intake coordinators, therapists of the episode, clinical leads, site
admins). Addresses are sealed on arrival and never returned (answers say ``has_email``)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.notify.dependencies import Deps
from services.notify.mapping import (
    ClientContactOut,
    QuietHoursIn,
    StaffContactOut,
    client_contact_out,
    staff_contact_out,
)
from services.notify.policy import Recipient, valid_zone
from services.notify.routes.params import Email, Phone, RespondentPath, SiteId, StaffId
from services.notify.usecases import contacts
from services.notify.usecases.contacts import ContactDetails
from shared.audit import audited
from shared.auth import CurrentStaff
from shared.contracts import Id
from shared.http import DEFAULT_PAGE_SIZE, PageLimit, PageOffset

router = APIRouter()
CLIENT_CONTACT_EDITORS = ("intake_coordinator", "therapist", "clinical_lead", "site_admin")


class ContactBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email | None = Field(default=None, max_length=254)
    phone: Phone | None = Field(default=None, description="E.164, e.g. +4915112345678")
    timezone: str | None = Field(
        default=None, max_length=64, description="IANA name; unset: the site's time zone"
    )
    quiet_hours: QuietHoursIn | None = None

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return None if value is None else valid_zone(value)

    def details(self, site_zone: str) -> ContactDetails:
        """What is stored; a contact that names no time zone keeps its quiet hours in the
        site's (``site_zone``)."""
        quiet = self.quiet_hours
        return ContactDetails(
            email=self.email,
            phone=self.phone,
            timezone=self.timezone or site_zone,
            quiet_start=quiet.start if quiet else None,
            quiet_end=quiet.end if quiet else None,
        )


class StaffContactIn(ContactBase):
    active: bool = True


class ClientContactIn(ContactBase):
    channel: Literal["email", "sms"] = "email"
    consent: bool = Field(
        description="The person agreed to receive feedback invitations on this channel."
    )


# -- staff -------------------------------------------------------------------------------------


@router.put(
    "/contacts/{site_id}/{role}/{staff_id}",
    response_model=StaffContactOut,
    summary="Set how a staff member of a site is reached in a role (email/phone are stored "
    "sealed and never returned)",
)
async def put_staff_contact(
    deps: Deps,
    site_id: SiteId,
    role: Recipient,
    staff_id: StaffId,
    body: StaffContactIn,
    staff: CurrentStaff,
) -> StaffContactOut:
    staff.require_role("site_admin")
    staff.require_site(site_id)
    async with deps.runtime.transaction() as session:
        row = await contacts.set_staff_contact(
            deps,
            session,
            site_id,
            role,
            staff_id,
            body.details(deps.policies.zones.of(site_id).key),
            body.active,
        )
    deps.policies.forget(site_id)  # after the commit: this replica sees it at once
    return staff_contact_out(row)


@router.get("/contacts", response_model=list[StaffContactOut], summary="A site's staff contacts")
async def list_staff_contacts(
    deps: Deps,
    site_id: Id,
    staff: CurrentStaff,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
) -> list[StaffContactOut]:
    staff.require_role("site_admin")
    staff.require_site(site_id)
    async with deps.runtime.sessionmaker() as session:
        rows = await contacts.list_staff_contacts(session, site_id, limit, offset)
    return [staff_contact_out(r) for r in rows]


@router.delete(
    "/contacts/{site_id}/{role}/{staff_id}",
    status_code=204,
    response_class=Response,
    summary="Remove a staff contact (its sealed addresses are deleted)",
)
async def delete_staff_contact(
    deps: Deps, site_id: SiteId, role: Recipient, staff_id: StaffId, staff: CurrentStaff
) -> Response:
    staff.require_role("site_admin")
    staff.require_site(site_id)
    async with deps.runtime.transaction() as session:
        await contacts.remove_staff_contact(session, site_id, role, staff_id)
    deps.policies.forget(site_id)
    return Response(status_code=204)


# -- client contacts (feedback invitations) ----------------------------------------------------


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
    deps: Deps,
    site_id: SiteId,
    respondent: RespondentPath,
    body: ClientContactIn,
    staff: CurrentStaff,
) -> ClientContactOut:
    staff.require_role(*CLIENT_CONTACT_EDITORS)
    staff.require_site(site_id)
    async with deps.runtime.sessionmaker() as session:
        await contacts.require_own_client(session, staff, site_id, respondent)
    details = body.details(deps.policies.zones.of(site_id).key)
    contacts.require_address(body.channel, body.consent, details)
    async with deps.runtime.transaction() as session:
        row = await contacts.set_client_contact(
            deps, session, staff, site_id, respondent, body.channel, body.consent, details
        )
    return client_contact_out(row)


@router.get(
    "/client-contacts/{site_id}/{respondent}",
    dependencies=[
        audited("notify", "client_contact.read", "client_contact", "site_id", "respondent")
    ],
    response_model=ClientContactOut,
    summary="A respondent's invitation preferences and consent (no addresses)",
)
async def get_client_contact(
    deps: Deps, site_id: SiteId, respondent: RespondentPath, staff: CurrentStaff
) -> ClientContactOut:
    staff.require_role(*CLIENT_CONTACT_EDITORS)
    staff.require_site(site_id)
    async with deps.runtime.sessionmaker() as session:
        await contacts.require_own_client(session, staff, site_id, respondent)
    async with deps.runtime.sessionmaker() as session:
        row = await contacts.find_client_contact(session, site_id, respondent)
    return client_contact_out(row)


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
    deps: Deps, site_id: SiteId, respondent: RespondentPath, staff: CurrentStaff
) -> Response:
    staff.require_role(*CLIENT_CONTACT_EDITORS)
    staff.require_site(site_id)
    async with deps.runtime.sessionmaker() as session:
        await contacts.require_own_client(session, staff, site_id, respondent)
    async with deps.runtime.transaction() as session:
        await contacts.remove_client_contact(session, site_id, respondent)
    return Response(status_code=204)
