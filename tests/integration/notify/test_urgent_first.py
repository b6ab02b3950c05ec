"""A risk response's webhook goes ahead of a backlog of routine ones, on the real Kafka,
PostgreSQL and Redis: its event is read on notify's urgent consumer and its delivery claimed
before every routine delivery already waiting."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.infra import Infra
from tests.support.notify import Behaviour, alert, risk
from tests.support.notify_stack import NotifyStack, notify_stack
from tests.support.waiting import eventually

ROUTINE = 40
RISKY = "ep-urgent-first-risk"  # an episode no other test of the package uses
DELAY = 1.5  # the slow receiver's answer time, under this stack's send timeout


@pytest.fixture
async def stack(infra: Infra) -> AsyncIterator[NotifyStack]:
    """A notify of its own whose send timeout outlasts the slow receiver (the package's shared
    one gives up after a second, and a timed-out webhook is retried, not queued)."""
    async with notify_stack(infra, notify_send_timeout_seconds=DELAY * 4) as running:
        yield running


async def test_a_risk_webhook_goes_ahead_of_a_backlog_of_routine_ones(stack: NotifyStack) -> None:
    site = "site-urgent-first"
    # A slow receiver: the routine webhooks queue up in notify (8 at a time to one endpoint,
    # DELAY seconds each, so the backlog lasts seconds: a slow machine's delay in reading the
    # risk event is not mistaken for its place behind the backlog).
    stack.endpoints.behaviour["urgent-first"] = Behaviour(delay=DELAY)
    await stack.webhook(site, "urgent-first")
    routine = [alert(site, "rupture", "high", episode_id=f"ep-{n:03d}") for n in range(ROUTINE)]
    await stack.publisher.publish(*routine)

    async def backlog() -> bool:
        waiting = await stack.scalar(
            "select count(*) from notify_deliveries where site_id = :site"
            " and status in ('pending', 'sending')",
            site=site,
        )
        return bool(waiting and waiting >= ROUTINE // 2)

    await eventually(backlog, timeout=30, what="a backlog of routine webhooks")
    await stack.publisher.publish(risk(site, episode_id=RISKY))

    def arrived() -> list[str]:
        return [c.body["data"]["episode_id"] for c in stack.endpoints.accepted("urgent-first")]

    async def risk_arrived() -> bool:
        return RISKY in arrived()

    await eventually(risk_arrived, timeout=60, what="the risk webhook")
    order = arrived()
    behind = order.index(RISKY)
    # Ahead of it: the routine webhooks already sent or in flight when it came (the endpoint
    # takes 8 at a time), never the backlog claimed or waiting behind them.
    assert behind < ROUTINE // 2, f"the risk webhook came after {behind} routine ones"

    async def all_arrived() -> bool:
        return len(arrived()) == ROUTINE + 1

    await eventually(all_arrived, timeout=60, what="every routine webhook too")
