"""Feedback invitations: after a session, each client-side member of the episode who has
consented gets a one-time link to the feedback form (``shared.tokens``), reminded once if
unanswered, never again once answered. The link is a bearer credential: stored only sealed.

The episode's members come from ``match.confirmed``; a session reported before its episode is
known (the two events travel on different topics) is planned as soon as it is."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify import domain, mapping
from services.notify.delivery_rows import invitation_row
from services.notify.dependencies import NotifyDependencies
from services.notify.models import (
    NotifyClientContact,
    NotifyDelivery,
    NotifyEpisode,
    NotifyInvitation,
    NotifySession,
)
from services.notify.policy import RoutingPolicy
from services.notify.usecases.consent import invitees_allowed
from services.notify.usecases.notices import AfterCommit, insert_deliveries, open_notice
from shared.contracts import (
    EpisodeMembersChanged,
    FeedbackRecorded,
    MatchConfirmed,
    SessionCompleted,
)
from shared.db import dialect_of, insert_or_ignore, upsert
from shared.erasure import table_of
from shared.tokens import mint

INVITATIONS = table_of(NotifyInvitation)
EPISODES = table_of(NotifyEpisode)
SESSIONS = table_of(NotifySession)


def why_not_invited(contact: NotifyClientContact | None, channels: frozenset[str]) -> str | None:
    """Consent and contact preferences come first: no contact, no consent, no address for the
    chosen channel — no message. Nor on a channel the deployment has not configured."""
    if contact is None:
        return "no_contact"
    if not contact.consent:
        return "no_consent"
    address = contact.email_sealed if contact.channel == "email" else contact.phone_sealed
    if not address:
        return "no_address"
    return None if contact.channel in channels else "channel_not_configured"


async def episode_from_match(
    deps: NotifyDependencies,
    session: AsyncSession,
    event_id: str,
    confirmed: MatchConfirmed,
    after_commit: AfterCommit,
) -> None:
    """Learn the episode's members (for invitations), plan the sessions that waited for them,
    and tell the intake coordinator."""
    routing = await deps.policies.routing(session, confirmed.site_id)
    values = mapping.episode_values(confirmed)
    statement = upsert(session, EPISODES).values(values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["episode_id"],
            set_={k: statement.excluded[k] for k in values if k != "episode_id"},
        )
    )
    episode = await session.get(NotifyEpisode, confirmed.episode_id, populate_existing=True)
    assert episode is not None
    if await plan_waiting_sessions(deps, session, episode, routing.policy):
        after_commit.append(deps.wake_dispatcher)
    notice = mapping.match_confirmed_notice(event_id, confirmed)
    await open_notice(deps, session, notice, routing, after_commit)


async def members_of_episode(
    deps: NotifyDependencies,
    session: AsyncSession,
    event_id: str,
    changed: EpisodeMembersChanged,
    after_commit: AfterCommit,
) -> None:
    """A partner or family member added to (or removed from) the episode: the sessions from
    now on invite the episode's members as they are (an invitation already sent stands; one
    not yet answered of a member removed is withdrawn)."""
    episode = await session.get(NotifyEpisode, changed.episode_id)
    if episode is None:
        return  # match.confirmed, when it comes, carries the members as intake has them
    episode.members = [m.model_dump() for m in changed.members]
    session.add(episode)
    if changed.removed:
        await session.execute(
            update(INVITATIONS)
            .where(
                INVITATIONS.c.episode_id == changed.episode_id,
                INVITATIONS.c.respondent.in_(changed.removed),
                INVITATIONS.c.status == "invited",
            )
            .values(status="withdrawn", skip_reason="member_removed", remind_at=None)
        )


async def invitations_from_session(
    deps: NotifyDependencies,
    session: AsyncSession,
    event_id: str,
    completed: SessionCompleted,
    after_commit: AfterCommit,
) -> None:
    """Invite the episode's client-side members to give feedback on the session."""
    routing = await deps.policies.routing(session, completed.site_id)
    row = {
        "id": str(uuid.uuid4()),
        "episode_id": completed.episode_id,
        "site_id": completed.site_id,
        "session_number": completed.session_number,
        "attended": completed.attended,
        "source_event_id": event_id,
        "at": completed.at,
    }
    inserted = await session.execute(
        insert_or_ignore(session, SESSIONS, ["episode_id", "session_number"])
        .values(row)
        .returning(SESSIONS.c.id)
    )
    if inserted.first() is None:
        return  # this session was already reported
    episode = await session.get(NotifyEpisode, completed.episode_id)
    if episode is None:
        return  # planned when match.confirmed arrives
    waiting = await session.get(NotifySession, row["id"])
    assert waiting is not None
    if await plan_session(deps, session, episode, waiting, routing.policy):
        after_commit.append(deps.wake_dispatcher)


