"""What a client consented to (``consent.changed``, issue 19), as invitations follow it: a
withdrawal of feedback invitations stops every invitation of the client's episodes at once (the
ones not yet sent are cancelled, no reminder follows), a withdrawal of contact with significant
others those of their partners and family members; sessions after it invite only whom the
client's consent allows (``shared.consent.may_invite``)."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify.dependencies import NotifyDependencies
from services.notify.models import NotifyConsent, NotifyDelivery, NotifyEpisode, NotifyInvitation
from services.notify.usecases.notices import AfterCommit
from shared.consent import may_invite
from shared.contracts import ConsentChanged
from shared.erasure import table_of

INVITATIONS = table_of(NotifyInvitation)


async def client_consents(session: AsyncSession, site_id: str, client: str) -> dict[str, bool]:
    rows = await session.exec(
        select(NotifyConsent).where(
            NotifyConsent.site_id == site_id, NotifyConsent.client == client
        )
    )
    return {r.scope: r.granted for r in rows.all()}


def client_of(episode: NotifyEpisode) -> str | None:
    return next((m["respondent"] for m in episode.members if m.get("role") == "client"), None)


async def follow_consent(
    deps: NotifyDependencies,
    session: AsyncSession,
    event_id: str,
    changed: ConsentChanged,
    after_commit: AfterCommit,
) -> None:
    """Keep the latest word on each scope; a withdrawal stops the invitations it covers."""
    key = (changed.site_id, changed.client, changed.scope)
    row = await session.get(NotifyConsent, key)
    if row is not None and row.recorded_at > changed.recorded_at:
        return  # older news than what is held
    if row is None:
        row = NotifyConsent(
            site_id=changed.site_id,
            client=changed.client,
            scope=changed.scope,
            granted=changed.granted,
            recorded_at=changed.recorded_at,
        )
    row.granted, row.recorded_at = changed.granted, changed.recorded_at
    session.add(row)
    await session.flush()
    if not changed.granted:
        await stop_invitations(session, changed.site_id, changed.client)


async def stop_invitations(session: AsyncSession, site_id: str, client: str) -> int:
    """Invitations of the client's episodes still waiting for an answer that the client's
    consent no longer allows: withdrawn, their unsent messages cancelled, no reminder."""
    consents = await client_consents(session, site_id, client)
    episodes = (
        await session.exec(select(NotifyEpisode).where(NotifyEpisode.site_id == site_id))
    ).all()
    mine = [e.episode_id for e in episodes if client_of(e) == client]
    if not mine:
        return 0
    waiting = (
        await session.exec(
            select(NotifyInvitation).where(
                col(NotifyInvitation.episode_id).in_(mine), NotifyInvitation.status == "invited"
            )
        )
    ).all()
    stopped = [i.id for i in waiting if not may_invite(i.role, consents)]
    if not stopped:
        return 0
    await session.execute(
        update(INVITATIONS)
        .where(INVITATIONS.c.id.in_(stopped))
        .values(status="withdrawn", skip_reason="consent_withdrawn", remind_at=None)
    )
    await session.execute(
        update(NotifyDelivery)
        .where(
            col(NotifyDelivery.notice_id).in_(stopped),
            col(NotifyDelivery.status).in_(["pending", "digest"]),
        )
        .values(status="cancelled", last_error="consent_withdrawn")
    )
    return len(stopped)


async def invitees_allowed(
    session: AsyncSession, episode: NotifyEpisode, roles: list[str]
) -> list[bool]:
    """For each role asked about, whether the episode's client's consent allows inviting it."""
    client = client_of(episode)
    consents = await client_consents(session, episode.site_id, client) if client else {}
    return [may_invite(role, consents) for role in roles]
