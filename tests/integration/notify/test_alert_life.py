"""Every step of an alert's life reaches the front-ends that follow it (real stack): a site
whose routing rule asks for the steps gets one signed webhook per step, in order, each once
however often the events are replayed; a site that does not ask hears of openings only (as
before); a resolution that arrives before its opening leaves the alert resolved (the opening is
never announced); the first acknowledgement of an alert's delivery publishes
``notification.acknowledged`` once."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from shared.contracts import AllianceAlert
from shared.events import Event
from tests.support.notify import alert
from tests.support.notify_stack import NotifyStack
from tests.support.waiting import eventually

STEPS = ["opened", "acknowledged", "action_recorded", "resolved", "closed"]


def step(opened: Event[AllianceAlert], status: str, **data: Any) -> Event[AllianceAlert]:
    return Event(
        opened.type,
        opened.data.model_copy(
            update={
                "status": status,
                "inputs": {},
                "suggestion_code": "none",
                "at": datetime.now(UTC),
                **data,
            }
        ),
        source="/tests",
    )


async def following(stack: NotifyStack, site: str, steps: list[str]) -> None:
    await stack.webhook(site, site)
    await stack.policy(
        site, {"rules": [{"to": ["therapist"], "channels": ["webhook"], "steps": steps}]}
    )


async def settled(stack: NotifyStack, marker: Event[AllianceAlert], site: str, calls: int) -> None:
    """Wait until notify applied ``marker`` (published last, same episode: same partition) and
    ``calls`` webhooks were accepted; then give a webhook that must not come its chance."""

    async def applied() -> bool:
        handled = await stack.scalar(
            "select count(*) from notify_inbox where event_id = :id", id=marker.id
        )
        return bool(handled == 1) and len(stack.endpoints.accepted(site)) >= calls

    await eventually(applied, timeout=30, what="notify to apply the alert's steps")
    await asyncio.sleep(1.0)


async def test_each_step_is_one_signed_webhook_in_order_and_replays_change_nothing(
    stack: NotifyStack,
) -> None:
    site = "site-life-all-steps"
    await following(stack, site, STEPS)
    opened = alert(site, "not_on_track", "high", episode_id="ep-life-1")
    seen = step(opened, "acknowledged")
    acted = step(opened, "action_recorded", action_code="changed_approach")
    resolved = step(opened, "resolved")
    marker = alert(site, "rupture", "high", episode_id="ep-life-1", session_number=9)

    await stack.publisher.publish(opened, seen, acted, resolved)
    await stack.publisher.publish(opened, seen, acted, resolved, step(opened, "opened"), marker)
    await settled(stack, marker, site, 5)

    calls = [
        c
        for c in stack.endpoints.accepted(site)
        if c.body["data"]["alert_id"] == opened.data.alert_id
    ]
    assert [c.body["data"]["status"] for c in calls] == [
        "opened",
        "acknowledged",
        "action_recorded",
        "resolved",
    ]
    assert all(c.verified_with == [0] for c in calls)  # each signed with the endpoint's secret
    assert calls[2].body["data"]["action_code"] == "changed_approach"


async def test_a_site_that_does_not_ask_hears_of_openings_only(stack: NotifyStack) -> None:
    site = "site-life-openings"
    await following(stack, site, ["opened"])
    opened = alert(site, "not_on_track", "high", episode_id="ep-life-2")
    marker = alert(site, "rupture", "high", episode_id="ep-life-2", session_number=9)

    await stack.publisher.publish(
        opened,
        step(opened, "acknowledged"),
        step(opened, "closed", close_reason="addressed"),
        marker,
    )
    await settled(stack, marker, site, 2)

    statuses = [c.body["data"]["status"] for c in stack.endpoints.accepted(site)]
    assert statuses == ["opened", "opened"]  # the alert's opening and the marker's


async def test_a_resolution_before_its_opening_leaves_the_alert_resolved(
    stack: NotifyStack,
) -> None:
    site = "site-life-reordered"
    await following(stack, site, STEPS)
    opened = alert(site, "not_on_track", "high", episode_id="ep-life-3")
    marker = alert(site, "rupture", "high", episode_id="ep-life-3", session_number=9)

    await stack.publisher.publish(
        step(opened, "resolved"), opened, step(opened, "acknowledged"), marker
    )
    await settled(stack, marker, site, 2)

    calls = [
        c
        for c in stack.endpoints.accepted(site)
        if c.body["data"]["alert_id"] == opened.data.alert_id
    ]
    assert [c.body["data"]["status"] for c in calls] == ["resolved"]
    sources = {d["source_event_id"] for d in await stack.deliveries(site)}
    assert opened.id not in sources  # never reopened: no delivery of the late opening


async def test_the_first_acknowledgement_of_an_alerts_delivery_tells_that_it_was_seen(
    stack: NotifyStack,
) -> None:
    site = "site-life-seen"
    await following(stack, site, ["opened"])
    opened = alert(site, "not_on_track", "high", episode_id="ep-life-4")
    await stack.publisher.publish(opened)

    delivered: list[dict[str, Any]] = []

    async def sent() -> bool:
        delivered[:] = [
            d for d in await stack.deliveries(site) if d["source_event_id"] == opened.id
        ]
        return len(delivered) == 1

    await eventually(sent, timeout=30, what="the alert's delivery")
    for _ in range(2):
        got = await stack.api.post(
            f"/notify/deliveries/{delivered[0]['id']}/ack",
            headers=stack.auth("clinical_lead", site, sub="lead-1"),
        )
        assert got.status_code == 200, got.text

    seen = [e for e in await stack.emitted("notification.acknowledged.v1") if e["site_id"] == site]
    assert len(seen) == 1
    assert seen[0]["alert_id"] == opened.data.alert_id
    assert seen[0]["episode_id"] == "ep-life-4" and "lead-1" not in str(seen[0])


async def test_a_digest_lists_only_alerts_still_open_with_how_long_each_has_been(
    stack: NotifyStack,
) -> None:
    site = "site-life-digest"
    await stack.policy(
        site,
        {
            "rules": [
                {
                    "severities": ["routine"],
                    "to": ["therapist"],
                    "channels": ["email"],
                    "mode": "digest",
                }
            ],
            "digest": {"period_seconds": 10, "starts_at": "00:00"},
        },
    )
    await stack.contact(site, "therapist", "th-1", email="th1@life-digest.test")
    # Start just after a window opens, so the alerts and their endings fall in the same window.
    await asyncio.sleep(10 - time.time() % 10 + 0.05)
    still_open, resolved, closed = (
        alert(site, "low_alliance", "routine", episode_id=f"ep-ld{i}") for i in range(3)
    )

    await stack.publisher.publish(
        still_open,
        resolved,
        closed,
        step(resolved, "resolved"),
        step(closed, "closed", close_reason="addressed"),
    )

    async def digest_sent() -> bool:
        return bool(stack.smtp.to("th1@life-digest.test"))

    await eventually(digest_sent, timeout=30, what="the digest")
    (digest,) = stack.smtp.to("th1@life-digest.test")
    assert "1 new alliance alert for clients (open for 0 min)" in digest.text
    cancelled = await stack.deliveries(site, status="cancelled")
    assert sorted(d["source_event_id"] for d in cancelled) == sorted([resolved.id, closed.id])
    (batched,) = await stack.deliveries(site, status="batched")
    assert batched["source_event_id"] == still_open.id
