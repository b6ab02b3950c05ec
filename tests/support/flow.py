"""The foundation's end-to-end flow through all four services, driven as a front-end would:

an episode is opened (intake) → feedback learns it from ``match.confirmed`` → two SRS responses
and a PHQ-9 with a risk item are recorded (feedback) → analytics scores them and opens alerts →
notify delivers signed webhooks to the site's receiver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

import services
from shared.auth import mint_token
from shared.host import Host
from shared.settings import Settings
from tests.support.outbox import outbox_rows
from tests.support.receiver import WebhookReceiver
from tests.support.waiting import eventually

SITE = "site-a"
THERAPIST = "th-1"


@dataclass
class FlowResult:
    episode_id: str
    # (service, CloudEvents type, subject is the episode?) for every event each service emitted,
    # in outbox order.
    emitted: list[tuple[str, str]]
    alert_kinds: list[str]
    webhooks: list[dict[str, Any]]
    all_verified: bool


def headers(settings: Settings, role: str, sub: str = "user-1") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(settings, sub, role, [SITE])}"}


async def emitted_events(host: Host) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for name in host.runtimes:
        found.extend((name, row.ce_type) for row in await outbox_rows(host, name))
    return found


async def opened_alerts(host: Host) -> int:
    return sum(
        row.ce_type.endswith("alliance.alert.v1") and row.value["status"] == "opened"
        for row in await outbox_rows(host, "analytics")
    )


async def open_episode(http: httpx.AsyncClient, settings: Settings, client_reference: str) -> str:
    """Open an episode with the therapist directly (intake) and wait until feedback has learnt
    it from ``match.confirmed``, so that answers for it are accepted."""
    opened = await http.post(
        "/intake/episodes",
        json={
            "site_id": SITE,
            "therapist_id": THERAPIST,
            "client_reference": client_reference,
            "domains": ["depression"],
            "severity": "moderate",
        },
        headers=headers(settings, "intake_coordinator"),
    )
    assert opened.status_code == 201, opened.text
    episode_id: str = opened.json()["episode_id"]
    therapist = headers(settings, "therapist", THERAPIST)

    async def feedback_knows_episode() -> bool:
        got = await http.get(f"/feedback/episodes/{episode_id}/responses", headers=therapist)
        return got.status_code == 200

    await eventually(feedback_knows_episode, what="feedback to learn the episode")
    return episode_id


async def run_flow(settings: Settings, *, embedded: bool) -> FlowResult:
    receiver = WebhookReceiver()
    await receiver.start()
    host = Host(settings, services.definitions(), embedded=embedded)
    await host.start()
    try:
        transport = httpx.ASGITransport(app=host.http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://rapport") as http:
            hook = await http.post(
                "/notify/webhooks",
                json={"site_id": SITE, "url": receiver.url(SITE)},
                headers=headers(settings, "site_admin"),
            )
            assert hook.status_code == 201, hook.text
            receiver.secrets[SITE] = hook.json()["secret"]

            episode_id = await open_episode(http, settings, "MRN-000123")
            therapist = headers(settings, "therapist", THERAPIST)
            answers = [
                (1, "srs", {"relationship": 9.5, "goals": 9.4, "approach": 9.6, "overall": 9.5}),
                (2, "srs", {"relationship": 7.0, "goals": 8.1, "approach": 7.5, "overall": 7.2}),
                (
                    2,
                    "phq-9",
                    {"1": 2, "2": 2, "3": 1, "4": 2, "5": 1, "6": 2, "7": 1, "8": 0, "9": 1},
                ),
            ]
            for session_number, instrument, items in answers:
                recorded = await http.post(
                    "/feedback/responses",
                    json={
                        "episode_id": episode_id,
                        "session_number": session_number,
                        "respondent_role": "client",
                        "instrument": instrument,
                        "items": items,
                    },
                    headers=therapist,
                )
                assert recorded.status_code == 201, recorded.text

            async def every_alert_delivered() -> bool:
                opened = await opened_alerts(host)
                events = await emitted_events(host)
                delivered = sum(t.endswith("notification.delivered.v1") for _, t in events)
                # Intake has followed the first answer too (the episode became active).
                phases = sum(t.endswith("episode.phase_changed.v1") for _, t in events)
                return opened >= 1 and len(receiver.received) == delivered == opened and phases == 2

            await eventually(every_alert_delivered, what="a webhook for every opened alert")
        return FlowResult(
            episode_id=episode_id,
            emitted=await emitted_events(host),
            alert_kinds=sorted(r.body["data"]["kind"] for r in receiver.received),
            webhooks=[r.body for r in receiver.received],
            all_verified=all(r.verified for r in receiver.received),
        )
    finally:
        await host.stop()
        await receiver.stop()
