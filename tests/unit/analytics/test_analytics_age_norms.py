"""Norms by age, end to end on the embedded stack: an episode opened for an adolescent carries
its age group through match.confirmed to analytics, whose rule 9 (fallback) then reads ORS
against the adolescents' cutoff, 28, not the adults' 25, and whose chart draws that line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.settings import Settings
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.support.waiting import eventually

ORS_27 = {"individually": 6.8, "interpersonally": 6.8, "socially": 6.7, "overall": 6.7}  # 27.0


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[FeedbackDesk]:
    async with feedback_desk(embedded_settings, ("intake", "feedback", "analytics")) as opened:
        yield opened


async def known_to_analytics(desk: FeedbackDesk, episode_id: str) -> None:
    """Wait until analytics has the episode from match.confirmed (so its age group)."""

    async def known() -> bool:
        got = await desk.http.get(
            f"/analytics/episodes/{episode_id}/timeline", headers=desk.auth("clinical_lead")
        )
        return got.status_code == 200

    await eventually(known, what="analytics to learn the episode")


async def not_on_track(desk: FeedbackDesk, episode_id: str) -> list[dict[str, Any]]:
    got = await desk.http.get(
        "/analytics/alerts",
        params={"site_id": "site-a", "kind": "not_on_track"},
        headers=desk.auth("clinical_lead", sub="lead"),
    )
    assert got.status_code == 200, got.text
    return [a for a in got.json() if a["episode_id"] == episode_id]


async def test_an_adolescents_episode_uses_the_adolescent_ors_cutoff(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode(age_group="adolescent")
    await known_to_analytics(desk, episode_id)
    for session in (1, 2, 3, 4):
        answered = await desk.http.post(
            "/feedback/responses",
            headers=desk.auth("therapist"),
            json={
                "episode_id": episode_id,
                "session_number": session,
                "respondent_role": "client",
                "instrument": "ors",
                "items": ORS_27,
            },
        )
        assert answered.status_code == 201, answered.text
    found: list[dict[str, Any]] = []

    async def opened() -> bool:
        found[:] = await not_on_track(desk, episode_id)
        return bool(found)

    await eventually(opened, what="not_on_track for an adolescent's ORS of 27 (below 28)")

    (alert,) = found
    assert alert["inputs"]["clinical_cutoff"] == 28.0
    assert alert["inputs"]["first"] == 27.0 and alert["opened_session"] == 4
    chart = await desk.http.get(
        f"/analytics/episodes/{episode_id}/chart.svg", headers=desk.auth("clinical_lead")
    )
    assert chart.status_code == 200, chart.text
    assert "clinical cutoff (28)" in chart.text
