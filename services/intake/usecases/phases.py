"""The episode's phase as it moves (domain/episodes.py says which moves and why): every move
stored on the episode and published (``episode.phase_changed``) in the same transaction, the
drop-out check of an active episode kept in ``intake_due_checks`` (shared/clock.py).

Contacts (an attended session, a feedback response) come from the feedback service's events;
the drop-out comes from the clock, which calls :func:`check_silence` when an episode's silence
check falls due, on whichever replica takes it, exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.dependencies import IntakeDependencies
from services.intake.domain.episodes import (
    CloseReason,
    ContactKind,
    PhaseMove,
    after_contact,
    after_silence,
    move,
)
from services.intake.mapping import SOURCE
from services.intake.models import DUE_CHECKS, IntakeEpisode
from services.intake.usecases.places import free_place, take_place_back
from shared.clock import Clock, DueCheck, cancel, schedule
from shared.contracts import (
    EPISODE_CLOSED,
    EPISODE_PHASE_CHANGED,
    EpisodeClosed,
    EpisodePhaseChanged,
)
from shared.events import Event
from shared.runtime import ServiceRuntime, dependencies_of

# The kind of intake's one due check: an active episode's silence ends.
SILENCE = "silence"


def phase_changed(
    row: IntakeEpisode, step: PhaseMove, at: datetime, gap_days: int | None = None
) -> Event[EpisodePhaseChanged]:
    return Event(
        EPISODE_PHASE_CHANGED,
        EpisodePhaseChanged(
            episode_id=row.id,
            site_id=row.site_id,
            therapist_id=row.therapist_id,
            from_phase=step.start,
            to_phase=step.end,
            reason=step.reason,
            at=at,
            gap_days=gap_days,
        ),
        source=SOURCE,
    )


def opened(row: IntakeEpisode, reason: str, at: datetime) -> Event[EpisodePhaseChanged]:
    """A new episode: the referral became an episode of care (``referred → matched``)."""
    return phase_changed(row, move("referred", row.phase, reason), at)


async def end_episode(
    session: AsyncSession,
    row: IntakeEpisode,
    step: PhaseMove,
    close_reason: CloseReason,
    now: datetime,
) -> list[Event[Any]]:
    """Close the episode (by staff, or dropped out by its silence): the new phase, the reserved
    place freed, no check pending, ``episode.phase_changed`` and ``episode.closed``."""
    row.phase = step.end
    session.add(row)
    if row.match_id is not None:
        # The place reserved when the match was confirmed is free again.
        await free_place(session, row.therapist_id, now)
    await cancel(session, DUE_CHECKS, row.id)
    closed = EpisodeClosed(
        episode_id=row.id,
        site_id=row.site_id,
        therapist_id=row.therapist_id,
        reason=close_reason,
        closed_at=now,
    )
    return [phase_changed(row, step, now), Event(EPISODE_CLOSED, closed, source=SOURCE)]


async def record_contact(
    deps: IntakeDependencies,
    session: AsyncSession,
    episode_id: str,
    at: datetime,
    kind: ContactKind,
) -> list[Event[Any]]:
    """A contact with the episode's client (feedback's events): the latest contact kept, the
    phase moved (first contact, return after a drop-out) and the drop-out check rescheduled.
    An episode intake does not know (erased, another deployment's) is left alone."""
    await hold_watch(session, episode_id)
    row = await session.get(IntakeEpisode, episode_id, with_for_update=True)
    if row is None:
        return []
    now = datetime.now(UTC)
    outcome = after_contact(
        row.phase,
        row.last_contact_at,
        at,
        kind,
        now,
        deps.matching.for_site(row.site_id).dropout_after_days,
        deps.zones.of(row.site_id),
    )
    row.last_contact_at = outcome.last_contact
    events: list[Event[Any]] = []
    if outcome.move is not None:
        row.phase = outcome.move.end
        # Stamped when intake moved it (not the session's own time, which a late report puts
        # before the drop-out it ends): followers ignore a change older than the one they know.
        events.append(phase_changed(row, outcome.move, now, outcome.gap_days))
        if outcome.move.reason == "returned" and row.match_id is not None:
            await take_place_back(session, row.therapist_id, now)
    session.add(row)
    if outcome.silence_ends is not None:
        check = DueCheck(row.id, SILENCE, row.site_id, outcome.silence_ends)
        await schedule(session, DUE_CHECKS, check)
    return events


async def hold_watch(session: AsyncSession, episode_id: str) -> None:
    """Lock the episode's pending check before the episode, in the clock's order (it takes the
    check, then the episode): a contact or a close and a check firing for the same episode then
    wait for each other instead of deadlocking. The sweep skips a check held here and fires it
    at its next round, after reading the episode again."""
    held = select(DUE_CHECKS.c.subject).where(DUE_CHECKS.c.subject == episode_id)
    await session.execute(held.with_for_update())


async def stop_watching(session: AsyncSession, episode_id: str) -> None:
    """No drop-out check for the episode any more (it is closing, closed or erased)."""
    await cancel(session, DUE_CHECKS, episode_id)


async def check_silence(
    deps: IntakeDependencies, session: AsyncSession, check: DueCheck, now: datetime
) -> list[Event[Any]]:
    """The clock's ``fire``: the episode read again and, if still active and silent for
    ``dropout_after_days``, dropped out as the close route would (``no_contact``); a contact
    that arrived since moves the check to the new end of the silence."""
    row = await session.get(IntakeEpisode, check.subject, with_for_update=True)
    if row is None:
        return []
    decided = after_silence(
        row.phase,
        row.last_contact_at,
        now,
        deps.matching.for_site(row.site_id).dropout_after_days,
        deps.zones.of(row.site_id),
    )
    if isinstance(decided, PhaseMove):
        return await end_episode(session, row, decided, "dropped_out", now)
    if decided is not None:
        await schedule(session, DUE_CHECKS, DueCheck(row.id, SILENCE, row.site_id, decided))
    return []


def clock_of(deps: IntakeDependencies, now: Callable[[], datetime] | None = None) -> Clock:
    """Intake's clock over ``intake_due_checks`` (``now`` set by tests; else the database's)."""

    async def fire(session: AsyncSession, check: DueCheck, at: datetime) -> list[Event[Any]]:
        return await check_silence(deps, session, check, at)

    # The runtime's transactions are sqlmodel sessions, which the kernel types as SQLAlchemy's.
    return Clock(deps.runtime, DUE_CHECKS, fire, now=now)  # type: ignore[arg-type]


async def sweep_forever(runtime: ServiceRuntime) -> None:
    """The service's background task: sweep every ``RAPPORT_CLOCK_SWEEP_SECONDS``."""
    deps = dependencies_of(runtime, IntakeDependencies)
    await clock_of(deps).run(deps.settings.clock_sweep_seconds)
