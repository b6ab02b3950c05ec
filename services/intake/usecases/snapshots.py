"""The registry and effectiveness table as the engine reads them, rebuilt only when the tables
change (checked with one aggregate query per use, so several instances of the service stay
consistent)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.domain.matching import EffectivenessTable, Roster
from services.intake.domain.matching.time_zones import availability_shifts, roster_on_site_clock
from services.intake.mapping import effectiveness_of, therapist_of
from services.intake.models import IntakeEffectiveness, IntakeTherapist
from shared.site_time import SiteTimeZones


class RegistrySnapshots:
    """The last roster and effectiveness table built, each with the table version it was built
    from (row count, latest update and, for the roster, the caseload total)."""

    def __init__(self) -> None:
        self._roster: tuple[tuple[Any, ...], Roster] | None = None
        self._table: tuple[tuple[Any, ...], EffectivenessTable] | None = None
        # The last roster moved onto a site's clock, by the roster and the shifts it was moved by.
        self._on_clock: tuple[Roster, tuple[int, ...], Roster] | None = None

    async def roster(self, session: AsyncSession) -> Roster:
        t = IntakeTherapist
        version = tuple(
            (
                await session.execute(
                    select(func.count(), func.max(t.updated_at), func.sum(t.caseload))
                )
            ).one()
        )
        if self._roster is None or self._roster[0] != version:
            rows = (await session.execute(select(t))).scalars().all()
            self._roster = (version, Roster.build([therapist_of(r) for r in rows]))
        return self._roster[1]

    async def roster_for_site(
        self, session: AsyncSession, site: str, zones: SiteTimeZones, at: datetime
    ) -> Roster:
        """The roster with every therapist's availability on ``site``'s clock (telehealth
        therapists of sites in other zones shifted; domain/matching/time_zones.py)."""
        roster = await self.roster(session)
        shifts = availability_shifts(roster.therapists, site, zones, at)
        if not any(shifts):
            return roster
        cached = self._on_clock
        if cached is None or cached[0] is not roster or cached[1] != shifts:
            cached = self._on_clock = (roster, shifts, roster_on_site_clock(roster, shifts))
        return cached[2]

    async def effectiveness(self, session: AsyncSession) -> EffectivenessTable:
        e = IntakeEffectiveness
        version = tuple((await session.execute(select(func.count(), func.max(e.updated_at)))).one())
        if self._table is None or self._table[0] != version:
            rows = (await session.execute(select(e))).scalars().all()
            self._table = (version, EffectivenessTable([effectiveness_of(r) for r in rows]))
        return self._table[1]
