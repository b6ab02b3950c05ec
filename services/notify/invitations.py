"""Feedback invitations: after a session, each client-side member of the episode who has
consented gets a one-time link to the feedback form (``shared.tokens``), reminded once if
unanswered, never again once answered. The link is a bearer credential: stored only sealed."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify import domain
from services.notify.context import NotifyContext
from services.notify.models import (
    NotifyClientContact,
    NotifyDelivery,
    NotifyEpisode,
    NotifyInvitation,
    NotifySession,
)
from services.notify.notices import _insert, insert_deliveries
from services.notify.policy import RoutingPolicy
from shared.db import dialect_of
from shared.tokens import mint

INVITATIONS = NotifyInvitation.__table__  # type: ignore[attr-defined]


def client_quiet(contact: NotifyClientContact) -> domain.QuietHours | None:
    if contact.quiet_start and contact.quiet_end:
        return domain.QuietHours.parse(contact.quiet_start, contact.quiet_end, contact.timezone)
    return None


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


def _message_payload(expires_at: datetime, reminder: bool) -> str:
    # The link itself is sealed beside the payload and put in at send time.
    message = domain.invitation_message("{link}", expires_at, reminder)
    return json.dumps({"subject": message.subject, "text": message.text})


def _delivery(
    *,
    invitation_id: str,
    key: str,
    kind: str,
    site_id: str,
    respondent: str,
    role: str,
    contact: NotifyClientContact,
    link_sealed: str,
    expires_at: datetime,
    source_event_id: str,
    now: datetime,
) -> dict[str, Any]:
    recipient = f"client:{respondent}"
    return {
        "id": str(uuid.uuid4()),
        "delivery_key": domain.delivery_key(key, recipient, contact.channel),
        "source_event_id": source_event_id,
        "site_id": site_id,
        "channel": contact.channel,
        "endpoint_id": contact.id,
        "recipient_role": role,
        "recipient": recipient,
        "payload": _message_payload(expires_at, reminder=kind == "reminder"),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": domain.not_before(now, False, client_quiet(contact)),
        "created_at": now,
        "kind": kind,
        "notice_id": invitation_id,
        "urgent": False,
        "sealed": link_sealed,
    }


async def plan_session(
    ctx: NotifyContext,
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
    invitees = domain.invitees(members, by_role)
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
    ttl = policy.invitations.link_ttl_seconds
    expires_at = now + timedelta(seconds=ttl)
    invitations: list[dict[str, Any]] = []
    deliveries: dict[str, dict[str, Any]] = {}
    for invitee in invitees:
        invitation_id = str(uuid.uuid4())
        contact = contacts.get(invitee.respondent)
        reason = why_not_invited(contact, ctx.channels)
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
        if reason is None and contact is not None:
            token = mint(
                ctx.settings.encryption_key.get_secret_value(),
                episode_id=episode.episode_id,
                session_number=completed.session_number,
                respondent=invitee.respondent,
                role=invitee.role,
                instruments=invitee.instruments,
                ttl_seconds=ttl,
            )
            link_sealed = ctx.seal_link(
                f"{ctx.settings.notify_public_base_url}/feedback/r/{token}", invitation_id
            )
            row.update(
                link_sealed=link_sealed,
                expires_at=expires_at,
                remind_at=now + timedelta(seconds=policy.invitations.remind_after_seconds),
            )
            deliveries[invitation_id] = _delivery(
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
        invitations.append(row)
    inserted = await session.execute(
        _insert(session)(INVITATIONS)
        .values(invitations)
        .on_conflict_do_nothing(index_elements=["episode_id", "session_number", "respondent"])
        .returning(INVITATIONS.c.id)
    )
    fresh = {r[0] for r in inserted.all()}
    return await insert_deliveries(session, [d for i, d in deliveries.items() if i in fresh])


async def plan_waiting_sessions(
    ctx: NotifyContext, session: AsyncSession, episode: NotifyEpisode, policy: RoutingPolicy
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
        created += await plan_session(ctx, session, episode, completed, policy)
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


async def remind_due(ctx: NotifyContext, session: AsyncSession, limit: int = 200) -> int:
    """One reminder per unanswered invitation, with the same link (single use holds)."""
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
        if why_not_invited(contact, ctx.channels) is not None or contact is None:
            continue
        rows.append(
            _delivery(
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
