"""Wiring of the analytics service."""

from __future__ import annotations

from pathlib import Path

from services.analytics import api, erasure, handlers, models
from services.analytics.effectiveness import MIN_CASES
from services.analytics.rules_config import RuleConfig, SiteRules, site_rules
from shared.contracts import (
    ALLIANCE_ALERT,
    ALLIANCE_ASSESSED,
    CLIENT_ERASURE_REQUESTED,
    EPISODE_CLOSED,
    FEEDBACK_RECORDED,
    MATCH_CONFIRMED,
    THERAPIST_EFFECTIVENESS_UPDATED,
)
from shared.erasure import skipping_erased
from shared.instruments import Instrument, deployment_instruments
from shared.runtime import ServiceDefinition, ServiceRuntime, Subscription
from shared.settings import config_file_error
from shared.tables import service_tables


def definition() -> ServiceDefinition:
    instruments: dict[str, Instrument] = {}
    rules = SiteRules(RuleConfig(), {})

    def init(runtime: ServiceRuntime) -> None:
        instruments.update(deployment_instruments(runtime.settings.instruments_dir))
        try:
            loaded = site_rules(runtime.settings.rules_file)
        except Exception as error:
            raise config_file_error("RAPPORT_RULES_FILE", error) from None
        rules.default, rules.sites = loaded.default, loaded.sites
        runtime.state["instruments"] = instruments
        runtime.state["rules"] = rules

    feedback = handlers.make_feedback_handler(instruments, rules)
    closed = handlers.make_closed_handler(instruments, MIN_CASES)

    return ServiceDefinition(
        name="analytics",
        migrations=Path(__file__).parent / "migrations",
        router=api.router,
        tables=service_tables("analytics"),
        outbox_table=models.OUTBOX,
        inbox_table=models.INBOX,
        subscriptions=[
            Subscription(
                MATCH_CONFIRMED,
                skipping_erased(erasure.REGISTER, handlers.on_match_confirmed),
                "episode_from_match",
            ),
            Subscription(
                FEEDBACK_RECORDED,
                skipping_erased(erasure.REGISTER, feedback),
                "alliance_from_feedback",
            ),
            Subscription(
                EPISODE_CLOSED,
                skipping_erased(erasure.REGISTER, closed),
                "effectiveness_from_closed_episode",
            ),
            Subscription(CLIENT_ERASURE_REQUESTED, erasure.on_erasure_requested, "erasure"),
        ],
        produces=[ALLIANCE_ASSESSED, ALLIANCE_ALERT, THERAPIST_EFFECTIVENESS_UPDATED],
        on_init=[init],
        description="Alliance state, alerts, therapist effectiveness, charts",
    )
