"""The episode's phase through intake's routes, contacts and clock (embedded): each move
published once as ``episode.phase_changed``, the closing route scoped and refused with a
problem naming the field, a silent episode dropped out by the clock (its place freed) and a
returning client active again (the place taken back, even over capacity)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.intake.dependencies import IntakeDependencies
from services.intake.domain.episodes import ContactKind, silence_ends
from services.intake.models import DUE_CHECKS
from services.intake.usecases.phases import SILENCE, clock_of, record_contact
from services.intake.usecases.places import reserve_place
from shared.clock import DueCheck, pending, schedule
from shared.runtime import dependencies_of
from shared.settings import Settings
from tests.unit.intake.desk import IntakeDesk, intake_desk, therapist_body

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[IntakeDesk]:
    settings = embedded_settings.model_copy(
        update={"site_time_zones": '{"site-a": "Europe/Berlin"}'}
    )
    async with intake_desk(settings) as opened:
        yield opened


def deps_of(desk: IntakeDesk) -> IntakeDependencies:
    return dependencies_of(desk.host.runtimes["intake"], IntakeDependencies)


async def contact(
    desk: IntakeDesk, episode_id: str, at: datetime, kind: ContactKind = "attended_session"
) -> None:
    """What the subscribers do with a session.attended or feedback.recorded."""
    deps = deps_of(desk)
    async with deps.runtime.transaction() as session:
        await deps.runtime.emit(session, *await record_contact(deps, session, episode_id, at, kind))


async def matched_episode(desk: IntakeDesk, capacity: int = 5) -> str:
    await desk.register(therapist_body("th-1", capacity=capacity))
    match = (await desk.submit())["match"]
    confirmed = await desk.http.post(
        f"/intake/matches/{match['match_id']}/confirm",
        headers=desk.coordinator,
        json={"therapist_id": "th-1"},
    )
    assert confirmed.status_code == 201, confirmed.text
    episode_id: str = confirmed.json()["episode_id"]
    return episode_id


async def checks(desk: IntakeDesk, episode_id: str) -> list[DueCheck]:
    async with desk.host.runtimes["intake"].sessionmaker() as session:
        return await pending(session, DUE_CHECKS, episode_id)


async def moves(desk: IntakeDesk) -> list[tuple[Any, ...]]:
    return [
        (e["from_phase"], e["to_phase"], e["reason"], e["gap_days"])
        for e in await desk.emitted_of("episode.phase_changed")
    ]


async def phase(desk: IntakeDesk, episode_id: str) -> str:
    got = await desk.http.get(f"/intake/episodes/{episode_id}", headers=desk.coordinator)
    assert got.status_code == 200, got.text
    value: str = got.json()["phase"]
    return value


async def test_an_episode_opens_matched_and_the_first_contact_makes_it_active(
    desk: IntakeDesk,
) -> None:
    episode_id = await matched_episode(desk)
    assert await moves(desk) == [("referred", "matched", "match_confirmed", None)]
    at = datetime.now(UTC) - timedelta(days=2)
    await contact(desk, episode_id, at)
    await contact(desk, episode_id, at + timedelta(hours=1), "feedback")  # no second move
    assert await phase(desk, episode_id) == "active"
    assert (await moves(desk))[1:] == [("matched", "active", "first_attended_session", None)]
    [check] = await checks(desk, episode_id)
    assert check.due_at == silence_ends(
        at + timedelta(hours=1), 28, deps_of(desk).settings.time_zones().of("site-a")
    )


async def test_a_direct_episode_publishes_its_opening_too(desk: IntakeDesk) -> None:
    await desk.register(therapist_body("th-1"))
    opened = await desk.http.post(
        "/intake/episodes",
        headers=desk.coordinator,
        json={"site_id": "site-a", "therapist_id": "th-1", "client_reference": "c-9"},
    )
    assert opened.status_code == 201
    assert await moves(desk) == [("referred", "matched", "opened_directly", None)]


async def test_the_therapist_plans_the_end_then_the_episode_closes(desk: IntakeDesk) -> None:
    episode_id = await matched_episode(desk)
    too_early = await desk.http.post(
        f"/intake/episodes/{episode_id}/closing", headers=desk.auth("therapist", sub="th-1")
    )
    assert too_early.status_code == 409, too_early.text
    assert too_early.json()["errors"] == [{"field": "episode_id", "rule": "not_active"}]
    await contact(desk, episode_id, datetime.now(UTC))
    other_therapist = await desk.http.post(
        f"/intake/episodes/{episode_id}/closing", headers=desk.auth("therapist", sub="th-2")
    )
    assert other_therapist.status_code == 404
    analyst = await desk.http.post(
        f"/intake/episodes/{episode_id}/closing", headers=desk.auth("data_analyst")
    )
    assert analyst.status_code == 403
    for _ in range(2):  # asked again: still closing, published once
        planned = await desk.http.post(
            f"/intake/episodes/{episode_id}/closing", headers=desk.auth("therapist", sub="th-1")
        )
        assert planned.status_code == 200, planned.text
        assert planned.json()["phase"] == "closing"
    assert await checks(desk, episode_id) == []
    closed = await desk.http.post(
        f"/intake/episodes/{episode_id}/close",
        headers=desk.coordinator,
        json={"reason": "completed"},
    )
    assert closed.status_code == 200 and closed.json()["phase"] == "closed"
    assert (await moves(desk))[1:] == [
        ("matched", "active", "first_attended_session", None),
        ("active", "closing", "ending_planned", None),
        ("closing", "closed", "completed", None),
    ]
    assert [e["reason"] for e in await desk.emitted_of("episode.closed")] == ["completed"]
    assert await desk.caseload("th-1") == 0


async def test_planning_the_end_of_a_closed_episode_is_a_409_naming_the_episode(
    desk: IntakeDesk,
) -> None:
    episode_id = await matched_episode(desk)
    await desk.http.post(
        f"/intake/episodes/{episode_id}/close",
        headers=desk.coordinator,
        json={"reason": "withdrawn"},
    )
    before = await desk.emitted()
    refused = await desk.http.post(
        f"/intake/episodes/{episode_id}/closing", headers=desk.coordinator
    )
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"] == [{"field": "episode_id", "rule": "already_closed"}]
    assert "withdrawn" in refused.json()["detail"]
    assert await desk.emitted() == before
    assert await phase(desk, episode_id) == "withdrawn"


async def test_a_silent_episode_drops_out_and_a_returning_client_is_active_again(
    desk: IntakeDesk,
) -> None:
    episode_id = await matched_episode(desk, capacity=1)
    last = datetime(2026, 1, 5, 16, 30, tzinfo=UTC)
    await contact(desk, episode_id, last)
    assert await desk.caseload("th-1") == 1
    due = silence_ends(last, 28, deps_of(desk).settings.time_zones().of("site-a"))
    assert due == datetime(2026, 2, 1, 23, 0, tzinfo=UTC)  # Berlin's midnight
    deps = deps_of(desk)
    assert await clock_of(deps, now=lambda: due - timedelta(seconds=1)).sweep() == 0
    assert await phase(desk, episode_id) == "active"
    assert await clock_of(deps, now=lambda: due).sweep() == 1
    assert await clock_of(deps, now=lambda: due + timedelta(days=9)).sweep() == 0
    assert await phase(desk, episode_id) == "dropped_out"
    assert (await moves(desk))[-1] == ("active", "dropped_out", "no_contact", None)
    assert [e["reason"] for e in await desk.emitted_of("episode.closed")] == ["dropped_out"]
    assert await desk.caseload("th-1") == 0
    # Someone else takes the place meanwhile; the client returns all the same.
    await desk.register(therapist_body("th-2"))
    other = await desk.http.post(
        "/intake/episodes",
        headers=desk.coordinator,
        json={"site_id": "site-a", "therapist_id": "th-1", "client_reference": "c-2"},
    )
    assert other.status_code == 201
    async with deps.runtime.transaction() as session:
        await reserve_place(session, "th-1", datetime.now(UTC))  # th-1 is full again
    back = datetime.now(UTC)
    await contact(desk, episode_id, back)
    assert await phase(desk, episode_id) == "active"
    zone = deps.settings.time_zones().of("site-a")
    gap = (back.astimezone(zone).date() - last.astimezone(zone).date()).days
    assert (await moves(desk))[-1] == ("dropped_out", "active", "returned", gap)
    assert await desk.caseload("th-1") == 2  # over capacity: care comes first


async def test_a_due_check_fires_on_a_stale_hint_and_looks_again_instead(
    desk: IntakeDesk,
) -> None:
    episode_id = await matched_episode(desk)
    last = datetime(2026, 1, 5, 16, 30, tzinfo=UTC)
    await contact(desk, episode_id, last)
    zone = deps_of(desk).settings.time_zones().of("site-a")
    due = silence_ends(last, 28, zone)
    # A session reported late: it took place on day 20; the check moved to its silence's end.
    await contact(desk, episode_id, last + timedelta(days=20))
    [check] = await checks(desk, episode_id)
    assert check.due_at == silence_ends(last + timedelta(days=20), 28, zone)
    deps = deps_of(desk)
    async with deps.runtime.transaction() as session:  # the old due time, as a stale hint
        await schedule(session, DUE_CHECKS, DueCheck(episode_id, SILENCE, "site-a", due))
    assert await clock_of(deps, now=lambda: due).sweep() == 1
    assert await phase(desk, episode_id) == "active"
    [check] = await checks(desk, episode_id)
    assert check.due_at == silence_ends(last + timedelta(days=20), 28, zone)
    assert (await moves(desk))[-1][1] == "active"


async def test_a_late_report_that_ends_a_drop_out_is_stamped_after_it(desk: IntakeDesk) -> None:
    # Followers (analytics) ignore a phase change older than the one they know: the return
    # must come after the drop-out, even when the session it reports took place before it.
    episode_id = await matched_episode(desk)
    now = datetime.now(UTC)
    await contact(desk, episode_id, now - timedelta(days=30))
    assert await clock_of(deps_of(desk)).sweep() == 1
    assert await phase(desk, episode_id) == "dropped_out"
    await contact(desk, episode_id, now - timedelta(days=5))  # reported late
    assert await phase(desk, episode_id) == "active"
    changes = await desk.emitted_of("episode.phase_changed")
    assert [(e["to_phase"], e["reason"]) for e in changes[-2:]] == [
        ("dropped_out", "no_contact"),
        ("active", "returned"),
    ]
    dropped, back = (datetime.fromisoformat(e["at"].replace("Z", "+00:00")) for e in changes[-2:])
    assert back >= dropped
    assert changes[-1]["gap_days"] == 25
