"""The ``encounter`` context (issue 20): a front-end registers the Encounter identifier of an
episode's session (``PUT /feedback/episodes/{id}/sessions/{n}/encounter``), and a
QuestionnaireResponse (valid R4) whose ``encounter`` names it is recorded for that episode and
session without Rapport's extensions. An identifier names one session of a site (409 for
another), an unregistered one is refused as ``unknown_encounter``, another therapist's episode
is not found."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from shared.settings import Settings
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.unit.feedback.test_feedback_api import response_count
from tests.unit.feedback.test_feedback_fhir_as_sent import lhc_forms, post_fhir

EHR = "urn:ehr:encounter"


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[FeedbackDesk]:
    async with feedback_desk(embedded_settings) as opened:
        yield opened


async def register(
    desk: FeedbackDesk, episode_id: str, session: int, value: str, sub: str = "th-1"
) -> Any:
    return await desk.http.put(
        f"/feedback/episodes/{episode_id}/sessions/{session}/encounter",
        headers=desk.auth("therapist", sub=sub),
        json={"system": EHR, "value": value},
    )


def by_encounter(episode_id: str, value: str) -> dict[str, Any]:
    """As an EHR sends it: the client by ``subject``, the visit by ``encounter`` (no session
    number extension)."""
    resource = lhc_forms("phq-9", episode_id, 1)
    resource["extension"] = []
    resource["encounter"] = {"identifier": {"system": EHR, "value": value}}
    QuestionnaireResponse.model_validate(resource)
    return resource


async def test_a_response_naming_a_registered_encounter_is_recorded_for_its_session(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    registered = await register(desk, episode_id, 3, "enc-3")
    assert registered.status_code == 200, registered.text
    assert registered.json()["session_number"] == 3
    assert (await register(desk, episode_id, 3, "enc-3")).status_code == 200  # idempotent

    answered = await post_fhir(desk, by_encounter(episode_id, "enc-3"), "/QuestionnaireResponse")
    assert answered.status_code == 201, answered.text
    assert (answered.json()["episode_id"], answered.json()["session_number"]) == (episode_id, 3)

    no_subject = by_encounter(episode_id, "enc-3")
    del no_subject["subject"]  # the encounter names the episode too
    no_subject["status"] = "amended"
    amended = await post_fhir(desk, no_subject, "/QuestionnaireResponse")
    assert amended.status_code == 201, amended.text
    assert amended.json()["session_number"] == 3


async def test_encounters_are_refused_by_name(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode()
    other_episode = await desk.open_episode()
    assert (await register(desk, episode_id, 1, "enc-1")).status_code == 200

    taken = await register(desk, other_episode, 1, "enc-1")
    assert taken.status_code == 409, taken.text
    assert taken.json()["errors"][0]["field"] == "value"

    unknown = await post_fhir(desk, by_encounter(episode_id, "enc-9"), "/QuestionnaireResponse")
    assert unknown.status_code == 422, unknown.text
    outcome = OperationOutcome.model_validate(unknown.json())
    assert outcome.issue[0].expression == ["encounter"]
    assert "unknown_encounter" in unknown.text

    not_theirs = await register(desk, episode_id, 2, "enc-2", sub="th-2")
    assert not_theirs.status_code == 404, not_theirs.text
    bad = await desk.http.put(
        f"/feedback/episodes/{episode_id}/sessions/0/encounter",
        headers=desk.auth("therapist"),
        json={"system": EHR, "value": "enc-0"},
    )
    assert bad.status_code == 422, bad.text
    assert await response_count(desk) == 0
