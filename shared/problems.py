"""RFC 9457 problem details: every error a person can act on, naming the field and the rule."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.db import is_transient
from shared.errors import (
    Conflict,
    DomainError,
    Gone,
    Invalid,
    NotAllowed,
    NotFound,
    Unavailable,
)
from shared.logs import get_logger
from shared.vocabulary import UNKNOWN_CODE, unknown_code_message

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


# FHIR routes (every path with a ``/fhir/`` segment) answer errors as a FHIR R4
# OperationOutcome instead: one issue per error, its ``expression`` the same dotted field path.
FHIR_JSON = "application/fhir+json"
_FHIR_ISSUE_TYPES = {
    400: "structure",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "conflict",
    410: "expired",
    413: "too-costly",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
    503: "transient",
}

OPERATION_OUTCOME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "FHIR R4 OperationOutcome: what a FHIR route answers instead of "
    "problem+json (issue.expression: the field; issue.details.coding: the rule).",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"type": "string", "enum": ["fatal", "error"]},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                    "details": {"type": "object"},
                },
            },
        },
    },
}


def is_fhir_path(path: str) -> bool:
    """A FHIR route: under a ``/fhir/`` segment, or the FHIR base itself (Bundles are posted
    there)."""
    return "/fhir/" in path or path.rstrip("/").endswith("/fhir")


def operation_outcome(problem: Problem) -> dict[str, Any]:
    code = _FHIR_ISSUE_TYPES.get(problem.status, "exception")
    severity = "fatal" if problem.status >= 500 else "error"
    issues: list[dict[str, Any]] = []
    for error in problem.errors:
        field = str(error.get("field", ""))
        rule = str(error.get("rule", "invalid"))
        issue: dict[str, Any] = {
            "severity": severity,
            "code": code,
            "diagnostics": f"{field}: {error.get('message', rule)}",
            "details": {
                "coding": [{"system": "urn:rapport:problem:rule", "code": rule}],
                "text": problem.title,
            },
        }
        if field:
            issue["expression"] = [field]
        issues.append(issue)
    if not issues:
        issues.append(
            {
                "severity": severity,
                "code": code,
                "diagnostics": problem.detail,
                "details": {"text": problem.title},
            }
        )
    return {"resourceType": "OperationOutcome", "issue": issues}


def problem_response(problem: Problem, instance: str) -> JSONResponse:
    """The error as problem+json, or as an OperationOutcome on a FHIR route (unless the route
    composed its own answer: ``content``)."""
    if is_fhir_path(instance) and problem.content is None:
        return JSONResponse(
            operation_outcome(problem),
            status_code=problem.status,
            headers=problem.headers,
            media_type=FHIR_JSON,
        )
    return JSONResponse(
        problem.content if problem.content is not None else problem.body(instance),
        status_code=problem.status,
        headers=problem.headers,
        media_type=problem.media_type,
    )


def unsupported_media_type(given: str, accepted: Sequence[str]) -> Problem:
    return Problem(
        415,
        "Unsupported media type",
        f"Send the body as {' or '.join(accepted)}, not {given or 'nothing'}.",
        errors=[
            {
                "field": "content-type",
                "rule": "media_type",
                "message": f"{given or 'nothing'} is not {' or '.join(accepted)}",
                "valid": list(accepted),
            }
        ],
    )


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    """A field path, dotted everywhere: ``items.goals``, ``availability.0.start_minute``,
    ``kind`` (a query parameter), ``idempotency-key`` (a header)."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:] or parts
    return ".".join(parts) or "(body)"


# How pydantic names the members of a union in an error's ``loc`` (``float``, ``int``,
# ``constrained-str``, ``list[int]``, ``PreferenceIn`` …), and what a client would call them.
_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "a boolean",
    "none": "null",
    "date": "a date",
    "datetime": "a date-time",
}


