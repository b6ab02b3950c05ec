"""Closed code lists as API types: an ``enum`` in the OpenAPI document, and a value outside the
list refused with one 422 error (rule ``unknown_code``) that names the valid codes.

    DomainCode = one_of(PROBLEM_DOMAINS, "problem domain")
    class IntakeIn(BaseModel):
        domains: list[DomainCode]

Works the same for body fields, query parameters and headers. A list decided at start-up (a
site's instruments) stays a plain string: its errors still name the valid codes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

UNKNOWN_CODE = "unknown_code"


def unknown_code_message(value: object, valid: Iterable[str], what: str = "code") -> str:
    return f"unknown {what} {value!r}; valid: {', '.join(sorted(valid))}"


def one_of(codes: Iterable[str], what: str = "code") -> Any:
    """The type of one code of ``codes`` (kept in sorted order in the OpenAPI ``enum``)."""
    valid = tuple(sorted(set(codes)))
    known = frozenset(valid)

    def check(value: str) -> str:
        if value not in known:
            raise PydanticCustomError(
                UNKNOWN_CODE,
                "{message}",
                {"message": unknown_code_message(value, valid, what), "valid": list(valid)},
            )
        return value

    return Annotated[str, Field(json_schema_extra={"enum": list(valid)}), AfterValidator(check)]
