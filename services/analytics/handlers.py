"""Events analytics applies: each scored response updates its episode's state and alerts; a
closed episode updates its therapist's effectiveness estimates."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Row, Table, delete, insert, update
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.analytics import domain
from services.analytics.effectiveness import ClosedEpisode, therapist_effectiveness
from services.analytics.models import (
    AnalyticsAlert,
    AnalyticsClosedEpisode,
    AnalyticsEpisode,
    AnalyticsScore,
)
from services.analytics.rules_config import SiteRules
from shared.consumer import Delivery, HandlerRejected
from shared.contracts import (
    ALLIANCE_ALERT,
    ALLIANCE_ASSESSED,
    THERAPIST_EFFECTIVENESS_UPDATED,
    AllianceAlert,
    AllianceAssessed,
    EffectivenessEstimate,
    EpisodeClosed,
    FeedbackRecorded,
    MatchConfirmed,
    TherapistEffectivenessUpdated,
)
from shared.db import dialect_of
from shared.events import Event
from shared.instruments import Instrument
from shared.logs import get_logger

SOURCE = "/rapport/analytics"
log = get_logger(__name__)

Handler = Callable[[Delivery[Any]], Any]
EPISODES = cast(Table, AnalyticsEpisode.__table__)  # type: ignore[attr-defined]
SCORES = cast(Table, AnalyticsScore.__table__)  # type: ignore[attr-defined]
ALERTS = cast(Table, AnalyticsAlert.__table__)  # type: ignore[attr-defined]


async def _episode(
    session: AsyncSession, episode_id: str, site_id: str, therapist_id: str
) -> AnalyticsEpisode:
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


async def on_match_confirmed(delivery: Delivery[MatchConfirmed]) -> Sequence[Event[Any]]:
    data = delivery.event.data
    episode = await _episode(delivery.session, data.episode_id, data.site_id, data.therapist_id)
    episode.therapist_id = data.therapist_id
    episode.domains = list(data.domains)
    delivery.session.add(episode)
    return []


def make_feedback_handler(instruments: Mapping[str, Instrument], rules: SiteRules) -> Handler:
    async def on_feedback_recorded(delivery: Delivery[FeedbackRecorded]) -> Sequence[Event[Any]]:
        data = delivery.event.data
        session = delivery.session
        instrument = instruments.get(data.instrument)
        if instrument is None:
            raise HandlerRejected(f"unknown instrument {data.instrument!r}")
        record = domain.ScoredRecord(
            episode_id=data.episode_id,
            site_id=data.site_id,
            therapist_id=data.therapist_id,
            session=data.session_number,
            at=data.answered_at,
            role=data.respondent_role,
            respondent_id=data.respondent,
            instrument=data.instrument,
            items={k: Decimal(str(v)) for k, v in data.items.items()},
            total=Decimal(str(data.total)),
            response_id=data.response_id,
        )
        # The hot path (every response) in SQLAlchemy Core: no ORM objects to build and flush.
        found = await _episode_for_update(session, data.episode_id)
        episode = _EpisodeRef(
            data.episode_id,
            found.site_id if found is not None else data.site_id,
            found.therapist_id if found is not None else data.therapist_id,
        )
        state = domain.EpisodeState.from_json(found.state) if found and found.state else None
        rebuilds_before = state.rebuilds if state else 0
        config = rules.for_site(data.site_id)
        state, changes = domain.apply(state, record, instruments, config, replaces=data.amends)
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
        phase = found.phase if found is not None else "matched"
        values = {
            "state": state.to_json(),
            "last_session": state.last_session,
            "phase": "active" if phase == "matched" else phase,
            "updated_at": now,
        }
        if found is None:
            await session.execute(
                insert(EPISODES).values(
                    episode_id=episode.episode_id,
                    site_id=episode.site_id,
                    therapist_id=episode.therapist_id,
                    domains=[],
                    **values,
                )
            )
        else:
            await session.execute(
                update(EPISODES).where(EPISODES.c.episode_id == episode.episode_id).values(**values)
            )
        concern = (
            domain.in_concern(config.thresholds(instrument), record.total, record.items)
            if instrument.kind == "alliance"
            else data.in_concern_or_clinical_range
        )
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
            )
        )
        emitted: list[Event[Any]] = []
        if instrument.kind == "alliance":
            series = state.series.get((data.respondent, data.instrument))
            baseline = (
                float(series.before_sum / series.before_n)
                if series is not None and series.before_n
                else None
            )
            emitted.append(
                Event(
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
            )
        # The alerts this response opens go in with one statement; resolutions one by one.
        opened = [c for c in changes if c.action == "open"]
        new_alerts = iter(await _open_alerts(session, episode, opened, now))
        for change in changes:
            if change.action == "open":
                alert: _AlertRef | None = next(new_alerts)
            else:
                alert = await _resolve_alert(session, episode, change, now)
            if alert is None:
                continue
            emitted.append(
                Event(
                    ALLIANCE_ALERT,
                    AllianceAlert(
                        alert_id=alert.alert_id,
                        episode_id=episode.episode_id,
                        site_id=alert.site_id,
                        therapist_id=alert.therapist_id,
                        status="opened" if change.action == "open" else "resolved",
                        kind=change.kind,
                        severity=change.severity,
                        rule=change.rule,
                        session_number=change.session,
                        respondent=change.respondent_id,
                        inputs=change.inputs,
                        suggestion_code=change.suggestion_code,
                        at=now,
                    ),
                    source=SOURCE,
                )
            )
        return emitted

    return on_feedback_recorded


@dataclass(frozen=True)
class _EpisodeRef:
    episode_id: str
    site_id: str
    therapist_id: str


@dataclass(frozen=True)
class _AlertRef:
    alert_id: str
    site_id: str
    therapist_id: str


async def _episode_for_update(session: AsyncSession, episode_id: str) -> Row[Any] | None:
    statement = sa_select(
        EPISODES.c.site_id, EPISODES.c.therapist_id, EPISODES.c.phase, EPISODES.c.state
    ).where(EPISODES.c.episode_id == episode_id)
    if dialect_of(session) == "postgresql":
        statement = statement.with_for_update()
    return (await session.execute(statement)).first()


async def _open_alerts(
    session: AsyncSession,
    episode: _EpisodeRef,
    changes: Sequence[domain.AlertChange],
    now: datetime,
) -> list[_AlertRef]:
    """Open these alerts (one statement); their ids and owners, in order."""
    ids = [str(uuid.uuid4()) for _ in changes]
    rows = []
    for alert_id, change in zip(ids, changes, strict=True):
        # Events no rule resolves: a repair closes as it opens; a risk alert stays open until a
        # clinician acknowledges it (POST /analytics/alerts/{alert_id}/acknowledge).
        resolved = not change.lasting and not change.awaits_acknowledgement
        rows.append(
            {
                "id": alert_id,
                "episode_id": episode.episode_id,
                "site_id": episode.site_id,
                "therapist_id": episode.therapist_id,
                "kind": change.kind,
                "severity": change.severity,
                "rule": change.rule,
                "respondent": change.respondent_id,
                "instrument": change.instrument,
                "triggered_by": change.triggered_by,
                "status": "resolved" if resolved else "open",
                "opened_session": change.opened_session,
                "resolved_session": change.session if resolved else None,
                "inputs": change.inputs,
                "suggestion_code": change.suggestion_code,
                "suggestion": change.suggestion[:300],
                "opened_at": now,
                "resolved_at": now if resolved else None,
            }
        )
    if rows:
        await session.execute(insert(ALERTS), rows)
    return [_AlertRef(alert_id, episode.site_id, episode.therapist_id) for alert_id in ids]


async def _resolve_alert(
    session: AsyncSession, episode: _EpisodeRef, change: domain.AlertChange, now: datetime
) -> _AlertRef | None:
    """Resolve one open alert; its id and owners (None: nothing open)."""
    found = (
        await session.execute(
            sa_select(ALERTS.c.id, ALERTS.c.site_id, ALERTS.c.therapist_id)
            .where(
                ALERTS.c.episode_id == episode.episode_id,
                ALERTS.c.kind == change.kind,
                ALERTS.c.status == "open",
                ALERTS.c.opened_session == change.opened_session,
                ALERTS.c.respondent.is_(None)
                if change.respondent_id is None
                else ALERTS.c.respondent == change.respondent_id,
                ALERTS.c.instrument.is_(None)
                if change.instrument is None
                else ALERTS.c.instrument == change.instrument,
            )
            .limit(1)
        )
    ).first()
    if found is None:
        log.warning(
            "resolve for an alert that is not open",
            episode_id=episode.episode_id,
            kind=change.kind,
            opened_session=change.opened_session,
        )
        return None
    await session.execute(
        update(ALERTS)
        .where(ALERTS.c.id == found.id)
        .values(status="resolved", resolved_session=change.session, resolved_at=now)
    )
    return _AlertRef(found.id, found.site_id, found.therapist_id)


def make_closed_handler(instruments: Mapping[str, Instrument], min_cases: int) -> Handler:
    async def on_episode_closed(delivery: Delivery[EpisodeClosed]) -> Sequence[Event[Any]]:
        data = delivery.event.data
        session = delivery.session
        episode = await _episode(session, data.episode_id, data.site_id, data.therapist_id)
        episode.phase = "dropped_out" if data.reason == "dropped_out" else "closed"
        episode.closed_at, episode.close_reason = data.closed_at, data.reason
        session.add(episode)
        if data.reason in {"transferred", "erased", "withdrawn"} or not episode.domains:
            return []
        session.add(await _summary(session, episode, instruments, data.closed_at))
        await session.flush()
        return await _effectiveness_events(session, episode, min_cases)

    return on_episode_closed


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
        else:
            by_instrument.setdefault(score.instrument, []).append(total)
    for instrument_id, totals in by_instrument.items():
        instrument = instruments[instrument_id]
        better = instrument.higher_is_better
        change = (totals[-1] - totals[0]) * (1 if better else -1)
        improved |= change >= instrument.reliable_change
        deteriorated |= -change >= instrument.reliable_change
    return AnalyticsClosedEpisode(
        episode_id=episode.episode_id,
        site_id=episode.site_id,
        therapist_id=episode.therapist_id,
        domains=list(episode.domains),
        mean_alliance=sum(alliance) / len(alliance) if alliance else None,
        reliably_improved=improved,
        deteriorated=deteriorated,
        closed_at=closed_at,
    )


def _estimate(value: Any) -> EffectivenessEstimate | None:
    if value is None:
        return None
    return EffectivenessEstimate(estimate=value.estimate, lower=value.lower, upper=value.upper)


async def _effectiveness_events(
    session: AsyncSession, episode: AnalyticsEpisode, min_cases: int
) -> list[Event[Any]]:
    """Re-estimate the site's therapists in the episode's domains (shrinkage moves everyone)."""
    closed = (
        await session.exec(
            select(AnalyticsClosedEpisode).where(AnalyticsClosedEpisode.site_id == episode.site_id)
        )
    ).all()
    relevant = [
        ClosedEpisode(
            c.therapist_id,
            c.site_id,
            tuple(c.domains),
            c.mean_alliance,
            c.reliably_improved,
            c.deteriorated,
        )
        for c in closed
    ]
    now = datetime.now(UTC)
    events: list[Event[Any]] = []
    for result in therapist_effectiveness(relevant, min_cases=min_cases):
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
                    mean_alliance=_estimate(result.mean_alliance),
                    reliable_improvement_rate=_estimate(result.reliable_improvement_rate),
                    deterioration_rate=_estimate(result.deterioration_rate),
                    classification=result.classification,
                    updated_at=now,
                ),
                source=SOURCE,
            )
        )
    return events
