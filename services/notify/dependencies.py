"""What notify's use cases, subscribers, scheduler and dispatcher need beyond the session, built
once when the runtime is built: the runtime (transactions, outbox), the settings, the policies
and site-routing cache, the Redis fast path, the sealing keys, the deployment's instruments
and the dispatcher's wake-up."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from services.notify.fastpath import FastPath
from services.notify.policy import PolicyBook, load_policy_file
from services.notify.sealing import Sealing
from services.notify.site_routing import Policies
from services.notify.undelivered import Looked
from shared.consumer import Delivery
from shared.instruments import Instrument, deployment_instruments
from shared.runtime import ServiceRuntime, dependencies_of, runtime_of
from shared.settings import Settings


def available_channels(settings: Settings) -> frozenset[str]:
    """The channels this deployment can send on: webhooks always; email with an SMTP host;
    SMS with a provider URL. Messages are planned on these only (a policy naming another
    is not an error: the deployment may add it later)."""
    available = {"webhook"}
    if settings.notify_smtp_host:
        available.add("email")
    if settings.notify_sms_provider_url:
        available.add("sms")
    return frozenset(available)


@dataclass(frozen=True)
class NotifyDependencies:
    runtime: ServiceRuntime
    settings: Settings
    policies: Policies
    fast: FastPath
    sealing: Sealing
    channels: frozenset[str]
    # The deployment's instruments: their LOINC codes and ranges for the results webhook.
    instruments: dict[str, Instrument] = field(default_factory=dict)
    # Set when there is something for the dispatcher to send (it also looks on its own).
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # The last look at each site's undeliverable notices (only spares needless work: the
    # notices' own rows say what waits).
    looked: dict[str, Looked] = field(default_factory=dict)

    def wake_dispatcher(self) -> None:
        self.wake.set()

    @property
    def ops_fallback(self) -> str | None:
        """The deployment's ops fallback address, when email can reach it."""
        return self.settings.notify_ops_fallback_email if "email" in self.channels else None


def build(runtime: ServiceRuntime) -> NotifyDependencies:
    settings = runtime.settings
    configured = (
        load_policy_file(settings.notify_policy_file) if settings.notify_policy_file else None
    )
    return NotifyDependencies(
        runtime=runtime,
        settings=settings,
        policies=Policies(PolicyBook(configured), settings.time_zones()),
        fast=FastPath(runtime.redis, settings.topic_prefix),
        sealing=Sealing(settings.encryption_key.get_secret_value()),
        channels=available_channels(settings),
        instruments=deployment_instruments(settings.instruments_dir),
    )


def of_runtime(runtime: ServiceRuntime) -> NotifyDependencies:
    """For the service's own background work (dispatcher, scheduler, readiness warnings)."""
    return dependencies_of(runtime, NotifyDependencies)


def of_request(request: Request) -> NotifyDependencies:
    return of_runtime(runtime_of(request, "notify"))


def of_delivery(delivery: Delivery[Any]) -> NotifyDependencies:
    return dependencies_of(delivery, NotifyDependencies)


Deps = Annotated[NotifyDependencies, Depends(of_request)]
