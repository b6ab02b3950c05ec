"""Consent and the limits of confidentiality (issue 19): what a client agreed to, for each scope,
recorded with its time, the version of the text they were shown and who recorded it;
withdrawable at any time (``consent.changed`` tells notify and analytics, codes only). And each
site's confidentiality notice, edited as data (every edit a new version), which the one-time
link page shows before a client answers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.feedback import domain
from services.feedback.dependencies import FeedbackDependencies
from services.feedback.errors import ConsentWithdrawn, NoticeNotShown
from services.feedback.models import FeedbackConsent, FeedbackEpisode, FeedbackNotice
from services.feedback.usecases.episodes import episode_seen_by
from shared.auth import Staff
from shared.consent import SIGNIFICANT_OTHERS
from shared.contracts import CONSENT_CHANGED, ConsentChanged
from shared.events import Event
from shared.instruments import Instrument
from shared.tokens import FeedbackGrant


async def record_consent(
    deps: FeedbackDependencies,
    staff: Staff,
    episode_id: str,
    scope: str,
    granted: bool,
    version: int | None,
) -> FeedbackConsent:
    """Record what the episode's client agreed to (or withdrew) for one scope, and tell the
    other services (``consent.changed``) in the same transaction. ``version``: of the notice
    the client was shown (None: the site's notice now)."""
    runtime = deps.runtime
    async with runtime.transaction() as session:
        episode = await episode_seen_by(session, staff, episode_id)
        if version is None:
            version = (await site_notice_now(session, episode.site_id)).version
        elif not await _notice_exists(session, episode.site_id, version):
            raise NoticeNotShown(
                f"version: the site has no notice version {version}",
                errors=[{"field": "version", "rule": "unknown_version"}],
            )
        row = FeedbackConsent(
            id=str(uuid.uuid4()),
            site_id=episode.site_id,
            client=episode.client,
            episode_id=episode.episode_id,
            scope=scope,
            granted=granted,
            version=version,
            recorded_at=datetime.now(UTC),
            recorded_by=staff.subject[:128],
        )
        session.add(row)
        changed = ConsentChanged(
            consent_id=row.id,
            site_id=row.site_id,
            client=row.client,
            scope=scope,  # checked by the route (ConsentScope)
            granted=granted,
            version=version,
            recorded_at=row.recorded_at,
        )
        await runtime.emit(session, Event(CONSENT_CHANGED, changed, source=runtime.outbox.source))
    return row


async def consent_history(
    deps: FeedbackDependencies, staff: Staff, episode_id: str
) -> list[FeedbackConsent]:
    """Every consent recorded for the episode's client at its site, oldest first."""
    async with deps.runtime.sessionmaker() as session:
        episode = await episode_seen_by(session, staff, episode_id)
        return list(await _client_consents(session, episode.site_id, episode.client))


async def _client_consents(
    session: AsyncSession, site_id: str, client: str
) -> Sequence[FeedbackConsent]:
    return (
        await session.exec(
            select(FeedbackConsent)
            .where(FeedbackConsent.site_id == site_id, FeedbackConsent.client == client)
            .order_by(col(FeedbackConsent.recorded_at))
        )
    ).all()


async def consents_now(session: AsyncSession, site_id: str, client: str) -> dict[str, bool]:
    rows = await _client_consents(session, site_id, client)
    return domain.consents_now(
        [domain.ConsentRecord(r.scope, r.granted, r.recorded_at) for r in rows]
    )


async def require_link_consent(session: AsyncSession, grant: FeedbackGrant) -> None:
    """A link of a client who withdrew consent (to invitations; or, for a partner's or family
    member's link, to contact with significant others), or of a partner or family member no
    longer in the episode, may not be answered: 403, nothing stored."""
    episode = await session.get(FeedbackEpisode, grant.episode_id)
    if episode is None:
        return
    if grant.role in SIGNIFICANT_OTHERS and not any(
        m.get("respondent") == grant.respondent for m in episode.members
    ):
        raise ConsentWithdrawn(
            "This person is no longer a member of the episode.",
            errors=[{"field": "token", "rule": "no_longer_a_member"}],
        )
    consents = await consents_now(session, episode.site_id, episode.client)
    rule = domain.link_refusal(grant.role, consents)
    if rule is not None:
        raise ConsentWithdrawn(
            "The client withdrew their consent to these feedback invitations.",
            errors=[{"field": "token", "rule": rule}],
        )


# -- the sites' confidentiality notices ---------------------------------------------------------


def _notice(row: FeedbackNotice) -> domain.Notice:
    return domain.Notice(row.version, row.text, tuple(row.risk_contacts), row.risk_within_minutes)


async def site_notice_now(session: AsyncSession, site_id: str) -> domain.Notice:
    """The site's notice as it is now (its latest version), or the deployment's default."""
    row = (
        await session.exec(
            select(FeedbackNotice)
            .where(FeedbackNotice.site_id == site_id)
            .order_by(col(FeedbackNotice.version).desc())
            .limit(1)
        )
    ).first()
    return _notice(row) if row is not None else domain.DEFAULT_NOTICE


async def site_notice(deps: FeedbackDependencies, site_id: str) -> domain.Notice:
    async with deps.runtime.sessionmaker() as session:
        return await site_notice_now(session, site_id)


async def write_notice(
    deps: FeedbackDependencies,
    staff: Staff,
    site_id: str,
    text: str,
    risk_contacts: list[str],
    risk_within_minutes: int,
) -> domain.Notice:
    """A new version of the site's notice (the versions before it are kept: responses name
    the one they were given under)."""
    async with deps.runtime.transaction() as session:
        now = await site_notice_now(session, site_id)
        row = FeedbackNotice(
            site_id=site_id,
            version=now.version + 1,
            text=text,
            risk_contacts=risk_contacts,
            risk_within_minutes=risk_within_minutes,
            created_at=datetime.now(UTC),
            created_by=staff.subject[:128],
        )
        session.add(row)
    return _notice(row)


async def _notice_exists(session: AsyncSession, site_id: str, version: int) -> bool:
    """Version 0 is the deployment's default; the others are the site's own."""
    return version == 0 or (await session.get(FeedbackNotice, (site_id, version))) is not None


async def check_notice_shown(
    session: AsyncSession, site_id: str, version: int | None, instruments: list[Instrument]
) -> int | None:
    """The notice version a response through a link is given under. Answers with a risk item
    need the version the client was shown (one the site has, or 0 for the default): 422
    naming ``notice_version`` otherwise."""
    if version is None:
        if domain.needs_notice(instruments):
            raise NoticeNotShown(
                "notice_version: the site's confidentiality notice must be shown (and its "
                "version given) before a risk item is answered",
                errors=[{"field": "notice_version", "rule": "required_before_risk_items"}],
            )
        return None
    if not await _notice_exists(session, site_id, version):
        raise NoticeNotShown(
            f"notice_version: the site has no notice version {version}",
            errors=[{"field": "notice_version", "rule": "unknown_version"}],
        )
    return version