async def answers_stop_reminders(session: AsyncSession, recorded: FeedbackRecorded) -> None:
    """An answer stops the reminder (and a not-yet-sent invitation) for that session."""
    if recorded.respondent_role == "therapist":
        return
    await mark_answered(session, recorded.episode_id, recorded.session_number, recorded.respondent)


async def plan_session(
    deps: NotifyDependencies,
    session: AsyncSession,
    episode: NotifyEpisode,
    completed: NotifySession,
    policy: RoutingPolicy,
) -> int:
    """Create the invitations (and their deliveries) for one completed session."""
    now = datetime.now(UTC)
    completed.planned_at = now
    session.add(completed)
    if not completed.attended or not policy.invitations.enabled:
        return 0
    members = [(m["respondent"], m["role"]) for m in episode.members]
    by_role = {str(k): v for k, v in policy.invitations.instruments.items()}
    support = domain.support_due(
        completed.session_number, policy.invitations.support_every_sessions
    )
    invitees = domain.invitees(members, by_role, support)
    allowed = await invitees_allowed(session, episode, [i.role for i in invitees])
    invitees = [i for i, may in zip(invitees, allowed, strict=True) if may]
    if not invitees:
        return 0
    contacts = {
        c.respondent: c
        for c in (
            await session.exec(
                select(NotifyClientContact).where(
                    NotifyClientContact.site_id == episode.site_id,
                    col(NotifyClientContact.respondent).in_([i.respondent for i in invitees]),
                )
            )
        ).all()
    }
    invitations: list[dict[str, Any]] = []
    deliveries: dict[str, dict[str, Any]] = {}
    for invitee in invitees:
        row, delivery = invitation_for(
            deps, episode, completed, invitee, contacts.get(invitee.respondent), policy, now
        )
        invitations.append(row)
        if delivery is not None:
            deliveries[row["id"]] = delivery
    inserted = await session.execute(
        insert_or_ignore(session, INVITATIONS, ["episode_id", "session_number", "respondent"])
        .values(invitations)
        .returning(INVITATIONS.c.id)
    )
    fresh = {r[0] for r in inserted.all()}
    return await insert_deliveries(session, [d for i, d in deliveries.items() if i in fresh])


