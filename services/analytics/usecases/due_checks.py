"""The episode's pending time-driven checks (``analytics_due_checks``), kept in step with its
state: after every change of the state, what :func:`domain.due_checks` says is due is pended
(a contact moves ``no_contact`` on) and what it no longer says is dropped."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from services.analytics import domain
from services.analytics.dependencies import AnalyticsDependencies
from services.analytics.models import DUE_CHECKS
from shared.clock import DueCheck, cancel, schedule_many
from shared.logs import get_logger

log = get_logger(__name__)

# A check that the state says is due again at once after it fired is pended this much later
# (a clock must not spin on a check its rule does not settle; never expected).
NOT_AGAIN_BEFORE = timedelta(minutes=1)


async def sync_checks(
    session: AsyncSession,
    episode_id: str,
    site_id: str,
    state: domain.EpisodeState,
    config: domain.RuleConfig,
    deps: AnalyticsDependencies,
    fired: tuple[str, datetime] | None = None,
) -> None:
    """Pend the episode's checks as its state now says (in the caller's transaction); after a
    check of a kind ``fired`` at a time, that kind is not pended again at or before it."""
    due = domain.due_checks(state, config, deps.zones.of(site_id))
    checks = []
    for kind, at in due.items():
        if fired is not None and kind == fired[0] and at <= fired[1]:
            log.warning("a check is due again as it fired; pended later", kind=kind)
            at = fired[1] + NOT_AGAIN_BEFORE
        checks.append(DueCheck(episode_id, kind, site_id, at))
    await schedule_many(session, DUE_CHECKS, checks)
    gone = [kind for kind in domain.TIME_DRIVEN if kind not in due]
    if gone:
        await cancel(session, DUE_CHECKS, episode_id, gone)
