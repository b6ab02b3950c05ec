"""Wiring of the notify service."""

from __future__ import annotations

import asyncio

from services.notify import api, dispatch, handlers, models
from shared.contracts import ALLIANCE_ALERT, NOTIFICATION_DELIVERED, NOTIFICATION_FAILED
from shared.runtime import ServiceDefinition, ServiceRuntime, Subscription
from shared.tables import service_tables


def definition() -> ServiceDefinition:
    wake = asyncio.Event()  # set when deliveries are committed, so they go out at once

    def init(runtime: ServiceRuntime) -> None:
        runtime.state["dispatch_wake"] = wake

    return ServiceDefinition(
        name="notify",
        router=api.router,
        tables=service_tables("notify"),
        outbox_table=models.OUTBOX,
        inbox_table=models.INBOX,
        subscriptions=[
            Subscription(ALLIANCE_ALERT, handlers.make_alert_handler(wake), "deliveries_from_alert")
        ],
        produces=[NOTIFICATION_DELIVERED, NOTIFICATION_FAILED],
        background=[dispatch.dispatch_forever],
        on_init=[init],
        description="Signed webhooks, email, invitations",
    )
