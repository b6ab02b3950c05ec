"""Wiring of the feedback service."""

from __future__ import annotations

from pathlib import Path

from services.feedback import api, erasure, handlers, models
from shared.contracts import (
    CLIENT_ERASURE_REQUESTED,
    FEEDBACK_RECORDED,
    MATCH_CONFIRMED,
    RISK_FLAGGED,
    SESSION_COMPLETED,
)
from shared.erasure import skipping_erased
from shared.instruments import deployment_instruments
from shared.runtime import ServiceDefinition, ServiceRuntime, Subscription
from shared.tables import service_tables


def _load_instruments(runtime: ServiceRuntime) -> None:
    runtime.state["instruments"] = deployment_instruments(runtime.settings.instruments_dir)


def definition() -> ServiceDefinition:
    return ServiceDefinition(
        name="feedback",
        migrations=Path(__file__).parent / "migrations",
        router=api.router,
        tables=service_tables("feedback"),
        outbox_table=models.OUTBOX,
        inbox_table=models.INBOX,
        subscriptions=[
            Subscription(
                MATCH_CONFIRMED,
                skipping_erased(erasure.REGISTER, handlers.on_match_confirmed),
                "episode_from_match",
            ),
            Subscription(CLIENT_ERASURE_REQUESTED, erasure.on_erasure_requested, "erasure"),
        ],
        produces=[FEEDBACK_RECORDED, RISK_FLAGGED, SESSION_COMPLETED],
        on_init=[_load_instruments],
        description="Questionnaires from clients, partners, family and therapists",
    )
