"""The registry and effectiveness table as the engine reads them, rebuilt only when the tables
change (checked with one aggregate query per use, so several instances of the service stay
consistent)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.domain.matching import EffectivenessTable, Roster
from services.intake.mapping import effectiveness_of, therapist_of
from services.intake.models import IntakeEffectiveness, IntakeTherapist


class RegistrySnapshots:
    """The last roster and effectiveness table built, each with the table version it was built
    from (row count, latest update and, for the roster, the caseload total)."""

    def __init__(self) -> None:
        self._roster: tuple[tuple[Any, ...], Roster] | None = None
        self._table: tuple[tuple[Any, ...], EffectivenessTable] | None = None

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

    async def effectiveness(self, session: AsyncSession) -> EffectivenessTable:
        e = IntakeEffectiveness
        version = tuple((await session.execute(select(func.count(), func.max(e.updated_at)))).one())
        if self._table is None or self._table[0] != version:
            rows = (await session.execute(select(e))).scalars().all()
            self._table = (version, EffectivenessTable([effectiveness_of(r) for r in rows]))
        return self._table[1]
