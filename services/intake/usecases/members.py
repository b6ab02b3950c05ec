"""The partners and family members of an episode, added or removed at any time while it is open
(not only at intake): ``episode.members.changed`` carries the whole client side as it is now
(pseudonyms and roles only), so feedback accepts their links and notify invites them from the
next session on. A member's reference (a name, often) is used only to form their pseudonym,
scoped to the episode: it is neither stored nor published."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.dependencies import IntakeDependencies
from services.intake.domain.episodes import is_closed
from services.intake.errors import (
    EpisodeIsClosed,
    MemberExists,
    NotRemovable,
    broken,
)
from services.intake.mapping import SOURCE, MemberIn
from services.intake.models import IntakeEpisode
from services.intake.usecases.episodes import episode_for
from services.intake.usecases.references import member_pseudonym
from shared.auth import Staff
from shared.contracts import EPISODE_MEMBERS_CHANGED, EpisodeMember, EpisodeMembersChanged
from shared.events import Event

MAX_MEMBERS: Final = 10  # partners and family members of one episode


async def _open_episode(session: AsyncSession, staff: Staff, episode_id: str) -> IntakeEpisode:
    row = await episode_for(session, staff, episode_id, may="change")
    if is_closed(row.phase):
        raise EpisodeIsClosed(
            f"The episode is {row.phase}: its members no longer change.",
            errors=broken("episode_id", "episode_closed"),
        )
    return row


async def add_member(
    deps: IntakeDependencies,
    session: AsyncSession,
    staff: Staff,
    episode_id: str,
    member: MemberIn,
) -> EpisodeMember:
    """A partner or family member joins the episode (409 if they are in it already)."""
    row = await _open_episode(session, staff, episode_id)
    respondent = member_pseudonym(deps.settings, episode_id, member.reference)
    members = [EpisodeMember.model_validate(m) for m in row.members]
    if any(m.respondent == respondent for m in members):
        raise MemberExists(
            "This person is already a member of the episode.",
            errors=broken("reference", "already_a_member"),
        )
    if sum(m.role != "client" for m in members) >= MAX_MEMBERS:
        raise MemberExists(
            f"An episode has at most {MAX_MEMBERS} partners and family members.",
            errors=broken("reference", f"at_most_{MAX_MEMBERS}_members"),
        )
    added = EpisodeMember(respondent=respondent, role=member.role)
    await _change(deps, session, row, [*members, added], added=[respondent])
    return added


async def remove_member(
    deps: IntakeDependencies,
    session: AsyncSession,
    staff: Staff,
    episode_id: str,
    respondent: str,
) -> None:
    """A partner or family member leaves the episode (the client cannot). Removing someone who
    is not a member changes nothing (a retried removal answers as the first did)."""
    row = await _open_episode(session, staff, episode_id)
    members = [EpisodeMember.model_validate(m) for m in row.members]
    leaving = next((m for m in members if m.respondent == respondent), None)
    if leaving is None:
        return  # not (or no longer) a member: nothing changes, nothing is said
    if leaving.role == "client":
        raise NotRemovable(
            "The client is the episode: close it instead.",
            errors=broken("respondent", "client_not_removable"),
        )
    staying = [m for m in members if m.respondent != respondent]
    await _change(deps, session, row, staying, removed=[respondent])


async def _change(
    deps: IntakeDependencies,
    session: AsyncSession,
    row: IntakeEpisode,
    members: list[EpisodeMember],
    added: list[str] | None = None,
    removed: list[str] | None = None,
) -> None:
    row.members = [m.model_dump() for m in members]
    session.add(row)
    changed = EpisodeMembersChanged(
        episode_id=row.id,
        site_id=row.site_id,
        therapist_id=row.therapist_id,
        members=members,
        added=added or [],
        removed=removed or [],
        changed_at=datetime.now(UTC),
    )
    await deps.runtime.emit(session, Event(EPISODE_MEMBERS_CHANGED, changed, source=SOURCE))
