"""The episode's sessions and phase changes through the routes (embedded stack: intake, feedback
and analytics): sessions reported to feedback (attended, missed, cancelled) and the phase
intake publishes at the first attended session reach the episode's timeline and its chart, and
leave with the client's erasure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from services.analytics.models import EPISODE_SESSIONS, PHASE_CHANGES
from shared.db import all_sites
from shared.settings import Settings
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.support.waiting import eventually

AT = "2026-11-{day:02d}T10:00:00+01:00"


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[FeedbackDesk]:
    async with feedback_desk(embedded_settings, ("intake", "feedback", "analytics")) as opened:
        yield opened


async def report(desk: FeedbackDesk, episode_id: str, session: int, fact: str, **body: Any) -> None:
    reported = await desk.http.post(
        f"/feedback/episodes/{episode_id}/sessions/{session}/{fact}",
        headers=desk.auth("therapist"),
        json=body,
    )
    assert reported.status_code == 201, reported.text


async def stored(desk: FeedbackDesk, episode_id: str) -> tuple[int, int]:
    """How many of the episode's sessions and phase changes analytics holds."""
    with all_sites():
        async with desk.host.runtimes["analytics"].sessionmaker() as session:
            counts = []
            for table in (EPISODE_SESSIONS, PHASE_CHANGES):
                statement = select(func.count()).where(table.c.episode_id == episode_id)
                counts.append((await session.execute(statement)).scalar_one())
    return counts[0], counts[1]


async def test_sessions_and_phase_changes_reach_the_timeline_and_the_chart(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    await report(desk, episode_id, 1, "attended", at=AT.format(day=2))
    await report(desk, episode_id, 2, "missed", at=AT.format(day=9))
    await report(desk, episode_id, 3, "cancelled", by="client", at=AT.format(day=16))
    story: dict[str, Any] = {}

    async def told() -> bool:
        got = await desk.http.get(
            f"/analytics/episodes/{episode_id}/timeline", headers=desk.auth("supervisor")
        )
        assert got.status_code == 200, got.text
        story.update(got.json())
        return len(story["sessions"]) == 3 and any(
            p["to_phase"] == "active" for p in story["phases"]
        )

    await eventually(told, what="the sessions and the phase change on the timeline")

    assert [(s["session_number"], s["status"]) for s in story["sessions"]] == [
        (1, "attended"),
        (2, "missed"),
        (3, "cancelled_by_client"),
    ]
    assert story["sessions"][1]["at"] == "2026-11-09T09:00:00Z"
    (active,) = [p for p in story["phases"] if p["to_phase"] == "active"]
    assert (active["from_phase"], active["reason"]) == ("matched", "first_attended_session")

    svg = (
        await desk.http.get(
            f"/analytics/episodes/{episode_id}/chart.svg", headers=desk.auth("supervisor")
        )
    ).text
    for status in ("attended", "missed", "cancelled_by_client"):
        assert f'class="session" data-status="{status}"' in svg
    assert 'class="phase" data-phase="active"' in svg

    # A therapist of another episode sees none of it.
    other = await desk.http.get(
        f"/analytics/episodes/{episode_id}/timeline", headers=desk.auth("therapist", sub="th-2")
    )
    assert other.status_code == 404

    assert await stored(desk, episode_id) == (3, len(story["phases"]))
    erased = await desk.http.post(
        "/intake/erasures",
        json={"site_id": "site-a", "client_reference": "ref-1"},
        headers=desk.auth("site_admin", sub="admin-1"),
    )
    assert erased.status_code == 202, erased.text

    async def gone() -> bool:
        return await stored(desk, episode_id) == (0, 0)

    await eventually(gone, what="the episode's sessions and phase changes to be erased")
