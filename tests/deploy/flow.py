"""The end-to-end flow that `make image-test` drives through the image's containers and
`make cluster-test` through the Kubernetes Services: intake opens an episode →
`match.confirmed` over Kafka → feedback records two SRS and a PHQ-9 → analytics opens the
expected alerts → notify delivers one webhook per alert, each verified with the independent
`standardwebhooks` library; none replayed, none doubled in the services' outboxes."""

from __future__ import annotations

import json
from typing import Protocol

import httpx
from sqlalchemy import MetaData, select
from sqlalchemy.ext.asyncio import create_async_engine

from shared.outbox import outbox_table
from tests.deploy.chart import SERVICES
from tests.support.receiver import WebhookReceiver
from tests.support.waiting import eventually
from tests.unit.test_embedded_flow import ALERT_KINDS

SITE = "site-a"
THERAPIST = "th-1"
FLOW_TIMEOUT = 300.0  # generous: the machine may be shared and slow (no wall-clock asserts)


class Deployed(Protocol):
    """The four services, wherever they run."""

    owner_url: str  # the release's database, as the schema owner

    def url(self, service: str, path: str) -> str: ...

    def auth(self, role: str, sub: str = "staff-1") -> dict[str, str]: ...


async def end_to_end_flow(deployed: Deployed, receiver: WebhookReceiver) -> None:
    await receiver.start()
    try:
        episode = await _drive(deployed, receiver)
    finally:
        await receiver.stop()
    assert all(r.verified for r in receiver.received), "Standard Webhooks signatures verify"
    replays = [(r.webhook_id, r.body["data"]["kind"]) for r in receiver.received if r.replay]
    assert not replays, f"delivered again with the same webhook-id: {replays}"
    assert {r.body["data"]["episode_id"] for r in receiver.received} == {episode}
    # Nothing doubled: one opened alert and one delivery per kind in the services' outboxes.
    emitted = await outbox_types(deployed.owner_url)
    assert emitted["analytics"].count("org.rapport.alliance.alert.v1") == len(ALERT_KINDS)
    assert emitted["notify"].count("org.rapport.notification.delivered.v1") == len(ALERT_KINDS)
    assert emitted["intake"] == ["org.rapport.match.confirmed.v1"]


async def _drive(deployed: Deployed, receiver: WebhookReceiver) -> str:
    async with httpx.AsyncClient(timeout=30) as http:
        hook = await http.post(
            deployed.url("notify", "/notify/webhooks"),
            json={"site_id": SITE, "url": receiver.url(SITE)},
            headers=deployed.auth("site_admin"),
        )
        assert hook.status_code == 201, hook.text
        receiver.secrets[SITE] = hook.json()["secret"]
        opened = await http.post(
            deployed.url("intake", "/intake/episodes"),
            json={
                "site_id": SITE,
                "therapist_id": THERAPIST,
                "client_reference": "MRN-000123",
                "domains": ["depression"],
                "severity": "moderate",
            },
            headers=deployed.auth("intake_coordinator"),
        )
        assert opened.status_code == 201, opened.text
        episode: str = opened.json()["episode_id"]
        therapist = deployed.auth("therapist", THERAPIST)
        responses = deployed.url("feedback", f"/feedback/episodes/{episode}/responses")

        async def feedback_knows_the_episode() -> bool:
            return (await http.get(responses, headers=therapist)).status_code == 200

        await eventually(feedback_knows_the_episode, timeout=FLOW_TIMEOUT, what="match.confirmed")
        answers = [
            (1, "srs", {"relationship": 9.5, "goals": 9.4, "approach": 9.6, "overall": 9.5}),
            (2, "srs", {"relationship": 7.0, "goals": 8.1, "approach": 7.5, "overall": 7.2}),
            (2, "phq-9", {str(i): v for i, v in enumerate([2, 2, 1, 2, 1, 2, 1, 0, 1], 1)}),
        ]
        for session_number, instrument, items in answers:
            recorded = await http.post(
                deployed.url("feedback", "/feedback/responses"),
                json={
                    "episode_id": episode,
                    "session_number": session_number,
                    "respondent_role": "client",
                    "instrument": instrument,
                    "items": items,
                },
                headers=therapist,
            )
            assert recorded.status_code == 201, recorded.text

        async def every_alert_arrived() -> bool:
            return sorted(r.body["data"]["kind"] for r in receiver.received) == ALERT_KINDS

        await eventually(
            every_alert_arrived, timeout=FLOW_TIMEOUT, what="a webhook for every alert"
        )
        return episode


async def outbox_types(owner_url: str) -> dict[str, list[str]]:
    engine = create_async_engine(owner_url)
    try:
        found: dict[str, list[str]] = {}
        async with engine.connect() as connection:
            for service in SERVICES:
                table = outbox_table(service, MetaData())
                rows = await connection.execute(select(table.c.headers).order_by(table.c.id))
                found[service] = [json.loads(r.headers)["ce_type"] for r in rows]
        return found
    finally:
        await engine.dispose()
