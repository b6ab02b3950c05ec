"""A site's follow-up figures through the API (embedded stack): a low-alliance alert acted on at
session 1 and resolved at session 2 counts as resolved within 2 sessions, with the alliance's
change after the action; a risk alert nobody acted on is counted open and unacted; the route is
for those who see a site's aggregates, not for therapists."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.settings import Settings
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.support.waiting import eventually
from tests.unit.analytics.test_analytics_risk_alerts import HIGH, LOW, PHQ9_RISK, alerts, answer


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[FeedbackDesk]:
    async with feedback_desk(embedded_settings, ("intake", "feedback", "analytics")) as opened:
        yield opened


async def follow_up(desk: FeedbackDesk, role: str = "supervisor") -> Any:
    return await desk.http.get(
        "/analytics/sites/site-a/follow-up", headers=desk.auth(role, sub="someone")
    )


async def test_what_followed_an_action_and_the_alerts_nobody_acted_on(desk: FeedbackDesk) -> None:
    acted_on = await desk.open_episode()
    unacted = await desk.open_episode()
    await answer(desk, acted_on, 1, "srs", LOW)
    await answer(desk, unacted, 1, "phq-9", PHQ9_RISK)
    found: dict[str, Any] = {}

    async def opened() -> bool:
        for a in await alerts(desk):
            found[a["kind"]] = a
        return {"low_alliance", "risk"} <= set(found)

    await eventually(opened, what="the low-alliance and risk alerts")
    recorded = await desk.http.post(
        f"/analytics/alerts/{found['low_alliance']['alert_id']}/actions",
        headers=desk.auth("therapist"),
        json={"code": "discussed_in_session"},
    )
    assert recorded.status_code == 201, recorded.text
    for session in (2, 3):
        await answer(desk, acted_on, session, "srs", HIGH)

    async def resolved() -> bool:
        return not [a for a in await alerts(desk) if a["kind"] == "low_alliance"]

    await eventually(resolved, what="the low-alliance alert to resolve")
    got = await follow_up(desk)

    assert got.status_code == 200, got.text
    body = got.json()
    site = next(
        f for f in body["actions"] if f["code"] == "discussed_in_session" and not f["therapist_id"]
    )
    assert site["alerts"] == 1
    assert site["resolved_within_2_sessions"]["n"] == 1
    assert site["resolved_within_2_sessions"]["value"]["estimate"] == 1.0
    assert site["resolved_within_4_sessions"]["n"] == 1  # resolved: known within 4 too
    assert site["alliance_change"]["n"] == 1
    assert site["alliance_change"]["value"]["estimate"] == pytest.approx(20.0)  # 75 → 95
    (therapist,) = [
        f for f in body["actions"] if f["code"] == "discussed_in_session" and f["therapist_id"]
    ]
    assert (therapist["therapist_id"], therapist["alerts"]) == ("th-1", 1)
    assert body["open_unacted_by_age"]["under_1_day"] == 1  # the risk alert
    assert body["alerts_acted_on"] == 1
    assert body["median_hours_to_first_action"] is not None


async def test_therapists_do_not_see_a_sites_follow_up_figures(desk: FeedbackDesk) -> None:
    assert (await follow_up(desk, "therapist")).status_code == 403
    assert (await follow_up(desk, "data_analyst")).status_code == 200
