"""Wiring of the intake service."""

from __future__ import annotations

from services.intake import api, models
from shared.contracts import (
    CLIENT_ERASURE_REQUESTED,
    EPISODE_CLOSED,
    EPISODE_TRANSFERRED,
    INTAKE_SUBMITTED,
    MATCH_CONFIRMED,
    MATCH_DECLINED,
    MATCH_PROPOSED,
)
from shared.runtime import ServiceDefinition
from shared.tables import service_tables


def definition() -> ServiceDefinition:
    return ServiceDefinition(
        name="intake",
        router=api.router,
        tables=service_tables("intake"),
        outbox_table=models.OUTBOX,
        inbox_table=models.INBOX,
        produces=[
            INTAKE_SUBMITTED,
            MATCH_PROPOSED,
            MATCH_CONFIRMED,
            MATCH_DECLINED,
            EPISODE_CLOSED,
            EPISODE_TRANSFERRED,
            CLIENT_ERASURE_REQUESTED,
        ],
        description="Therapist registry, intakes, matching, episodes",
    )
