"""The client's own goals on real PostgreSQL (row-level security, migrations): 1–5 active goals
(a sixth refused, also when two are set at once), a text size limit, revisions kept, the text
sealed under the client's data key and never in an event; a goal rating for a goal the episode
does not have (or no longer has active) is refused naming it, and nothing is stored. Goals are
FHIR R4 Goal resources too (created, read, searched; errors as OperationOutcome)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.goal import Goal
from sqlmodel import select

import services
from services.feedback.models import FeedbackGoal, FeedbackResponse
from shared.db import all_sites
from shared.host import Host
from shared.settings import Settings
from tests.support.feedback import FeedbackDesk
from tests.support.outbox import outbox_rows

CANARY = "canary-goal-7f3a: talk to my sister again"


@pytest.fixture
async def desk(real_settings: Settings) -> AsyncIterator[FeedbackDesk]:
    host = Host(real_settings, services.definitions(["intake", "feedback"]))
    await host.start()
    try:
        transport = httpx.ASGITransport(app=host.http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as http:
            yield FeedbackDesk(host, http, real_settings)
    finally:
        await host.stop()


async def set_goal(desk: FeedbackDesk, episode_id: str, text: str) -> httpx.Response:
    return await desk.http.post(
        f"/feedback/episodes/{episode_id}/goals",
        headers=desk.auth("therapist"),
        json={"text": text},
    )


async def rate(desk: FeedbackDesk, episode_id: str, session: int, items: Any) -> httpx.Response:
    return await desk.http.post(
        "/feedback/responses",
        headers=desk.auth("therapist"),
        json={
            "episode_id": episode_id,
            "session_number": session,
            "respondent_role": "client",
            "instrument": "goals",
            "items": items,
        },
    )


async def stored(desk: FeedbackDesk, model: Any) -> list[Any]:
    with all_sites():
        async with desk.host.runtimes["feedback"].sessionmaker() as session:
            return list((await session.exec(select(model))).all())


async def test_at_most_five_active_goals_even_when_set_at_once(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode()
    for n in range(4):
        assert (await set_goal(desk, episode_id, f"goal {n}")).status_code == 201
    both = await asyncio.gather(
        set_goal(desk, episode_id, "fifth"), set_goal(desk, episode_id, "sixth")
    )
    assert sorted(r.status_code for r in both) == [201, 409]
    refused = next(r for r in both if r.status_code == 409).json()
    assert refused["errors"] == [{"field": "status", "rule": "at_most_5_active_goals"}]
    listed = await desk.http.get(
        f"/feedback/episodes/{episode_id}/goals", headers=desk.auth("therapist")
    )
    assert [g["position"] for g in listed.json()] == [1, 2, 3, 4, 5]


async def test_a_goal_over_the_size_limit_is_refused_naming_the_field(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode()
    too_long = await set_goal(desk, episode_id, "x" * 501)
    assert too_long.status_code == 422, too_long.text
    assert "text" in json.dumps(too_long.json())
    assert await stored(desk, FeedbackGoal) == []


async def test_ratings_name_active_goals_only_and_nothing_is_stored_otherwise(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    first = (await set_goal(desk, episode_id, "sleep through the night")).json()["goal_id"]
    second = (await set_goal(desk, episode_id, "go back to work")).json()["goal_id"]

    unknown = await rate(desk, episode_id, 1, {first: 3, "not-a-goal-of-this-episode": 4})
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["errors"][0]["field"] == "items.not-a-goal-of-this-episode"
    assert unknown.json()["errors"][0]["rule"] == "unknown_goal"
    assert await stored(desk, FeedbackResponse) == []

    assert (await rate(desk, episode_id, 1, {first: 3, second: 5})).status_code == 201
    achieved = await desk.http.patch(
        f"/feedback/episodes/{episode_id}/goals/{first}",
        headers=desk.auth("therapist"),
        json={"status": "achieved"},
    )
    assert achieved.status_code == 200 and achieved.json()["revision"] == 2
    no_longer = await rate(desk, episode_id, 2, {first: 9, second: 6})
    assert no_longer.status_code == 422 and no_longer.json()["errors"][0]["rule"] == "unknown_goal"
    assert (await rate(desk, episode_id, 2, {second: 6})).status_code == 201


async def test_goal_text_is_sealed_revisions_kept_and_no_event_carries_it(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    goal_id = (await set_goal(desk, episode_id, CANARY)).json()["goal_id"]
    revised = await desk.http.patch(
        f"/feedback/episodes/{episode_id}/goals/{goal_id}",
        headers=desk.auth("therapist"),
        json={"text": CANARY + " (and my brother)"},
    )
    assert revised.status_code == 200, revised.text
    assert (await rate(desk, episode_id, 1, {goal_id: 2})).status_code == 201

    history = await desk.http.get(
        f"/feedback/episodes/{episode_id}/goals",
        params={"history": "true"},
        headers=desk.auth("therapist"),
    )
    assert [(g["revision"], g["text"]) for g in history.json()] == [
        (1, CANARY),
        (2, CANARY + " (and my brother)"),
    ]
    rows = await stored(desk, FeedbackGoal)
    assert len(rows) == 2 and all("canary" not in r.text_sealed for r in rows)
    events = [json.dumps(r.value) for r in await outbox_rows(desk.host, "feedback")]
    recorded = [e for e in events if goal_id in e]
    assert recorded and not any("canary" in e for e in events)


def fhir_goal_ratings(episode_id: str, ratings: dict[str, int]) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": "Questionnaire/goals",
        "extension": [
            {"url": "urn:rapport:fhir:episode-id", "valueString": episode_id},
            {"url": "urn:rapport:fhir:session-number", "valueInteger": 1},
            {"url": "urn:rapport:fhir:respondent-role", "valueCode": "client"},
        ],
        "item": [
            {"linkId": goal, "answer": [{"valueInteger": value}]} for goal, value in ratings.items()
        ],
    }


async def test_goal_ratings_through_fhir_name_goals_by_their_ids(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode()
    goal_id = (await set_goal(desk, episode_id, "walk the dog daily")).json()["goal_id"]
    questionnaire = await desk.http.get(
        "/feedback/fhir/Questionnaire/goals", headers=desk.auth("therapist")
    )
    assert questionnaire.status_code == 200
    assert questionnaire.json()["item"][0]["repeats"] is True

    unknown = await desk.http.post(
        "/feedback/fhir/QuestionnaireResponse",
        headers=desk.auth("therapist"),
        json=fhir_goal_ratings(episode_id, {"someone-elses-goal": 5}),
    )
    assert unknown.status_code == 422 and unknown.json()["resourceType"] == "OperationOutcome"
    assert "someone-elses-goal" in json.dumps(unknown.json())
    known = await desk.http.post(
        "/feedback/fhir/QuestionnaireResponse",
        headers=desk.auth("therapist"),
        json=fhir_goal_ratings(episode_id, {goal_id: 5}),
    )
    assert known.status_code == 201, known.text


def fhir_goal(episode_id: str, text: str | None = "see my friends again", **more: Any) -> Any:
    resource: dict[str, Any] = {
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "extension": [{"url": "urn:rapport:fhir:episode-id", "valueString": episode_id}],
        "subject": {"display": "ignored"},
        **more,
    }
    if text is not None:
        resource["description"] = {"text": text}
    return resource


async def test_goals_are_fhir_goal_resources_created_read_and_searched(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    created = await desk.http.post(
        "/feedback/fhir/Goal", headers=desk.auth("therapist"), json=fhir_goal(episode_id)
    )
    assert created.status_code == 201, created.text
    assert created.headers["content-type"].startswith("application/fhir+json")
    goal = Goal.model_validate(created.json())  # a valid R4 Goal
    assert (goal.lifecycleStatus, goal.description.text) == ("active", "see my friends again")
    goal_id = created.json()["id"]

    achieved = await desk.http.patch(
        f"/feedback/episodes/{episode_id}/goals/{goal_id}",
        headers=desk.auth("therapist"),
        json={"status": "achieved"},
    )
    assert achieved.status_code == 200
    read = await desk.http.get(f"/feedback/fhir/Goal/{goal_id}", headers=desk.auth("therapist"))
    assert read.status_code == 200, read.text
    Goal.model_validate(read.json())
    assert read.json()["lifecycleStatus"] == "completed"
    assert read.json()["achievementStatus"]["coding"][0]["code"] == "achieved"
    assert read.json()["meta"]["versionId"] == "2"

    searched = await desk.http.get(
        "/feedback/fhir/Goal", params={"episode": episode_id}, headers=desk.auth("therapist")
    )
    assert searched.status_code == 200
    assert searched.json()["type"] == "searchset"
    assert [e["resource"]["id"] for e in searched.json()["entry"]] == [goal_id]


async def test_bad_fhir_goals_are_operation_outcomes_naming_the_field_and_nothing_is_stored(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    cases = [
        (fhir_goal(episode_id, text=None), 422, "description.text"),
        (fhir_goal(episode_id, text="x" * 501), 422, "description.text"),
        (fhir_goal(episode_id, lifecycleStatus="completed"), 422, "lifecycleStatus"),
        ({**fhir_goal(episode_id), "extension": []}, 422, "extension"),
        ({**fhir_goal(episode_id), "resourceType": "Patient"}, 422, "resourceType"),
    ]
    for resource, status, field in cases:
        refused = await desk.http.post(
            "/feedback/fhir/Goal", headers=desk.auth("therapist"), json=resource
        )
        assert refused.status_code == status, (field, refused.text)
        assert refused.json()["resourceType"] == "OperationOutcome"
        assert field in json.dumps(refused.json())
    assert await stored(desk, FeedbackGoal) == []

    for n in range(5):
        assert (await set_goal(desk, episode_id, f"goal {n}")).status_code == 201
    sixth = await desk.http.post(
        "/feedback/fhir/Goal", headers=desk.auth("therapist"), json=fhir_goal(episode_id)
    )
    assert sixth.status_code == 409 and sixth.json()["resourceType"] == "OperationOutcome"
    goal_id = (await stored(desk, FeedbackGoal))[0].goal_id
    elsewhere = desk.auth("clinical_lead", "lead-b", ("site-b",))
    for path in (f"/feedback/fhir/Goal/{goal_id}", "/feedback/fhir/Goal/not-a-goal"):
        missing = await desk.http.get(path, headers=elsewhere)
        assert missing.status_code == 404 and missing.json()["resourceType"] == "OperationOutcome"
    not_theirs = await desk.http.get(
        "/feedback/fhir/Goal", params={"episode": episode_id}, headers=elsewhere
    )
    assert not_theirs.status_code == 404
    assert len(await stored(desk, FeedbackGoal)) == 5
