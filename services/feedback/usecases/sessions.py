"""Sessions as facts (issue 16): the front-end reports each session (scheduled, attended,
missed, cancelled by the client or the clinic), a feedback response implies attendance, and
feedback follows the episode's phase from intake. The rules are
services/feedback/attendance.py; here rows are locked, stored and their ``session.*`` events
emitted through the outbox in the caller's transaction. The first reported attended or missed
fact of a session also emits ``session.completed`` (notify's invitations)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.feedback import attendance
from services.feedback.dependencies import FeedbackDependencies
from services.feedback.errors import (
    EpisodeEnded,
    EpisodeNotFound,
    SessionFactIncomplete,
    SessionFactRefused,
)
from services.feedback.models import FeedbackEpisode, FeedbackSession
from services.feedback.usecases.episodes import may_see
from shared.auth import Staff
from shared.contracts import (
    SESSION_ATTENDED,
    SESSION_CANCELLED,
    SESSION_COMPLETED,
    SESSION_MISSED,
    SESSION_SCHEDULED,
    EpisodePhaseChanged,
    SessionAttended,
    SessionCancelled,
    SessionCompleted,
    SessionMissed,
    SessionScheduled,
    SessionStatus,
)
from shared.db import insert_or_ignore
from shared.errors import DomainError
from shared.events import Event


@dataclass(frozen=True)
class Reported:
    """The session after a fact: ``recorded`` when the fact was new (201: its status changed,
    or the front-end first reported an attendance a response had implied), else it was
    already so (200, nothing emitted)."""

    row: FeedbackSession
    recorded: bool


async def reporting_episode(
    session: AsyncSession, staff: Staff, episode_id: str, site_id: str | None = None
) -> FeedbackEpisode:
    """The episode the caller may report for (at ``site_id`` when given), in a phase that
    takes session facts: 404 naming ``episode_id`` otherwise, 409 when it has ended."""
    episode = await session.get(FeedbackEpisode, episode_id)
    if (
        episode is None
        or not may_see(staff)(episode)
        or (site_id is not None and episode.site_id != site_id)
    ):
        raise EpisodeNotFound(
            f"No episode {episode_id!r} that you may report for.",
            errors=[{"field": "episode_id", "rule": "not_found"}],
        )
    if not attendance.accepts_facts(episode.phase):
        raise EpisodeEnded(
            f"episode_id: the episode is {episode.phase}; it takes no new session facts.",
            errors=[
                {
                    "field": "episode_id",
                    "rule": "episode_ended",
                    "message": f"the episode is {episode.phase}",
                    "phase": episode.phase,
                }
            ],
        )
    return episode


async def report_fact(
    deps: FeedbackDependencies,
    staff: Staff,
    episode_id: str,
    session_number: int,
    fact: attendance.Fact,
) -> Reported:
    """One fact from a route, in its own transaction."""
    async with deps.runtime.transaction() as session:
        episode = await reporting_episode(session, staff, episode_id)
        return await apply_fact(deps, session, episode, session_number, fact)


async def _locked(session: AsyncSession, episode_id: str, session_number: int) -> Any:
    return (
        await session.exec(
            select(FeedbackSession)
            .where(
                FeedbackSession.episode_id == episode_id,
                FeedbackSession.session_number == session_number,
            )
            .with_for_update()
        )
    ).first()


def _stored(row: FeedbackSession | None) -> attendance.Stored | None:
    if row is None:
        return None
    status: SessionStatus = row.status  # type: ignore[assignment]
    return attendance.Stored(status, row.at, row.implied_by_feedback, row.scheduled_for)


def _refused(refusal: attendance.Refusal, stored: FeedbackSession | None) -> DomainError:
    error: dict[str, Any] = {
        "field": refusal.field,
        "rule": refusal.rule,
        "message": refusal.message,
    }
    if stored is not None:
        error["stored_status"] = stored.status
    kind = SessionFactIncomplete if stored is None else SessionFactRefused
    return kind(f"{refusal.field}: {refusal.message}. Nothing was stored.", errors=[error])


async def apply_fact(
    deps: FeedbackDependencies,
    session: AsyncSession,
    episode: FeedbackEpisode,
    session_number: int,
    fact: attendance.Fact,
    *,
    implied: bool = False,
    locked: tuple[FeedbackSession | None] | None = None,
) -> Reported:
    """Apply one fact to one session of ``episode`` inside the caller's transaction: refuse it
    (a domain error naming the field and rule), store it and emit its events, or leave the
    session as it is. ``implied``: an attendance a feedback response implies. ``locked``: the
    session's row as the caller just read it with :func:`_locked` (not read again)."""
    for _ in range(2):  # a concurrent first fact may win the insert: then decide again
        if locked is not None:
            (row,), locked = locked, None
        else:
            row = await _locked(session, episode.episode_id, session_number)
        decision = attendance.decide(_stored(row), fact)
        if isinstance(decision, attendance.Refusal):
            raise _refused(decision, row)
        if decision.action == "repeat":
            return Reported(row, recorded=False)
        now = datetime.now(UTC)
        if row is None:
            row = _new_row(episode, session_number, fact, now)
            row.implied_by_feedback = implied
            inserted = await session.execute(
                insert_or_ignore(
                    session,
                    FeedbackSession.__table__,  # type: ignore[attr-defined]
                    ["episode_id", "session_number"],
                )
                .values(row.model_dump())
                .returning(FeedbackSession.__table__.c.id)  # type: ignore[attr-defined]
            )
            if inserted.first() is None:
                continue
            # Stored as built (one statement): the row object is what was inserted.
            events = _events(deps, episode, row, decision, now, implied=implied)
            await deps.runtime.emit(session, *events)
            return Reported(row, recorded=True)
        if decision.action == "record":
            _change(row, fact, now)
        else:  # confirm: the front-end reports the attendance feedback implied
            row.implied_by_feedback = False
            row.at = fact.at or row.at
            row.recorded_at = now
        row.implied_by_feedback = row.implied_by_feedback or implied
        session.add(row)
        await session.flush()
        events = _events(deps, episode, row, decision, now, implied=implied)
        await deps.runtime.emit(session, *events)
        return Reported(row, recorded=True)
    raise SessionFactRefused(
        "session_number: the session changed while this fact was applied; send it again.",
        errors=[{"field": "session_number", "rule": "concurrent_change"}],
    )


