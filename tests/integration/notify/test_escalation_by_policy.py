"""Escalation by policy for a non-urgent alert, on the real Kafka, PostgreSQL and Redis: an
alert nobody follows up is told to the site's supervisor once its delay has passed, exactly
once; an alert acted on in time (the ``action_recorded`` step of ``alliance.alert``), or acted
on before its opening reached notify (a reordering), is not."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import text

from shared.contracts import ALLIANCE_ALERT, AllianceAlert
from shared.events import Event
from tests.support.notify import alert
from tests.support.notify_stack import NotifyStack
from tests.support.waiting import eventually

DELAY = 3


def acted_on(opened: Event[AllianceAlert]) -> Event[AllianceAlert]:
    """The step analytics announces when a clinician records what was done."""
    step = opened.data.model_copy(
        update={"status": "action_recorded", "action_code": "discussed_in_session", "inputs": {}}
    )
    return Event(ALLIANCE_ALERT, step, source="/tests")


async def notice_of(stack: NotifyStack, alert_id: str) -> dict[str, Any]:
    async with stack.engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "select escalate_at, escalated_at from notify_notices where notice_key = :key"
                ),
                {"key": f"alert:{alert_id}"},
            )
        ).one()
    return dict(row._mapping)


async def test_an_alert_nobody_follows_up_escalates_once_and_one_acted_on_does_not(
    stack: NotifyStack,
) -> None:
    site = "site-escalate-any"
    rule = {"kinds": ["rupture"], "severities": ["high"], "after_seconds": DELAY}
    await stack.policy(
        site,
        {
            "rules": [{"to": ["therapist"], "channels": ["email"]}],
            "escalations": [rule | {"to": ["supervisor"], "channels": ["email"]}],
        },
    )
    await stack.contact(site, "therapist", "th-1", email="th1@esc-any.test")
    await stack.contact(site, "supervisor", "sup-1", email="sup@esc-any.test")

    unseen = alert(site, "rupture", "high", episode_id="ep-unseen")
    acted = alert(site, "rupture", "high", episode_id="ep-acted")
    early = alert(site, "rupture", "high", episode_id="ep-early")
    started = time.monotonic()
    await stack.publisher.publish(unseen, acted, acted_on(acted))
    await stack.publisher.publish(acted_on(early), early)  # the action reached notify first

    async def everyone_told() -> bool:
        return len(stack.smtp.to("th1@esc-any.test")) == 3

    await eventually(everyone_told, timeout=30, what="the three alerts to the therapist")

    async def escalated() -> bool:
        return bool(stack.smtp.to("sup@esc-any.test"))

    await eventually(escalated, timeout=30, what="the escalation to the supervisor")
    assert time.monotonic() - started >= DELAY
    await asyncio.sleep(DELAY + 2)  # the others' time has passed too: they had their chance

    (mail,) = stack.smtp.to("sup@esc-any.test")
    assert "not been followed up" in mail.subject
    (escalation,) = await stack.deliveries(site, kind="escalation")
    assert escalation["recipient"] == "staff:supervisor:sup-1"
    assert (await notice_of(stack, unseen.data.alert_id))["escalated_at"] is not None
    for followed_up in (acted, early):
        notice = await notice_of(stack, followed_up.data.alert_id)
        assert notice == {"escalate_at": None, "escalated_at": None}
