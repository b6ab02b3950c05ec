"""Episodes: one starts when a match is confirmed and ends when it is closed (a closed episode's
results re-estimate its therapist's effectiveness); staff read an episode's timeline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.analytics import domain
from services.analytics.charts import render
from services.analytics.dependencies import AnalyticsDependencies
from services.analytics.domain import EpisodeState
from services.analytics.domain.care import care_changes
from services.analytics.domain.goals import GoalRating, goal_attained, goal_progress
from services.analytics.effectiveness import MIN_CASES, therapist_effectiveness
from services.analytics.errors import EpisodeNotFound
from services.analytics.mapping import TimelineOut, closed_episodes, estimate_event, timeline_out
from services.analytics.models import (
    EPISODE_MATCHES,
    AnalyticsAlert,
    AnalyticsAlertAction,
    AnalyticsAlertDelivery,
    AnalyticsClosedEpisode,
    AnalyticsEpisode,
    AnalyticsEpisodeMatch,
    AnalyticsEpisodeSession,
    AnalyticsPhaseChange,
    AnalyticsScore,
)
from services.analytics.reports import episode_chart
from services.analytics.usecases.alerts import SOURCE
from services.analytics.usecases.consent import counts_in_aggregates
from services.analytics.usecases.due_checks import sync_checks
from services.analytics.usecases.follow_up import notes_of
from shared.auth import Staff
from shared.contracts import (
    THERAPIST_EFFECTIVENESS_UPDATED,
    EpisodeClosed,
    MatchConfirmed,
    TherapistEffectivenessUpdated,
)
from shared.db import dialect_of, insert_or_ignore
from shared.events import Event
from shared.instruments import Instrument

# Episodes closed for these reasons say nothing about the therapist's effectiveness.
NOT_COUNTED: frozenset[str] = frozenset({"transferred", "erased", "withdrawn"})


async def _episode(
    session: AsyncSession, episode_id: str, site_id: str, therapist_id: str
) -> AnalyticsEpisode:
    """The episode's row, locked for update; a new one if none is stored yet."""
    statement = select(AnalyticsEpisode).where(AnalyticsEpisode.episode_id == episode_id)
    if dialect_of(session) == "postgresql":
        statement = statement.with_for_update()
    episode = (await session.exec(statement)).first()
    if episode is None:
        episode = AnalyticsEpisode(
            episode_id=episode_id,
            site_id=site_id,
            therapist_id=therapist_id,
            updated_at=datetime.now(UTC),
        )
    return episode


async def start_episode(session: AsyncSession, data: MatchConfirmed) -> list[Event[Any]]:
    """A confirmed match: the episode's therapist, problem domains and client's age group."""
    episode = await _episode(session, data.episode_id, data.site_id, data.therapist_id)
    episode.therapist_id = data.therapist_id
    episode.domains = list(data.domains)
    episode.client = data.client
    if data.age_group is not None:  # a transfer's event from an older intake may lack it
        episode.age_group = data.age_group
    session.add(episode)
    await session.execute(  # for the timeline: its match, or a transfer
        insert_or_ignore(session, EPISODE_MATCHES, ["match_id"]).values(
            match_id=data.match_id,
            episode_id=data.episode_id,
            site_id=data.site_id,
            therapist_id=data.therapist_id,
            confirmed_at=data.confirmed_at,
        )
    )
    return []


async def close_episode(
    deps: AnalyticsDependencies, session: AsyncSession, data: EpisodeClosed
) -> list[Event[Any]]:
    """A closed episode: its phase, and (unless it says nothing about the therapist, or its
    client withdrew consent to the aggregates) its summary and the
    ``therapist.effectiveness.updated`` events of its domains."""
    episode = await _episode(session, data.episode_id, data.site_id, data.therapist_id)
    episode.phase = "dropped_out" if data.reason == "dropped_out" else "closed"
    episode.closed_at, episode.close_reason = data.closed_at, data.reason
    if episode.state:  # the rules follow it no more (unless a newer phase is known)
        state = domain.EpisodeState.from_json(episode.state)
        domain.on_phase(state, episode.phase, data.closed_at)
        episode.state = state.to_json()
        config = deps.rules.for_site(episode.site_id)
        await sync_checks(session, episode.episode_id, episode.site_id, state, config, deps)
    session.add(episode)
    if data.reason in NOT_COUNTED or not episode.domains:
        return []
    if not await counts_in_aggregates(session, episode.site_id, episode.client):
        return []  # the client withdrew consent to the aggregates
    session.add(await _summary(session, episode, deps.instruments, data.closed_at))
    await session.flush()
    return await _effectiveness_events(session, episode, MIN_CASES)


async def _summary(
    session: AsyncSession,
    episode: AnalyticsEpisode,
    instruments: Mapping[str, Instrument],
    closed_at: datetime,
) -> AnalyticsClosedEpisode:
    """Mean client alliance (0–100) and reliable improvement/deterioration of the episode."""
    scores = (
        await session.exec(
            select(AnalyticsScore)
            .where(
                AnalyticsScore.episode_id == episode.episode_id,
                AnalyticsScore.respondent_role == "client",
            )
            .order_by(col(AnalyticsScore.session_number))
        )
    ).all()
    alliance: list[float] = []
    improved = deteriorated = False
    by_instrument: dict[str, list[Decimal]] = {}
    for score in scores:
        instrument = instruments.get(score.instrument)
        if instrument is None:
            continue
        total = Decimal(score.total)
        if instrument.kind == "alliance":
            span = instrument.total_max - instrument.total_min
            alliance.append(float((total - instrument.total_min) / span * 100))
        elif instrument.kind in ("outcome", "symptom"):  # goals and support are no outcome
            by_instrument.setdefault(score.instrument, []).append(total)
    for instrument_id, totals in by_instrument.items():
        instrument = instruments[instrument_id]
        better = instrument.higher_is_better
        change = (totals[-1] - totals[0]) * (1 if better else -1)
        improved |= change >= instrument.reliable_change
        deteriorated |= -change >= instrument.reliable_change
    return AnalyticsClosedEpisode(
        goal_attained=goal_attained(goal_progress_of(episode, instruments)),
        episode_id=episode.episode_id,
        site_id=episode.site_id,
        therapist_id=episode.therapist_id,
        domains=list(episode.domains),
        mean_alliance=sum(alliance) / len(alliance) if alliance else None,
        reliably_improved=improved,
        deteriorated=deteriorated,
        closed_at=closed_at,
    )


