"""Admission: a process answers at most ``RAPPORT_HTTP_MAX_IN_FLIGHT`` HTTP requests at once.

Under overload a queue only makes every request late. A request that arrives while the limit
is reached is refused at once, before any work: 503 problem+json (an ``OperationOutcome`` on
FHIR routes) with ``Retry-After``; its body is never read, no token checked, no database
touched, so nothing of it is stored. The probes (``/healthz``, ``/readyz``, ``/metrics``) are
always admitted and never counted, so an orchestrator still sees a busy process as alive.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from starlette.types import ASGIApp, Receive, Scope, Send

from shared.logs import get_logger
from shared.metrics import HTTP_IN_FLIGHT, HTTP_REFUSED
from shared.problems import Problem, problem_response

log = get_logger("rapport.admission")

PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
OVERLOADED = "urn:rapport:problem:overloaded"
# At most one warning per this many seconds says how many requests were refused since the last.
WARNING_INTERVAL_SECONDS = 60.0


def overloaded(limit: int, retry_after_seconds: int) -> Problem:
    unit = "second" if retry_after_seconds == 1 else "seconds"
    return Problem(
        503,
        "Service overloaded",
        f"This process is already answering {limit} requests at once, its limit "
        f"(RAPPORT_HTTP_MAX_IN_FLIGHT); nothing was done or stored. Retry after "
        f"{retry_after_seconds} {unit}.",
        headers={"Retry-After": str(retry_after_seconds)},
        type_=OVERLOADED,
    )


class AdmissionLimit:
    """Pure ASGI, outermost: count the HTTP requests in flight in this process and refuse
    (503 + ``Retry-After``) any that arrives while ``limit`` are (``limit`` 0: no limit).
    Websocket and lifespan scopes pass through."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        retry_after_seconds: int,
        service: str,
        exempt: Collection[str] = PROBES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.limit = limit
        self.retry_after_seconds = retry_after_seconds
        self.service = service
        self.exempt = frozenset(exempt)
        self.in_flight = 0
        self._clock = clock
        self._refused_unreported = 0
        self._last_warning: float | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.limit == 0 or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await self._refuse(scope, receive, send)
            return
        self.in_flight += 1
        HTTP_IN_FLIGHT.labels(self.service).inc()
        try:
            await self.app(scope, receive, send)
        finally:
            # Also when the client went away or the app raised: a slot is never leaked.
            self.in_flight -= 1
            HTTP_IN_FLIGHT.labels(self.service).dec()

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        HTTP_REFUSED.labels(self.service).inc()
        self._note_refusal()
        problem = overloaded(self.limit, self.retry_after_seconds)
        await problem_response(problem, scope["path"])(scope, receive, send)

    def _note_refusal(self) -> None:
        """No log line per refusal (a flood of them would be an outage of its own): one
        warning at most every minute, with how many were refused since the last one."""
        self._refused_unreported += 1
        now = self._clock()
        if self._last_warning is not None and now - self._last_warning < WARNING_INTERVAL_SECONDS:
            return
        log.warning(
            "requests refused: over the in-flight limit",
            service=self.service,
            refused=self._refused_unreported,
            limit=self.limit,
        )
        self._refused_unreported = 0
        self._last_warning = now
