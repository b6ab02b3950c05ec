"""Work that falls due with time rather than with an event: undeliverable notices whose site
has a route now (or whose fallback must hear of them), escalations of unacknowledged urgent
notices, digests whose window closed, and reminders of unanswered feedback invitations. Each
kind runs in its own short transaction (in its use case); PostgreSQL's ``SKIP LOCKED`` lets
replicas share it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from services.notify.dependencies import NotifyDependencies, of_runtime
from services.notify.usecases.digests import digests_due
from services.notify.usecases.invitations import reminders_due
from services.notify.usecases.notices import escalations_due
from services.notify.usecases.rerouting import route_waiting
from shared.logs import get_logger
from shared.runtime import ServiceRuntime

log = get_logger(__name__)
DUE_WORK: tuple[Callable[[NotifyDependencies], Awaitable[int]], ...] = (
    route_waiting,
    escalations_due,
    digests_due,
    reminders_due,
)


async def run_due(deps: NotifyDependencies) -> int:
    """One round of every kind of due work; the deliveries it created."""
    created = 0
    for work in DUE_WORK:
        try:
            created += await work(deps)
        except Exception as error:  # one failing kind must not stop the others
            log.warning(
                "scheduled notify work failed; retrying",
                work=work.__name__,
                error=f"{type(error).__name__}: {error}"[:300],
            )
    return created


async def schedule_forever(runtime: ServiceRuntime) -> None:
    deps = of_runtime(runtime)
    interval = deps.settings.notify_scheduler_seconds
    while not runtime.stopping.is_set():
        if await run_due(deps):
            deps.wake_dispatcher()
        try:
            await asyncio.wait_for(runtime.stopping.wait(), interval)
        except TimeoutError:
            pass
