"""Invitations follow the client's consent and the episode's members (issue 19), on the real
stack: a withdrawal of feedback invitations stops the waiting invitation at once (no reminder)
and the next session invites nobody; a withdrawal of contact with significant others leaves the
client invited but not their partner; a partner added mid-episode is invited from the next
session on, and no longer once removed; the client is asked to rate the support of the people
around them at session 1 and then every few sessions, as the site's policy says."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from shared.contracts import (
    CONSENT_CHANGED,
    EPISODE_MEMBERS_CHANGED,
    ConsentChanged,
    EpisodeMember,
    EpisodeMembersChanged,
)
from shared.events import Event
from shared.tokens import verify
from tests.integration.notify.test_invitations import client_contact, token_in
from tests.support.notify import match_confirmed, pseudonym, session_completed
from tests.support.notify_stack import NotifyStack
from tests.support.waiting import eventually


def consent_changed(site: str, client: str, scope: str, granted: bool) -> Event[ConsentChanged]:
    return Event(
        CONSENT_CHANGED,
        ConsentChanged(
            consent_id=str(uuid.uuid4()),
            site_id=site,
            client=client,
            scope=scope,  # type: ignore[arg-type]
            granted=granted,
            version=0,
            recorded_at=datetime.now(UTC),
        ),
        source="/tests",
    )


def members_changed(
    site: str, episode: str, members: list[tuple[str, str]], **change: list[str]
) -> Event[EpisodeMembersChanged]:
    return Event(
        EPISODE_MEMBERS_CHANGED,
        EpisodeMembersChanged(
            episode_id=episode,
            site_id=site,
            therapist_id="th-1",
            members=[EpisodeMember(respondent=r, role=role) for r, role in members],  # type: ignore[arg-type]
            changed_at=datetime.now(UTC),
            **change,
        ),
        source="/tests",
    )


async def planned(stack: NotifyStack, episode: str, session: int) -> None:
    async def done() -> bool:
        at = await stack.scalar(
            "select planned_at from notify_sessions where episode_id = :e and session_number = :n",
            e=episode,
            n=session,
        )
        return at is not None

    await eventually(done, timeout=20, what=f"session {session} planned")


async def invited(stack: NotifyStack, episode: str, session: int) -> list[str]:
    found = await stack.scalar(
        "select string_agg(role || ':' || status, ',' order by role) from notify_invitations"
        " where episode_id = :e and session_number = :n",
        e=episode,
        n=session,
    )
    return str(found).split(",") if found else []


async def test_a_withdrawal_stops_the_waiting_invitation_and_the_next_ones(
    stack: NotifyStack,
) -> None:
    site, episode = "site-consent-w", "ep-consent-w"
    await stack.policy(site, {"invitations": {"remind_after_seconds": 2, "link_ttl_seconds": 3600}})
    client = pseudonym("consent-w-client")
    await client_contact(stack, site, client, email="w@consent.test", consent=True)
    await stack.publisher.publish(match_confirmed(site, episode, [(client, "client")]))
    await stack.publisher.publish(session_completed(site, episode, 1))

    async def mailed() -> bool:
        return bool(stack.smtp.to("w@consent.test"))

    await eventually(mailed, timeout=20, what="the invitation")
    await stack.publisher.publish(consent_changed(site, client, "feedback_invitations", False))

    async def withdrawn() -> bool:
        return await invited(stack, episode, 1) == ["client:withdrawn"]

    await eventually(withdrawn, timeout=20, what="the invitation withdrawn")
    await stack.publisher.publish(session_completed(site, episode, 2))
    await planned(stack, episode, 2)
    await asyncio.sleep(2.5)  # past the reminder's time: none comes
    assert len(stack.smtp.to("w@consent.test")) == 1
    assert await invited(stack, episode, 2) == []


async def test_withdrawing_contact_with_significant_others_keeps_only_the_client_invited(
    stack: NotifyStack,
) -> None:
    site, episode = "site-consent-so", "ep-consent-so"
    client, partner = pseudonym("consent-so-client"), pseudonym("consent-so-partner")
    await client_contact(stack, site, client, email="so-c@consent.test", consent=True)
    await client_contact(stack, site, partner, email="so-p@consent.test", consent=True)
    await stack.publisher.publish(
        match_confirmed(site, episode, [(client, "client"), (partner, "partner")])
    )
    await stack.publisher.publish(consent_changed(site, client, "significant_others", False))

    async def held() -> bool:
        return (
            await stack.scalar(
                "select granted from notify_consents where client = :c and site_id = :s",
                c=client,
                s=site,
            )
            is False
        )

    await eventually(held, timeout=20, what="the withdrawal to be known")
    await stack.publisher.publish(session_completed(site, episode, 1))
    await planned(stack, episode, 1)
    assert await invited(stack, episode, 1) == ["client:invited"]


async def test_a_partner_added_mid_episode_is_invited_and_no_longer_once_removed(
    stack: NotifyStack,
) -> None:
    site, episode = "site-members", "ep-members"
    client, partner = pseudonym("members-client"), pseudonym("members-partner")
    await client_contact(stack, site, client, email="m-c@members.test", consent=True)
    await client_contact(stack, site, partner, email="m-p@members.test", consent=True)
    await stack.publisher.publish(match_confirmed(site, episode, [(client, "client")]))
    await stack.publisher.publish(session_completed(site, episode, 1))
    await planned(stack, episode, 1)
    assert await invited(stack, episode, 1) == ["client:invited"]

    both = [(client, "client"), (partner, "partner")]
    await stack.publisher.publish(members_changed(site, episode, both, added=[partner]))
    await stack.publisher.publish(session_completed(site, episode, 2))

    async def partner_mailed() -> bool:
        return bool(stack.smtp.to("m-p@members.test"))

    await eventually(partner_mailed, timeout=20, what="the added partner's invitation")
    assert await invited(stack, episode, 2) == ["client:invited", "partner:invited"]

    only = [(client, "client")]
    await stack.publisher.publish(members_changed(site, episode, only, removed=[partner]))

    async def withdrawn() -> bool:
        return "partner:withdrawn" in await invited(stack, episode, 2)

    await eventually(withdrawn, timeout=20, what="the removed partner's invitation withdrawn")
    await stack.publisher.publish(session_completed(site, episode, 3))
    await planned(stack, episode, 3)
    assert await invited(stack, episode, 3) == ["client:invited"]


async def test_support_is_asked_at_session_1_and_then_every_few_sessions_per_site(
    stack: NotifyStack,
) -> None:
    site, episode = "site-support", "ep-support"
    await stack.policy(site, {"invitations": {"support_every_sessions": 2}})
    client = pseudonym("support-client")
    await client_contact(stack, site, client, email="s@support.test", consent=True)
    await stack.publisher.publish(match_confirmed(site, episode, [(client, "client")]))
    for session in (1, 2, 3):
        await stack.publisher.publish(session_completed(site, episode, session))

    async def mailed() -> bool:
        return len(stack.smtp.to("s@support.test")) == 3

    await eventually(mailed, timeout=20, what="three invitations")
    key = stack.settings.encryption_key.get_secret_value()
    asked = {
        grant.session_number: grant.instruments
        for grant in (verify(key, token_in(m.text)) for m in stack.smtp.to("s@support.test"))
    }
    assert asked == {
        1: ("srs", "ors", "support"),
        2: ("srs", "ors"),
        3: ("srs", "ors", "support"),
    }
