"""The client's goals as FHIR R4 ``Goal`` resources (issue 19). Pure: no I/O.

A goal reads as a Goal whose ``description.text`` is the client's words, ``lifecycleStatus``
``active`` (``completed`` with ``achievementStatus`` ``achieved`` once achieved, ``cancelled``
once dropped), ``meta.versionId`` its revision, the episode in ``urn:rapport:fhir:episode-id``
and its order in ``urn:rapport:fhir:goal-order``; ``subject`` names the client by pseudonym
(no identity leaves through it). A Goal created through FHIR needs the episode extension and
``description.text`` (1–500 characters), and may only be ``active`` (or say no status); its
ratings are a ``goals`` QuestionnaireResponse whose linkIds are the goals' ids."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from services.feedback.fhir import FhirError

EXT_EPISODE: Final = "urn:rapport:fhir:episode-id"
EXT_ORDER: Final = "urn:rapport:fhir:goal-order"
PSEUDONYM_SYSTEM: Final = "urn:rapport:fhir:client-pseudonym"
ACHIEVEMENT: Final = "http://terminology.hl7.org/CodeSystem/goal-achievement"
LIFECYCLE: Final = {"active": "active", "achieved": "completed", "dropped": "cancelled"}


@dataclass(frozen=True)
class GoalView:
    """A goal as the resource shows it (its latest revision, text unsealed)."""

    goal_id: str
    revision: int
    episode_id: str
    client: str
    position: int
    status: str
    text: str
    changed_at: datetime


@dataclass(frozen=True)
class NewGoal:
    episode_id: str
    text: str


def goal_resource(goal: GoalView) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Goal",
        "id": goal.goal_id,
        "meta": {"versionId": str(goal.revision), "lastUpdated": goal.changed_at.isoformat()},
        "extension": [
            {"url": EXT_EPISODE, "valueString": goal.episode_id},
            {"url": EXT_ORDER, "valueInteger": goal.position},
        ],
        "lifecycleStatus": LIFECYCLE.get(goal.status, "active"),
        "description": {"text": goal.text},
        "subject": {"identifier": {"system": PSEUDONYM_SYSTEM, "value": goal.client}},
    }
    if goal.status == "achieved":
        resource["achievementStatus"] = {
            "coding": [{"system": ACHIEVEMENT, "code": "achieved", "display": "Achieved"}]
        }
    return resource


def new_goal(resource: object, text_limit: int) -> NewGoal:
    """What a posted Goal asks for, or a :class:`FhirError` naming the field and the rule."""
    if not isinstance(resource, dict):
        raise FhirError("(body)", "not_an_object", "a FHIR resource is a JSON object")
    if resource.get("resourceType") != "Goal":
        raise FhirError("resourceType", "not_goal", "this route takes a Goal")
    status = resource.get("lifecycleStatus", "active")
    if status != "active":
        raise FhirError("lifecycleStatus", "only_active", "a new goal is active (revise it later)")
    description = resource.get("description")
    text = description.get("text") if isinstance(description, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise FhirError("description.text", "required", "the goal in the client's own words")
    if len(text) > text_limit:
        raise FhirError("description.text", "too_long", f"at most {text_limit} characters")
    extensions = resource.get("extension")
    episode = None
    if isinstance(extensions, list):
        episode = next(
            (
                e.get("valueString")
                for e in extensions
                if isinstance(e, dict) and e.get("url") == EXT_EPISODE
            ),
            None,
        )
    if not isinstance(episode, str) or not episode or len(episode) > 64:
        raise FhirError(
            "extension", "episode_required", f"the episode in the {EXT_EPISODE} extension"
        )
    return NewGoal(episode_id=episode, text=text)
