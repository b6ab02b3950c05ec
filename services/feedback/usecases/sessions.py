"""Sessions the front-end reports: each schedules the client's feedback invitation
(``session.completed``, through the outbox)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from services.feedback.dependencies import FeedbackDependencies
from services.feedback.errors import EpisodeNotFound
from services.feedback.models import FeedbackEpisode, FeedbackSession
from services.feedback.usecases.episodes import may_see
from shared.auth import Staff
from shared.contracts import SESSION_COMPLETED, SessionCompleted
from shared.events import Event


async def report_session(
    deps: FeedbackDependencies,
    staff: Staff,
    episode_id: str,
    session_number: int,
    at: datetime,
    attended: bool,
) -> tuple[FeedbackSession, bool]:
    """Store the session and emit ``session.completed`` in one transaction; with whether it had
    been reported already (then the stored one is returned and nothing is emitted)."""
    runtime = deps.runtime
    try:
        async with runtime.transaction() as session:
            episode = await session.get(FeedbackEpisode, episode_id)
            if episode is None or not may_see(staff)(episode):
                raise EpisodeNotFound(
                    f"No episode {episode_id!r} that you may report for.",
                    errors=[{"field": "episode_id", "rule": "not_found"}],
                )
            row = FeedbackSession(
                id=str(uuid.uuid4()),
                episode_id=episode.episode_id,
                site_id=episode.site_id,
                session_number=session_number,
                at=at,
                attended=attended,
            )
            session.add(row)
            await session.flush()
            completed = SessionCompleted(
                episode_id=episode.episode_id,
                site_id=episode.site_id,
                therapist_id=episode.therapist_id,
                session_number=session_number,
                attended=attended,
                at=at,
            )
            await runtime.emit(
                session, Event(SESSION_COMPLETED, completed, source=runtime.outbox.source)
            )
        return row, False
    except IntegrityError:
        async with runtime.sessionmaker() as session:
            existing = (
                await session.exec(
                    select(FeedbackSession).where(
                        FeedbackSession.episode_id == episode_id,
                        FeedbackSession.session_number == session_number,
                    )
                )
            ).one()
        return existing, True
