"""Intake's refusals, each a kind of the kernel's domain errors (``shared.errors``) with the
title its problem+json answers with. Use cases raise them; only the HTTP layer turns them into
responses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.intake.domain.matching import FieldProblem, Proposal
from shared.errors import Conflict, Invalid, NotAllowed, NotFound


class EpisodeNotFound(NotFound):
    title = "Episode not found"


class IntakeNotFound(NotFound):
    title = "Intake not found"


class MatchNotFound(NotFound):
    title = "Match not found"


class TherapistNotFound(NotFound):
    title = "Therapist not found"


class ClientNotFound(NotFound):
    title = "Client not found"


class SiteNotAllowed(NotAllowed):
    title = "Site not allowed"


class TherapistExists(Conflict):
    title = "Therapist exists"


class NoPlaceLeft(Conflict):
    title = "No place left"


class MatchAlreadyDecided(Conflict):
    title = "Match already decided"


class IntakeAlreadyMatched(Conflict):
    title = "Intake already matched"


class EpisodeNotOpen(Conflict):
    title = "Episode not open"


class EpisodeAlreadyClosed(Conflict):
    title = "Episode already closed"


class EpisodeIsClosed(Conflict):
    title = "Episode closed"


class NotAnOption(Invalid):
    title = "Not an option"


class NoIntakeToRematch(Invalid):
    title = "No intake to rematch from"


def broken(field: str, rule: str) -> list[dict[str, Any]]:
    """The ``errors`` of a refusal that names one field and its rule (no message: the detail
    says it)."""
    return [{"field": field, "rule": rule}]


class NobodyToOffer(Conflict):
    """No therapist can be offered at all (none registered, or every one inactive, conflicted
    or a past therapist of the episode): a 409 naming the reasons, never an empty proposal."""

    title = "No therapist can be offered"

    def __init__(self, proposal: Proposal, field_name: str) -> None:
        super().__init__(
            f"{proposal.summary} Register or reactivate a therapist who can see this client, "
            "then propose again; nothing was stored.",
            errors=[
                {
                    "field": field_name,
                    "rule": "no_therapist_to_offer",
                    "message": proposal.summary,
                }
            ],
        )


def invalid(errors: list[dict[str, str]]) -> Invalid:
    """A 422 naming every field and rule; the detail names the first (and how many more)."""
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    first = errors[0]
    return Invalid(f"{first['field']}: {first['message']}{more}", errors=list(errors))


# The rule code of each input check, read from its message (the engine words them).
_RULES = (
    ("unknown code", "unknown_code"),
    ("needs 0 <= start_minute", "impossible_window"),
    ("must be 0 (Monday)", "day_of_week"),
    ("must be 0 or more", "minimum"),
    ("0 or more", "minimum"),
    ("at least one", "required"),
    ("at most once", "unique"),
    ("must not be empty", "required"),
)


def _rule(message: str) -> str:
    return next((rule for text, rule in _RULES if text in message), "invalid")


def field_errors(problems: Sequence[FieldProblem], prefix: str = "") -> list[dict[str, str]]:
    """The engine's input checks as problem+json errors (field, rule, message)."""
    return [
        {"field": f"{prefix}{p.field}", "rule": _rule(p.message), "message": p.message}
        for p in problems
    ]


class MemberExists(Conflict):
    title = "Already a member of the episode"


class NotRemovable(Invalid):
    title = "Member cannot be removed"
