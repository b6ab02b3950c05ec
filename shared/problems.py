"""RFC 9457 problem details: every error a person can act on, naming the field and the rule."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.db import is_transient
from shared.logs import get_logger

PROBLEM_JSON = "application/problem+json"
log = get_logger(__name__)


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, as every error response of the API."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str
    errors: list[dict[str, Any]] | None = None


def _documented(description: str) -> dict[str, Any]:
    return {
        "model": ProblemDetails,
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}},
    }


# Every route may answer with these; documenting them keeps the OpenAPI spec honest.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _documented("Malformed request"),
    401: _documented("Missing or invalid bearer token"),
    403: _documented("Role or site not allowed"),
    404: _documented("Not found (or not visible to you)"),
    409: _documented("Conflict"),
    410: _documented("Gone (e.g. a used or expired link)"),
    413: _documented("Body too large"),
    415: _documented("Unsupported media type"),
    422: _documented("Invalid request: the errors name each field and rule"),
    429: _documented("Too many requests"),
    503: _documented("A dependency is briefly unavailable; retry"),
}


class Problem(Exception):
    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        type_: str = "about:blank",
        extensions: dict[str, Any] | None = None,
        media_type: str = PROBLEM_JSON,
        content: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}
        self.type = type_
        # RFC 9457 extension members (e.g. the resource a 409 conflicts with).
        self.extensions = extensions or {}
        # A route that speaks another error format (FHIR: an OperationOutcome) sends that.
        self.media_type = media_type
        self.content = content

    def body(self, instance: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        }
        if self.errors:
            body["errors"] = self.errors
        return {**self.extensions, **body}


def problem_response(problem: Problem, instance: str) -> JSONResponse:
    return JSONResponse(
        problem.content if problem.content is not None else problem.body(instance),
        status_code=problem.status,
        headers=problem.headers,
        media_type=problem.media_type,
    )


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:] or parts
    return ".".join(parts) or "(body)"


def validation_problem(error: RequestValidationError) -> Problem:
    errors = [
        {
            "field": _field(e.get("loc", ())),
            "rule": str(e.get("type", "invalid")),
            "message": str(e.get("msg", "invalid")),
        }
        for e in error.errors()
    ]
    first = errors[0] if errors else {"field": "(body)", "message": "invalid"}
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return Problem(
        422, "Invalid request", f"{first['field']}: {first['message']}{more}", errors=errors
    )


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, problem: Problem) -> JSONResponse:
        return problem_response(problem, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return problem_response(validation_problem(error), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed", 413: "Body too large"}
        problem = Problem(
            error.status_code,
            titles.get(error.status_code, "Error"),
            str(error.detail),
            headers=dict(error.headers or {}),
        )
        return problem_response(problem, request.url.path)

    async def _dependency(request: Request, error: Exception) -> JSONResponse:
        if not is_transient(error):
            return await _unexpected(request, error)
        log.warning("dependency unavailable", path=request.url.path, error=type(error).__name__)
        return problem_response(
            Problem(
                503,
                "Temporarily unavailable",
                "A service this request needs is briefly unavailable; nothing was "
                "stored. Retry after a few seconds.",
                headers={"Retry-After": "5"},
            ),
            request.url.path,
        )

    # Registered per class (not on Exception) so they answer without Starlette re-raising.
    for transient in (DBAPIError, OSError, TimeoutError, RedisConnectionError):
        app.add_exception_handler(transient, _dependency)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error", path=request.url.path)
        return problem_response(
            Problem(
                500,
                "Internal error",
                "Something went wrong on our side; nothing was "
                "stored. Try again, and tell support the correlation id.",
            ),
            request.url.path,
        )
