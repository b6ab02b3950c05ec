"""Episodes as feedback knows them: learnt from ``match.confirmed``, seen by the staff who care
for them, and their responses read back."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.feedback.errors import EpisodeNotFound
from services.feedback.models import FeedbackEpisode, FeedbackGoal, FeedbackResponse
from shared.auth import Staff
from shared.contracts import EpisodeMembersChanged, MatchConfirmed


def may_see(staff: Staff) -> Callable[[FeedbackEpisode], bool]:
    """Whether ``staff`` may see (and record for) an episode: one of their sites, and for a
    therapist only their own clients' episodes."""

    def check(episode: FeedbackEpisode) -> bool:
        if not staff.can_access_site(episode.site_id):
            return False
        return staff.role != "therapist" or staff.subject == episode.therapist_id

    return check


async def episode_seen_by(session: AsyncSession, staff: Staff, episode_id: str) -> FeedbackEpisode:
    """The episode, when ``staff`` may see it; else 404 naming ``episode_id`` (never which)."""
    episode = await session.get(FeedbackEpisode, episode_id)
    if episode is None or not may_see(staff)(episode):
        raise EpisodeNotFound(
            f"No episode {episode_id!r} that you may see.",
            errors=[{"field": "episode_id", "rule": "not_found"}],
        )
    return episode


async def learn_episode(session: AsyncSession, match: MatchConfirmed) -> None:
    """Learn (or update) the episode so that responses for it can be accepted and attributed."""
    episode = await session.get(FeedbackEpisode, match.episode_id)
    if episode is None:
        episode = FeedbackEpisode(
            episode_id=match.episode_id,
            site_id=match.site_id,
            therapist_id=match.therapist_id,
            client=match.client,
            confirmed_at=match.confirmed_at,
        )
    episode.therapist_id = match.therapist_id
    episode.members = [m.model_dump() for m in match.members]
    if match.age_group is not None:  # a transfer's event from an older intake may lack it
        episode.age_group = match.age_group
    session.add(episode)


async def learn_members(session: AsyncSession, changed: EpisodeMembersChanged) -> None:
    """A partner or family member added to or removed from the episode: their links are
    answered (or not) from now on. An episode not known yet learns its members from
    ``match.confirmed``, which intake sends with the members it has then."""
    episode = await session.get(FeedbackEpisode, changed.episode_id)
    if episode is not None:
        episode.members = [m.model_dump() for m in changed.members]
        session.add(episode)


async def episode_responses(
    session: AsyncSession,
    staff: Staff,
    episode_id: str,
    *,
    include_replaced: bool,
    offset: int,
    limit: int,
) -> tuple[FeedbackEpisode, Sequence[FeedbackResponse]]:
    """An episode the caller may see and a page of its responses, oldest session first."""
    episode = await session.get(FeedbackEpisode, episode_id)
    if episode is None or not may_see(staff)(episode):
        raise EpisodeNotFound(f"No episode {episode_id!r} that you may see.")
    query = select(FeedbackResponse).where(FeedbackResponse.episode_id == episode_id)
    if not include_replaced:
        query = query.where(col(FeedbackResponse.replaced_by).is_(None))
    rows = (
        await session.exec(
            query.order_by(col(FeedbackResponse.session_number), col(FeedbackResponse.recorded_at))
            .offset(offset)
            .limit(limit)
        )
    ).all()
    return episode, rows


async def goal_revisions(session: AsyncSession, episode_id: str) -> Sequence[FeedbackGoal]:
    """Every revision of every goal of the episode, in the goals' order, oldest first."""
    return (
        await session.exec(
            select(FeedbackGoal)
            .where(FeedbackGoal.episode_id == episode_id)
            .order_by(col(FeedbackGoal.position), col(FeedbackGoal.revision))
        )
    ).all()


async def current_goals(session: AsyncSession, episode_id: str) -> list[FeedbackGoal]:
    """The latest revision of each goal of the episode, in the goals' order."""
    latest: dict[str, FeedbackGoal] = {}
    for row in await goal_revisions(session, episode_id):
        latest[row.goal_id] = row  # revisions ascending: the last one wins
    return list(latest.values())


async def active_goal_ids(session: AsyncSession, episode_id: str) -> set[str]:
    return {g.goal_id for g in await current_goals(session, episode_id) if g.status == "active"}
