"""Notify's channels on the real Kafka, PostgreSQL and Redis: signed webhooks that verify with
the independent Standard Webhooks implementation, email that arrives at a real SMTP server
(aiosmtpd), SMS through the provider interface, and what each must (not) say."""

from __future__ import annotations

import asyncio

from shared.contracts import ALLIANCE_ALERT
from tests.support.notify import alert, match_proposed, risk
from tests.support.notify_stack import NotifyStack
from tests.support.system import read_all
from tests.support.waiting import eventually

CLINICAL = ("rupture", "risk", "phq", "srs", "28.5", "ep-1", "p1_", "suicid", "harm")


async def test_an_alert_is_a_verified_webhook_and_a_plain_email(stack: NotifyStack) -> None:
    site = "site-channels"
    hook_id, _ = await stack.webhook(site, "channels")
    await stack.contact(site, "therapist", "th-1", email="therapist.one@clinic.test")
    event = alert(site, "rupture", "high")

    await stack.publisher.publish(event)

    async def both_arrived() -> bool:
        return bool(stack.endpoints.accepted("channels")) and bool(
            stack.smtp.to("therapist.one@clinic.test")
        )

    await eventually(both_arrived, timeout=20, what="the webhook and the email")
    (call,) = stack.endpoints.accepted("channels")
    assert call.verified_with == [0]
    assert call.body["data"]["kind"] == "rupture"
    assert call.body["data"]["alert_id"] == event.data.alert_id
    assert call.body["recipients"] == [{"role": "therapist", "staff_id": "th-1"}]
    assert call.body["id"] == call.webhook_id
    (mail,) = stack.smtp.to("therapist.one@clinic.test")
    assert mail.sender == "rapport@clinic.test"
    assert mail.text.strip() == (
        "You have a new alliance alert for a client — open your record system."
    )
    assert not any(word in (mail.subject + mail.text).lower() for word in CLINICAL)

    async def both_recorded() -> bool:
        delivered = [
            e for e in await stack.emitted("notification.delivered.v1") if e["site_id"] == site
        ]
        return len(delivered) == 2

    await eventually(both_recorded, what="notification.delivered for both")
    log = await stack.deliveries(site)
    assert {(d["channel"], d["status"], d["recipient"]) for d in log} == {
        ("webhook", "delivered", f"endpoint:{hook_id}"),
        ("email", "delivered", "staff:therapist:th-1"),
    }
    assert not any("@" in str(value) for d in log for value in d.values())


async def test_risk_from_both_events_sends_one_urgent_message_per_recipient(
    stack: NotifyStack,
) -> None:
    site = "site-risk-once"
    await stack.webhook(site, "risk-once")
    await stack.contact(site, "therapist", "th-1", email="th1@risk.test", phone="+4915100000001")
    await stack.contact(
        site, "clinical_lead", "lead-1", email="lead@risk.test", phone="+4915100000002"
    )
    flagged = risk(site, episode_id="ep-risk")
    as_alert = alert(
        site,
        "risk",
        "urgent",
        episode_id="ep-risk",
        session_number=flagged.data.session_number,
        respondent=flagged.data.respondent,
        inputs={"instrument": "phq-9", "item_9": 1.0},
    )

    await stack.publisher.publish(flagged, as_alert)

    async def all_sent() -> bool:
        return (
            len(stack.smtp.to("th1@risk.test")) >= 1
            and len(stack.smtp.to("lead@risk.test")) >= 1
            and len(stack.endpoints.texts_to("+4915100000002")) >= 1
            and len(stack.endpoints.accepted("risk-once")) >= 1
        )

    await eventually(all_sent, timeout=20, what="urgent messages to therapist and lead")

    async def alert_applied() -> bool:
        handled = await stack.scalar(
            "select count(*) from notify_inbox where event_id in (:a, :b)",
            a=flagged.id,
            b=as_alert.id,
        )
        return bool(handled == 2)

    await eventually(alert_applied, what="both events to be applied")
    await _quiet_moment()
    assert len(stack.smtp.to("th1@risk.test")) == 1
    assert len(stack.smtp.to("lead@risk.test")) == 1
    assert len(stack.endpoints.texts_to("+4915100000001")) == 1
    assert len(stack.endpoints.texts_to("+4915100000002")) == 1
    (call,) = stack.endpoints.accepted("risk-once")
    assert call.body["urgent"] is True
    assert {r["role"] for r in call.body["recipients"]} == {"therapist", "clinical_lead"}
    assert "URGENT" in stack.smtp.to("lead@risk.test")[0].subject
    (text,) = stack.endpoints.texts_to("+4915100000002")
    assert not any(word in text.lower() for word in CLINICAL)


async def test_match_options_reach_the_intake_coordinator_without_detail(
    stack: NotifyStack,
) -> None:
    site = "site-match"
    await stack.contact(site, "intake_coordinator", "ic-1", email="intake@match.test")

    await stack.publisher.publish(match_proposed(site))

    async def arrived() -> bool:
        return bool(stack.smtp.to("intake@match.test"))

    await eventually(arrived, timeout=20, what="the coordinator's email")
    (mail,) = stack.smtp.to("intake@match.test")
    assert "options are ready for a client" in mail.text
    assert "th-1" not in mail.text and "p1_" not in mail.text


async def test_an_event_for_an_unknown_site_is_recorded_undeliverable_not_dead_lettered(
    stack: NotifyStack,
) -> None:
    stray = alert("site-nobody-set-up")

    await stack.publisher.publish(stray)

    async def applied() -> bool:
        handled = await stack.scalar(
            "select count(*) from notify_inbox where event_id = :e", e=stray.id
        )
        return bool(handled == 1)

    await eventually(applied, what="the alert to be applied")
    reason = await stack.scalar(
        "select undeliverable_reason from notify_notices where source_event_id = :e", e=stray.id
    )
    assert reason == "site_not_set_up"
    topic = stack.settings.topic(ALLIANCE_ALERT.topic_name) + ".dlq"
    records = await read_all(stack.settings, [topic])  # dead-lettered before the commit
    assert [r for r in records if r.header("ce_id") == stray.id] == []


async def test_a_rotated_secret_and_the_previous_one_both_verify(stack: NotifyStack) -> None:
    site = "site-rotate"
    hook_id, _ = await stack.webhook(site, "rotate")
    rotated = await stack.api.post(
        f"/notify/webhooks/{hook_id}/rotate-secret", headers=stack.auth("site_admin", site)
    )
    assert rotated.status_code == 200, rotated.text
    stack.endpoints.secrets["rotate"].append(rotated.json()["secret"])
    assert rotated.json()["previous_secret_valid_until"] is not None

    await stack.publisher.publish(alert(site))

    async def arrived() -> bool:
        return bool(stack.endpoints.accepted("rotate"))

    await eventually(arrived, timeout=20, what="the webhook after rotation")
    (call,) = stack.endpoints.accepted("rotate")
    assert call.verified_with == [0, 1]  # old and new secret both verify during rotation


async def _quiet_moment(seconds: float = 1.0) -> None:
    """Let anything that should not happen (a second message) have its chance to."""
    await asyncio.sleep(seconds)
