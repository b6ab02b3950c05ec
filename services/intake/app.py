"""Wiring of the intake service."""

from __future__ import annotations

from pathlib import Path

from services.intake import dependencies, erasure, models, subscribers
from services.intake.routes import router
from services.intake.usecases import phases
from shared.contracts import (
    ALLIANCE_ALERT,
    CLIENT_ERASURE_REQUESTED,
    EPISODE_CLOSED,
    EPISODE_MEMBERS_CHANGED,
    EPISODE_PHASE_CHANGED,
    EPISODE_TRANSFERRED,
    FEEDBACK_RECORDED,
    INTAKE_SUBMITTED,
    MATCH_CONFIRMED,
    MATCH_DECLINED,
    MATCH_PROPOSED,
    SESSION_ATTENDED,
    THERAPIST_EFFECTIVENESS_UPDATED,
)
from shared.erasure import skipping_erased
from shared.runtime import ServiceDefinition, Subscription
from shared.tables import service_tables


def definition() -> ServiceDefinition:
    return ServiceDefinition(
        name="intake",
        migrations=Path(__file__).parent / "migrations",
        router=router,
        tables=service_tables("intake"),
        outbox_table=models.OUTBOX,
        inbox_table=models.INBOX,
        subscriptions=[
            Subscription(
                THERAPIST_EFFECTIVENESS_UPDATED,
                subscribers.on_effectiveness_updated,
                "effectiveness",
            ),
            Subscription(
                ALLIANCE_ALERT,
                skipping_erased(erasure.REGISTER, subscribers.on_alliance_alert),
                "rematch_suggested",
                wants=subscribers.opens_a_rematch,
            ),
            Subscription(CLIENT_ERASURE_REQUESTED, subscribers.on_erasure_requested, "erasure"),
            # Contacts with the client move the episode's phase (first contact, return) and
            # push its drop-out check back.
            Subscription(
                SESSION_ATTENDED,
                skipping_erased(erasure.REGISTER, subscribers.on_session_attended),
                "contact_from_session",
            ),
            Subscription(
                FEEDBACK_RECORDED,
                skipping_erased(erasure.REGISTER, subscribers.on_feedback_recorded),
                "contact_from_feedback",
            ),
        ],
        produces=[
            INTAKE_SUBMITTED,
            MATCH_PROPOSED,
            MATCH_CONFIRMED,
            MATCH_DECLINED,
            EPISODE_CLOSED,
            EPISODE_TRANSFERRED,
            EPISODE_PHASE_CHANGED,
            CLIENT_ERASURE_REQUESTED,
            EPISODE_MEMBERS_CHANGED,
        ],
        # The drop-out checks of active episodes, fired on whichever replica takes them.
        background=[phases.sweep_forever],
        dependencies=dependencies.build,
        description="Therapist registry, intakes, matching, episodes",
    )
