"""A therapist's places: reserved when a match is confirmed, freed when the episode closes (or
drops out), is transferred away or is erased; taken again when a client returns.

A place is reserved with a conditional ``UPDATE … SET caseload = caseload + 1 WHERE caseload <
capacity`` in the transaction that creates the episode: of two coordinators confirming the last
place at once, the database lets exactly one update the row; the other sees no row updated and
gets a 409 (its whole transaction, episode and outbox rows included, rolls back).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.errors import NoPlaceLeft, broken
from services.intake.models import IntakeTherapist


async def reserve_place(session: AsyncSession, therapist_id: str, now: datetime) -> None:
    """One more client on the therapist's caseload, only if a place is left (else 409)."""
    t = IntakeTherapist
    reserved = await session.execute(
        update(t)
        .where(
            t.id == therapist_id,  # type: ignore[arg-type]
            t.caseload < t.capacity,  # type: ignore[arg-type]
            t.active == True,  # type: ignore[arg-type]  # noqa: E712
        )
        .values(caseload=t.caseload + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if reserved.rowcount != 1:  # type: ignore[attr-defined]
        raise NoPlaceLeft(
            f"Therapist {therapist_id!r} has no place left (or is inactive); "
            "choose another option.",
            errors=broken("therapist_id", "capacity"),
        )


async def free_place(session: AsyncSession, therapist_id: str, now: datetime) -> None:
    t = IntakeTherapist
    await session.execute(
        update(t)
        .where(t.id == therapist_id, t.caseload > 0)  # type: ignore[arg-type]
        .values(caseload=t.caseload - 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )


async def take_place_back(session: AsyncSession, therapist_id: str, now: datetime) -> None:
    """A client who returns after a drop-out takes their place again, even when the therapist
    is full meanwhile: clinical care comes before capacity (the caseload may exceed it until
    someone closes; new matches see no place left)."""
    t = IntakeTherapist
    await session.execute(
        update(t)
        .where(t.id == therapist_id)  # type: ignore[arg-type]
        .values(caseload=t.caseload + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
