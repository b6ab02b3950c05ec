"""A client's consent to their data in the network's aggregates and trajectories
(``consent.changed``, scope ``aggregates``, issue 19). Withdrawn: from then on the client's
scores do not count in the trajectories fitted, and an episode of theirs that closes does not
count in its therapist's effectiveness; what counted before stays, and nothing is erased (the
episode's own rules, timeline and alerts go on as before)."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from services.analytics.models import AnalyticsConsent
from shared.contracts import ConsentChanged
from shared.events import Event


async def follow_consent(session: AsyncSession, changed: ConsentChanged) -> list[Event[Any]]:
    """Keep the latest word on the client's consent to the aggregates (other scopes are not
    analytics' concern)."""
    if changed.scope != "aggregates":
        return []
    row = await session.get(AnalyticsConsent, (changed.site_id, changed.client))
    if row is not None and row.recorded_at > changed.recorded_at:
        return []  # older news than what is held
    if row is None:
        row = AnalyticsConsent(
            site_id=changed.site_id,
            client=changed.client,
            granted=changed.granted,
            recorded_at=changed.recorded_at,
        )
    row.granted, row.recorded_at = changed.granted, changed.recorded_at
    session.add(row)
    return []


async def counts_in_aggregates(session: AsyncSession, site_id: str, client: str | None) -> bool:
    """Whether the client's data counts in the network's aggregates now (yes unless withdrawn;
    an episode whose client is not known yet counts)."""
    if client is None:
        return True
    row = await session.get(AnalyticsConsent, (site_id, client))
    return row is None or row.granted
