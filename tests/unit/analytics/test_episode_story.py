"""The episode's timeline tells each alert's whole follow-up and who treats the episode
(embedded stack with all four services): the webhook delivered about the alert
(``notification.delivered`` names it), its acknowledgement (``seen_at``), the action recorded,
its resolution; the episode's match. Who treats it, as a pure rule: the first match, then a
transfer only to another therapist."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.analytics.domain.care import CareChange, care_changes
from shared.settings import Settings
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.support.receiver import WebhookReceiver
from tests.support.waiting import eventually
from tests.unit.analytics.test_analytics_risk_alerts import HIGH, LOW, answer

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_the_first_match_then_transfers_to_another_therapist_only() -> None:
    later = [NOW + timedelta(days=d) for d in range(4)]

    changes = care_changes(
        [("th-2", later[1]), ("th-1", later[0]), ("th-2", later[2]), ("th-3", later[3])]
    )

    assert changes == [
        CareChange("matched", "th-1", None, later[0]),
        CareChange("transferred", "th-2", "th-1", later[1]),
        CareChange("transferred", "th-3", "th-2", later[3]),
    ]
    assert care_changes([]) == []


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[FeedbackDesk]:
    services = ("intake", "feedback", "analytics", "notify")
    async with feedback_desk(embedded_settings, services) as opened:
        yield opened


async def test_the_timeline_follows_an_alert_from_its_delivery_to_its_resolution(
    desk: FeedbackDesk,
) -> None:
    receiver = WebhookReceiver()
    await receiver.start()
    try:
        hook = await desk.http.post(
            "/notify/webhooks",
            json={"site_id": "site-a", "url": receiver.url("site-a")},
            headers=desk.auth("site_admin"),
        )
        assert hook.status_code == 201, hook.text
        episode_id = await desk.open_episode()
        await answer(desk, episode_id, 1, "srs", LOW)
        opened: dict[str, Any] = {}

        async def delivered() -> bool:
            for r in receiver.received:
                if r.body["data"].get("kind") == "low_alliance":
                    opened.update(r.body)
            return bool(opened)

        await eventually(delivered, what="the low-alliance webhook")
        therapist = desk.auth("therapist")
        seen = await desk.http.post(opened["acknowledge"], headers=therapist)
        assert seen.status_code == 200, seen.text
        alert_id = opened["data"]["alert_id"]
        acted = await desk.http.post(
            f"/analytics/alerts/{alert_id}/actions",
            headers=therapist,
            json={"code": "discussed_in_session"},
        )
        assert acted.status_code == 201, acted.text
        for session in (2, 3):
            await answer(desk, episode_id, session, "srs", HIGH)
        story: dict[str, Any] = {}

        async def told() -> bool:
            got = await desk.http.get(
                f"/analytics/episodes/{episode_id}/timeline", headers=therapist
            )
            assert got.status_code == 200, got.text
            story.update(got.json())
            (alert,) = [a for a in story["alerts"] if a["alert_id"] == alert_id]
            return bool(alert["deliveries"]) and alert["seen_at"] and alert["status"] == "resolved"

        await eventually(told, what="the alert's delivery, acknowledgement and resolution")
    finally:
        await receiver.stop()
    (alert,) = [a for a in story["alerts"] if a["alert_id"] == alert_id]
    (delivery,) = alert["deliveries"]
    assert (delivery["delivery_kind"], delivery["channel"]) == ("alert", "webhook")
    assert delivery["recipient_role"] == "front_end"
    assert [a["code"] for a in alert["actions"]] == ["discussed_in_session"]
    assert alert["actions"][0]["recorded_by"] == "th-1"
    assert alert["resolved_session"] == 2
    assert [(c["change"], c["therapist_id"]) for c in story["care"]] == [("matched", "th-1")]
