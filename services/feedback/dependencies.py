"""What feedback's use cases need beyond the session, built once when the runtime is built:
the runtime (transactions, outbox), the settings and the deployment's instruments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from shared.consumer import Delivery
from shared.instruments import Instrument, deployment_instruments
from shared.runtime import ServiceRuntime, dependencies_of, runtime_of
from shared.settings import Settings


@dataclass(frozen=True)
class FeedbackDependencies:
    runtime: ServiceRuntime
    settings: Settings
    # The questionnaires this deployment scores, by id.
    instruments: dict[str, Instrument]


def build(runtime: ServiceRuntime) -> FeedbackDependencies:
    return FeedbackDependencies(
        runtime=runtime,
        settings=runtime.settings,
        instruments=deployment_instruments(runtime.settings.instruments_dir),
    )


def of_request(request: Request) -> FeedbackDependencies:
    return dependencies_of(runtime_of(request, "feedback"), FeedbackDependencies)


def of_delivery(delivery: Delivery[Any]) -> FeedbackDependencies:
    return dependencies_of(delivery, FeedbackDependencies)


Deps = Annotated[FeedbackDependencies, Depends(of_request)]
