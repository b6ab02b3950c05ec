"""Wiring of the feedback service."""

from __future__ import annotations

from pathlib import Path

from services.feedback import dependencies, erasure, models, subscribers
from services.feedback.routes import router
from shared.contracts import (
    CLIENT_ERASURE_REQUESTED,
    CONSENT_CHANGED,
    EPISODE_MEMBERS_CHANGED,
    EPISODE_PHASE_CHANGED,
    FEEDBACK_RECORDED,
    MATCH_CONFIRMED,
    RISK_FLAGGED,
    SESSION_ATTENDED,
    SESSION_CANCELLED,
    SESSION_COMPLETED,
    SESSION_MISSED,
    SESSION_SCHEDULED,
)
from shared.erasure import skipping_erased
from shared.runtime import ServiceDefinition, Subscription
from shared.tables import service_tables


def definition() -> ServiceDefinition:
    return ServiceDefinition(
        name="feedback",
        migrations=Path(__file__).parent / "migrations",
        router=router,
        tables=service_tables("feedback"),
        outbox_table=models.OUTBOX,
        inbox_table=models.INBOX,
        subscriptions=[
            Subscription(
                MATCH_CONFIRMED,
                skipping_erased(erasure.REGISTER, subscribers.on_match_confirmed),
                "episode_from_match",
            ),
            Subscription(
                EPISODE_MEMBERS_CHANGED,
                skipping_erased(erasure.REGISTER, subscribers.on_members_changed),
                "members_of_episode",
            ),
            Subscription(
                EPISODE_PHASE_CHANGED,
                skipping_erased(erasure.REGISTER, subscribers.on_phase_changed),
                "phase_of_episode",
            ),
            Subscription(CLIENT_ERASURE_REQUESTED, subscribers.on_erasure_requested, "erasure"),
        ],
        produces=[
            CONSENT_CHANGED,
            FEEDBACK_RECORDED,
            RISK_FLAGGED,
            SESSION_COMPLETED,
            SESSION_SCHEDULED,
            SESSION_ATTENDED,
            SESSION_MISSED,
            SESSION_CANCELLED,
        ],
        dependencies=dependencies.build,
        description="Questionnaires from clients, partners, family and therapists",
    )
