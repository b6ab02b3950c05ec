"""What intake's use cases need beyond the session, built once when the runtime is built: the
runtime (transactions, outbox), the settings, the matching configuration of every site, the
sites' time zones and the engine's cached view of the registry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request

from services.intake.domain.matching import SiteConfigs
from services.intake.usecases.snapshots import RegistrySnapshots
from shared.consumer import Delivery
from shared.runtime import ServiceRuntime, dependencies_of, runtime_of
from shared.settings import Settings, config_file_error
from shared.site_time import SiteTimeZones


@dataclass(frozen=True)
class IntakeDependencies:
    runtime: ServiceRuntime
    settings: Settings
    # Per-site matching weights (RAPPORT_MATCHING_FILE), the defaults when none is given.
    matching: SiteConfigs
    # The roster and effectiveness table, rebuilt only when their tables change.
    snapshots: RegistrySnapshots
    # Each site's time zone (RAPPORT_SITE_TIME_ZONES): matching and the drop-out days.
    zones: SiteTimeZones


def matching_configs(settings: Settings) -> SiteConfigs:
    """The deployment's matching configuration; a bad file stops the service at start-up,
    naming the setting and the field."""
    path = settings.matching_file
    if path is None:
        return SiteConfigs()
    try:
        return SiteConfigs.from_document(json.loads(Path(path).read_text(encoding="utf-8")))
    except Exception as error:
        raise config_file_error("RAPPORT_MATCHING_FILE", error) from None


def build(runtime: ServiceRuntime) -> IntakeDependencies:
    return IntakeDependencies(
        runtime=runtime,
        settings=runtime.settings,
        matching=matching_configs(runtime.settings),
        snapshots=RegistrySnapshots(),
        zones=runtime.settings.time_zones(),
    )


def of_request(request: Request) -> IntakeDependencies:
    return dependencies_of(runtime_of(request, "intake"), IntakeDependencies)


def of_delivery(delivery: Delivery[Any]) -> IntakeDependencies:
    return dependencies_of(delivery, IntakeDependencies)


Deps = Annotated[IntakeDependencies, Depends(of_request)]
