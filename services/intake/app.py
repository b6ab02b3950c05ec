"""Wiring of the intake service."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter

from services.intake import api, erasure, handlers, models
from services.intake.matching_config import MatchingConfig
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
from shared.erasure import skipping_erased
from shared.runtime import ServiceDefinition, ServiceRuntime, Subscription
from shared.settings import config_file_error
from shared.tables import service_tables


def definition() -> ServiceDefinition:
    # One matching context per service instance: routes reach it through runtime.state,
    # subscribers through their closure.
    context = handlers.MatchingContext()

    def _share_context(runtime: ServiceRuntime) -> None:
        path = runtime.settings.matching_file
        if path is not None:
            try:
                data = json.loads(Path(path).read_text(encoding="utf-8"))
                if not isinstance(data, dict) or not set(data) <= {"default", "sites"}:
                    raise ValueError('expected {"default": {...}, "sites": {"<site>": {...}}}')
                context.default = MatchingConfig.for_site(data.get("default") or {})
                context.configs = {
                    site: MatchingConfig.for_site(overrides, base=context.default)
                    for site, overrides in (data.get("sites") or {}).items()
                }
            except Exception as error:
                raise config_file_error("RAPPORT_MATCHING_FILE", error) from None
        runtime.state["matching"] = context

    router = APIRouter()
    router.include_router(api.router)
    router.include_router(erasure.router)
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
                handlers.on_effectiveness_updated,
                "effectiveness",
            ),
            Subscription(
                ALLIANCE_ALERT,
                skipping_erased(erasure.REGISTER, handlers.alliance_alert_subscriber(context)),
                "rematch_suggested",
                wants=handlers.opens_a_rematch,
            ),
            Subscription(CLIENT_ERASURE_REQUESTED, erasure.on_erasure_requested, "erasure"),
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
