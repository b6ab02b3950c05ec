"""A site's aggregates: its therapists' effectiveness per problem domain, its summary (alerts,
repairs, outcomes) and the report a supervisor opens in a browser."""

from __future__ import annotations

import statistics
from collections import Counter
from decimal import Decimal

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.analytics.dependencies import AnalyticsDependencies
from services.analytics.effectiveness import therapist_effectiveness
from services.analytics.mapping import (
    DomainEffectivenessOut,
    SiteSummaryOut,
    closed_episodes,
    effectiveness_out,
)
from services.analytics.models import AnalyticsAlert, AnalyticsEpisode, AnalyticsScore
from services.analytics.reports import TrackShares, site_report_html, track_shares
from services.analytics.usecases.episodes import closed_at_site, episode_chart_svg

# The alerts whose episodes a site report charts (the most flagged first).
CHARTED_KINDS = ("rupture", "low_alliance", "deterioration")
# Phases of an episode still in care (intake's phases, as analytics follows them).
OPEN_PHASES = frozenset({"referred", "matched", "active", "closing"})
CHARTED_EPISODES = 6


async def site_effectiveness(session: AsyncSession, site_id: str) -> list[DomainEffectivenessOut]:
    """Every therapist × domain at the site, shrunk towards the site's mean."""
    closed = await closed_at_site(session, site_id)
    return [effectiveness_out(r) for r in therapist_effectiveness(closed_episodes(closed))]


async def therapist_effectiveness_at_site(
    session: AsyncSession, site_id: str, therapist_id: str, limit: int, offset: int
) -> list[DomainEffectivenessOut]:
    rows = await site_effectiveness(session, site_id)
    return [r for r in rows if r.therapist_id == therapist_id][offset : offset + limit]


async def site_summary(session: AsyncSession, site_id: str) -> SiteSummaryOut:
    episodes = (
        await session.exec(
            select(AnalyticsEpisode.phase, func.count())
            .where(AnalyticsEpisode.site_id == site_id)
            .group_by(AnalyticsEpisode.phase)
        )
    ).all()
    phases = dict(episodes)
    sessions = (
        await session.exec(
            select(func.count()).select_from(
                select(AnalyticsScore.episode_id, AnalyticsScore.session_number)
                .where(AnalyticsScore.site_id == site_id)
                .distinct()
                .subquery()
            )
        )
    ).one()
    alerts = (
        await session.exec(select(AnalyticsAlert).where(AnalyticsAlert.site_id == site_id))
    ).all()
    kinds = Counter(a.kind for a in alerts)
    ruptures = [a for a in alerts if a.kind == "rupture"]
    repaired = [a for a in ruptures if a.status == "resolved" and a.resolved_session is not None]
    closed = await closed_at_site(session, site_id)
    return SiteSummaryOut(
        site_id=site_id,
        episodes_active=sum(n for p, n in phases.items() if p in OPEN_PHASES),
        episodes_closed=sum(n for p, n in phases.items() if p not in OPEN_PHASES),
        sessions_with_feedback=int(sessions),
        alerts_opened=dict(sorted(kinds.items())),
        alerts_per_100_sessions=round(100 * len(alerts) / sessions, 1) if sessions else 0.0,
        open_alerts=sum(a.status == "open" for a in alerts),
        ruptures=len(ruptures),
        ruptures_repaired=len(repaired),
        median_sessions_to_repair=(
            statistics.median((a.resolved_session or 0) - a.opened_session for a in repaired)
            if repaired
            else None
        ),
        reliable_improvement_rate=(
            round(sum(c.reliably_improved for c in closed) / len(closed), 3) if closed else None
        ),
        deterioration_rate=(
            round(sum(c.deteriorated for c in closed) / len(closed), 3) if closed else None
        ),
        therapists=await site_effectiveness(session, site_id),
    )


async def site_report(deps: AnalyticsDependencies, session: AsyncSession, site_id: str) -> str:
    """The site's summary and the charts of its most flagged episodes, as an HTML page."""
    summary = await site_summary(session, site_id)
    flagged = (
        await session.exec(
            select(AnalyticsAlert.episode_id, func.count())
            .where(
                AnalyticsAlert.site_id == site_id,
                col(AnalyticsAlert.kind).in_(list(CHARTED_KINDS)),
            )
            .group_by(AnalyticsAlert.episode_id)
            .order_by(func.count().desc())
            .limit(CHARTED_EPISODES)
        )
    ).all()
    charts = []
    for episode_id, _ in flagged:
        episode = await session.get(AnalyticsEpisode, episode_id)
        if episode is not None:
            charts.append(await episode_chart_svg(deps, session, episode))
    return site_report_html(summary, charts, await _track(deps, session, site_id))


async def _track(deps: AnalyticsDependencies, session: AsyncSession, site_id: str) -> TrackShares:
    """The site's active and closed episodes placed against the expected trajectories."""
    outcome = [i.id for i in deps.instruments.values() if i.kind != "alliance" and i.clinical]
    rows = (
        await session.exec(
            select(
                AnalyticsScore.episode_id,
                AnalyticsScore.instrument,
                AnalyticsScore.session_number,
                AnalyticsScore.total,
            ).where(
                AnalyticsScore.site_id == site_id,
                AnalyticsScore.respondent_role == "client",
                col(AnalyticsScore.instrument).in_(outcome),
            )
        )
    ).all()
    scores = ((e, i, s, Decimal(t)) for e, i, s, t in rows)
    return track_shares(scores, deps.trajectories.trajectories(), deps.instruments)
