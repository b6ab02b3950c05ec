"""Wiring of the intake service."""

from __future__ import annotations

from services.intake import api, handlers, models
from shared.contracts import (
    ALLIANCE_ALERT,
    CLIENT_ERASURE_REQUESTED,
    EPISODE_CLOSED,
    EPISODE_TRANSFERRED,
    INTAKE_SUBMITTED,
    MATCH_CONFIRMED,
    MATCH_DECLINED,
    MATCH_PROPOSED,
    THERAPIST_EFFECTIVENESS_UPDATED,
)
from shared.runtime import ServiceDefinition, ServiceRuntime, Subscription
from shared.tables import service_tables


def definition() -> ServiceDefinition:
    # One matching context per service instance: routes reach it through runtime.state,
    # subscribers through their closure.
    context = handlers.MatchingContext()

    def _share_context(runtime: ServiceRuntime) -> None:
        runtime.state["matching"] = context

    return ServiceDefinition(
        name="intake",
        router=api.router,
        tables=service_tables("intake"),
        outbox_table=models.OUTBOX,
        inbox_table=models.INBOX,
        subscriptions=[
            Subscription(
                THERAPIST_EFFECTIVENESS_UPDATED,
                handlers.on_effectiveness_updated,
                "effectiveness",
            ),
            Subscription(
                ALLIANCE_ALERT, handlers.alliance_alert_subscriber(context), "rematch_suggested"
            ),
        ],
        produces=[
            INTAKE_SUBMITTED,
            MATCH_PROPOSED,
            MATCH_CONFIRMED,
            MATCH_DECLINED,
            EPISODE_CLOSED,
            EPISODE_TRANSFERRED,
            CLIENT_ERASURE_REQUESTED,
        ],
        on_init=[_share_context],
        description="Therapist registry, intakes, matching, episodes",
    )
