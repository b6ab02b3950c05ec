"""Two coordinators confirming the last place of a therapist at the same moment, on the real
PostgreSQL: exactly one gets the episode (201), the other a 409, and the caseload never goes
above the capacity (the conditional UPDATE in the episode's transaction decides)."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from services.intake.models import IntakeEpisode, IntakeTherapist
from shared.db import all_sites
from shared.settings import Settings
from tests.unit.intake.desk import IntakeDesk, intake_desk, therapist_body

ROUNDS = 25


async def confirm(desk: IntakeDesk, match_id: str, therapist_id: str) -> int:
    answer = await desk.http.post(
        f"/intake/matches/{match_id}/confirm",
        headers=desk.coordinator,
        json={"therapist_id": therapist_id},
    )
    assert answer.status_code in {201, 409}, answer.text
    if answer.status_code == 409:
        assert answer.json()["errors"] == [{"field": "therapist_id", "rule": "capacity"}]
    return answer.status_code


async def test_concurrent_confirms_for_the_last_place_never_overbook(
    real_settings: Settings,
) -> None:
    async with intake_desk(real_settings, embedded=False) as desk:
        for round_number in range(ROUNDS):
            therapist_id = f"th-{round_number}"
            # One place left (capacity 2, caseload 1): both clients see it as an option.
            await desk.register(therapist_body(therapist_id, capacity=2, caseload=1))
            first = await desk.submit(f"c-{round_number}-a")
            second = await desk.submit(f"c-{round_number}-b")
            for submitted in (first, second):
                assert [o["therapist_id"] for o in submitted["match"]["options"]] == [therapist_id]
            statuses = await asyncio.gather(
                confirm(desk, first["match"]["match_id"], therapist_id),
                confirm(desk, second["match"]["match_id"], therapist_id),
            )
            assert sorted(statuses) == [201, 409], f"round {round_number}: {statuses}"
            assert await desk.caseload(therapist_id) == 2

        with all_sites():  # as the service's own work sees it
            async with desk.host.runtimes["intake"].sessionmaker() as session:
                therapists = (await session.execute(select(IntakeTherapist))).scalars().all()
                episodes = (await session.execute(select(IntakeEpisode))).scalars().all()
        assert all(t.caseload == t.capacity == 2 for t in therapists)
        assert len(episodes) == ROUNDS
        assert len(await desk.emitted_of("match.confirmed")) == ROUNDS


async def test_the_same_match_confirmed_twice_at_once_opens_one_episode(
    real_settings: Settings,
) -> None:
    async with intake_desk(real_settings, embedded=False) as desk:
        await desk.register(therapist_body("th-1", capacity=10))
        for round_number in range(10):
            match_id = (await desk.submit(f"c-{round_number}"))["match"]["match_id"]
            answers = await asyncio.gather(
                *(
                    desk.http.post(
                        f"/intake/matches/{match_id}/confirm",
                        headers=desk.coordinator,
                        json={"therapist_id": "th-1"},
                    )
                    for _ in range(2)
                )
            )
            assert sorted(a.status_code for a in answers) == [201, 409]
        assert await desk.caseload("th-1") == 10
