"""Intakes and their proposals: a submitted intake gets the top therapist options, each
explained; a coordinator may propose again, rematch an open episode (as does an opened
``rematch_suggested`` alert) or assign a site's whole waiting list at once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.dependencies import IntakeDependencies
from services.intake.domain.assignment import assign
from services.intake.domain.episodes import is_closed
from services.intake.domain.matching import (
    Proposal,
    constraint_checks,
    intake_problems,
    propose,
    score,
)
from services.intake.domain.matching.time_zones import local_now, on_site_clock
from services.intake.errors import (
    EpisodeIsClosed,
    EpisodeNotFound,
    IntakeAlreadyMatched,
    IntakeNotFound,
    MatchNotFound,
    NobodyToOffer,
    NoIntakeToRematch,
    broken,
    field_errors,
    invalid,
)
from services.intake.mapping import (
    SOURCE,
    AssignmentOut,
    IntakeIn,
    PlacementOut,
    UnassignableOut,
    exclusion_json,
    intake_of,
    intake_request,
    option_json,
    proposed_event,
    proposed_json,
)
from services.intake.models import IntakeEpisode, IntakeIntake, IntakeMatch
from services.intake.usecases.references import (
    client_pseudonym,
    member_pseudonym,
    seal_reference,
)
from shared.auth import Staff
from shared.contracts import INTAKE_SUBMITTED, AllianceAlert, EpisodeMember, IntakeSubmitted
from shared.events import Event


async def propose_for(
    deps: IntakeDependencies,
    session: AsyncSession,
    intake: IntakeIntake,
    *,
    excluded: Sequence[str] = (),
    rematch_of_episode: str | None = None,
) -> tuple[IntakeMatch, list[Event[Any]]]:
    """Run the engine for a stored intake and store its proposal (``match.proposed``); raises
    :class:`NobodyToOffer` rather than store a proposal without options."""
    now = datetime.now(UTC)
    zones = deps.zones
    roster = await deps.snapshots.roster_for_site(session, intake.site_id, zones, now)
    table = await deps.snapshots.effectiveness(session)
    proposal: Proposal = propose(
        intake_of(intake, excluded),
        roster,
        table,
        deps.matching.for_site(intake.site_id),
        local_now(now, zones.of(intake.site_id)),
    )
    if not proposal.options:
        raise NobodyToOffer(proposal, "episode_id" if rematch_of_episode else "site_id")
    match = IntakeMatch(
        id=str(uuid.uuid4()),
        intake_id=intake.id,
        site_id=intake.site_id,
        client=intake.client,
        fit=proposal.status,
        options=[proposed_json(o) for o in proposal.options],
        exclusions=[exclusion_json(e) for e in proposal.exclusions],
        summary=proposal.summary,
        eligible=proposal.eligible,
        considered=proposal.considered,
        rematch_of_episode=rematch_of_episode,
        created_at=now,
    )
    session.add(match)
    return match, [proposed_event(match)]


async def single_option_proposal(
    deps: IntakeDependencies, session: AsyncSession, intake: IntakeIntake, therapist_id: str
) -> tuple[IntakeMatch, list[Event[Any]]]:
    """A proposal of one therapist (a batch placement), explained like any other option."""
    roster = await deps.snapshots.roster(session)
    table = await deps.snapshots.effectiveness(session)
    now = datetime.now(UTC)
    zones = deps.zones
    config = deps.matching.for_site(intake.site_id)
    engine_intake = intake_of(intake)
    therapist = on_site_clock(
        roster.therapists[roster.index[therapist_id]], intake.site_id, zones, now
    )
    breakdown = score(
        engine_intake, therapist, table, config, local_now(now, zones.of(intake.site_id))
    )
    checks = constraint_checks(engine_intake, therapist, config)
    violated = [c.code for c in checks if not c.held]
    head = "Meets every hard constraint." if not violated else f"Misses {', '.join(violated)}."
    match = IntakeMatch(
        id=str(uuid.uuid4()),
        intake_id=intake.id,
        site_id=intake.site_id,
        client=intake.client,
        fit="matched" if not violated else "closest",
        options=[
            option_json(
                1,
                breakdown,
                checks,
                violated,
                f"Batch placement. {head} Score {breakdown.total:.2f}.",
            )
        ],
        summary="Placed by the waiting-list assignment (maximum total match score).",
        eligible=1,
        considered=roster.size,
        created_at=now,
    )
    session.add(match)
    return match, [proposed_event(match)]


def new_intake(deps: IntakeDependencies, body: IntakeIn) -> IntakeIntake:
    """The intake row for a submission (reference not yet sealed), or a 422 naming each field
    and rule it breaks."""
    if body.unit != "individual" and not body.members:
        raise invalid(
            [
                {
                    "field": "members",
                    "rule": "required_for_unit",
                    "message": f"a {body.unit} intake names the other members",
                }
            ]
        )
    settings = deps.settings
    intake_id = str(uuid.uuid4())
    row = IntakeIntake(
        id=intake_id,
        site_id=body.site_id,
        client=client_pseudonym(settings, body.site_id, body.client_reference),
        client_reference_sealed="",  # sealed on submission, under the client's own data key
        request=intake_request(body),
        members=[
            EpisodeMember(
                respondent=member_pseudonym(settings, intake_id, m.reference), role=m.role
            ).model_dump()
            for m in body.members
        ],
        created_at=datetime.now(UTC),
    )
    problems = intake_problems(intake_of(row))
    if problems:
        raise invalid(field_errors(problems))
    return row


async def submit_intake(
    deps: IntakeDependencies, session: AsyncSession, row: IntakeIntake, body: IntakeIn
) -> IntakeMatch:
    """Store a checked intake (:func:`new_intake`, ``intake.submitted``) and its first
    proposal (``match.proposed``)."""
    await store_intake(deps, session, row, body)
    match, events = await propose_for(deps, session, row)
    await deps.runtime.emit(session, *events)
    return match


async def store_intake(
    deps: IntakeDependencies, session: AsyncSession, row: IntakeIntake, body: IntakeIn
) -> None:
    """Store a checked intake (:func:`new_intake`) as waiting (``intake.submitted``)."""
    row.client_reference_sealed = await seal_reference(
        session, deps.settings, row.client, body.client_reference, row.id
    )
    session.add(row)
    await deps.runtime.emit(
        session,
        Event(
            INTAKE_SUBMITTED,
            IntakeSubmitted(
                intake_id=row.id,
                site_id=body.site_id,
                client=row.client,
                domains=[d.code for d in body.domains],
                severity=intake_of(row).severity,
                risk=body.risk,
                couple_or_family=body.unit != "individual",
                submitted_at=row.created_at,
            ),
            source=SOURCE,
        ),
    )


async def intake_at_site(session: AsyncSession, staff: Staff, intake_id: str) -> IntakeIntake:
    row = await session.get(IntakeIntake, intake_id)
    if row is None or not staff.can_access_site(row.site_id):
        raise IntakeNotFound(f"No intake {intake_id!r} that you may see.")
    return row


async def match_at_site(session: AsyncSession, staff: Staff, match_id: str) -> IntakeMatch:
    row = await session.get(IntakeMatch, match_id)
    if row is None or not staff.can_access_site(row.site_id):
        raise MatchNotFound(f"No match {match_id!r} that you may see.")
    return row


async def propose_again(
    deps: IntakeDependencies, session: AsyncSession, staff: Staff, intake_id: str
) -> IntakeMatch:
    """A new proposal for a waiting intake (therapists it declined only as the last resort)."""
    intake = await intake_at_site(session, staff, intake_id)
    if intake.status != "waiting":
        raise IntakeAlreadyMatched(
            f"Intake {intake_id!r} has a confirmed match; rematch its episode instead.",
            errors=broken("intake_id", "already_matched"),
        )
    match, events = await propose_for(deps, session, intake)
    await deps.runtime.emit(session, *events)
    return match


async def rematch(
    deps: IntakeDependencies, session: AsyncSession, episode: IntakeEpisode
) -> tuple[IntakeMatch, list[Event[Any]]]:
    """A new proposal for an open episode, excluding its current and past therapists."""
    intake = await session.get(IntakeIntake, episode.intake_id) if episode.intake_id else None
    if intake is None:
        raise NoIntakeToRematch(
            f"Episode {episode.id!r} was opened directly, without an intake; submit an intake.",
            errors=broken("episode_id", "no_intake"),
        )
    excluded = [*(episode.past_therapists or []), episode.therapist_id]
    return await propose_for(
        deps, session, intake, excluded=excluded, rematch_of_episode=episode.id
    )


async def rematch_episode(
    deps: IntakeDependencies, session: AsyncSession, staff: Staff, episode_id: str
) -> IntakeMatch:
    """A coordinator's rematch of an open episode at one of their sites."""
    episode = await session.get(IntakeEpisode, episode_id)
    if episode is None or not staff.can_access_site(episode.site_id):
        raise EpisodeNotFound(f"No episode {episode_id!r} that you may see.")
    if is_closed(episode.phase):
        raise EpisodeIsClosed(
            f"The episode is {episode.phase}.", errors=broken("episode_id", "already_closed")
        )
    match, events = await rematch(deps, session, episode)
    await deps.runtime.emit(session, *events)
    return match


