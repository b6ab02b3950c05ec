"""How staff and client-side members of a site are reached. Email addresses and phone numbers
are personal data: sealed on arrival (clients' under their own data key, which erasure
destroys), never returned."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify.dependencies import NotifyDependencies
from services.notify.errors import ContactNotFound
from services.notify.models import NotifyClientContact, NotifyEpisode, NotifyStaffContact
from shared.auth import Staff
from shared.errors import Invalid


@dataclass(frozen=True)
class ContactDetails:
    """What a person's contact says, as the caller gave it (addresses in clear, to be sealed)."""

    email: str | None
    phone: str | None
    timezone: str
    quiet_start: str | None
    quiet_end: str | None


# -- staff -------------------------------------------------------------------------------------


async def staff_contact(
    session: AsyncSession, site_id: str, role: str, staff_id: str
) -> NotifyStaffContact | None:
    return (
        await session.exec(
            select(NotifyStaffContact).where(
                NotifyStaffContact.site_id == site_id,
                NotifyStaffContact.role == role,
                NotifyStaffContact.staff_id == staff_id,
            )
        )
    ).first()


async def set_staff_contact(
    deps: NotifyDependencies,
    session: AsyncSession,
    site_id: str,
    role: str,
    staff_id: str,
    details: ContactDetails,
    active: bool,
) -> NotifyStaffContact:
    now = datetime.now(UTC)
    row = await staff_contact(session, site_id, role, staff_id)
    if row is None:
        row = NotifyStaffContact(
            id=str(uuid.uuid4()),
            site_id=site_id,
            role=role,
            staff_id=staff_id,
            created_at=now,
            updated_at=now,
        )
    seal = deps.sealing.seal_address
    row.email_sealed = seal(details.email, row.id) if details.email else None
    row.phone_sealed = seal(details.phone, row.id) if details.phone else None
    row.timezone = details.timezone
    row.quiet_start, row.quiet_end = details.quiet_start, details.quiet_end
    row.active, row.updated_at = active, now
    session.add(row)
    return row


async def list_staff_contacts(
    session: AsyncSession, site_id: str, limit: int, offset: int
) -> Sequence[NotifyStaffContact]:
    return (
        await session.exec(
            select(NotifyStaffContact)
            .where(NotifyStaffContact.site_id == site_id)
            .order_by(col(NotifyStaffContact.role), col(NotifyStaffContact.staff_id))
            .offset(offset)
            .limit(limit)
        )
    ).all()


async def remove_staff_contact(
    session: AsyncSession, site_id: str, role: str, staff_id: str
) -> None:
    row = await staff_contact(session, site_id, role, staff_id)
    if row is not None:
        await session.delete(row)


# -- clients, partners, family ---------------------------------------------------------------


async def client_contact(
    session: AsyncSession, site_id: str, respondent: str
) -> NotifyClientContact | None:
    return (
        await session.exec(
            select(NotifyClientContact).where(
                NotifyClientContact.site_id == site_id,
                NotifyClientContact.respondent == respondent,
            )
        )
    ).first()


async def require_own_client(
    session: AsyncSession, staff: Staff, site_id: str, respondent: str
) -> None:
    """Therapists reach only the members of their own episodes (other roles: the site)."""
    if staff.role != "therapist":
        return
    episodes = (
        await session.exec(
            select(NotifyEpisode).where(
                NotifyEpisode.site_id == site_id, NotifyEpisode.therapist_id == staff.subject
            )
        )
    ).all()
    if not any(m.get("respondent") == respondent for e in episodes for m in e.members):
        raise ContactNotFound(
            "No client of yours with this pseudonym at this site.",
            errors=[{"field": "respondent", "rule": "not_found"}],
        )


def require_address(channel: str, consent: bool, details: ContactDetails) -> None:
    """Consent to invitations on a channel needs an address on that channel."""
    address = details.email if channel == "email" else details.phone
    if consent and not address:
        raise Invalid(
            f"{channel}: needed to send invitations by {channel}",
            errors=[{"field": "email" if channel == "email" else "phone", "rule": "missing"}],
        )


async def set_client_contact(
    deps: NotifyDependencies,
    session: AsyncSession,
    staff: Staff,
    site_id: str,
    respondent: str,
    channel: str,
    consent: bool,
    details: ContactDetails,
) -> NotifyClientContact:
    now = datetime.now(UTC)
    row = await client_contact(session, site_id, respondent)
    if row is None:
        row = NotifyClientContact(
            id=str(uuid.uuid4()),
            site_id=site_id,
            respondent=respondent,
            channel=channel,
            updated_at=now,
            updated_by="",
        )
    if consent and not row.consent:
        row.consent_at = now
    elif not consent:
        row.consent_at = None
    row.consent, row.channel = consent, channel
    # Under the client's own data key: erasure destroys it (crypto-shredding).
    seal = deps.sealing.seal_client_address
    row.email_sealed = (
        await seal(session, respondent, details.email, row.id) if details.email else None
    )
    row.phone_sealed = (
        await seal(session, respondent, details.phone, row.id) if details.phone else None
    )
    row.timezone = details.timezone
    row.quiet_start, row.quiet_end = details.quiet_start, details.quiet_end
    row.updated_at, row.updated_by = now, staff.subject[:128]
    session.add(row)
    return row


async def find_client_contact(
    session: AsyncSession, site_id: str, respondent: str
) -> NotifyClientContact:
    row = await client_contact(session, site_id, respondent)
    if row is None:
        raise ContactNotFound(
            "No invitation preferences are recorded for this respondent at this site.",
            errors=[{"field": "respondent", "rule": "not_found"}],
        )
    return row


async def remove_client_contact(session: AsyncSession, site_id: str, respondent: str) -> None:
    row = await client_contact(session, site_id, respondent)
    if row is not None:
        await session.delete(row)
