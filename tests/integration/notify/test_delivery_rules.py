"""Notify's delivery rules on the real Kafka, PostgreSQL and Redis: duplicates never produce a
second message; retries keep the webhook-id; 410 disables; permanent failures become dead
letters and events; slow endpoints hold up nobody else; quiet hours, digests and escalation."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.notify import Behaviour, alert, risk
from tests.support.notify_stack import NotifyStack
from tests.support.waiting import eventually


async def settle(seconds: float = 1.0) -> None:
    """Give a message that must not come (a duplicate, an escalation) its chance to."""
    await asyncio.sleep(seconds)


# -- exactly once ---------------------------------------------------------------------------------


async def test_redelivered_events_cause_no_second_message(stack: NotifyStack) -> None:
    site = "site-redelivery"
    await stack.webhook(site, "redelivery")
    await stack.contact(site, "therapist", "th-1", email="th1@redelivery.test")
    event = alert(site, "rupture", "high")
    # The same alert again under a new CloudEvents id (e.g. re-emitted by a replay).
    same_alert = alert(site, "rupture", "high", alert_id=event.data.alert_id)

    await stack.publisher.publish(event, event, same_alert, event)

    async def applied() -> bool:
        handled = await stack.scalar(
            "select count(*) from notify_inbox where event_id in (:a, :b)",
            a=event.id,
            b=same_alert.id,
        )
        return bool(handled == 2) and bool(stack.smtp.to("th1@redelivery.test"))

    await eventually(applied, timeout=20, what="the alert to be applied")
    await settle()
    assert len(stack.endpoints.accepted("redelivery")) == 1
    assert len(stack.smtp.to("th1@redelivery.test")) == 1
    assert len(await stack.deliveries(site)) == 2


# -- retries, 410, dead letters -------------------------------------------------------------------


async def test_5xx_and_timeouts_are_retried_with_the_same_webhook_id(stack: NotifyStack) -> None:
    site = "site-flaky"
    stack.endpoints.behaviour["flaky"] = Behaviour(fail_first=2)
    stack.endpoints.behaviour["sleepy"] = Behaviour(delay=1.5, delay_calls=1)  # > 1 s timeout
    await stack.webhook(site, "flaky")
    await stack.webhook(site, "sleepy")

    await stack.publisher.publish(alert(site))

    async def delivered() -> bool:
        return bool(stack.endpoints.accepted("flaky")) and bool(stack.endpoints.accepted("sleepy"))

    await eventually(delivered, timeout=20, what="delivery after retries")
    tried = stack.endpoints.tried("flaky")
    assert [c.status for c in tried] == [500, 500, 204]
    assert len({c.webhook_id for c in tried}) == 1
    slept = stack.endpoints.tried("sleepy")
    assert len(slept) == 2 and len({c.webhook_id for c in slept}) == 1
    assert all(c.verified_with == [0] for c in tried + slept)

    async def recorded() -> bool:
        log = await stack.deliveries(site)
        return all(d["status"] == "delivered" for d in log) and len(log) == 2

    await eventually(recorded, what="both deliveries recorded")
    attempts = sorted(d["attempts"] for d in await stack.deliveries(site))
    assert attempts == [2, 3]


async def test_a_410_disables_the_endpoint_and_tells_the_site_admin(stack: NotifyStack) -> None:
    site = "site-gone"
    stack.endpoints.behaviour["gone"] = Behaviour(status=410)
    hook_id, _ = await stack.webhook(site, "gone")
    await stack.contact(site, "site_admin", "admin-1", email="admin@gone.test")

    await stack.publisher.publish(alert(site))

    async def admin_told() -> bool:
        return bool(stack.smtp.to("admin@gone.test"))

    await eventually(admin_told, timeout=20, what="the site admin's email")
    assert len(stack.endpoints.tried("gone")) == 1  # not retried
    (mail,) = stack.smtp.to("admin@gone.test")
    assert "disabled" in mail.text
    hooks = await stack.api.get(
        "/notify/webhooks", params={"site_id": site}, headers=stack.auth("site_admin", site)
    )
    (hook,) = hooks.json()
    assert (hook["id"], hook["active"], hook["disabled_reason"]) == (hook_id, False, "gone")
    (failed,) = await stack.deliveries(site, status="failed")
    assert failed["last_error"] == "endpoint_gone"
    events = [e for e in await stack.emitted("notification.failed.v1") if e["site_id"] == site]
    assert [e["reason_code"] for e in events] == ["endpoint_gone"]

    await stack.publisher.publish(alert(site))  # a disabled endpoint gets nothing more
    await settle(0.5)
    assert len(stack.endpoints.tried("gone")) == 1


async def test_a_permanent_failure_is_a_dead_letter_and_an_event(stack: NotifyStack) -> None:
    site = "site-broken"
    stack.endpoints.behaviour["broken"] = Behaviour(status=500)
    stack.endpoints.behaviour["refusing"] = Behaviour(status=400)
    await stack.webhook(site, "broken")
    await stack.webhook(site, "refusing")

    await stack.publisher.publish(alert(site))

    async def both_failed() -> bool:
        return len(await stack.deliveries(site, status="failed")) == 2

    await eventually(both_failed, timeout=20, what="both deliveries to fail")
    assert len(stack.endpoints.tried("broken")) == 4  # the first attempt + 3 retries
    assert len(stack.endpoints.tried("refusing")) == 1  # a 4xx is not retried
    reasons = sorted(d["last_error"] for d in await stack.deliveries(site, status="failed"))
    assert reasons == ["http_400", "retries_exhausted_http_500"]

    async def events_out() -> bool:
        failed = [e for e in await stack.emitted("notification.failed.v1") if e["site_id"] == site]
        return len(failed) == 2

    await eventually(events_out, what="notification.failed events")
    failed = [e for e in await stack.emitted("notification.failed.v1") if e["site_id"] == site]
    assert sorted(e["attempts"] for e in failed) == [1, 4]


async def test_a_slow_endpoint_does_not_delay_another_sites(stack: NotifyStack) -> None:
    stack.endpoints.behaviour["slow"] = Behaviour(delay=0.9)
    await stack.webhook("site-slow", "slow")
    await stack.webhook("site-fast", "fast")
    await stack.publisher.publish(*(alert("site-slow") for _ in range(30)))

    async def slow_busy() -> bool:
        return len(stack.endpoints.tried("slow")) >= 4

    await eventually(slow_busy, timeout=20, what="the slow endpoint to be busy")
    await stack.publisher.publish(alert("site-fast"))

    async def fast_done() -> bool:
        return bool(stack.endpoints.accepted("fast"))

    await eventually(fast_done, timeout=10, interval=0.02, what="the fast endpoint")
    # Not queued behind the slow site's backlog (a structural check, not a wall-clock one:
    # 30 slow calls of 0.9 s are still far from done when the fast one has arrived).
    assert len(stack.endpoints.accepted("slow")) < 30
    # The slow endpoint is held to its own share of the dispatcher's slots.
    assert len([c for c in stack.endpoints.tried("slow") if c.status == 0]) <= 8


# -- quiet hours, digests, escalation -------------------------------------------------------------


async def test_quiet_hours_hold_a_routine_email_but_never_an_urgent_one(stack: NotifyStack) -> None:
    site = "site-quiet"
    now = datetime.now(UTC)
    quiet = {
        "start": (now - timedelta(hours=1)).strftime("%H:%M"),
        "end": (now + timedelta(hours=1)).strftime("%H:%M"),
    }
    await stack.contact(site, "therapist", "th-1", email="th1@quiet.test", quiet_hours=quiet)
    await stack.contact(site, "clinical_lead", "lead-1", email="lead@quiet.test")

    await stack.publisher.publish(alert(site, "rupture", "high", episode_id="ep-q1"))
    await stack.publisher.publish(risk(site, episode_id="ep-q2"))

    async def urgent_arrived() -> bool:
        return bool(stack.smtp.to("th1@quiet.test")) and bool(stack.smtp.to("lead@quiet.test"))

    await eventually(urgent_arrived, timeout=20, what="the urgent email despite quiet hours")
    await settle(0.5)
    (mail,) = stack.smtp.to("th1@quiet.test")
    assert "URGENT" in mail.subject
    (held,) = [
        d
        for d in await stack.deliveries(site, status="pending")
        if d["recipient"] == "staff:therapist:th-1"
    ]
    assert held["urgent"] is False
    waits = datetime.fromisoformat(held["next_attempt_at"]) - datetime.now(UTC)
    assert timedelta(minutes=55) < waits <= timedelta(hours=1)


async def test_a_digest_is_one_message_per_recipient_per_period(stack: NotifyStack) -> None:
    site = "site-digest"
    await stack.policy(
        site,
        {
            "rules": [
                {
                    "severities": ["routine"],
                    "to": ["therapist", "supervisor"],
                    "channels": ["email"],
                    "mode": "digest",
                }
            ],
            "digest": {"period_seconds": 2, "starts_at": "00:00"},
        },
    )
    await stack.contact(site, "therapist", "th-1", email="th1@digest.test")
    await stack.contact(site, "supervisor", "sup-1", email="sup@digest.test")
    # Start just after a window opens, so all three alerts fall in the same window.
    await asyncio.sleep(2 - time.time() % 2 + 0.05)

    await stack.publisher.publish(
        *(alert(site, "low_alliance", "routine", episode_id=f"ep-d{i}") for i in range(3))
    )

    async def digests_sent() -> bool:
        return bool(stack.smtp.to("th1@digest.test")) and bool(stack.smtp.to("sup@digest.test"))

    await eventually(digests_sent, timeout=20, what="the digests")
    await settle(2.5)  # a whole further period: nothing more comes
    (therapist,) = stack.smtp.to("th1@digest.test")
    (supervisor,) = stack.smtp.to("sup@digest.test")
    assert "3 new alliance alerts" in therapist.text
    assert "3 new alliance alerts" in supervisor.text
    batched = await stack.deliveries(site, status="batched")
    assert len(batched) == 6
    assert len({d["digest_id"] for d in batched}) == 2


async def test_an_unacknowledged_risk_escalates_and_an_acknowledged_one_does_not(
    stack: NotifyStack,
) -> None:
    site = "site-escalate"
    await stack.policy(
        site,
        {
            "risk": {
                "channels": ["email"],
                "escalate_after_seconds": 1,
                "escalate_to": ["supervisor"],
            }
        },
    )
    await stack.contact(site, "therapist", "th-1", email="th1@esc.test")
    await stack.contact(site, "clinical_lead", "lead-1", email="lead@esc.test")
    await stack.contact(site, "supervisor", "sup-1", email="sup@esc.test")

    started = time.monotonic()
    await stack.publisher.publish(risk(site, episode_id="ep-unseen"))

    async def escalated() -> bool:
        return bool(stack.smtp.to("sup@esc.test"))

    await eventually(escalated, timeout=20, what="the escalation to the supervisor")
    assert time.monotonic() - started >= 1.0
    (mail,) = stack.smtp.to("sup@esc.test")
    assert "URGENT" in mail.subject
    (escalation,) = await stack.deliveries(site, kind="escalation")
    assert escalation["recipient"] == "staff:supervisor:sup-1"

    # The second risk is acknowledged at once by the front-end: nobody else is bothered.
    await stack.publisher.publish(risk(site, episode_id="ep-seen"))

    async def therapist_told() -> bool:
        return len(stack.smtp.to("th1@esc.test")) == 2

    await eventually(therapist_told, timeout=20, what="the second risk email")
    mine = [
        d
        for d in await stack.deliveries(site, kind="alert")
        if d["recipient"] == "staff:therapist:th-1" and d["acknowledged_at"] is None
    ]
    ack = await stack.api.post(
        f"/notify/deliveries/{mine[0]['id']}/ack",
        headers=stack.auth("therapist", site, sub="th-1"),
    )
    assert ack.status_code == 200, ack.text
    assert ack.json()["escalation"] == "cancelled"
    await settle(1.5)
    assert len(stack.smtp.to("sup@esc.test")) == 1


async def test_an_acknowledgement_is_site_scoped(stack: NotifyStack) -> None:
    site = "site-ack"
    await stack.contact(site, "therapist", "th-1", email="th1@ack.test")
    await stack.publisher.publish(risk(site))

    async def created() -> bool:
        return bool(await stack.deliveries(site))

    await eventually(created, timeout=20, what="the risk delivery")
    delivery_id = (await stack.deliveries(site))[0]["id"]

    elsewhere = await stack.api.post(
        f"/notify/deliveries/{delivery_id}/ack", headers=stack.auth("therapist", "site-other")
    )
    analyst = await stack.api.post(
        f"/notify/deliveries/{delivery_id}/ack", headers=stack.auth("data_analyst", site)
    )

    assert elsewhere.status_code == 404
    assert analyst.status_code == 403


async def test_a_persons_hourly_limit_holds_routine_messages_to_the_next_hour(
    stack: NotifyStack,
) -> None:
    site = "site-rate"
    await stack.policy(
        site,
        {
            "rules": [{"severities": ["high"], "to": ["therapist"], "channels": ["email"]}],
            "rate_limit": {"per_recipient_per_hour": 2},
        },
    )
    await stack.contact(site, "therapist", "th-1", email="th1@rate.test")
    await stack.contact(site, "clinical_lead", "lead-1", email="lead@rate.test")

    await stack.publisher.publish(
        *(alert(site, "rupture", "high", episode_id=f"ep-r{i}") for i in range(3))
    )

    found: list[dict[str, Any]] = []

    async def two_sent_one_held() -> bool:
        # Held: pending with its next attempt in the future (a third delivery not claimed yet
        # is pending too, due now, and is claimed a moment later).
        pending = await stack.deliveries(site, status="pending")
        later = [
            d
            for d in pending
            if d["next_attempt_at"]
            and datetime.fromisoformat(d["next_attempt_at"]) > datetime.now(UTC)
        ]
        found[:] = later
        return len(stack.smtp.to("th1@rate.test")) == 2 and len(pending) == len(later) == 1

    await eventually(two_sent_one_held, timeout=20, what="two emails and one held")
    (held,) = found
    until = datetime.fromisoformat(held["next_attempt_at"])
    assert (until.minute, until.second, until.microsecond) == (0, 0, 0)  # the next hour
    assert datetime.now(UTC) < until <= datetime.now(UTC) + timedelta(hours=1)
    assert held["attempts"] == 0  # held, not failed

    await stack.publisher.publish(risk(site, episode_id="ep-r-urgent"))  # never held

    async def urgent_sent() -> bool:
        return len(stack.smtp.to("th1@rate.test")) == 3

    await eventually(urgent_sent, timeout=20, what="the urgent email despite the limit")