def invitation_for(
    deps: NotifyDependencies,
    episode: NotifyEpisode,
    completed: NotifySession,
    invitee: domain.Invitee,
    contact: NotifyClientContact | None,
    policy: RoutingPolicy,
    now: datetime,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One member's invitation row (invited, or skipped with the reason) and, when invited,
    its delivery with a freshly minted one-time link (sealed)."""
    invitation_id = str(uuid.uuid4())
    reason = why_not_invited(contact, deps.channels)
    row: dict[str, Any] = {
        "id": invitation_id,
        "site_id": episode.site_id,
        "episode_id": episode.episode_id,
        "session_number": completed.session_number,
        "respondent": invitee.respondent,
        "role": invitee.role,
        "status": "skipped" if reason else "invited",
        "skip_reason": reason,
        "link_sealed": None,
        "expires_at": None,
        "remind_at": None,
        "created_at": now,
    }
    if reason is not None or contact is None:
        return row, None
    ttl = policy.invitations.link_ttl_seconds
    expires_at = now + timedelta(seconds=ttl)
    token = mint(
        deps.settings.encryption_key.get_secret_value(),
        episode_id=episode.episode_id,
        session_number=completed.session_number,
        respondent=invitee.respondent,
        role=invitee.role,
        instruments=invitee.instruments,
        ttl_seconds=ttl,
    )
    link_sealed = deps.sealing.seal_link(
        f"{deps.settings.notify_public_base_url}/feedback/r/{token}", invitation_id
    )
    row.update(
        link_sealed=link_sealed,
        expires_at=expires_at,
        remind_at=now + timedelta(seconds=policy.invitations.remind_after_seconds),
    )
    delivery = invitation_row(
        invitation_id=invitation_id,
        key=domain.invitation_notice_key(
            episode.episode_id, completed.session_number, invitee.respondent
        ),
        kind="invitation",
        site_id=episode.site_id,
        respondent=invitee.respondent,
        role=invitee.role,
        contact=contact,
        link_sealed=link_sealed,
        expires_at=expires_at,
        source_event_id=completed.source_event_id,
        now=now,
    )
    return row, delivery


async def plan_waiting_sessions(
    deps: NotifyDependencies, session: AsyncSession, episode: NotifyEpisode, policy: RoutingPolicy
) -> int:
    """Sessions reported before notify learnt their episode (the two events travel on
    different topics) are planned as soon as it does."""
    waiting = (
        await session.exec(
            select(NotifySession).where(
                NotifySession.episode_id == episode.episode_id,
                col(NotifySession.planned_at).is_(None),
            )
        )
    ).all()
    created = 0
    for completed in waiting:
        created += await plan_session(deps, session, episode, completed, policy)
    return created


async def mark_answered(
    session: AsyncSession, episode_id: str, session_number: int, respondent: str
) -> int:
    """The respondent answered: no reminder, and an invitation still waiting is withdrawn."""
    now = datetime.now(UTC)
    answered = await session.execute(
        update(INVITATIONS)
        .where(
            INVITATIONS.c.episode_id == episode_id,
            INVITATIONS.c.session_number == session_number,
            INVITATIONS.c.respondent == respondent,
            INVITATIONS.c.status == "invited",
        )
        .values(status="answered", answered_at=now, remind_at=None)
        .returning(INVITATIONS.c.id)
    )
    ids = [r[0] for r in answered.all()]
    if ids:
        await session.execute(
            update(NotifyDelivery)
            .where(
                col(NotifyDelivery.notice_id).in_(ids),
                col(NotifyDelivery.status).in_(["pending", "digest"]),
            )
            .values(status="cancelled", last_error="answered")
        )
    return len(ids)


async def reminders_due(deps: NotifyDependencies, limit: int = 200) -> int:
    """One reminder per unanswered invitation, with the same link (single use holds)."""
    async with deps.runtime.sessionmaker() as session, session.begin():
        return await remind_due(deps, session, limit)


async def remind_due(deps: NotifyDependencies, session: AsyncSession, limit: int = 200) -> int:
    now = datetime.now(UTC)
    statement = (
        select(NotifyInvitation)
        .where(
            NotifyInvitation.status == "invited",
            col(NotifyInvitation.reminded_at).is_(None),
            col(NotifyInvitation.remind_at) <= now,
        )
        .order_by(col(NotifyInvitation.remind_at))
        .limit(limit)
    )
    if dialect_of(session) == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    due = (await session.exec(statement)).all()
    rows = []
    for invitation in due:
        invitation.reminded_at = now
        invitation.remind_at = None  # out of the index of reminders to come
        session.add(invitation)
        if invitation.expires_at is None or invitation.link_sealed is None:
            continue
        if invitation.expires_at <= now:
            continue
        contact = (
            await session.exec(
                select(NotifyClientContact).where(
                    NotifyClientContact.site_id == invitation.site_id,
                    NotifyClientContact.respondent == invitation.respondent,
                )
            )
        ).first()
        if why_not_invited(contact, deps.channels) is not None or contact is None:
            continue
        rows.append(
            invitation_row(
                invitation_id=invitation.id,
                key=domain.reminder_notice_key(
                    invitation.episode_id, invitation.session_number, invitation.respondent
                ),
                kind="reminder",
                site_id=invitation.site_id,
                respondent=invitation.respondent,
                role=invitation.role,
                contact=contact,
                link_sealed=invitation.link_sealed,
                expires_at=invitation.expires_at,
                source_event_id=f"reminder-{invitation.id}",
                now=now,
            )
        )
    return await insert_deliveries(session, rows)
