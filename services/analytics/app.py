"""Wiring of the analytics service."""

from __future__ import annotations

from services.analytics import api, handlers, models
from shared.contracts import (
    ALLIANCE_ALERT,
    ALLIANCE_ASSESSED,
    FEEDBACK_RECORDED,
    THERAPIST_EFFECTIVENESS_UPDATED,
)
from shared.instruments import SHIPPED, load_instruments
from shared.runtime import ServiceDefinition, Subscription
from shared.tables import service_tables


def definition() -> ServiceDefinition:
    instruments = load_instruments(SHIPPED)
    return ServiceDefinition(
        name="analytics",
        router=api.router,
        tables=service_tables("analytics"),
        outbox_table=models.OUTBOX,
        inbox_table=models.INBOX,
        subscriptions=[
            Subscription(
                FEEDBACK_RECORDED,
                handlers.make_feedback_handler(instruments),
                "alliance_from_feedback",
            )
        ],
        produces=[ALLIANCE_ASSESSED, ALLIANCE_ALERT, THERAPIST_EFFECTIVENESS_UPDATED],
        description="Alliance state, alerts, therapist effectiveness, charts",
    )
