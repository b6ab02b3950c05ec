"""What a use case says when it refuses: a small hierarchy of domain errors.

Use cases (the plain async functions that routes and subscribers both call) raise these; they
know nothing of HTTP. The HTTP edge turns each into problem+json with its status
(:func:`shared.problems.problem_from_domain_error`), a FHIR route into an OperationOutcome. A
subscriber that meets one for an event it can never apply rejects the event
(:class:`shared.consumer.HandlerRejected`).

Every error names what was wrong for a person who can act on it: ``detail`` in a sentence,
and where one field is at fault, ``field`` (a dotted path such as ``items.goals`` or
``availability.0.start_minute``) and ``rule`` (a short code such as ``one_answer_per_session``).
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """A request or event the domain refuses. Subclasses say which kind of refusal."""

    title: ClassVar[str] = "Refused"

    def __init__(
        self,
        detail: str,
        *,
        field: str | None = None,
        rule: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        extensions: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.rule = rule
        self.extensions = extensions or {}
        self.headers = headers or {}
        if errors is None and field is not None:
            errors = [{"field": field, "rule": rule or "invalid", "message": detail}]
        self.errors = errors or []


class NotFound(DomainError):
    """The thing does not exist, or is not visible to the caller (never say which)."""

    title = "Not found"


class NotAllowed(DomainError):
    """The caller's role or sites do not allow this."""

    title = "Not allowed"


class Conflict(DomainError):
    """The request contradicts what is already stored (a second answer, a closed episode)."""

    title = "Conflict"


class Gone(DomainError):
    """The thing existed but can no longer be used (a used or expired one-time link)."""

    title = "Gone"


class Invalid(DomainError):
    """The request is well formed but breaks a rule of the domain (a field and its rule)."""

    title = "Invalid request"


class Unavailable(DomainError):
    """Something the use case needs is briefly unavailable; nothing was stored. Retry."""

    title = "Temporarily unavailable"
