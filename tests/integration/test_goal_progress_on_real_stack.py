"""Goal progress in the episode's timeline and chart, and goal attainment in the therapist's
effectiveness figures (issue 19), through the real stack (feedback → Kafka → analytics):
each goal's ratings with their change from its own first; a closed episode whose client
reached a goal counts in ``goal_n`` (an episode without goals does not)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.settings import Settings
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.support.outbox import outbox_rows
from tests.support.waiting import eventually

SRS = {"relationship": 9.2, "goals": 9.2, "approach": 9.2, "overall": 9.4}


@pytest.fixture
async def desk(real_settings: Settings) -> AsyncIterator[FeedbackDesk]:
    names = ("intake", "feedback", "analytics")
    async with feedback_desk(real_settings, names, embedded=False) as opened:
        yield opened


async def answer(
    desk: FeedbackDesk, episode_id: str, session: int, instrument: str, items: dict[str, Any]
) -> None:
    got = await desk.http.post(
        "/feedback/responses",
        headers=desk.auth("therapist"),
        json={
            "episode_id": episode_id,
            "session_number": session,
            "respondent_role": "client",
            "instrument": instrument,
            "items": items,
        },
    )
    assert got.status_code == 201, got.text


async def timeline(desk: FeedbackDesk, episode_id: str, scores: int) -> dict[str, Any]:
    async def scored() -> bool:
        got = await desk.http.get(
            f"/analytics/episodes/{episode_id}/timeline", headers=desk.auth("clinical_lead")
        )
        return got.status_code == 200 and len(got.json()["scores"]) == scores

    await eventually(scored, timeout=60, what="analytics to score every response")
    got = await desk.http.get(
        f"/analytics/episodes/{episode_id}/timeline", headers=desk.auth("clinical_lead")
    )
    found: dict[str, Any] = got.json()
    return found


async def close(desk: FeedbackDesk, episode_id: str) -> None:
    closed = await desk.http.post(
        f"/intake/episodes/{episode_id}/close",
        headers=desk.auth("intake_coordinator"),
        json={"reason": "completed"},
    )
    assert closed.status_code == 200, closed.text


async def test_goal_progress_shows_in_the_timeline_and_chart_and_attainment_in_effectiveness(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    goal_ids = []
    for text in ("sleep through the night", "go back to work"):
        got = await desk.http.post(
            f"/feedback/episodes/{episode_id}/goals",
            headers=desk.auth("therapist"),
            json={"text": text},
        )
        goal_ids.append(got.json()["goal_id"])
    first, second = goal_ids
    await answer(desk, episode_id, 1, "goals", {first: 2, second: 4})
    await answer(desk, episode_id, 2, "goals", {first: 5, second: 5})
    found = await timeline(desk, episode_id, 2)
    assert [
        (g["session_number"], g["goal_order"], g["rating"], g["change_from_first"])
        for g in found["goal_progress"]
    ] == [(1, 1, 2.0, 0.0), (1, 2, 4.0, 0.0), (2, 1, 5.0, 3.0), (2, 2, 5.0, 1.0)]
    assert [g["reliable_change"] for g in found["goal_progress"]] == [False, False, True, False]
    assert {g["goal_id"] for g in found["goal_progress"]} == {first, second}
    chart = await desk.http.get(
        f"/analytics/episodes/{episode_id}/chart.svg", headers=desk.auth("clinical_lead")
    )
    assert chart.status_code == 200, chart.text
    assert "goal 1" in chart.text and "goal 2" in chart.text

    without_goals = await desk.open_episode()
    await answer(desk, without_goals, 1, "srs", SRS)
    await timeline(desk, without_goals, 1)
    await close(desk, episode_id)
    await close(desk, without_goals)

    async def both_counted() -> bool:
        got = await desk.http.get(
            "/analytics/therapists/th-1/effectiveness",
            params={"site_id": "site-a"},
            headers=desk.auth("supervisor"),
        )
        return got.status_code == 200 and any(e["n"] == 2 for e in got.json())

    await eventually(both_counted, timeout=60, what="both closed episodes counted")
    (estimate,) = (
        await desk.http.get(
            "/analytics/therapists/th-1/effectiveness",
            params={"site_id": "site-a"},
            headers=desk.auth("supervisor"),
        )
    ).json()
    assert (estimate["n"], estimate["goal_n"]) == (2, 1)
    assert estimate["goal_attainment_rate"] is None  # 1 of 15 cases: no number shown
    updates = [
        r.value
        for r in await outbox_rows(desk.host, "analytics")
        if r.ce_type.endswith("therapist.effectiveness.updated.v1")
    ]
    assert updates[-1]["goal_n"] == 1
    assert 0.0 <= updates[-1]["goal_attainment_rate"]["estimate"] <= 1.0
    assert "sleep" not in json.dumps(updates)
