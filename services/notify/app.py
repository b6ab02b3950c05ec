"""Wiring of the notify service."""

from __future__ import annotations

from pathlib import Path

from services.notify import dependencies, erasure, models, scheduler, subscribers
from services.notify.dispatch.loop import dispatch_forever
from services.notify.routes import router
from services.notify.usecases.rerouting import readiness_warnings
from shared.consumer import Handler
from shared.contracts import (
    ALLIANCE_ALERT,
    CLIENT_ERASURE_REQUESTED,
    CONSENT_CHANGED,
    EPISODE_MEMBERS_CHANGED,
    FEEDBACK_RECORDED,
    MATCH_CONFIRMED,
    MATCH_PROPOSED,
    NOTIFICATION_ACKNOWLEDGED,
    NOTIFICATION_DELIVERED,
    NOTIFICATION_FAILED,
    RISK_FLAGGED,
    SESSION_COMPLETED,
)
from shared.erasure import skipping_erased
from shared.runtime import ServiceDefinition, Subscription
from shared.tables import service_tables


def unless_erased(handler: Handler) -> Handler:
    """Events about an erased client or episode have no effect."""
    return skipping_erased(erasure.REGISTER, handler)


def definition() -> ServiceDefinition:
    return ServiceDefinition(
        name="notify",
        migrations=Path(__file__).parent / "migrations",
        router=router,
        tables=service_tables("notify"),
        outbox_table=models.OUTBOX,
        inbox_table=models.INBOX,
        # The names are the inbox keys in the database: never rename one.
        subscriptions=[
            Subscription(
                ALLIANCE_ALERT,
                unless_erased(subscribers.on_alliance_alert),
                "deliveries_from_alert",
            ),
            Subscription(
                RISK_FLAGGED, unless_erased(subscribers.on_risk_flagged), "deliveries_from_risk"
            ),
            Subscription(
                MATCH_PROPOSED,
                unless_erased(subscribers.on_match_proposed),
                "match_proposed_to_coordinator",
            ),
            Subscription(
                MATCH_CONFIRMED,
                unless_erased(subscribers.on_match_confirmed),
                "episode_from_match",
            ),
            Subscription(
                SESSION_COMPLETED,
                unless_erased(subscribers.on_session_completed),
                "invitations_from_session",
            ),
            Subscription(
                FEEDBACK_RECORDED,
                unless_erased(subscribers.on_feedback_recorded),
                "answers_stop_reminders",
            ),
            Subscription(
                CONSENT_CHANGED,
                unless_erased(subscribers.on_consent_changed),
                "invitations_follow_consent",
            ),
            Subscription(
                EPISODE_MEMBERS_CHANGED,
                unless_erased(subscribers.on_members_changed),
                "members_of_episode",
            ),
            Subscription(CLIENT_ERASURE_REQUESTED, erasure.on_erasure_requested, "erasure"),
        ],
        produces=[NOTIFICATION_DELIVERED, NOTIFICATION_ACKNOWLEDGED, NOTIFICATION_FAILED],
        background=[dispatch_forever, scheduler.schedule_forever],
        dependencies=dependencies.build,
        warnings=[readiness_warnings],
        description="Alerts to clinicians, feedback invitations to clients: signed webhooks, "
        "email and SMS, each delivered once",
    )