async def rematch_on_alert(
    deps: IntakeDependencies, session: AsyncSession, alert: AllianceAlert
) -> list[Event[Any]]:
    """``rematch_suggested`` opened: propose new therapists for the episode (the coordinator
    and client decide; nothing is confirmed automatically). Nothing when the episode is gone,
    closed, opened without an intake or already has a rematch pending."""
    episode = await session.get(IntakeEpisode, alert.episode_id)
    if episode is None or is_closed(episode.phase) or episode.intake_id is None:
        return []
    m = IntakeMatch
    pending = await session.execute(
        select(func.count()).where(
            m.rematch_of_episode == episode.id,  # type: ignore[arg-type]
            m.status == "proposed",  # type: ignore[arg-type]
        )
    )
    if pending.scalar_one():
        return []
    try:
        _, events = await rematch(deps, session, episode)
    except NobodyToOffer:
        return []  # nobody else to offer: the alert itself still reaches the clinicians
    return events


async def assign_waiting_list(
    deps: IntakeDependencies, session: AsyncSession, site_id: str
) -> AssignmentOut:
    """Assign the site's waiting list optimally: one proposal per placed client (nothing is
    confirmed), and why each other client could not be placed."""
    waiting = (
        (
            await session.execute(
                select(IntakeIntake)
                .where(IntakeIntake.site_id == site_id, IntakeIntake.status == "waiting")  # type: ignore[arg-type]
                .order_by(IntakeIntake.created_at)  # type: ignore[arg-type]
            )
        )
        .scalars()
        .all()
    )
    # One place per client: the latest intake of a client stands for them.
    latest = {row.client: row for row in waiting}
    now = datetime.now(UTC)
    zones = deps.zones
    result = assign(
        [intake_of(row) for row in latest.values()],
        await deps.snapshots.roster_for_site(session, site_id, zones, now),
        await deps.snapshots.effectiveness(session),
        deps.matching.for_site(site_id),
        local_now(now, zones.of(site_id)),
    )
    placements = []
    for placed in result.placements:
        intake = latest[placed.client]
        match, events = await single_option_proposal(deps, session, intake, placed.therapist_id)
        await deps.runtime.emit(session, *events)
        placements.append(
            PlacementOut(
                intake_id=intake.id,
                client=placed.client,
                therapist_id=placed.therapist_id,
                score=placed.score,
                match_id=match.id,
            )
        )
    return AssignmentOut(
        site_id=site_id,
        placements=placements,
        unassignable=[
            UnassignableOut(
                intake_id=latest[u.client].id,
                client=u.client,
                reason=u.reason,
                eligible=u.eligible,
                detail=u.detail,
                exclusions=[exclusion_json(e) for e in u.exclusions],
            )
            for u in result.unplaced
        ],
        total_score=result.total_score,
    )
