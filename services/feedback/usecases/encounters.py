"""Encounters (issue 20): a front-end registers the Encounter identifier of an episode's
session, so a QuestionnaireResponse whose ``encounter`` names it is about that session (and
episode) without Rapport's own extensions. An identifier names one session of a site; a
session has one identifier (registering again replaces it)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from services.feedback.dependencies import FeedbackDependencies
from services.feedback.errors import EncounterTaken, EpisodeNotFound
from services.feedback.models import FeedbackEncounter, FeedbackEpisode
from services.feedback.usecases.episodes import may_see
from shared.auth import Staff
from shared.db import upsert

ENCOUNTERS = FeedbackEncounter.__table__  # type: ignore[attr-defined]


async def register_encounter(
    deps: FeedbackDependencies,
    staff: Staff,
    episode_id: str,
    session_number: int,
    system: str,
    value: str,
) -> FeedbackEncounter:
    """Register (or replace) the session's Encounter identifier; refused when the caller may not
    see the episode (404) or the identifier names another session of the site (409)."""
    try:
        async with deps.runtime.transaction() as session:
            episode = await session.get(FeedbackEpisode, episode_id)
            if episode is None or not may_see(staff)(episode):
                raise EpisodeNotFound(
                    f"No episode {episode_id!r} that you may see.",
                    errors=[{"field": "episode_id", "rule": "not_found"}],
                )
            taken = (
                await session.exec(
                    select(FeedbackEncounter).where(
                        FeedbackEncounter.site_id == episode.site_id,
                        FeedbackEncounter.system == system,
                        FeedbackEncounter.value == value,
                    )
                )
            ).first()
            if taken is not None and (taken.episode_id, taken.session_number) != (
                episode_id,
                session_number,
            ):
                raise EncounterTaken(
                    "This Encounter identifier is registered for another session of the site.",
                    errors=[{"field": "value", "rule": "encounter_registered"}],
                )
            values = {
                "site_id": episode.site_id,
                "system": system,
                "value": value,
                "registered_at": datetime.now(UTC),
                "registered_by": staff.subject,
            }
            statement = upsert(session, ENCOUNTERS).values(
                episode_id=episode_id, session_number=session_number, **values
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["episode_id", "session_number"], set_=values
                )
            )
            row = await session.get(FeedbackEncounter, (episode_id, session_number))
            assert row is not None
            await session.refresh(row)
            return row
    except IntegrityError:
        # Two registrations of one identifier for different sessions at once: the unique key
        # lets one win; the other is the same refusal as when it comes second.
        raise _taken() from None


def _taken() -> EncounterTaken:
    return EncounterTaken(
        "This Encounter identifier is registered for another session of the site.",
        errors=[{"field": "value", "rule": "encounter_registered"}],
    )


async def session_of_encounter(
    deps: FeedbackDependencies, staff: Staff, system: str, value: str
) -> tuple[str, int] | None:
    """The episode and session an Encounter identifier was registered for, among the caller's
    sites; None when none was."""
    async with deps.runtime.sessionmaker() as session:
        row = (
            await session.exec(
                select(FeedbackEncounter).where(
                    col(FeedbackEncounter.site_id).in_(sorted(staff.sites)),
                    FeedbackEncounter.system == system,
                    FeedbackEncounter.value == value,
                )
            )
        ).first()
    return None if row is None else (row.episode_id, row.session_number)
