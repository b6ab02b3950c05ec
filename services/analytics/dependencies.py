"""What analytics' use cases need beyond the session, built once when the runtime is built: the
runtime (transactions, outbox), the settings, the deployment's instruments and each site's rule
configuration, the expected-trajectories model in use and each site's time zone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from services.analytics.rules_config import SiteRules, site_rules
from services.analytics.trajectory_model import CurrentModel
from shared.consumer import Delivery
from shared.instruments import Instrument, deployment_instruments
from shared.runtime import ServiceRuntime, dependencies_of, runtime_of
from shared.settings import Settings, SettingsError, config_file_error
from shared.site_time import SiteTimeZones


@dataclass(frozen=True)
class AnalyticsDependencies:
    runtime: ServiceRuntime
    settings: Settings
    # The questionnaires this deployment knows, by id (thresholds, direction, ranges).
    instruments: dict[str, Instrument]
    # The alert rules' numbers: the default and each site's overrides (RAPPORT_RULES_FILE).
    rules: SiteRules
    # Rule 9's expected-trajectories model (RAPPORT_TRAJECTORIES_FILE), re-read when it changes.
    trajectories: CurrentModel
    # Each site's time zone (RAPPORT_SITE_TIME_ZONES): days without contact are site-local.
    zones: SiteTimeZones


def build(runtime: ServiceRuntime) -> AnalyticsDependencies:
    instruments = deployment_instruments(runtime.settings.instruments_dir)
    try:
        rules = site_rules(runtime.settings.rules_file)
    except Exception as error:
        raise config_file_error("RAPPORT_RULES_FILE", error) from None
    try:
        trajectories = CurrentModel(runtime.settings.trajectories_file, instruments)
    except (OSError, ValueError) as error:  # ModelRefused names every fault, one per line
        faults = "; ".join(line.strip() for line in str(error).splitlines())
        raise SettingsError(f"RAPPORT_TRAJECTORIES_FILE: {faults}") from None
    return AnalyticsDependencies(
        runtime=runtime,
        settings=runtime.settings,
        instruments=instruments,
        rules=rules,
        trajectories=trajectories,
        zones=runtime.settings.time_zones(),
    )


def of_request(request: Request) -> AnalyticsDependencies:
    return dependencies_of(runtime_of(request, "analytics"), AnalyticsDependencies)


def of_delivery(delivery: Delivery[Any]) -> AnalyticsDependencies:
    return dependencies_of(delivery, AnalyticsDependencies)


Deps = Annotated[AnalyticsDependencies, Depends(of_request)]