def _new_row(
    episode: FeedbackEpisode, session_number: int, fact: attendance.Fact, now: datetime
) -> FeedbackSession:
    assert fact.at is not None  # attendance.decide refuses a first fact without a time
    row = FeedbackSession(
        id=str(uuid.uuid4()),
        episode_id=episode.episode_id,
        site_id=episode.site_id,
        session_number=session_number,
        at=fact.at,
        status=fact.status,
        scheduled_for=fact.at if fact.status == attendance.SCHEDULED else None,
        recorded_at=now,
    )
    _cancellation(row, fact, now)
    return row


def _change(row: FeedbackSession, fact: attendance.Fact, now: datetime) -> None:
    """A scheduled session's outcome."""
    row.status = fact.status
    row.at = fact.at or row.at
    row.recorded_at = now
    _cancellation(row, fact, now)


def _cancellation(row: FeedbackSession, fact: attendance.Fact, now: datetime) -> None:
    if not fact.status.startswith("cancelled"):
        return
    row.cancelled_at = fact.cancelled_at or now
    row.notice_hours = fact.notice_hours
    if row.notice_hours is None and fact.cancelled_at is not None:
        row.notice_hours = attendance.notice_hours(row.at, fact.cancelled_at)


def _events(
    deps: FeedbackDependencies,
    episode: FeedbackEpisode,
    row: FeedbackSession,
    decision: attendance.Decision,
    now: datetime,
    *,
    implied: bool,
) -> list[Event[Any]]:
    source = deps.runtime.outbox.source
    who = {
        "episode_id": episode.episode_id,
        "site_id": episode.site_id,
        "therapist_id": episode.therapist_id,
        "session_number": row.session_number,
    }
    events: list[Event[Any]] = []
    if decision.action == "record":
        events.append(_fact_event(row, who, source, now, implied))
    if decision.completes and not implied:
        completed = SessionCompleted(**who, attended=row.status == "attended", at=row.at)
        events.append(Event(SESSION_COMPLETED, completed, source=source))
    return events


