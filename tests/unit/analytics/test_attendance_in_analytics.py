"""Analytics follows attendance and time (embedded stack): a feedback response is a contact
that pends ``no_contact`` at the site's midnight 21 days on (its own time zone); the clock fires
it once (one alert, one ``alliance.alert`` "opened" at the episode's latest session, nothing on
a second sweep); the next contact resolves it and pends the check again; a check taken
before its day opens nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from services.analytics.dependencies import AnalyticsDependencies
from services.analytics.models import DUE_CHECKS, EPISODES, OUTBOX
from services.analytics.usecases import attendance
from shared.clock import DueCheck
from shared.db import all_sites
from shared.runtime import dependencies_of
from shared.settings import Settings
from shared.site_time import aware, start_of_day_after
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.support.waiting import eventually
from tests.unit.analytics.test_analytics_risk_alerts import HIGH, answer

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[FeedbackDesk]:
    settings = embedded_settings.model_copy(
        update={"site_time_zones": json.dumps({"site-a": "Europe/Berlin"})}
    )
    async with feedback_desk(settings, ("intake", "feedback", "analytics")) as opened:
        yield opened


async def pending(desk: FeedbackDesk, episode_id: str) -> dict[str, datetime]:
    with all_sites():
        async with desk.host.runtimes["analytics"].sessionmaker() as session:
            rows = (
                await session.execute(select(DUE_CHECKS).where(DUE_CHECKS.c.subject == episode_id))
            ).all()
    return {row.kind: aware(row.due_at) for row in rows}


async def last_contact(desk: FeedbackDesk, episode_id: str) -> datetime:
    with all_sites():
        async with desk.host.runtimes["analytics"].sessionmaker() as session:
            state = (
                await session.execute(
                    select(EPISODES.c.state).where(EPISODES.c.episode_id == episode_id)
                )
            ).scalar_one()
    return datetime.fromisoformat(state["attendance"]["last_contact"])


async def alert_events(desk: FeedbackDesk, kind: str) -> list[dict[str, Any]]:
    with all_sites():
        async with desk.host.runtimes["analytics"].sessionmaker() as session:
            rows = (
                await session.execute(
                    select(OUTBOX.c.headers, OUTBOX.c.value).order_by(OUTBOX.c.id)
                )
            ).all()
    found = []
    for headers, value in rows:
        header = headers if isinstance(headers, dict) else json.loads(headers)
        data = json.loads(bytes(value))
        if header["ce_type"].endswith("alliance.alert.v1") and data["kind"] == kind:
            found.append(data)
    return found


async def sweep_at(desk: FeedbackDesk, now: datetime) -> int:
    clock = attendance.clock(desk.host.runtimes["analytics"])
    clock.now = lambda: now
    with all_sites():
        return await clock.sweep()


async def contact_pends_no_contact(desk: FeedbackDesk, episode_id: str, session: int) -> datetime:
    """Answer an SRS for ``session``; wait until analytics pends no_contact from it."""
    before = (await pending(desk, episode_id)).get("no_contact")
    await answer(desk, episode_id, session, "srs", HIGH)

    async def moved() -> bool:
        due = (await pending(desk, episode_id)).get("no_contact")
        return due is not None and due != before

    await eventually(moved, what="analytics to pend no_contact")
    return (await pending(desk, episode_id))["no_contact"]


async def test_a_response_pends_no_contact_at_the_sites_midnight_21_days_on(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    due = await contact_pends_no_contact(desk, episode_id, 1)

    contact = await last_contact(desk, episode_id)
    assert due == start_of_day_after(contact, 21, BERLIN)
    assert due.astimezone(BERLIN).time().hour == 0  # Berlin's midnight, not UTC's
    assert "dropout_risk" in await pending(desk, episode_id)


async def test_the_clock_opens_no_contact_once_and_the_next_contact_resolves_it(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    due = await contact_pends_no_contact(desk, episode_id, 1)

    assert await sweep_at(desk, due) == 1
    assert await sweep_at(desk, due) == 0  # fired: gone

    opened = await alert_events(desk, "no_contact")
    assert [(e["status"], e["severity"], e["session_number"]) for e in opened] == [
        ("opened", "high", 1)
    ]
    assert opened[0]["inputs"] == {"days_without_contact": 21, "no_contact_days": 21}
    assert "no_contact" not in await pending(desk, episode_id)

    await contact_pends_no_contact(desk, episode_id, 2)

    steps = await alert_events(desk, "no_contact")
    assert [(e["status"], e["alert_id"]) for e in steps] == [
        ("opened", opened[0]["alert_id"]),
        ("resolved", opened[0]["alert_id"]),
    ]


async def test_a_check_taken_before_its_day_opens_nothing_and_stays_pending(
    desk: FeedbackDesk,
) -> None:
    """The due time is only a hint: a check fired early (a clock that jumped ahead and back)
    decides from the state, opens nothing, and is pended again at its due time."""
    episode_id = await desk.open_episode()
    due = await contact_pends_no_contact(desk, episode_id, 1)
    runtime = desk.host.runtimes["analytics"]
    deps = dependencies_of(runtime, AnalyticsDependencies)

    with all_sites():
        async with runtime.transaction() as session:
            early = due - timedelta(minutes=1)  # still day 20
            fired = await attendance.fire_check(
                deps, session, DueCheck(episode_id, "no_contact", "site-a", due), early
            )

    assert fired == []
    assert await alert_events(desk, "no_contact") == []
    assert (await pending(desk, episode_id))["no_contact"] == due


async def test_a_closed_episode_is_followed_no_more(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode()
    await contact_pends_no_contact(desk, episode_id, 1)

    closed = await desk.http.post(
        f"/intake/episodes/{episode_id}/close",
        headers=desk.auth("intake_coordinator"),
        json={"reason": "completed"},
    )
    assert closed.status_code == 200, closed.text

    async def dropped() -> bool:
        return await pending(desk, episode_id) == {}

    await eventually(dropped, what="analytics to drop the closed episode's checks")
