"""Wiring of the analytics service."""

from __future__ import annotations

from pathlib import Path

from services.analytics import dependencies, erasure, models, subscribers, trajectory_refit
from services.analytics.routes import router
from services.analytics.usecases import attendance
from shared.contracts import (
    ALLIANCE_ALERT,
    ALLIANCE_ASSESSED,
    CLIENT_ERASURE_REQUESTED,
    CONSENT_CHANGED,
    EPISODE_CLOSED,
    EPISODE_PHASE_CHANGED,
    FEEDBACK_RECORDED,
    MATCH_CONFIRMED,
    NOTIFICATION_ACKNOWLEDGED,
    NOTIFICATION_DELIVERED,
    SESSION_ATTENDED,
    SESSION_CANCELLED,
    SESSION_MISSED,
    THERAPIST_EFFECTIVENESS_UPDATED,
)
from shared.erasure import skipping_erased
from shared.runtime import ServiceDefinition, Subscription
from shared.tables import service_tables


def definition() -> ServiceDefinition:
    return ServiceDefinition(
        name="analytics",
        migrations=Path(__file__).parent / "migrations",
        router=router,
        tables=service_tables("analytics"),
        outbox_table=models.OUTBOX,
        inbox_table=models.INBOX,
        subscriptions=[
            Subscription(
                MATCH_CONFIRMED,
                skipping_erased(erasure.REGISTER, subscribers.on_match_confirmed),
                "episode_from_match",
            ),
            Subscription(
                FEEDBACK_RECORDED,
                skipping_erased(erasure.REGISTER, subscribers.on_feedback_recorded),
                "alliance_from_feedback",
            ),
            Subscription(
                EPISODE_CLOSED,
                skipping_erased(erasure.REGISTER, subscribers.on_episode_closed),
                "effectiveness_from_closed_episode",
            ),
            Subscription(
                NOTIFICATION_ACKNOWLEDGED,
                skipping_erased(erasure.REGISTER, subscribers.on_notification_acknowledged),
                "alert_seen_from_acknowledgement",
            ),
            Subscription(
                CONSENT_CHANGED,
                skipping_erased(erasure.REGISTER, subscribers.on_consent_changed),
                "aggregates_follow_consent",
            ),
            Subscription(
                SESSION_ATTENDED,
                skipping_erased(erasure.REGISTER, subscribers.on_session_fact),
                "attendance_from_session_attended",
            ),
            Subscription(
                SESSION_MISSED,
                skipping_erased(erasure.REGISTER, subscribers.on_session_fact),
                "attendance_from_session_missed",
            ),
            Subscription(
                SESSION_CANCELLED,
                skipping_erased(erasure.REGISTER, subscribers.on_session_fact),
                "attendance_from_session_cancelled",
            ),
            Subscription(
                EPISODE_PHASE_CHANGED,
                skipping_erased(erasure.REGISTER, subscribers.on_phase_changed),
                "phase_from_intake",
            ),
            Subscription(
                NOTIFICATION_DELIVERED,
                skipping_erased(erasure.REGISTER, subscribers.on_notification_delivered),
                "alert_deliveries_for_timeline",
            ),
            Subscription(CLIENT_ERASURE_REQUESTED, erasure.on_erasure_requested, "erasure"),
        ],
        produces=[ALLIANCE_ASSESSED, ALLIANCE_ALERT, THERAPIST_EFFECTIVENESS_UPDATED],
        dependencies=dependencies.build,
        background=[trajectory_refit.refit_forever, attendance.checks_forever],
        description="Alliance state, alerts, therapist effectiveness, charts",
    )
