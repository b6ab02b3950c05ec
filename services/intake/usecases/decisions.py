"""The decision on a proposal: the client's choice confirmed (an episode opens, or on rematch the
episode is transferred) or the proposal declined (the intake's next proposals exclude the
declined therapists). A proposal is decided once: the first decision claims it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.dependencies import IntakeDependencies
from services.intake.domain.episodes import is_closed
from services.intake.errors import (
    EpisodeNotOpen,
    IntakeAlreadyMatched,
    MatchAlreadyDecided,
    NotAnOption,
    broken,
    invalid,
)
from services.intake.mapping import SOURCE, intake_of
from services.intake.models import IntakeEpisode, IntakeIntake, IntakeMatch, IntakeTherapist
from services.intake.usecases.phases import opened
from services.intake.usecases.places import free_place, reserve_place
from services.intake.usecases.references import seal_reference, unseal_reference
from shared.contracts import (
    EPISODE_TRANSFERRED,
    MATCH_CONFIRMED,
    MATCH_DECLINED,
    EpisodeMember,
    EpisodeTransferred,
    MatchConfirmed,
    MatchDeclined,
)
from shared.events import Event


async def _claim(session: AsyncSession, match_id: str, values: dict[str, Any]) -> None:
    m = IntakeMatch
    claimed = await session.execute(
        update(m)
        .where(m.id == match_id, m.status == "proposed")  # type: ignore[arg-type]
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise MatchAlreadyDecided(
            f"Match {match_id!r} was already confirmed or declined.",
            errors=broken("match_id", "already_decided"),
        )


async def confirm_match(
    deps: IntakeDependencies, session: AsyncSession, match: IntakeMatch, therapist_id: str
) -> IntakeEpisode:
    """The client's choice: a new episode (or, on rematch, the episode transferred) with the
    chosen therapist, whose place is reserved in this transaction."""
    if therapist_id not in {o["therapist_id"] for o in match.options}:
        raise NotAnOption(
            f"Therapist {therapist_id!r} is not an option of match {match.id!r}.",
            errors=broken("therapist_id", "not_an_option"),
        )
    now = datetime.now(UTC)
    await _claim(
        session,
        match.id,
        {"status": "confirmed", "chosen_therapist_id": therapist_id, "decided_at": now},
    )
    intake = await session.get(IntakeIntake, match.intake_id)
    assert intake is not None
    if match.rematch_of_episode is not None:
        episode, events = await _transfer(session, match, intake, therapist_id, now)
    else:
        episode, events = await _open(deps, session, match, intake, therapist_id, now)
    await deps.runtime.emit(session, *events)
    return episode


async def _open(
    deps: IntakeDependencies,
    session: AsyncSession,
    match: IntakeMatch,
    intake: IntakeIntake,
    therapist_id: str,
    now: datetime,
) -> tuple[IntakeEpisode, list[Event[Any]]]:
    """A first match confirmed: the intake is matched and a new episode opens."""
    i = IntakeIntake
    taken = await session.execute(
        update(i)
        .where(i.id == intake.id, i.status == "waiting")  # type: ignore[arg-type]
        .values(status="matched")
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise IntakeAlreadyMatched(
            f"Intake {intake.id!r} already has a confirmed match.",
            errors=broken("intake_id", "already_matched"),
        )
    await reserve_place(session, therapist_id, now)
    settings = deps.settings
    episode_id = str(uuid.uuid4())
    reference = await unseal_reference(
        session, settings, intake.client, intake.client_reference_sealed, intake.id
    )
    members = [EpisodeMember(respondent=intake.client, role="client")] + [
        EpisodeMember.model_validate(m) for m in intake.members
    ]
    domains = [d["code"] for d in intake.request["domains"]]
    severity = intake_of(intake).severity
    episode = IntakeEpisode(
        id=episode_id,
        site_id=intake.site_id,
        therapist_id=therapist_id,
        client=intake.client,
        client_reference_sealed=await seal_reference(
            session, settings, intake.client, reference, episode_id
        ),
        domains=domains,
        severity=severity,
        members=[m.model_dump() for m in members],
        created_at=now,
        match_id=match.id,
        intake_id=intake.id,
        past_therapists=[],
    )
    session.add(episode)
    event = Event(
        MATCH_CONFIRMED,
        MatchConfirmed(
            match_id=match.id,
            episode_id=episode_id,
            site_id=intake.site_id,
            therapist_id=therapist_id,
            client=intake.client,
            domains=domains,
            severity=severity,
            members=members,
            confirmed_at=now,
            age_group=intake_of(intake).age_group,
        ),
        source=SOURCE,
    )
    return episode, [event, opened(episode, "match_confirmed", now)]


async def _transfer(
    session: AsyncSession,
    match: IntakeMatch,
    intake: IntakeIntake,
    therapist_id: str,
    now: datetime,
) -> tuple[IntakeEpisode, list[Event[Any]]]:
    """Rematch confirmed: the episode keeps its id and history and moves to the new therapist;
    the old therapist's place is freed, the new one's reserved."""
    episode = await session.get(IntakeEpisode, match.rematch_of_episode, with_for_update=True)
    if episode is None or is_closed(episode.phase):
        raise EpisodeNotOpen(
            f"Episode {match.rematch_of_episode!r} is no longer open.",
            errors=broken("episode_id", "not_open"),
        )
    old = episode.therapist_id
    # Lock both therapists in id order, so two opposite transfers cannot deadlock.
    await session.execute(
        select(IntakeTherapist)
        .where(col(IntakeTherapist.id).in_(sorted({old, therapist_id})))
        .order_by(col(IntakeTherapist.id))
        .with_for_update()
    )
    await reserve_place(session, therapist_id, now)
    if episode.match_id is not None:
        await free_place(session, old, now)
    episode.therapist_id = therapist_id
    episode.past_therapists = [*(episode.past_therapists or []), old]
    episode.match_id = match.id
    session.add(episode)
    members = [EpisodeMember.model_validate(m) for m in episode.members]
    events: list[Event[Any]] = [
        Event(
            EPISODE_TRANSFERRED,
            EpisodeTransferred(
                episode_id=episode.id,
                site_id=episode.site_id,
                from_therapist_id=old,
                to_therapist_id=therapist_id,
                transferred_at=now,
            ),
            source=SOURCE,
        ),
        # Consumers that learn episodes from match.confirmed (feedback) follow the new
        # therapist; the episode id is unchanged, so its history stays attached.
        Event(
            MATCH_CONFIRMED,
            MatchConfirmed(
                match_id=match.id,
                episode_id=episode.id,
                site_id=episode.site_id,
                therapist_id=therapist_id,
                client=episode.client,
                domains=list(episode.domains),
                severity=episode.severity,
                members=members,
                confirmed_at=now,
                age_group=intake_of(intake).age_group,
            ),
            source=SOURCE,
        ),
    ]
    return episode, events


async def decline_match(
    deps: IntakeDependencies,
    session: AsyncSession,
    match: IntakeMatch,
    reason_code: str,
    therapist_ids: Sequence[str],
) -> None:
    """Record the decline (``match.declined``); the intake's next proposals exclude the
    declined therapists (every option when none is named)."""
    offered = {o["therapist_id"] for o in match.options}
    strangers = sorted(set(therapist_ids) - offered)
    if strangers:
        raise invalid(
            [
                {
                    "field": "therapist_ids",
                    "rule": "not_an_option",
                    "message": f"not options of this match: {', '.join(strangers)}",
                }
            ]
        )
    declined = list(dict.fromkeys(therapist_ids)) or [o["therapist_id"] for o in match.options]
    await _claim(
        session,
        match.id,
        {"status": "declined", "reason_code": reason_code, "decided_at": datetime.now(UTC)},
    )
    intake = await session.get(IntakeIntake, match.intake_id, with_for_update=True)
    assert intake is not None
    intake.declined_therapists = sorted(set(intake.declined_therapists) | set(declined))
    session.add(intake)
    await deps.runtime.emit(
        session,
        Event(
            MATCH_DECLINED,
            MatchDeclined(
                match_id=match.id,
                site_id=match.site_id,
                client=match.client,
                declined_therapist_ids=declined,
                reason_code=reason_code,
            ),
            source=SOURCE,
        ),
    )
