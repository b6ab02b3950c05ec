"""Scored responses: each ``feedback.recorded`` event updates its episode's state, stores the
score and opens or resolves the alerts the rules say (the service's hot path: every response,
in SQLAlchemy Core, no ORM objects to build and flush)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, delete, insert, update
from sqlalchemy import select as sa_select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.analytics import domain
from services.analytics.dependencies import AnalyticsDependencies
from services.analytics.errors import UnknownInstrument
from services.analytics.mapping import scored_record
from services.analytics.models import EPISODES, SCORES
from services.analytics.usecases.alerts import SOURCE, EpisodeOwners, alert_events
from services.analytics.usecases.consent import counts_in_aggregates
from services.analytics.usecases.due_checks import sync_checks
from shared.contracts import ALLIANCE_ASSESSED, AllianceAssessed, FeedbackRecorded
from shared.db import dialect_of
from shared.events import Event
from shared.logs import get_logger

log = get_logger(__name__)


async def assess_response(
    deps: AnalyticsDependencies, session: AsyncSession, data: FeedbackRecorded
) -> list[Event[Any]]:
    """Apply one scored response to its episode: the events to publish (``alliance.assessed``
    for an alliance instrument, then one ``alliance.alert`` per alert opened or resolved).
    Raises :class:`UnknownInstrument` for an instrument this deployment does not know."""
    instrument = deps.instruments.get(data.instrument)
    if instrument is None:
        raise UnknownInstrument(data.instrument)
    record = scored_record(data)
    found = await episode_for_update(session, data.episode_id)
    episode = EpisodeOwners(
        data.episode_id,
        found.site_id if found is not None else data.site_id,
        found.therapist_id if found is not None else data.therapist_id,
    )
    state = domain.EpisodeState.from_json(found.state) if found and found.state else None
    rebuilds_before = state.rebuilds if state else 0
    config = deps.rules.for_site(data.site_id)
    trajectories = deps.trajectories.trajectories()
    state, changes = domain.apply(
        state,
        record,
        deps.instruments,
        config,
        data.amends,
        trajectories,
        found.age_group if found is not None else None,
    )
    if state.rebuilds > rebuilds_before:
        log.info(
            "amendment re-evaluated the episode"
            if data.amends
            else "late record re-evaluated the episode",
            episode_id=data.episode_id,
            session=data.session_number,
            last_session=state.last_session,
        )
    now = datetime.now(UTC)
    await _save_state(session, episode, found, state, now)
    await sync_checks(session, episode.episode_id, episode.site_id, state, config, deps)
    concern = (
        domain.in_concern(config.thresholds(instrument), record.total, record.items)
        if instrument.kind == "alliance"
        else data.in_concern_or_clinical_range
    )
    client = found.client if found is not None and found.client else None
    if client is None and data.respondent_role == "client":
        client = data.respondent
    counted = await counts_in_aggregates(session, episode.site_id, client)
    await _save_score(session, data, record, concern, now, counted)
    emitted: list[Event[Any]] = []
    if instrument.kind == "alliance":
        emitted.append(_assessed(data, state, concern))
    emitted.extend(await alert_events(session, episode, changes, now))
    return emitted


async def episode_for_update(session: AsyncSession, episode_id: str) -> Row[Any] | None:
    """The episode's owners, phase, rule state and age group, locked for update (None: no
    row yet)."""
    statement = sa_select(
        EPISODES.c.site_id,
        EPISODES.c.therapist_id,
        EPISODES.c.phase,
        EPISODES.c.state,
        EPISODES.c.age_group,
        EPISODES.c.client,
    ).where(EPISODES.c.episode_id == episode_id)
    if dialect_of(session) == "postgresql":
        statement = statement.with_for_update()
    return (await session.execute(statement)).first()


async def _save_state(
    session: AsyncSession,
    episode: EpisodeOwners,
    found: Row[Any] | None,
    state: domain.EpisodeState,
    now: datetime,
) -> None:
    """The episode's rule state, latest session and phase (a matched episode becomes active)."""
    phase = found.phase if found is not None else "matched"
    values = {
        "state": state.to_json(),
        "last_session": state.last_session,
        "phase": "active" if phase == "matched" else phase,
        "updated_at": now,
    }
    await store_episode(session, episode, found is not None, values)


async def store_episode(
    session: AsyncSession, episode: EpisodeOwners, exists: bool, values: dict[str, Any]
) -> None:
    """Write ``values`` to the episode's row, or insert the row (with its owners) if none."""
    if exists:
        await session.execute(
            update(EPISODES).where(EPISODES.c.episode_id == episode.episode_id).values(**values)
        )
    else:
        await session.execute(
            insert(EPISODES).values(
                episode_id=episode.episode_id,
                site_id=episode.site_id,
                therapist_id=episode.therapist_id,
                domains=[],
                **values,
            )
        )


async def _save_score(
    session: AsyncSession,
    data: FeedbackRecorded,
    record: domain.ScoredRecord,
    concern: bool,
    now: datetime,
    in_aggregates: bool = True,
) -> None:
    if data.amends is not None:  # the amended answer's score takes the replaced one's place
        await session.execute(delete(SCORES).where(SCORES.c.response_id == data.amends))
    await session.execute(
        insert(SCORES).values(
            response_id=data.response_id,
            episode_id=data.episode_id,
            site_id=data.site_id,
            therapist_id=data.therapist_id,
            session_number=data.session_number,
            respondent=data.respondent,
            respondent_role=data.respondent_role,
            instrument=data.instrument,
            total=str(record.total),
            concern=concern,
            recorded_at=now,
            in_aggregates=in_aggregates,
        )
    )


def _assessed(
    data: FeedbackRecorded, state: domain.EpisodeState, concern: bool
) -> Event[AllianceAssessed]:
    """The ``alliance.assessed`` event: the score, the respondent's baseline before this
    session (None at their first), and whether it is in the concern range."""
    series = state.series.get((data.respondent, data.instrument))
    baseline = (
        float(series.before_sum / series.before_n)
        if series is not None and series.before_n
        else None
    )
    return Event(
        ALLIANCE_ASSESSED,
        AllianceAssessed(
            response_id=data.response_id,
            episode_id=data.episode_id,
            site_id=data.site_id,
            therapist_id=data.therapist_id,
            session_number=data.session_number,
            respondent=data.respondent,
            respondent_role=data.respondent_role,
            instrument=data.instrument,
            score=data.total,
            baseline=baseline,
            concern=concern,
        ),
        source=SOURCE,
    )