def _union_member(part: Any) -> str | None:
    """The type a union member stands for, when ``part`` is such a member's tag."""
    if not isinstance(part, str) or not part:
        return None
    base = part.split("[", 1)[0]
    if base in _TYPE_WORDS:
        return _TYPE_WORDS[base]
    if base.startswith("constrained-"):
        return _TYPE_WORDS.get(base.removeprefix("constrained-"), "a " + base[12:])
    if base in {"list", "tuple", "set", "frozenset"}:
        return "an array"
    if base in {"dict", "typed-dict"} or part[:1].isupper():
        return "an object"
    if base in {"literal", "function-after", "function-before", "function-wrap", "nullable"}:
        return "a value of the documented form"
    return None


def _collapse_unions(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One error per wrongly typed value: pydantic reports a value that fits none of a union's
    types once per type (``items.goals.float``, ``items.goals.int``); keep one, at the value's
    own path, naming every accepted type."""
    groups: dict[tuple[str, ...], list[tuple[str, dict[str, Any]]]] = {}
    for e in raw:
        loc = tuple(e.get("loc", ()))
        for i in range(len(loc) - 1, 0, -1):  # the innermost union (a key may look like a tag)
            member = _union_member(loc[i])
            if member is not None:
                groups.setdefault(tuple(map(str, loc[:i])), []).append((member, e))
                break
    out: list[dict[str, Any]] = []
    done: set[tuple[str, ...]] = set()
    for e in raw:
        key = next((k for k, members in groups.items() if any(m[1] is e for m in members)), None)
        if key is None or len({m for m, _ in groups[key]}) < 2:
            out.append(e)
            continue
        if key in done:
            continue
        done.add(key)
        expected = list(dict.fromkeys(m for m, _ in groups[key]))
        words = ", ".join(expected[:-1]) + f" or {expected[-1]}"
        out.append(
            {
                "loc": key,
                "type": "wrong_type",
                "msg": f"must be {words}",
                "input": e.get("input"),
            }
        )
    return out


def _valid_codes(e: dict[str, Any]) -> list[str] | None:
    ctx = e.get("ctx") or {}
    if isinstance(ctx.get("valid"), list):
        return [str(v) for v in ctx["valid"]]
    if e.get("type") in {"literal_error", "enum"} and isinstance(ctx.get("expected"), str):
        return re.findall(r"'([^']*)'", ctx["expected"])
    return None


def field_error(e: dict[str, Any]) -> dict[str, Any]:
    """One pydantic error as the API reports it: the dotted ``field``, the ``rule`` and a
    ``message``; an unknown code also gets ``valid`` (the codes that would do)."""
    error: dict[str, Any] = {
        "field": _field(e.get("loc", ())),
        "rule": str(e.get("type", "invalid")),
        "message": str(e.get("msg", "invalid")),
    }
    valid = _valid_codes(e)
    if valid is not None:
        error["rule"] = UNKNOWN_CODE
        error["valid"] = valid
        if e.get("type") != UNKNOWN_CODE:
            error["message"] = unknown_code_message(e.get("input"), valid)
    return error


def validation_problem(error: RequestValidationError) -> Problem:
    errors = [field_error(e) for e in _collapse_unions(list(error.errors()))]
    first = errors[0] if errors else {"field": "(body)", "message": "invalid"}
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return Problem(
        422, "Invalid request", f"{first['field']}: {first['message']}{more}", errors=errors
    )


# The HTTP status of each kind of domain refusal (shared/errors.py): the one place it is said.
DOMAIN_STATUS: dict[type[DomainError], int] = {
    NotFound: 404,
    NotAllowed: 403,
    Conflict: 409,
    Gone: 410,
    Invalid: 422,
    Unavailable: 503,
}


def problem_from_domain_error(error: DomainError) -> Problem:
    """The problem+json a use case's refusal answers with (422 for an unclassified one)."""
    status = next((code for kind, code in DOMAIN_STATUS.items() if isinstance(error, kind)), 422)
    headers = dict(error.headers)
    if status == 503:
        headers.setdefault("Retry-After", "5")
    return Problem(
        status,
        error.title,
        error.detail,
        errors=error.errors,
        headers=headers,
        extensions=error.extensions,
    )


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, problem: Problem) -> JSONResponse:
        return problem_response(problem, request.url.path)

    @app.exception_handler(DomainError)
    async def _refused(request: Request, error: DomainError) -> JSONResponse:
        return problem_response(problem_from_domain_error(error), request.url.path)

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
