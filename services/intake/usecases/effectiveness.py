"""Therapist effectiveness as the engine reads it: the latest estimate per therapist × site ×
problem domain, from analytics' ``therapist.effectiveness.updated``."""

from __future__ import annotations

from datetime import UTC

from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.models import IntakeEffectiveness
from shared.contracts import TherapistEffectivenessUpdated


async def record_effectiveness(session: AsyncSession, data: TherapistEffectivenessUpdated) -> None:
    """Keep the latest estimate per therapist × site × domain (an older one arriving late is
    ignored)."""
    row = await session.get(IntakeEffectiveness, (data.therapist_id, data.site_id, data.domain))
    if row is not None and row.updated_at.replace(tzinfo=UTC) > data.updated_at.astimezone(UTC):
        return  # an older estimate arriving late
    estimates = {
        name: value.model_dump() if value is not None else None
        for name, value in (
            ("reliable_improvement", data.reliable_improvement_rate),
            ("deterioration", data.deterioration_rate),
            ("mean_alliance", data.mean_alliance),
        )
    }
    if row is None:
        row = IntakeEffectiveness(
            therapist_id=data.therapist_id,
            site_id=data.site_id,
            domain=data.domain,
            n=data.n,
            classification=data.classification,
            estimates=estimates,
            updated_at=data.updated_at,
        )
    row.n = data.n
    row.classification = data.classification
    row.estimates = estimates
    row.updated_at = data.updated_at
    session.add(row)
