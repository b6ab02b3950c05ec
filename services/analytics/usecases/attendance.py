"""Attendance and time: session facts (``session.*``) and the episode's phase
(``episode.phase_changed``) update the episode's state and alerts (missed_sessions, rule 10), and
the service's clock fires the time-driven checks (no_contact, rule 10's days without contact)
that fall due, each exactly once across replicas (shared/clock.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row
from sqlmodel.ext.asyncio.session import AsyncSession

from services.analytics import domain
from services.analytics.dependencies import AnalyticsDependencies
from services.analytics.models import DUE_CHECKS, EPISODE_SESSIONS, PHASE_CHANGES
from services.analytics.usecases.alerts import EpisodeOwners, alert_events
from services.analytics.usecases.due_checks import sync_checks
from services.analytics.usecases.responses import episode_for_update, store_episode
from shared.clock import Clock, DueCheck
from shared.contracts import EpisodePhaseChanged
from shared.db import insert_or_ignore, upsert
from shared.events import Event
from shared.runtime import ServiceRuntime, dependencies_of


async def record_session(
    deps: AnalyticsDependencies, session: AsyncSession, fact: domain.SessionFact
) -> list[Event[Any]]:
    """A session attended, missed or cancelled: the episode's state, its pending checks (an
    attended session is a contact) and one ``alliance.alert`` per alert opened or resolved."""
    found = await episode_for_update(session, fact.episode_id)
    episode = _owners(found, fact.episode_id, fact.site_id, fact.therapist_id)
    config = deps.rules.for_site(episode.site_id)
    state, changes = domain.on_session(_state(found), fact, config)
    now = datetime.now(UTC)
    await _save(session, episode, found, state, now)
    await _store_session(session, episode, state, fact)
    await sync_checks(session, episode.episode_id, episode.site_id, state, config, deps)
    return list(await alert_events(session, episode, changes, now))


async def _store_session(
    session: AsyncSession,
    episode: EpisodeOwners,
    state: domain.EpisodeState,
    fact: domain.SessionFact,
) -> None:
    """The session as the rules now hold it, for the episode's timeline: the fact's status and
    time, unless the rules kept another status (a repeated or stale fact changes nothing)."""
    if state.attendance.sessions.get(fact.session) != fact.status:
        return
    values = {
        "status": fact.status,
        "at": fact.at,
        "implied_by_feedback": fact.implied_by_feedback,
    }
    await session.execute(
        upsert(session, EPISODE_SESSIONS)
        .values(
            episode_id=episode.episode_id,
            session_number=fact.session,
            site_id=episode.site_id,
            **values,
        )
        .on_conflict_do_update(index_elements=["episode_id", "session_number"], set_=values)
    )


async def follow_phase(
    deps: AnalyticsDependencies, session: AsyncSession, data: EpisodePhaseChanged
) -> list[Event[Any]]:
    """Intake moved the episode to another phase: analytics' copy of it, and the checks that
    follow (none once the episode is no longer active; no_contact stays open)."""
    found = await episode_for_update(session, data.episode_id)
    episode = _owners(found, data.episode_id, data.site_id, data.therapist_id)
    state = _state(found) or domain.EpisodeState(data.episode_id)
    changes = domain.on_phase(state, data.to_phase, data.at)
    now = datetime.now(UTC)
    await session.execute(  # the episode's story: every change, even one arriving late
        insert_or_ignore(session, PHASE_CHANGES).values(
            episode_id=episode.episode_id,
            site_id=episode.site_id,
            from_phase=data.from_phase,
            to_phase=data.to_phase,
            reason=data.reason,
            at=data.at,
            gap_days=data.gap_days,
        )
    )
    await _save(session, episode, found, state, now, phase=state.attendance.phase)
    config = deps.rules.for_site(episode.site_id)
    await sync_checks(session, episode.episode_id, episode.site_id, state, config, deps)
    return list(await alert_events(session, episode, changes, now))


async def fire_check(
    deps: AnalyticsDependencies, session: AsyncSession, check: DueCheck, now: datetime
) -> list[Event[Any]]:
    """A pending check fell due (the clock took and deleted its row in this transaction):
    decide again from the episode's state, open what the rule says, pend what is due next."""
    found = await episode_for_update(session, check.subject)
    if found is None or not found.state:
        return []  # erased, or never known: nothing to follow
    episode = EpisodeOwners(check.subject, found.site_id, found.therapist_id)
    config = deps.rules.for_site(episode.site_id)
    state = domain.EpisodeState.from_json(found.state)
    changes = domain.fire(state, check.kind, now, config, deps.zones.of(episode.site_id))
    await _save(session, episode, found, state, now)
    await sync_checks(
        session, episode.episode_id, episode.site_id, state, config, deps, (check.kind, now)
    )
    return list(await alert_events(session, episode, changes, now))


def clock(runtime: ServiceRuntime) -> Clock:
    """Analytics' clock over its ``analytics_due_checks``."""
    deps = dependencies_of(runtime, AnalyticsDependencies)

    async def fire(session: Any, check: DueCheck, now: datetime) -> list[Event[Any]]:
        return await fire_check(deps, session, check, now)

    return Clock(runtime, DUE_CHECKS, fire)


async def checks_forever(runtime: ServiceRuntime) -> None:
    """Fire the checks that fall due, every ``RAPPORT_CLOCK_SWEEP_SECONDS``, until the service
    stops (a background task of every replica)."""
    await clock(runtime).run(runtime.settings.clock_sweep_seconds)


def _owners(
    found: Row[Any] | None, episode_id: str, site_id: str, therapist_id: str
) -> EpisodeOwners:
    if found is None:
        return EpisodeOwners(episode_id, site_id, therapist_id)
    return EpisodeOwners(episode_id, found.site_id, found.therapist_id)


def _state(found: Row[Any] | None) -> domain.EpisodeState | None:
    return domain.EpisodeState.from_json(found.state) if found is not None and found.state else None


async def _save(
    session: AsyncSession,
    episode: EpisodeOwners,
    found: Row[Any] | None,
    state: domain.EpisodeState,
    now: datetime,
    phase: str | None = None,
) -> None:
    """The episode's rule state (and, from intake's event, its phase); a row if none yet."""
    values: dict[str, Any] = {
        "state": state.to_json(),
        "last_session": state.last_session,
        "updated_at": now,
    }
    if phase is not None:
        values["phase"] = phase
    await store_episode(session, episode, found is not None, values)
