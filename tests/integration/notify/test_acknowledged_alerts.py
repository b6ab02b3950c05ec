"""A clinician's acknowledgement of a risk alert (``alliance.alert`` with status
``acknowledged``) is read by notify on the real stack and announces nothing: the risk notice is
sent once, when the alert opens, and nothing is dead-lettered."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from shared.events import Event
from tests.support.notify import alert
from tests.support.notify_stack import NotifyStack
from tests.support.system import read_all
from tests.support.waiting import eventually


async def test_an_acknowledged_risk_alert_sends_no_second_notice(stack: NotifyStack) -> None:
    site = "site-risk-acknowledged"
    await stack.webhook(site, "acknowledged")
    await stack.contact(site, "therapist", "th-1", email="th1@acknowledged.test")
    opened = alert(site, "risk", "urgent", episode_id="ep-ack", inputs={"item_9": 1.0})
    acknowledged = Event(
        opened.type,
        opened.data.model_copy(
            update={
                "status": "acknowledged",
                "inputs": {},
                "suggestion_code": "none",
                "at": datetime.now(UTC),
            }
        ),
        source="/tests",
    )
    # A later alert of the same episode (same key, same partition): once it is applied, notify
    # has read the acknowledgement before it.
    later = alert(site, "rupture", "high", episode_id="ep-ack", session_number=4)

    await stack.publisher.publish(opened, acknowledged, later)

    async def later_applied() -> bool:
        handled = await stack.scalar(
            "select count(*) from notify_inbox where event_id = :id", id=later.id
        )
        return bool(handled == 1) and len(stack.endpoints.accepted("acknowledged")) == 2

    await eventually(later_applied, timeout=30, what="the later alert to be delivered")
    await asyncio.sleep(1.0)  # a notice that must not come gets its chance to
    assert len(stack.endpoints.accepted("acknowledged")) == 2  # the risk and the rupture
    sources = [d["source_event_id"] for d in await stack.deliveries(site)]
    assert sources.count(opened.id) >= 1 and acknowledged.id not in sources
    dlq = stack.settings.topic(opened.type.topic_name) + ".dlq"
    dead = [
        r for r in await read_all(stack.settings, [dlq]) if r.header("ce_id") == acknowledged.id
    ]
    assert dead == []