async def _effectiveness_events(
    session: AsyncSession, episode: AnalyticsEpisode, min_cases: int
) -> list[Event[Any]]:
    """Re-estimate the site's therapists in the episode's domains (shrinkage moves everyone)."""
    closed = await closed_at_site(session, episode.site_id)
    now = datetime.now(UTC)
    events: list[Event[Any]] = []
    for result in therapist_effectiveness(closed_episodes(closed), min_cases=min_cases):
        if result.domain not in episode.domains:
            continue
        events.append(
            Event(
                THERAPIST_EFFECTIVENESS_UPDATED,
                TherapistEffectivenessUpdated(
                    therapist_id=result.therapist_id,
                    site_id=result.site_id,
                    domain=result.domain,
                    n=result.n,
                    mean_alliance=estimate_event(result.mean_alliance),
                    reliable_improvement_rate=estimate_event(result.reliable_improvement_rate),
                    deterioration_rate=estimate_event(result.deterioration_rate),
                    classification=result.classification,
                    updated_at=now,
                    goal_attainment_rate=estimate_event(result.goal_attainment_rate),
                    goal_n=result.goal_n,
                ),
                source=SOURCE,
            )
        )
    return events


async def closed_at_site(session: AsyncSession, site_id: str) -> Sequence[AnalyticsClosedEpisode]:
    """The closed episodes of a site that count for its therapists' effectiveness."""
    statement = select(AnalyticsClosedEpisode).where(AnalyticsClosedEpisode.site_id == site_id)
    return (await session.exec(statement)).all()


async def visible_episode(session: AsyncSession, staff: Staff, episode_id: str) -> AnalyticsEpisode:
    """The episode if the caller may see it: at their sites, and a therapist's own client
    (else not found: never say which)."""
    episode = await session.get(AnalyticsEpisode, episode_id)
    if (
        episode is None
        or not staff.can_access_site(episode.site_id)
        or (staff.role == "therapist" and staff.subject != episode.therapist_id)
    ):
        raise EpisodeNotFound(episode_id)
    return episode


def goal_progress_of(
    episode: AnalyticsEpisode, instruments: Mapping[str, Instrument]
) -> list[GoalRating]:
    """The client's goal ratings of the episode, each with its change from the goal's first."""
    if not episode.state:
        return []
    records = EpisodeState.from_json(episode.state).records
    rcs = {i.id: i.reliable_change for i in instruments.values() if i.kind == "goals"}
    return goal_progress(records, rcs)


async def timeline(
    session: AsyncSession,
    episode: AnalyticsEpisode,
    deps: AnalyticsDependencies | None = None,
    instruments: Mapping[str, Instrument] | None = None,
) -> TimelineOut:
    """The episode's scores and alerts, by session: each alert with the messages delivered
    about it, the actions recorded (their notes unsealed when ``deps`` is given: the clinical
    timeline, not the chart) and how it ended; the episode's match and transfers, how each
    session turned out and its phase changes; and (given ``deps`` or the ``instruments``) the
    progress of each of the client's goals."""
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
    known = instruments if instruments is not None else (deps.instruments if deps else None)
    goals = goal_progress_of(episode, known) if known is not None else []
    of_episode = episode.episode_id
    deliveries = (
        await session.exec(
            select(AnalyticsAlertDelivery).where(AnalyticsAlertDelivery.episode_id == of_episode)
        )
    ).all()
    actions = (
        await session.exec(
            select(AnalyticsAlertAction).where(AnalyticsAlertAction.episode_id == of_episode)
        )
    ).all()
    matches = (
        await session.exec(
            select(AnalyticsEpisodeMatch.therapist_id, AnalyticsEpisodeMatch.confirmed_at).where(
                AnalyticsEpisodeMatch.episode_id == of_episode
            )
        )
    ).all()
    sessions = (
        await session.exec(
            select(AnalyticsEpisodeSession).where(AnalyticsEpisodeSession.episode_id == of_episode)
        )
    ).all()
    phases = (
        await session.exec(
            select(AnalyticsPhaseChange).where(AnalyticsPhaseChange.episode_id == of_episode)
        )
    ).all()
    notes = {} if deps is None else await notes_of(deps, session, episode.client, actions)
    return timeline_out(
        episode,
        scores,
        alerts,
        deliveries,
        actions,
        care_changes((t, at) for t, at in matches),
        notes,
        sessions=sessions,
        phases=phases,
        goals=goals,
    )


async def episode_chart_svg(
    deps: AnalyticsDependencies, session: AsyncSession, episode: AnalyticsEpisode
) -> str:
    """An episode's measures by session (with the expected bands of the model in use), as
    SVG."""
    found = await timeline(session, episode, instruments=deps.instruments)
    chart = episode_chart(
        found,
        deps.instruments,
        deps.trajectories.trajectories(),
        episode.age_group,
        found.goal_progress,
    )
    return render(chart)
