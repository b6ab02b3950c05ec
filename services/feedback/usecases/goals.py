"""The client's own goals in an episode (issue 19): set (1–5 active), revised, achieved or
dropped, each change kept as a new revision. The text is sealed under the client's data key and
read back only here; the goal's id and order are what travel (as a ``goals`` rating's items).

``active_goal_ids`` is what a goal rating is checked against: a rating for a goal the episode
does not have (or no longer has active) is refused naming it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from sqlalchemy import select as sa_select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from services.feedback.dependencies import FeedbackDependencies
from services.feedback.errors import EpisodeNotFound, GoalNotFound, TooManyActiveGoals
from services.feedback.models import FeedbackEpisode, FeedbackGoal
from services.feedback.usecases.episodes import (
    current_goals,
    episode_seen_by,
    goal_revisions,
    may_see,
)
from services.feedback.usecases.responses import client_key
from shared.auth import Staff
from shared.crypto import seal, unseal
from shared.db import dialect_of

GoalStatus = Literal["active", "achieved", "dropped"]
MAX_ACTIVE: Final = 5
TEXT_LIMIT: Final = 500  # characters of a goal in the client's own words


@dataclass(frozen=True)
class Goal:
    """A goal as it is now (its latest revision), with its text unsealed."""

    row: FeedbackGoal
    text: str


async def _episode_locked(session: AsyncSession, staff: Staff, episode_id: str) -> FeedbackEpisode:
    """The episode, locked for the change (two goals set at once cannot make a sixth)."""
    statement = sa_select(FeedbackEpisode).where(col(FeedbackEpisode.episode_id) == episode_id)
    if dialect_of(session) == "postgresql":
        statement = statement.with_for_update()
    episode: FeedbackEpisode | None = (await session.execute(statement)).scalars().first()
    if episode is None or not may_see(staff)(episode):
        raise EpisodeNotFound(
            f"No episode {episode_id!r} that you may see.",
            errors=[{"field": "episode_id", "rule": "not_found"}],
        )
    return episode


def _too_many() -> TooManyActiveGoals:
    return TooManyActiveGoals(
        f"An episode has at most {MAX_ACTIVE} active goals: mark one achieved or dropped first.",
        errors=[{"field": "status", "rule": f"at_most_{MAX_ACTIVE}_active_goals"}],
    )


async def set_goal(deps: FeedbackDependencies, staff: Staff, episode_id: str, text: str) -> Goal:
    """A new active goal in the client's words; a sixth active one is refused (409)."""
    async with deps.runtime.transaction() as session:
        episode = await _episode_locked(session, staff, episode_id)
        goals = await current_goals(session, episode_id)
        if sum(g.status == "active" for g in goals) >= MAX_ACTIVE:
            raise _too_many()
        row = FeedbackGoal(
            goal_id=str(uuid.uuid4()),
            revision=1,
            episode_id=episode.episode_id,
            site_id=episode.site_id,
            position=max((g.position for g in goals), default=0) + 1,
            status="active",
            text_sealed="",
            changed_at=datetime.now(UTC),
            changed_by=staff.subject,
        )
        key = await client_key(deps, session, episode.client)
        row.text_sealed = seal(key, text, associated=f"{row.goal_id}:{row.revision}")
        session.add(row)
    return Goal(row, text)


async def revise_goal(
    deps: FeedbackDependencies,
    staff: Staff,
    episode_id: str,
    goal_id: str,
    text: str | None,
    status: GoalStatus | None,
) -> Goal:
    """A new revision of a goal: its text revised and/or its status changed (achieved,
    dropped, active again: refused when that would make a sixth active goal)."""
    async with deps.runtime.transaction() as session:
        episode = await _episode_locked(session, staff, episode_id)
        goals = await current_goals(session, episode_id)
        latest = next((g for g in goals if g.goal_id == goal_id), None)
        if latest is None:
            raise GoalNotFound(
                f"The episode has no goal {goal_id!r}.",
                errors=[{"field": "goal_id", "rule": "not_found"}],
            )
        key = await client_key(deps, session, episode.client)
        words = text if text is not None else _text(key, latest)
        new_status = status or latest.status
        active = sum(g.status == "active" for g in goals)
        if new_status == "active" and latest.status != "active" and active >= MAX_ACTIVE:
            raise _too_many()
        row = FeedbackGoal(
            goal_id=goal_id,
            revision=latest.revision + 1,
            episode_id=episode.episode_id,
            site_id=episode.site_id,
            position=latest.position,
            status=new_status,
            text_sealed="",
            changed_at=datetime.now(UTC),
            changed_by=staff.subject,
        )
        row.text_sealed = seal(key, words, associated=f"{row.goal_id}:{row.revision}")
        session.add(row)
    return Goal(row, words)


async def episode_goals(
    deps: FeedbackDependencies, staff: Staff, episode_id: str, *, history: bool = False
) -> list[Goal]:
    """The episode's goals as they are now (with ``history``: every revision, oldest first),
    text unsealed for staff who may see the episode."""
    async with deps.runtime.sessionmaker() as session:
        episode = await episode_seen_by(session, staff, episode_id)
        rows: Sequence[FeedbackGoal] = (
            await goal_revisions(session, episode_id)
            if history
            else await current_goals(session, episode_id)
        )
        key = await client_key(deps, session, episode.client) if rows else b""
    return [Goal(r, _text(key, r)) for r in rows]


def _text(key: bytes, row: FeedbackGoal) -> str:
    return unseal(key, row.text_sealed, associated=f"{row.goal_id}:{row.revision}")


async def goal_by_id(deps: FeedbackDependencies, staff: Staff, goal_id: str) -> tuple[Goal, str]:
    """One goal as it is now, with its episode's client, if the caller may see its episode
    (else not found, never saying which)."""
    async with deps.runtime.sessionmaker() as session:
        statement = sa_select(col(FeedbackGoal.episode_id)).where(
            col(FeedbackGoal.goal_id) == goal_id
        )
        found = await session.scalar(statement)
        episode = await session.get(FeedbackEpisode, found) if found else None
        if episode is None or not may_see(staff)(episode):
            raise GoalNotFound(
                f"No goal {goal_id!r} that you may see.",
                errors=[{"field": "goal_id", "rule": "not_found"}],
            )
        goals = await current_goals(session, episode.episode_id)
        latest = next(g for g in goals if g.goal_id == goal_id)
        key = await client_key(deps, session, episode.client)
    return Goal(latest, _text(key, latest)), episode.client


async def client_of(deps: FeedbackDependencies, staff: Staff, episode_id: str) -> str:
    """The pseudonym of the client of an episode the caller may see."""
    async with deps.runtime.sessionmaker() as session:
        return (await episode_seen_by(session, staff, episode_id)).client
