"""Analytics HTTP routes: episode timelines and charts, therapist and site summaries, and a
site report a supervisor opens in a browser (the alerts and their acknowledgement are in
``api_alerts``). Every read is scoped to the caller's sites; therapists see their own clients
only; data analysts get aggregates only."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.analytics.api_alerts import AlertOut, alert_out
from services.analytics.api_alerts import router as alerts_router
from services.analytics.charts import render
from services.analytics.effectiveness import ClosedEpisode, therapist_effectiveness
from services.analytics.models import (
    AnalyticsAlert,
    AnalyticsClosedEpisode,
    AnalyticsEpisode,
    AnalyticsScore,
)
from services.analytics.reports import episode_chart, site_report_html
from shared.audit import audited
from shared.auth import CurrentStaff, Staff
from shared.contracts import Id
from shared.http import DEFAULT_PAGE_SIZE, PageLimit, PageOffset
from shared.problems import Problem
from shared.runtime import ServiceRuntime, runtime_of

router = APIRouter(prefix="/analytics", tags=["analytics"])
router.include_router(alerts_router)

CLINICAL = ("therapist", "supervisor", "clinical_lead")
AGGREGATES = ("supervisor", "clinical_lead", "data_analyst", "site_admin")


class ScoreOut(BaseModel):
    session_number: int
    respondent: str
    respondent_role: str
    instrument: str
    score: float
    concern: bool


class TimelineOut(BaseModel):
    episode_id: str
    site_id: str
    therapist_id: str
    phase: str
    last_session: int
    scores: list[ScoreOut]
    alerts: list[AlertOut]


class EstimateOut(BaseModel):
    estimate: float
    lower: float
    upper: float


class DomainEffectivenessOut(BaseModel):
    """One therapist × domain. Below ``min_cases`` closed cases there is no estimate: the
    status is ``not_enough_data`` and the three estimates are null (never a number that looks
    certain)."""

    therapist_id: str
    domain: str
    n: int
    min_cases: int
    status: Literal["estimated", "not_enough_data"]
    mean_alliance: EstimateOut | None
    reliable_improvement_rate: EstimateOut | None
    deterioration_rate: EstimateOut | None
    classification: str


class SiteSummaryOut(BaseModel):
    site_id: str
    episodes_active: int
    episodes_closed: int
    sessions_with_feedback: int
    alerts_opened: dict[str, int]
    alerts_per_100_sessions: float
    open_alerts: int
    ruptures: int
    ruptures_repaired: int
    median_sessions_to_repair: float | None
    reliable_improvement_rate: float | None
    deterioration_rate: float | None
    therapists: list[DomainEffectivenessOut]


def _runtime(request: Request) -> ServiceRuntime:
    return runtime_of(request, "analytics")


async def _visible_episode(
    session: AsyncSession, staff: Staff, episode_id: str
) -> AnalyticsEpisode:
    staff.require_role(*CLINICAL)
    episode = await session.get(AnalyticsEpisode, episode_id)
    if (
        episode is None
        or not staff.can_access_site(episode.site_id)
        or (staff.role == "therapist" and staff.subject != episode.therapist_id)
    ):
        raise Problem(404, "Episode not found", f"No episode {episode_id!r} that you may see.")
    return episode


async def _timeline(session: AsyncSession, episode: AnalyticsEpisode) -> TimelineOut:
    scores = (
        await session.exec(
            select(AnalyticsScore)
            .where(AnalyticsScore.episode_id == episode.episode_id)
            .order_by(col(AnalyticsScore.session_number), col(AnalyticsScore.recorded_at))
        )
    ).all()
    alerts = (
        await session.exec(
            select(AnalyticsAlert)
            .where(AnalyticsAlert.episode_id == episode.episode_id)
            .order_by(col(AnalyticsAlert.opened_session), col(AnalyticsAlert.opened_at))
        )
    ).all()
    return TimelineOut(
        episode_id=episode.episode_id,
        site_id=episode.site_id,
        therapist_id=episode.therapist_id,
        phase=episode.phase,
        last_session=episode.last_session,
        scores=[
            ScoreOut(
                session_number=s.session_number,
                respondent=s.respondent,
                respondent_role=s.respondent_role,
                instrument=s.instrument,
                score=float(s.total),
                concern=s.concern,
            )
            for s in scores
        ],
        alerts=[alert_out(a) for a in alerts],
    )


@router.get(
    "/episodes/{episode_id}/timeline",
    dependencies=[audited("analytics", "timeline.read", "episode", "episode_id")],
    response_model=TimelineOut,
    summary="An episode's scores, alerts, ruptures and repairs, by session",
)
async def episode_timeline(request: Request, episode_id: Id, staff: CurrentStaff) -> TimelineOut:
    async with _runtime(request).sessionmaker() as session:
        episode = await _visible_episode(session, staff, episode_id)
        return await _timeline(session, episode)


@router.get(
    "/episodes/{episode_id}/chart.svg",
    dependencies=[audited("analytics", "chart.read", "episode", "episode_id")],
    response_class=Response,
    summary="Alliance and outcome by session (SVG)",
    responses={200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}}}},
)
async def episode_chart_svg(request: Request, episode_id: Id, staff: CurrentStaff) -> Response:
    runtime = _runtime(request)
    async with runtime.sessionmaker() as session:
        episode = await _visible_episode(session, staff, episode_id)
        timeline = await _timeline(session, episode)
    svg = render(episode_chart(timeline, runtime.state["instruments"]))
    return Response(svg, media_type="image/svg+xml")


async def _effectiveness(session: AsyncSession, site_id: str) -> list[DomainEffectivenessOut]:
    closed = (
        await session.exec(
            select(AnalyticsClosedEpisode).where(AnalyticsClosedEpisode.site_id == site_id)
        )
    ).all()
    results = therapist_effectiveness(
        ClosedEpisode(
            c.therapist_id,
            c.site_id,
            tuple(c.domains),
            c.mean_alliance,
            c.reliably_improved,
            c.deteriorated,
        )
        for c in closed
    )

    def estimate(value: Any) -> EstimateOut | None:
        return (
            None
            if value is None
            else EstimateOut(
                estimate=round(value.estimate, 4),
                lower=round(value.lower, 4),
                upper=round(value.upper, 4),
            )
        )

    return [
        DomainEffectivenessOut(
            therapist_id=r.therapist_id,
            domain=r.domain,
            n=r.n,
            min_cases=r.min_cases,
            status="estimated" if r.enough_data else "not_enough_data",
            mean_alliance=estimate(r.mean_alliance) if r.enough_data else None,
            reliable_improvement_rate=(
                estimate(r.reliable_improvement_rate) if r.enough_data else None
            ),
            deterioration_rate=estimate(r.deterioration_rate) if r.enough_data else None,
            classification=r.classification,
        )
        for r in results
    ]


@router.get(
    "/therapists/{therapist_id}/effectiveness",
    response_model=list[DomainEffectivenessOut],
    summary="A therapist's shrunken effectiveness per problem domain, with intervals",
)
async def therapist_summary(
    request: Request,
    therapist_id: Id,
    site_id: Id,
    staff: CurrentStaff,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    offset: PageOffset = 0,
) -> list[DomainEffectivenessOut]:
    if not (
        staff.role in AGGREGATES or (staff.role == "therapist" and staff.subject == therapist_id)
    ):
        staff.require_role(*AGGREGATES)
    staff.require_site(site_id)
    async with _runtime(request).sessionmaker() as session:
        rows = await _effectiveness(session, site_id)
    return [r for r in rows if r.therapist_id == therapist_id][offset : offset + limit]


async def site_summary_data(session: AsyncSession, site_id: str) -> SiteSummaryOut:
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
    closed = (
        await session.exec(
            select(AnalyticsClosedEpisode).where(AnalyticsClosedEpisode.site_id == site_id)
        )
    ).all()
    return SiteSummaryOut(
        site_id=site_id,
        episodes_active=sum(n for p, n in phases.items() if p in {"matched", "active"}),
        episodes_closed=sum(n for p, n in phases.items() if p not in {"matched", "active"}),
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
        therapists=await _effectiveness(session, site_id),
    )


@router.get(
    "/sites/{site_id}/summary",
    response_model=SiteSummaryOut,
    summary="A site's alerts, repairs, outcomes and therapist estimates",
)
async def site_summary(request: Request, site_id: Id, staff: CurrentStaff) -> SiteSummaryOut:
    staff.require_role(*AGGREGATES)
    staff.require_site(site_id)
    async with _runtime(request).sessionmaker() as session:
        return await site_summary_data(session, site_id)


@router.get(
    "/sites/{site_id}/report",
    response_class=HTMLResponse,
    summary="A site report (HTML with charts) for supervisors",
)
async def site_report(request: Request, site_id: Id, staff: CurrentStaff) -> HTMLResponse:
    staff.require_role("supervisor", "clinical_lead")
    staff.require_site(site_id)
    runtime = _runtime(request)
    async with runtime.sessionmaker() as session:
        summary = await site_summary_data(session, site_id)
        flagged = (
            await session.exec(
                select(AnalyticsAlert.episode_id, func.count())
                .where(
                    AnalyticsAlert.site_id == site_id,
                    col(AnalyticsAlert.kind).in_(["rupture", "low_alliance", "deterioration"]),
                )
                .group_by(AnalyticsAlert.episode_id)
                .order_by(func.count().desc())
                .limit(6)
            )
        ).all()
        charts = []
        for episode_id, _ in flagged:
            episode = await session.get(AnalyticsEpisode, episode_id)
            if episode is not None:
                timeline = await _timeline(session, episode)
                charts.append(render(episode_chart(timeline, runtime.state["instruments"])))
    return HTMLResponse(site_report_html(summary, charts))


__all__ = ["router"]
