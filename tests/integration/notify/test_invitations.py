"""Feedback invitations on the real stack: after a session, each consenting client-side member
gets a one-time link (shared.tokens) on their chosen channel; one reminder if unanswered; none
once answered; nothing without consent."""

from __future__ import annotations

import asyncio
import re

from shared.tokens import verify
from tests.support.notify import (
    feedback_recorded,
    match_confirmed,
    pseudonym,
    session_completed,
)
from tests.support.notify_stack import NotifyStack
from tests.support.waiting import eventually

LINK = re.compile(r"https://rapport\.clinic\.test/feedback/r/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)")


async def client_contact(stack: NotifyStack, site: str, respondent: str, **body: object) -> None:
    got = await stack.api.put(
        f"/notify/client-contacts/{site}/{respondent}",
        json=body,
        headers=stack.auth("intake_coordinator", site),
    )
    assert got.status_code == 200, got.text
    assert "email" not in got.json() and "phone" not in got.json()


def token_in(text: str) -> str:
    match = LINK.search(text)
    assert match, text
    return match.group(1)


async def test_members_are_invited_reminded_once_and_not_after_answering(
    stack: NotifyStack,
) -> None:
    site = "site-invite"
    await stack.policy(site, {"invitations": {"remind_after_seconds": 1, "link_ttl_seconds": 3600}})
    client, partner, relative = (pseudonym(f"inv-{r}") for r in ("c", "p", "f"))
    await client_contact(stack, site, client, email="client@invite.test", consent=True)
    await client_contact(stack, site, partner, channel="sms", phone="+4917600000009", consent=True)
    await client_contact(stack, site, relative, email="relative@invite.test", consent=False)
    members = [(client, "client"), (partner, "partner"), (relative, "family")]

    await stack.publisher.publish(match_confirmed(site, "ep-inv", members))
    await stack.publisher.publish(session_completed(site, "ep-inv", 1))

    async def invited() -> bool:
        return bool(stack.smtp.to("client@invite.test")) and bool(
            stack.endpoints.texts_to("+4917600000009")
        )

    await eventually(invited, timeout=20, what="the invitations")
    await stack.publisher.publish(feedback_recorded(site, "ep-inv", 1, partner, "partner"))
    key = stack.settings.encryption_key.get_secret_value()
    (mail,) = stack.smtp.to("client@invite.test")
    grant = verify(key, token_in(mail.text))
    assert (grant.episode_id, grant.session_number, grant.respondent, grant.role) == (
        "ep-inv",
        1,
        client,
        "client",
    )
    assert grant.instruments == ("srs", "ors", "support")  # support: at session 1
    (text,) = stack.endpoints.texts_to("+4917600000009")
    assert verify(key, token_in(text)).instruments == ("srs",)

    async def reminded() -> bool:
        return len(stack.smtp.to("client@invite.test")) == 2

    await eventually(reminded, timeout=20, what="the client's reminder")
    await asyncio.sleep(1.5)  # nothing further: one reminder only, none for the partner
    first, reminder = stack.smtp.to("client@invite.test")
    assert "reminder" in reminder.subject.lower()
    assert token_in(reminder.text) == token_in(first.text)  # the same one-time link
    assert len(stack.endpoints.texts_to("+4917600000009")) == 1
    assert stack.smtp.to("relative@invite.test") == []
    skipped = await stack.scalar(
        "select skip_reason from notify_invitations where respondent = :r", r=relative
    )
    assert skipped == "no_consent"
    assert not any(
        "invite.test" in str(value) or "+49" in str(value)
        for d in await stack.deliveries(site)
        for value in d.values()
    )


async def test_a_session_reported_before_the_episode_is_known_is_invited_later(
    stack: NotifyStack,
) -> None:
    site = "site-invite-late"
    client = pseudonym("late-client")
    await client_contact(stack, site, client, email="late@invite.test", consent=True)
    await stack.contact(site, "therapist", "th-1", email="th1@invite-late.test")

    await stack.publisher.publish(session_completed(site, "ep-late", 4))
    await stack.publisher.publish(session_completed(site, "ep-late", 5, attended=False))
    await asyncio.sleep(0.5)
    await stack.publisher.publish(match_confirmed(site, "ep-late", [(client, "client")]))

    async def invited() -> bool:
        return bool(stack.smtp.to("late@invite.test"))

    await eventually(invited, timeout=20, what="the late invitation")
    await asyncio.sleep(0.5)
    (mail,) = stack.smtp.to("late@invite.test")  # not for the missed session 5
    grant = verify(stack.settings.encryption_key.get_secret_value(), token_in(mail.text))
    assert grant.session_number == 4
