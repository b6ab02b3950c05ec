"""Episodes of care: opened directly with a chosen therapist, read by the staff who care for
them, and closed with a reason (freeing the therapist's place)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.dependencies import IntakeDependencies
from services.intake.domain.episodes import CloseReason, MoveRefused, PhaseMove, close
from services.intake.domain.episodes import plan_ending as ending_planned
from services.intake.errors import EpisodeAlreadyClosed, EpisodeNotFound, EpisodeNotOpen, broken
from services.intake.mapping import SOURCE, EpisodeIn
from services.intake.models import IntakeEpisode
from services.intake.usecases.phases import (
    end_episode,
    hold_watch,
    opened,
    phase_changed,
    stop_watching,
)
from services.intake.usecases.references import (
    client_pseudonym,
    member_pseudonym,
    seal_reference,
)
from shared.auth import Staff
from shared.contracts import MATCH_CONFIRMED, EpisodeMember, MatchConfirmed
from shared.events import Event


def may_see(staff: Staff, episode: IntakeEpisode) -> bool:
    """One of the caller's sites, and for a therapist only their own clients' episodes."""
    if not staff.can_access_site(episode.site_id):
        return False
    return staff.role != "therapist" or staff.subject == episode.therapist_id


async def episode_for(
    session: AsyncSession, staff: Staff, episode_id: str, may: str = "see"
) -> IntakeEpisode:
    """The episode, if the caller may see it (404 otherwise, never saying which)."""
    row = await session.get(IntakeEpisode, episode_id)
    if row is None or not may_see(staff, row):
        raise EpisodeNotFound(f"No episode {episode_id!r} that you may {may}.")
    return row


async def open_episode(
    deps: IntakeDependencies, session: AsyncSession, body: EpisodeIn
) -> IntakeEpisode:
    """An episode with the therapist the coordinator chose (``match.confirmed`` with a
    ``direct-`` match id; no place is reserved)."""
    settings = deps.settings
    client = client_pseudonym(settings, body.site_id, body.client_reference)
    episode_id = str(uuid.uuid4())
    members = [EpisodeMember(respondent=client, role="client")] + [
        EpisodeMember(respondent=member_pseudonym(settings, episode_id, m.reference), role=m.role)
        for m in body.members
    ]
    row = IntakeEpisode(
        id=episode_id,
        site_id=body.site_id,
        therapist_id=body.therapist_id,
        client=client,
        client_reference_sealed="",  # sealed below, under the client's own data key
        domains=list(body.domains),
        severity=body.severity,
        members=[m.model_dump() for m in members],
        created_at=datetime.now(UTC),
    )
    row.client_reference_sealed = await seal_reference(
        session, settings, client, body.client_reference, episode_id
    )
    session.add(row)
    await deps.runtime.emit(
        session,
        Event(
            MATCH_CONFIRMED,
            MatchConfirmed(
                match_id=f"direct-{episode_id}",
                episode_id=episode_id,
                site_id=row.site_id,
                therapist_id=row.therapist_id,
                client=client,
                domains=row.domains,
                severity=body.severity,
                members=members,
                confirmed_at=row.created_at,
                age_group=body.age_group,
            ),
            source=SOURCE,
        ),
        opened(row, "opened_directly", row.created_at),
    )
    return row


async def close_episode(
    deps: IntakeDependencies,
    session: AsyncSession,
    staff: Staff,
    episode_id: str,
    reason: CloseReason,
) -> IntakeEpisode:
    """Close an open episode the caller may see (``episode.phase_changed``, ``episode.closed``);
    its reserved place, if any, is free again."""
    await hold_watch(session, episode_id)
    row = await episode_for(session, staff, episode_id, may="close")
    step = refused_as_conflict(row, lambda: close(row.phase, reason))
    await deps.runtime.emit(
        session, *await end_episode(session, row, step, reason, datetime.now(UTC))
    )
    return row


async def plan_ending(
    deps: IntakeDependencies, session: AsyncSession, staff: Staff, episode_id: str
) -> IntakeEpisode:
    """The therapist plans the end of an active episode (``closing``; no drop-out check while
    the ending is planned). Asked again, the episode stays closing and nothing is published."""
    await hold_watch(session, episode_id)
    row = await episode_for(session, staff, episode_id, may="close")
    if row.phase == "closing":
        return row
    step = refused_as_conflict(row, lambda: ending_planned(row.phase))
    row.phase = step.end
    session.add(row)
    await stop_watching(session, row.id)
    await deps.runtime.emit(session, phase_changed(row, step, datetime.now(UTC)))
    return row


def refused_as_conflict(row: IntakeEpisode, decide: Callable[[], PhaseMove]) -> PhaseMove:
    """The move ``decide`` allows, or a 409 naming ``episode_id`` and the rule."""
    try:
        return decide()
    except MoveRefused as refused:
        if refused.rule == "already_closed":
            raise EpisodeAlreadyClosed(
                f"The episode is {row.phase}.", errors=broken("episode_id", "already_closed")
            ) from None
        raise EpisodeNotOpen(
            f"The episode is {row.phase}: {refused}", errors=broken("episode_id", refused.rule)
        ) from None
