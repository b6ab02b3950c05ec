"""The HTTP edge every service shares: problem+json errors, body limits, correlation ids and
trace context, access logs, ``/healthz`` (liveness: never depends on Kafka), ``/readyz``
(Kafka, database and Redis reachable) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.admission import PROBES, AdmissionLimit
from shared.logs import get_logger
from shared.metrics import HTTP_REQUESTS
from shared.problems import (
    FHIR_JSON,
    OPERATION_OUTCOME_SCHEMA,
    PROBLEM_JSON,
    PROBLEM_RESPONSES,
    Problem,
    install_problem_handlers,
    is_fhir_path,
    operation_outcome,
    unsupported_media_type,
)
from shared.tracing import HTTP_CORRELATION_HEADER, TRACEPARENT, bound, from_headers

log = get_logger("rapport.http")

# Every list route pages: ``limit`` defaults to 100; above 500 is refused (422 naming ``limit``),
# not silently clamped, so a client never mistakes a cut list for the whole.
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
PageLimit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_PAGE_SIZE,
        description=f"Items per page: default {DEFAULT_PAGE_SIZE}, at most {MAX_PAGE_SIZE}.",
    ),
]
PageOffset = Annotated[int, Query(ge=0, le=100_000, description="Items to skip.")]

Readiness = Callable[[], Awaitable[dict[str, str]]]


def accepted_media_types(route: Any) -> tuple[str, ...]:
    """The media types a route takes its body in (empty: it takes none): FastAPI's body
    parameter's, and those a route declares itself in ``openapi_extra`` (FHIR's), plus JSON."""
    if not isinstance(route, APIRoute):
        return ()
    declared: list[str] = []
    if route.body_field is not None:
        declared.append(getattr(route.body_field.field_info, "media_type", "application/json"))
    extra = (route.openapi_extra or {}).get("requestBody", {}).get("content", {})
    if extra:
        declared += [*extra, "application/json"]
    return tuple(dict.fromkeys(declared))


async def require_declared_media_type(request: Request) -> None:
    """415 (problem+json naming ``content-type`` and the accepted types) for a body sent as
    anything but what the route declares, on every route that takes one; an empty body is
    left to the body's own validation (``missing``)."""
    accepted = accepted_media_types(request.scope.get("route"))
    if not accepted or not await request.body():
        return
    given = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if given not in accepted:
        raise unsupported_media_type(given, accepted)


def _fhir_error_responses(spec: dict[str, Any]) -> dict[str, Any]:
    """Document FHIR routes' errors as what they are: OperationOutcome, not problem+json."""
    spec.setdefault("components", {}).setdefault("schemas", {})["OperationOutcome"] = (
        OPERATION_OUTCOME_SCHEMA
    )
    outcome = {FHIR_JSON: {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}}
    for path, operations in spec.get("paths", {}).items():
        if not is_fhir_path(path):
            continue
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = dict(outcome)
    return spec


class EdgeMiddleware:
    """Pure ASGI: cap body size (413 before parsing), bind ids, time and log each request."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        correlation_id, trace = from_headers(headers)
        started = time.perf_counter()
        status_holder = {"status": 500}
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._too_large(scope, send, correlation_id, trace.header())
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # FastAPI turns other errors raised while reading a body into 400.
                    raise StarletteHTTPException(413, self._limit_detail())
            return message

        async def tagged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                extra = [
                    (HTTP_CORRELATION_HEADER.lower().encode(), correlation_id.encode()),
                    (TRACEPARENT.encode(), trace.header().encode()),
                ]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        with bound(correlation_id, trace):
            try:
                await self.app(scope, limited_receive, tagged_send)
            finally:
                route = scope.get("route")
                path = getattr(route, "path", None) or "unmatched"
                elapsed = time.perf_counter() - started
                HTTP_REQUESTS.labels(scope["method"], path, str(status_holder["status"])).observe(
                    elapsed
                )
                if path not in PROBES:
                    log.info(
                        "http request",
                        method=scope["method"],
                        route=path,
                        status=status_holder["status"],
                        ms=round(elapsed * 1000, 2),
                    )

    def _limit_detail(self) -> str:
        return f"The request body exceeds {self.max_body_bytes} bytes."

    async def _too_large(
        self, scope: Scope, send: Send, correlation_id: str, traceparent: str
    ) -> None:
        path = scope.get("path", "")
        problem = Problem(413, "Body too large", self._limit_detail())
        fhir = is_fhir_path(path)
        body = json.dumps(operation_outcome(problem) if fhir else problem.body(path)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", (FHIR_JSON if fhir else PROBLEM_JSON).encode()),
                    (b"content-length", str(len(body)).encode()),
                    (HTTP_CORRELATION_HEADER.lower().encode(), correlation_id.encode()),
                    (TRACEPARENT.encode(), traceparent.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def create_http_app(
    *,
    title: str,
    routers: Sequence[APIRouter],
    readiness: Readiness,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None,
    max_body_bytes: int,
    state: dict[str, Any],
    warnings: Readiness | None = None,
    service: str = "rapport",
    max_in_flight: int = 0,
    retry_after_seconds: int = 1,
) -> FastAPI:
    """The HTTP app of one process (``service``: its services' names, the metrics' label).
    Outermost is the admission limit (``max_in_flight`` requests at once, 0: none), so a
    refused request meets nothing else; then the edge (body limit, ids, access log)."""
    app = FastAPI(
        title=title,
        version="1",
        lifespan=lifespan,
        description="Rapport HTTP API. Errors are RFC 9457 problem+json.",
    )
    for key, value in state.items():
        setattr(app.state, key, value)
    install_problem_handlers(app)
    for router in routers:
        app.include_router(
            router,
            responses=PROBLEM_RESPONSES,
            dependencies=[Depends(require_declared_media_type)],
        )
    documented = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _fhir_error_responses(documented())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/healthz", tags=["operations"], summary="Liveness (process is up)")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness (Kafka, database, Redis); warnings that need an operator but do "
        "not make the service unready are listed under warnings",
        responses={503: {"description": "A dependency is not reachable"}},
    )
    async def readyz() -> JSONResponse:
        checks = await readiness()
        ready = all(v == "ok" for v in checks.values())
        body: dict[str, Any] = {"status": "ready" if ready else "not_ready", "checks": checks}
        found = await warnings() if warnings is not None else {}
        if found:
            body["warnings"] = found
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(EdgeMiddleware, max_body_bytes=max_body_bytes)
    # Added last, so outermost.
    app.add_middleware(
        AdmissionLimit,
        limit=max_in_flight,
        retry_after_seconds=retry_after_seconds,
        service=service,
    )
    return app