def _fact_event(
    row: FeedbackSession, who: dict[str, Any], source: str, now: datetime, implied: bool
) -> Event[Any]:
    if row.status == "scheduled":
        data = SessionScheduled(**who, scheduled_for=row.at, recorded_at=now)
        return Event(SESSION_SCHEDULED, data, source=source)
    if row.status == "attended":
        attended = SessionAttended(**who, at=row.at, implied_by_feedback=implied)
        return Event(SESSION_ATTENDED, attended, source=source)
    if row.status == "missed":
        return Event(SESSION_MISSED, SessionMissed(**who, at=row.at), source=source)
    by: Literal["client", "clinic"] = "client" if row.status == "cancelled_by_client" else "clinic"
    cancelled = SessionCancelled(
        **who,
        at=row.at,
        by=by,
        notice_hours=row.notice_hours,
        cancelled_at=row.cancelled_at or now,
    )
    return Event(SESSION_CANCELLED, cancelled, source=source)


async def imply_attendance(
    deps: FeedbackDependencies,
    session: AsyncSession,
    episode: FeedbackEpisode,
    session_number: int,
    answered_at: datetime,
) -> None:
    """A feedback response for a session not yet reported (or only scheduled): the client
    attended it (stored, ``session.attended`` with ``implied_by_feedback``), in the response's
    transaction. A session with another outcome, or an episode that has ended, is left as it
    is (the response is still recorded)."""
    if not attendance.accepts_facts(episode.phase):
        return
    row = await _locked(session, episode.episode_id, session_number)
    stored = _stored(row)
    if not attendance.implied_by_response(stored):
        return
    # A scheduled session took place at its time; one never reported, when it was answered.
    fact = attendance.Fact("attended", at=None if stored is not None else answered_at)
    try:
        await apply_fact(
            deps, session, episode, session_number, fact, implied=True, locked=(row,)
        )
    except SessionFactRefused:
        return  # reported otherwise meanwhile: the response stands, the session unchanged


async def episode_sessions(
    session: AsyncSession, staff: Staff, episode_id: str, *, offset: int, limit: int
) -> Sequence[FeedbackSession]:
    """The sessions of an episode the caller may see, by session number."""
    episode = await session.get(FeedbackEpisode, episode_id)
    if episode is None or not may_see(staff)(episode):
        raise EpisodeNotFound(
            f"No episode {episode_id!r} that you may see.",
            errors=[{"field": "episode_id", "rule": "not_found"}],
        )
    return (
        await session.exec(
            select(FeedbackSession)
            .where(FeedbackSession.episode_id == episode_id)
            .order_by(FeedbackSession.session_number)  # type: ignore[arg-type]
            .offset(offset)
            .limit(limit)
        )
    ).all()


async def learn_phase(session: AsyncSession, changed: EpisodePhaseChanged) -> None:
    """Follow the episode's phase as intake publishes it (an older change, redelivered late,
    does not undo a newer one). An episode feedback does not know yet is learnt from
    ``match.confirmed``; until then it takes no facts anyway."""
    episode = await session.get(FeedbackEpisode, changed.episode_id)
    if episode is None:
        return
    if episode.phase_at is not None and changed.at < episode.phase_at:
        return
    episode.phase = changed.to_phase
    episode.phase_at = changed.at
    session.add(episode)
