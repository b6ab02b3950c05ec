"""Episodes of care: opened directly with a chosen therapist, read by the staff who care for
them, and closed with a reason (freeing the therapist's place)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.dependencies import IntakeDependencies
from services.intake.domain.episodes import CloseReason, closed_phase, is_closed
from services.intake.errors import EpisodeAlreadyClosed, EpisodeNotFound, broken
from services.intake.mapping import SOURCE, EpisodeIn
from services.intake.models import IntakeEpisode
from services.intake.usecases.places import free_place
from services.intake.usecases.references import (
    client_pseudonym,
    member_pseudonym,
    seal_reference,
)
from shared.auth import Staff
from shared.contracts import (
    EPISODE_CLOSED,
    MATCH_CONFIRMED,
    EpisodeClosed,
    EpisodeMember,
    MatchConfirmed,
)
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
    )
    return row


async def close_episode(
    deps: IntakeDependencies,
    session: AsyncSession,
    staff: Staff,
    episode_id: str,
    reason: CloseReason,
) -> IntakeEpisode:
    """Close an open episode the caller may see (``episode.closed``); its reserved place, if
    any, is free again."""
    row = await episode_for(session, staff, episode_id, may="close")
    if is_closed(row.phase):
        raise EpisodeAlreadyClosed(
            f"The episode is {row.phase}.", errors=broken("episode_id", "already_closed")
        )
    row.phase = closed_phase(reason)
    session.add(row)
    if row.match_id is not None:
        # The place reserved when the match was confirmed is free again.
        await free_place(session, row.therapist_id, datetime.now(UTC))
    await deps.runtime.emit(
        session,
        Event(
            EPISODE_CLOSED,
            EpisodeClosed(
                episode_id=row.id,
                site_id=row.site_id,
                therapist_id=row.therapist_id,
                reason=reason,
                closed_at=datetime.now(UTC),
            ),
            source=SOURCE,
        ),
    )
    return row
