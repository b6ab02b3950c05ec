"""The therapist registry: site admins register, update, deactivate, list and import the
therapists of their sites (a therapist working at several sites is managed by an admin of all
of them)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.domain.matching import therapist_problems
from services.intake.errors import (
    SiteNotAllowed,
    TherapistExists,
    TherapistNotFound,
    broken,
    field_errors,
    invalid,
)
from services.intake.mapping import TherapistFields, TherapistIn, apply_therapist, therapist_of
from services.intake.models import IntakeTherapist
from shared.auth import Staff


def require_sites(staff: Staff, sites: Sequence[str], field_name: str = "sites") -> None:
    """403 unless the caller may manage therapists at every one of ``sites``."""
    foreign = sorted(s for s in set(sites) if not staff.can_access_site(s))
    if foreign:
        raise SiteNotAllowed(
            f"You may not manage therapists at site(s) {', '.join(foreign)}.",
            errors=broken(field_name, "site_scope"),
        )


def therapist_row(body: TherapistFields, therapist_id: str) -> IntakeTherapist:
    """A registry row for the body (a caseload left out counts as 0), not yet stored."""
    row = IntakeTherapist(id=therapist_id, capacity=0, updated_at=datetime.now(UTC))
    apply_therapist(row, body, row.updated_at)
    if body.caseload is None:
        row.caseload = 0
    return row


def therapist_errors(
    body: TherapistFields, therapist_id: str, prefix: str = ""
) -> list[dict[str, str]]:
    """Each field and rule the body breaks (the engine's input checks); empty when fine."""
    row = therapist_row(body, therapist_id)
    return field_errors(therapist_problems(therapist_of(row)), prefix)


def checked_therapist(body: TherapistFields, therapist_id: str) -> IntakeTherapist:
    """A registry row for the body, or a 422 naming each field and rule it breaks."""
    errors = therapist_errors(body, therapist_id)
    if errors:
        raise invalid(errors)
    return therapist_row(body, therapist_id)


async def register_therapist(session: AsyncSession, row: IntakeTherapist) -> IntakeTherapist:
    """Store a checked row (:func:`checked_therapist`) unless the id is taken (409)."""
    if await session.get(IntakeTherapist, row.id) is not None:
        raise TherapistExists(
            f"Therapist {row.id!r} is already registered; use PUT to update.",
            errors=broken("id", "unique"),
        )
    session.add(row)
    return row


async def managed_therapist(
    session: AsyncSession, staff: Staff, therapist_id: str
) -> IntakeTherapist:
    """The therapist, locked for update, if the caller manages every site they work at."""
    row = await session.get(IntakeTherapist, therapist_id, with_for_update=True)
    if row is None or not any(staff.can_access_site(s) for s in row.sites):
        raise TherapistNotFound(f"No therapist {therapist_id!r} at your sites.")
    require_sites(staff, row.sites)
    return row


async def update_therapist(
    session: AsyncSession, staff: Staff, therapist_id: str, body: TherapistFields
) -> IntakeTherapist:
    row = await managed_therapist(session, staff, therapist_id)
    apply_therapist(row, body, datetime.now(UTC))
    session.add(row)
    return row


async def deactivate_therapist(
    session: AsyncSession, staff: Staff, therapist_id: str
) -> IntakeTherapist:
    row = await managed_therapist(session, staff, therapist_id)
    row.active = False
    row.updated_at = datetime.now(UTC)
    session.add(row)
    return row


async def therapists_at(
    session: AsyncSession, site_id: str, offset: int, limit: int
) -> list[IntakeTherapist]:
    """A page of the site's therapists, by id."""
    rows = (await session.execute(select(IntakeTherapist))).scalars().all()
    at_site = [r for r in sorted(rows, key=lambda r: r.id) if site_id in r.sites]
    return at_site[offset : offset + limit]


def check_import(staff: Staff, body: Sequence[TherapistIn]) -> None:
    """A whole import refused before anything is stored: a repeated id, a site the caller may
    not manage, or any field of any therapist (all of them named)."""
    ids = [t.id for t in body]
    if len(set(ids)) != len(ids):
        raise invalid(
            [{"field": "id", "rule": "unique", "message": "each therapist id at most once"}]
        )
    for k, item in enumerate(body):
        require_sites(staff, item.sites, f"{k}.sites")
    errors: list[dict[str, str]] = []
    for k, item in enumerate(body):
        errors += therapist_errors(item, item.id, f"{k}.")
    if errors:
        raise invalid(errors)


async def import_therapists(
    session: AsyncSession, staff: Staff, body: Sequence[TherapistIn]
) -> tuple[int, int]:
    """Register or update every therapist of the import (all or nothing): (created, updated)."""
    created = updated = 0
    now = datetime.now(UTC)
    for k, item in enumerate(body):
        row = await session.get(IntakeTherapist, item.id, with_for_update=True)
        if row is None:
            row = IntakeTherapist(id=item.id, capacity=item.capacity, updated_at=now)
            created += 1
        else:
            require_sites(staff, row.sites, f"{k}.sites")
            updated += 1
        apply_therapist(row, item, now)
        session.add(row)
    return created, updated
