"""One alert followed from the answer that opened it to its resolution, on the real Kafka,
PostgreSQL and Redis with all four services, notify running as its own OS process: a
low-alliance answer opens it (webhook ``opened``); the clinician acknowledges the delivery in
notify, so analytics records it seen (webhook ``acknowledged``). Notify is then SIGKILLed; while
it is down the clinician records what was done, retried with its Idempotency-Key, and a good
alliance at the next session resolves the alert. A restarted notify finishes the job (webhooks
``action_recorded``, once, and ``resolved``); the front-end fails the first webhook after the
restart once, and the step retried is not overtaken by the next. Each webhook is signed and
verified, in order, each once. Another alert opened beside it, which nobody acts on, is
escalated by the site's policy exactly once; the alert acted on never is."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

import services
from shared.host import Host
from shared.settings import Settings
from tests.support.flow import SITE, THERAPIST, headers, open_episode
from tests.support.notify import NotifyProcess
from tests.support.receiver import Received, WebhookReceiver
from tests.support.waiting import eventually

LOW = {"relationship": 7.5, "goals": 7.5, "approach": 7.5, "overall": 7.5}  # 30.0: concern
HIGH = {"relationship": 9.5, "goals": 9.5, "approach": 9.5, "overall": 9.5}  # 38.0
STEPS = ["opened", "acknowledged", "action_recorded", "resolved", "closed"]
ESCALATE_AFTER = 25  # seconds: after the restarted notify has caught up with the steps


def steps_of(received: Sequence[Received], alert_id: str) -> list[Received]:
    """The alert's step webhooks, each message once (a resend after the kill keeps its id)."""
    first: dict[str, Received] = {}
    for r in received:
        if r.body["data"].get("alert_id") == alert_id and "escalation" not in r.body:
            first.setdefault(r.webhook_id, r)
    return list(first.values())


def escalations(received: Sequence[Received]) -> list[Received]:
    return [r for r in received if "escalation" in r.body]


async def test_one_alert_from_its_answer_to_its_resolution_through_a_notify_kill(
    real_settings: Settings, tmp_path: Path
) -> None:
    # A short send timeout (so a short lease) for the process killed; a first retry late enough
    # for a later step to be due before it.
    settings = real_settings.model_copy(
        update={
            "notify_send_timeout_seconds": 2.0,
            "notify_retry_schedule": "3,0.5,1",
            "notify_scheduler_seconds": 0.2,
        }
    )
    receiver = WebhookReceiver()
    await receiver.start()
    notify = NotifyProcess("notify", settings, tmp_path / "notify.log")
    host = Host(settings, services.definitions(["intake", "feedback", "analytics"]), embedded=False)
    await host.start()
    await notify.start()
    try:
        transport = httpx.ASGITransport(app=host.http_app())
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://rapport") as http,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{notify.port}") as notify_http,
        ):
            admin = headers(settings, "site_admin")
            hook = await notify_http.post(
                "/notify/webhooks", json={"site_id": SITE, "url": receiver.url(SITE)}, headers=admin
            )
            assert hook.status_code == 201, hook.text
            receiver.secrets[SITE] = hook.json()["secret"]
            rule = {"to": ["therapist"], "channels": ["webhook"], "steps": STEPS}
            escalation = {
                "kinds": ["low_alliance"],
                "after_seconds": ESCALATE_AFTER,
                "to": ["supervisor"],
                "channels": ["webhook"],
            }
            policy = await notify_http.put(
                f"/notify/policies/{SITE}",
                json={"rules": [rule], "escalations": [escalation]},
                headers=admin,
            )
            assert policy.status_code == 200, policy.text

            acted_episode = await open_episode(http, settings, "MRN-000777")
            unseen_episode = await open_episode(http, settings, "MRN-000778")
            therapist = headers(settings, "therapist", THERAPIST)

            async def answer(episode_id: str, session_number: int, items: dict[str, float]) -> None:
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

            opened: dict[str, dict[str, Any]] = {}  # by episode

            async def both_opened() -> bool:
                for r in receiver.received:
                    data = r.body["data"]
                    if data["kind"] == "low_alliance" and data["status"] == "opened":
                        opened[data["episode_id"]] = {
                            "alert_id": data["alert_id"],
                            "acknowledge": r.body["acknowledge"],
                        }
                return {acted_episode, unseen_episode} <= opened.keys()

            async def announced(alert_id: str, status: str) -> None:
                async def arrived() -> bool:
                    steps = steps_of(receiver.received, alert_id)
                    return status in [r.body["data"]["status"] for r in steps]

                await eventually(arrived, timeout=90, what=f"the {status} webhook")

            await answer(acted_episode, 1, LOW)
            await answer(unseen_episode, 1, LOW)
            await eventually(both_opened, timeout=60, what="the two opened webhooks")
            alert_id = opened[acted_episode]["alert_id"]
            unseen_id = opened[unseen_episode]["alert_id"]

            seen = await notify_http.post(opened[acted_episode]["acknowledge"], headers=therapist)
            assert seen.status_code == 200, seen.text
            await announced(alert_id, "acknowledged")

            notify.kill()  # mid-follow-up: the rest happens while notify is down
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
            await answer(acted_episode, 2, HIGH)

            # The front-end fails the first webhook after the restart (it is retried): the
            # alert's later steps still reach it in order.
            receiver.fail_first = receiver.calls + 1
            await notify.start()  # a new process finishes the job
            await announced(alert_id, "action_recorded")
            await announced(alert_id, "resolved")

            async def unseen_escalated() -> bool:
                return bool(escalations(receiver.received))

            await eventually(unseen_escalated, timeout=90, what="the unseen alert's escalation")
            await asyncio.sleep(ESCALATE_AFTER / 2)  # time for a second one, were there one

            listed = await http.get(
                "/analytics/alerts", params={"site_id": SITE, "status": "all"}, headers=therapist
            )
            assert listed.status_code == 200, listed.text
            (row,) = [a for a in listed.json() if a["alert_id"] == alert_id]
        assert notify.terminate()
        calls = steps_of(receiver.received, alert_id)
        assert [c.body["data"]["status"] for c in calls] == [
            "opened",
            "acknowledged",
            "action_recorded",
            "resolved",
        ]
        assert all(c.verified for c in calls)
        assert calls[2].body["data"]["action_code"] == "discussed_in_session"
        assert row["status"] == "resolved" and row["seen_at"] is not None
        escalated = escalations(receiver.received)
        assert {e.body["data"]["alert_id"] for e in escalated} == {unseen_id}
        assert len({e.webhook_id for e in escalated}) == 1  # once, however often it was sent
        assert all(e.verified for e in escalated)
    finally:
        if notify.process is not None and notify.process.poll() is None:
            notify.kill()
        await host.stop()
        await receiver.stop()
