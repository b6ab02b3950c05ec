"""Bodies a route reads itself because it takes them in more than one media type (the imports
and the session diary: JSON or CSV): which one was sent, and JSON checked exactly as FastAPI
checks a typed body (the same 422 naming each field)."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from shared.csv_table import CSV_MEDIA_TYPE

T = TypeVar("T")


def is_csv(request: Request) -> bool:
    given = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return given == CSV_MEDIA_TYPE


def json_body(adapter: TypeAdapter[T], body: bytes) -> T:
    """The JSON body as ``adapter``'s type, or FastAPI's own 422 (fields under ``body``)."""
    try:
        return adapter.validate_json(body)
    except ValidationError as error:
        errors: list[Any] = [
            {**e, "loc": ("body", *e.get("loc", ()))} for e in error.errors(include_url=False)
        ]
        raise RequestValidationError(errors, body=body) from None
