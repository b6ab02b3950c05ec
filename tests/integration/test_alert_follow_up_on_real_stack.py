"""One alert followed from the answer that opened it to its resolution, on the real Kafka,
PostgreSQL and Redis with all four services: a low-alliance answer opens it (webhook
``opened``); the clinician acknowledges the delivery in notify, so analytics records it seen
(webhook ``acknowledged``); the clinician records what was done, retried with its
Idempotency-Key (webhook ``action_recorded``, once); a good alliance at the next session
resolves it (webhook ``resolved``). Each webhook is signed and verified, in order, each once."""

from __future__ import annotations

from typing import Any

import httpx

import services
from shared.host import Host
from shared.settings import Settings
from tests.support.flow import SITE, THERAPIST, headers, open_episode
from tests.support.receiver import Received, WebhookReceiver
from tests.support.waiting import eventually

LOW = {"relationship": 7.5, "goals": 7.5, "approach": 7.5, "overall": 7.5}  # 30.0: concern
HIGH = {"relationship": 9.5, "goals": 9.5, "approach": 9.5, "overall": 9.5}  # 38.0
STEPS = ["opened", "acknowledged", "action_recorded", "resolved", "closed"]


def steps_of(receiver: WebhookReceiver, alert_id: str) -> list[Received]:
    return [r for r in receiver.received if r.body["data"].get("alert_id") == alert_id]


async def test_one_alert_from_its_answer_to_its_resolution(real_settings: Settings) -> None:
    settings = real_settings
    receiver = WebhookReceiver()
    await receiver.start()
    host = Host(settings, services.definitions(), embedded=False)
    await host.start()
    try:
        transport = httpx.ASGITransport(app=host.http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://rapport") as http:
            admin = headers(settings, "site_admin")
            hook = await http.post(
                "/notify/webhooks", json={"site_id": SITE, "url": receiver.url(SITE)}, headers=admin
            )
            assert hook.status_code == 201, hook.text
            receiver.secrets[SITE] = hook.json()["secret"]
            rule = {"to": ["therapist"], "channels": ["webhook"], "steps": STEPS}
            policy = await http.put(
                f"/notify/policies/{SITE}", json={"rules": [rule]}, headers=admin
            )
            assert policy.status_code == 200, policy.text

            episode_id = await open_episode(http, settings, "MRN-000777")
            therapist = headers(settings, "therapist", THERAPIST)

            async def answer(session_number: int, items: dict[str, float]) -> None:
                recorded = await http.post(
                    "/feedback/responses",
                    json={
                        "episode_id": episode_id,
                        "session_number": session_number,
                        "respondent_role": "client",
                        "instrument": "srs",
                        "items": items,
                    },
                    headers=therapist,
                )
                assert recorded.status_code == 201, recorded.text

            found: dict[str, Any] = {}

            async def low_alliance_announced() -> bool:
                for r in receiver.received:
                    data = r.body["data"]
                    if data["kind"] == "low_alliance" and data["status"] == "opened":
                        found.update(alert_id=data["alert_id"], acknowledge=r.body["acknowledge"])
                return bool(found)

            async def announced(status: str) -> None:
                async def arrived() -> bool:
                    return status in [
                        r.body["data"]["status"] for r in steps_of(receiver, found["alert_id"])
                    ]

                await eventually(arrived, timeout=60, what=f"the {status} webhook")

            await answer(1, LOW)
            await eventually(low_alliance_announced, timeout=60, what="the opened webhook")
            alert_id = found["alert_id"]

            seen = await http.post(found["acknowledge"], headers=therapist)
            assert seen.status_code == 200, seen.text
            await announced("acknowledged")

            action = {"code": "discussed_in_session"}
            keyed = therapist | {"Idempotency-Key": "follow-up-1"}
            first = await http.post(
                f"/analytics/alerts/{alert_id}/actions", json=action, headers=keyed
            )
            again = await http.post(
                f"/analytics/alerts/{alert_id}/actions", json=action, headers=keyed
            )
            assert first.status_code == again.status_code == 201, again.text
            assert again.json() == first.json()
            await announced("action_recorded")

            await answer(2, HIGH)
            await announced("resolved")

            listed = await http.get(
                "/analytics/alerts", params={"site_id": SITE, "status": "all"}, headers=therapist
            )
            assert listed.status_code == 200, listed.text
            (row,) = [a for a in listed.json() if a["alert_id"] == alert_id]
        calls = steps_of(receiver, alert_id)
        assert [c.body["data"]["status"] for c in calls] == [
            "opened",
            "acknowledged",
            "action_recorded",
            "resolved",
        ]
        assert all(c.verified and not c.replay for c in calls)
        assert calls[2].body["data"]["action_code"] == "discussed_in_session"
        assert row["status"] == "resolved" and row["seen_at"] is not None
    finally:
        await host.stop()
        await receiver.stop()
