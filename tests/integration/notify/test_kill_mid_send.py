"""A SIGKILL of ``rapport serve notify`` (a separate OS process) in the middle of sending loses
no message: what was in flight is sent again after its lease ran out, with the same
``webhook-id`` (so the receiver can tell it is the same message), and no alert ever becomes two
different messages; and a full redelivery of the topic afterwards sends nothing again (real
Kafka, PostgreSQL and Redis)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from shared.auth import mint_token
from shared.contracts import ALLIANCE_ALERT
from tests.integration.test_delivery_guarantees import rewind_group
from tests.support.infra import Infra
from tests.support.notify import Behaviour, NotifyProcess, alert
from tests.support.notify_stack import NotifyStack, notify_stack
from tests.support.waiting import eventually

ALERTS = 20


@pytest.fixture
async def own_stack(infra: Infra) -> AsyncIterator[NotifyStack]:
    # A 2 s send timeout gives a 5 s lease: the dead process's sends are retried after it.
    async with notify_stack(infra, in_process=False, notify_send_timeout_seconds=2.0) as stack:
        yield stack


async def test_a_kill_mid_send_loses_no_message_and_keeps_the_webhook_id(
    own_stack: NotifyStack, tmp_path: Path
) -> None:
    stack = own_stack
    site = "site-kill"
    stack.endpoints.behaviour["kill"] = Behaviour(delay=1.5)  # requests in flight for 1.5 s
    notify = NotifyProcess("notify", stack.settings, tmp_path / "notify.log")
    await notify.start()
    admin = {"Authorization": "Bearer " + mint_token(stack.settings, "a", "site_admin", [site])}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{notify.port}") as http:
        hook = await http.post(
            "/notify/webhooks",
            json={"site_id": site, "url": stack.endpoints.url("kill")},
            headers=admin,
        )
        assert hook.status_code == 201, hook.text
    stack.endpoints.secrets["kill"] = [hook.json()["secret"]]
    events = [alert(site, episode_id=f"ep-k{i}") for i in range(ALERTS)]

    await stack.publisher.publish(*events)

    async def sending() -> bool:
        return len(stack.endpoints.tried("kill")) >= 3

    await eventually(sending, timeout=30, interval=0.02, what="sends in flight")
    notify.kill()  # mid-send: requests are open, nothing of them recorded
    in_flight_at_kill = {c.webhook_id for c in stack.endpoints.tried("kill")}
    stack.endpoints.behaviour["kill"] = Behaviour()
    await notify.start()

    async def all_delivered() -> bool:
        delivered = await stack.scalar(
            "select count(*) from notify_deliveries where status = 'delivered'"
        )
        return bool(delivered == ALERTS)

    await eventually(all_delivered, timeout=40, what="every delivery after the restart")
    assert notify.terminate()

    # Then every alert is delivered again by Kafka (the group rewound to the start).
    before = len(stack.endpoints.tried("kill"))
    topic = stack.settings.topic(ALLIANCE_ALERT.topic_name)
    await rewind_group(stack.settings, topic, f"{stack.settings.topic_prefix}notify")
    await notify.start()

    async def all_redelivered() -> bool:
        duplicates = await notify.metric(
            "rapport_events_consumed_total",
            handler="notify.deliveries_from_alert",
            outcome="duplicate",
        )
        return duplicates == ALERTS

    await eventually(all_redelivered, timeout=40, what="every alert to be redelivered")
    assert notify.terminate()
    assert len(stack.endpoints.tried("kill")) == before  # no second message

    calls = stack.endpoints.tried("kill")
    per_id = Counter(c.webhook_id for c in calls)
    alert_ids = {c.body["data"]["alert_id"] for c in calls}
    # Nothing lost: every alert reached the endpoint ...
    assert alert_ids == {e.data.alert_id for e in events}
    # ... as exactly one message each (one webhook-id per alert, however often it was sent) ...
    assert len(per_id) == ALERTS
    assert all(c.verified_with == [0] for c in calls)
    # ... and what was in flight at the kill was sent again with the same webhook-id.
    assert in_flight_at_kill and all(per_id[i] >= 2 for i in in_flight_at_kill)
    delivered_events = await stack.emitted("notification.delivered.v1")
    assert len(delivered_events) == ALERTS
    assert len({e["delivery_id"] for e in delivered_events}) == ALERTS
