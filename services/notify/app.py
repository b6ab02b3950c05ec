"""Wiring of the notify service."""

from __future__ import annotations

from pathlib import Path

from services.notify import api, dispatch, erasure, handlers, models, rerouting, scheduler
from services.notify.context import NotifyContext
from shared.contracts import (
    ALLIANCE_ALERT,
    CLIENT_ERASURE_REQUESTED,
    FEEDBACK_RECORDED,
    MATCH_CONFIRMED,
    MATCH_PROPOSED,
    NOTIFICATION_DELIVERED,
    NOTIFICATION_FAILED,
    RISK_FLAGGED,
    SESSION_COMPLETED,
)
from shared.erasure import skipping_erased
from shared.runtime import ServiceDefinition, ServiceRuntime, Subscription
from shared.tables import service_tables


def definition() -> ServiceDefinition:
    ctx = NotifyContext()

    def init(runtime: ServiceRuntime) -> None:
        ctx.bind(runtime)
        runtime.state["notify"] = ctx
        runtime.state["dispatch_wake"] = ctx.wake

    handle = {
        name: skipping_erased(erasure.REGISTER, handler)
        for name, handler in handlers.make_handlers(ctx).items()
    }
    return ServiceDefinition(
        name="notify",
        migrations=Path(__file__).parent / "migrations",
        router=api.router,
        tables=service_tables("notify"),
        outbox_table=models.OUTBOX,
        inbox_table=models.INBOX,
        subscriptions=[
            Subscription(
                ALLIANCE_ALERT,
                handle["deliveries_from_alert"],
                "deliveries_from_alert",
                # Resolutions are not announced: only an opened alert needs a transaction.
                wants=handlers.an_opened_alert,
            ),
            Subscription(RISK_FLAGGED, handle["deliveries_from_risk"], "deliveries_from_risk"),
            Subscription(
                MATCH_PROPOSED,
                handle["match_proposed_to_coordinator"],
                "match_proposed_to_coordinator",
            ),
            Subscription(MATCH_CONFIRMED, handle["episode_from_match"], "episode_from_match"),
            Subscription(
                SESSION_COMPLETED, handle["invitations_from_session"], "invitations_from_session"
            ),
            Subscription(
                FEEDBACK_RECORDED, handle["answers_stop_reminders"], "answers_stop_reminders"
            ),
            Subscription(CLIENT_ERASURE_REQUESTED, erasure.erasure_handler(ctx), "erasure"),
        ],
        produces=[NOTIFICATION_DELIVERED, NOTIFICATION_FAILED],
        background=[dispatch.dispatch_forever, scheduler.schedule_forever],
        on_init=[init],
        warnings=[rerouting.readiness_warnings],
        description="Alerts to clinicians, feedback invitations to clients: signed webhooks, "
        "email and SMS, each delivered once",
    )
