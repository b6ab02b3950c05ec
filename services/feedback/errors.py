"""Feedback's refusals, each a kind of the kernel's domain errors (``shared.errors``) with the
title its problem+json (or OperationOutcome) answers with. Use cases raise them; only the HTTP
layer turns them into responses."""

from __future__ import annotations

from typing import Any

from shared.errors import Conflict, Gone, Invalid, NotAllowed, NotFound


class EpisodeNotFound(NotFound):
    title = "Episode not found"


class ResponseNotFound(NotFound):
    title = "Response not found"


class QuestionnaireNotFound(NotFound):
    title = "Questionnaire not found"


class GoalNotFound(NotFound):
    title = "Goal not found"


class TooManyActiveGoals(Conflict):
    title = "Too many active goals"


class InvalidAnswers(Invalid):
    """Answers the instrument (or the link) cannot take: every item and rule named."""

    title = "Invalid answers"


class AlreadyAnswered(Conflict):
    title = "Already answered"


class AlreadyAmended(Conflict):
    title = "Response already amended"


class IdempotencyKeyInUse(Conflict):
    title = "Idempotency key in use"


class IdempotencyKeyReused(Invalid):
    title = "Idempotency key reused for a different request"


class LinkNotValid(NotAllowed):
    title = "Feedback link not valid"


class LinkExpired(Gone):
    title = "Feedback link not valid"


class LinkUsed(Gone):
    title = "Feedback link already used"


def already_answered(existing_id: str) -> AlreadyAnswered:
    """409 naming the response that stands for this episode, session, respondent and
    instrument (and how to change it)."""
    url = f"/feedback/responses/{existing_id}"
    error: dict[str, Any] = {
        "field": "session_number",
        "rule": "one_answer_per_session",
        "existing_response_id": existing_id,
    }
    return AlreadyAnswered(
        "This respondent already answered this instrument for this session of the episode "
        f"(response {existing_id}). To change that answer, amend it: POST {url}/amend.",
        errors=[error],
        extensions={"existing_response_id": existing_id, "existing_response": url},
    )


class EncounterTaken(Conflict):
    title = "Encounter already registered"


class ConsentWithdrawn(NotAllowed):
    title = "Consent withdrawn"


class NoticeNotShown(Invalid):
    title = "Confidentiality notice not shown"


class SessionFactRefused(Conflict):
    """A session fact that contradicts what is stored (another outcome, back to scheduled)."""

    title = "Session fact refused"


class SessionFactIncomplete(Invalid):
    title = "Session fact incomplete"


class EpisodeEnded(Conflict):
    """A session fact for a closed, withdrawn or transferred episode."""

    title = "Episode ended"
