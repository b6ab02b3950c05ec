"""The steps of one alert reach an endpoint in order even when one of them is retried (real
Kafka, PostgreSQL and Redis): the front-end fails the ``opened`` webhook once, the alert's
``action_recorded`` step arrives while the opening waits for its retry, and the front-end
still hears opened before action_recorded, each once. Another alert's webhook to the same
endpoint is not held meanwhile."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.contracts import ALLIANCE_ALERT
from shared.events import Event
from tests.support.infra import Infra
from tests.support.notify import Behaviour, Call, alert
from tests.support.notify_stack import NotifyStack, notify_stack
from tests.support.waiting import eventually

RETRY_SECONDS = 4  # long enough for the later step to be due well before the retry


@pytest.fixture
async def slow_retry_stack(infra: Infra) -> AsyncIterator[NotifyStack]:
    schedule = ",".join([str(RETRY_SECONDS)] * 3)
    async with notify_stack(infra, notify_retry_schedule=schedule) as stack:
        yield stack


def accepted(calls: list[Call], alert_id: str) -> list[str]:
    """The steps of the alert the endpoint accepted, in the order it accepted them."""
    return [
        c.body["data"]["status"]
        for c in sorted(calls, key=lambda c: c.at)
        if c.status < 300 and c.body["data"].get("alert_id") == alert_id
    ]


async def test_a_retried_opening_reaches_the_endpoint_before_the_later_step(
    slow_retry_stack: NotifyStack,
) -> None:
    stack = slow_retry_stack
    site = "site-step-order"
    await stack.webhook(site, "order")
    steps = ["opened", "action_recorded"]
    await stack.policy(
        site, {"rules": [{"to": ["therapist"], "channels": ["webhook"], "steps": steps}]}
    )
    stack.endpoints.behaviour["order"] = Behaviour(fail_first=1)
    opened = alert(site, episode_id="ep-order")
    other = alert(site, episode_id="ep-other")
    await stack.publisher.publish(opened)

    async def opening_failed() -> bool:
        return any(c.status >= 500 for c in stack.endpoints.tried("order"))

    await eventually(opening_failed, timeout=30, what="the opening's first (failed) attempt")
    acted = opened.data.model_copy(
        update={"status": "action_recorded", "action_code": "discussed_in_session", "inputs": {}}
    )
    await stack.publisher.publish(Event(ALLIANCE_ALERT, acted, source="/tests"), other)

    async def other_alert_heard() -> bool:
        return accepted(stack.endpoints.tried("order"), other.data.alert_id) == ["opened"]

    await eventually(other_alert_heard, timeout=30, what="the other alert, not held")
    calls = stack.endpoints.tried("order")
    assert accepted(calls, opened.data.alert_id) == []  # the opening still waits its retry

    async def both_heard() -> bool:
        return len(accepted(stack.endpoints.tried("order"), opened.data.alert_id)) >= 2

    await eventually(both_heard, timeout=60, what="both steps of the alert")
    assert accepted(stack.endpoints.tried("order"), opened.data.alert_id) == steps

    # The endpoint answers before notify records the send (outcomes are written in small
    # batches after the answers): both deliveries end up recorded as delivered.
    async def both_recorded() -> bool:
        held = await stack.scalar(
            "select count(*) from notify_deliveries"
            " where alert_id = :alert and status = 'delivered'",
            alert=opened.data.alert_id,
        )
        return bool(held == 2)

    await eventually(both_recorded, timeout=30, what="both deliveries recorded as delivered")
