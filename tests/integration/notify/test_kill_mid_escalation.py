"""A SIGKILL of ``rapport serve notify`` (a separate OS process) in the middle of escalating
alerts nobody followed up: after the restart every one of them is escalated exactly once (one
escalation message each, the one in flight at the kill sent again with its ``webhook-id``), and
the alert acted on in time is never escalated (real Kafka, PostgreSQL and Redis)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from shared.auth import mint_token
from shared.contracts import ALLIANCE_ALERT
from shared.events import Event
from tests.support.infra import Infra
from tests.support.notify import Behaviour, Call, NotifyProcess, alert
from tests.support.notify_stack import NotifyStack, notify_stack
from tests.support.waiting import eventually

UNSEEN = 6
DELAY = 2


@pytest.fixture
async def own_stack(infra: Infra) -> AsyncIterator[NotifyStack]:
    # A 2 s send timeout gives a 5 s lease: the dead process's sends are retried after it.
    async with notify_stack(infra, in_process=False, notify_send_timeout_seconds=2.0) as stack:
        yield stack


def escalations(calls: list[Call]) -> list[Call]:
    return [c for c in calls if "escalation" in c.body]


async def test_a_kill_mid_escalation_escalates_each_alert_exactly_once(
    own_stack: NotifyStack, tmp_path: Path
) -> None:
    stack = own_stack
    site = "site-kill-escalation"
    stack.endpoints.behaviour["esc"] = Behaviour(delay=1.5)  # requests in flight for 1.5 s
    notify = NotifyProcess("notify", stack.settings, tmp_path / "notify.log")
    await notify.start()
    admin = {"Authorization": "Bearer " + mint_token(stack.settings, "a", "site_admin", [site])}
    escalate = {"kinds": ["rupture"], "severities": ["high"], "after_seconds": DELAY}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{notify.port}") as http:
        hook = await http.post(
            "/notify/webhooks",
            json={"site_id": site, "url": stack.endpoints.url("esc")},
            headers=admin,
        )
        assert hook.status_code == 201, hook.text
        policy = await http.put(
            f"/notify/policies/{site}",
            json={
                "rules": [{"to": ["therapist"], "channels": ["webhook"]}],
                "escalations": [escalate | {"to": ["supervisor"], "channels": ["webhook"]}],
            },
            headers=admin,
        )
        assert policy.status_code == 200, policy.text
    stack.endpoints.secrets["esc"] = [hook.json()["secret"]]
    unseen = [alert(site, episode_id=f"ep-e{i}") for i in range(UNSEEN)]
    acted = alert(site, episode_id="ep-acted")
    action = acted.data.model_copy(update={"status": "action_recorded", "inputs": {}})

    await stack.publisher.publish(*unseen, acted, Event(ALLIANCE_ALERT, action, source="/t"))

    async def escalating() -> bool:
        return bool(escalations(stack.endpoints.tried("esc")))

    await eventually(escalating, timeout=40, interval=0.02, what="an escalation in flight")
    notify.kill()  # mid-escalation: its requests are open, their outcome not recorded
    in_flight_at_kill = {c.webhook_id for c in escalations(stack.endpoints.tried("esc"))}
    stack.endpoints.behaviour["esc"] = Behaviour()
    await notify.start()

    async def all_escalated() -> bool:
        delivered = await stack.scalar(
            "select count(*) from notify_deliveries "
            "where kind = 'escalation' and status = 'delivered'"
        )
        return bool(delivered == UNSEEN)

    await eventually(all_escalated, timeout=60, what="every escalation after the restart")
    await asyncio.sleep(DELAY + 2)  # time for a second escalation, were there to be one
    assert notify.terminate()

    sent = escalations(stack.endpoints.tried("esc"))
    per_id = Counter(c.webhook_id for c in sent)
    escalated = Counter(c.body["data"]["alert_id"] for c in sent)
    assert set(escalated) == {e.data.alert_id for e in unseen}  # each unseen alert, not acted's
    assert len(per_id) == UNSEEN  # one escalation message per alert, however often it was sent
    assert all(c.verified_with == [0] for c in sent)
    assert in_flight_at_kill and all(per_id[i] >= 2 for i in in_flight_at_kill)
    rows = await stack.scalar("select count(*) from notify_deliveries where kind = 'escalation'")
    assert rows == UNSEEN
    notices = await stack.scalar(
        "select count(*) from notify_notices where escalated_at is not null"
    )
    assert notices == UNSEEN
