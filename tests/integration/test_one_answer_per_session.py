"""One answer per respondent, instrument and session on real PostgreSQL: concurrent duplicates
(no Idempotency-Key) give one 201 and one 409 naming the stored answer, concurrent amendments
of one answer give one 201 and one 409, and the database itself refuses a second standing
answer (the unique index), so a duplicate can never land, whatever the route's check saw."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

import services
from services import upgrade
from services.feedback.models import FeedbackResponse
from shared.db import all_sites
from shared.host import Host
from shared.settings import Settings
from tests.support.feedback import FeedbackDesk
from tests.support.outbox import outbox_rows

SRS = {"relationship": 9.2, "goals": 9.2, "approach": 9.2, "overall": 9.4}
ROUNDS = 6


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


def srs(episode_id: str, session_number: int, overall: float) -> dict[str, object]:
    return {
        "episode_id": episode_id,
        "session_number": session_number,
        "respondent_role": "client",
        "instrument": "srs",
        "items": {**SRS, "overall": overall},
    }


async def stored(desk: FeedbackDesk) -> list[FeedbackResponse]:
    with all_sites():
        async with desk.host.runtimes["feedback"].sessionmaker() as session:
            return list((await session.exec(select(FeedbackResponse))).all())


async def recorded_events(desk: FeedbackDesk) -> list[dict[str, object]]:
    rows = await outbox_rows(desk.host, "feedback")
    return [r.value for r in rows if r.ce_type.endswith("feedback.recorded.v1")]


async def test_concurrent_duplicates_give_one_201_and_one_409(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode()
    auth = desk.auth("therapist")
    for session_number in range(1, ROUNDS + 1):
        answers = await asyncio.gather(
            desk.http.post(
                "/feedback/responses", headers=auth, json=srs(episode_id, session_number, 9.4)
            ),
            desk.http.post(
                "/feedback/responses", headers=auth, json=srs(episode_id, session_number, 3.0)
            ),
        )
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [201, 409], [a.text for a in answers]
        won = next(a for a in answers if a.status_code == 201).json()["response_id"]
        lost = next(a for a in answers if a.status_code == 409).json()
        assert lost["existing_response_id"] == won
    rows = await stored(desk)
    assert sorted(r.session_number for r in rows) == list(range(1, ROUNDS + 1))
    events = await recorded_events(desk)
    assert sorted(e["response_id"] for e in events) == sorted(r.id for r in rows)


async def test_concurrent_amendments_of_one_answer_give_one_201_and_one_409(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    auth = desk.auth("therapist")
    for session_number in range(1, ROUNDS + 1):
        first = await desk.http.post(
            "/feedback/responses", headers=auth, json=srs(episode_id, session_number, 9.4)
        )
        assert first.status_code == 201, first.text
        amend = f"/feedback/responses/{first.json()['response_id']}/amend"
        answers = await asyncio.gather(
            desk.http.post(amend, headers=auth, json={"items": {**SRS, "overall": 5.0}}),
            desk.http.post(amend, headers=auth, json={"items": {**SRS, "overall": 6.0}}),
        )
        assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    rows = await stored(desk)
    standing = [r for r in rows if r.replaced_by is None]
    assert sorted(r.session_number for r in standing) == list(range(1, ROUNDS + 1))
    assert all(r.amends is not None for r in standing)
    assert len(rows) == 2 * ROUNDS
    assert len(await recorded_events(desk)) == 2 * ROUNDS


async def test_the_database_refuses_a_second_standing_answer(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode()
    answered = await desk.http.post(
        "/feedback/responses", headers=desk.auth("therapist"), json=srs(episode_id, 1, 9.4)
    )
    assert answered.status_code == 201
    (row,) = await stored(desk)
    copy = FeedbackResponse.model_validate(
        {**row.model_dump(), "id": "copy-1", "recorded_at": datetime.now(UTC)}
    )
    with all_sites(), pytest.raises(IntegrityError, match="uq_feedback_one_answer"):
        async with desk.host.runtimes["feedback"].transaction() as session:
            session.add(copy)
    with all_sites():
        async with desk.host.runtimes["feedback"].sessionmaker() as session:
            count = await session.scalar(select(func.count()).select_from(FeedbackResponse))
    assert count == 1


async def test_answers_stored_twice_before_the_rule_keep_their_rows_and_the_first_stands(
    pg_database: str,
) -> None:
    """The migration that adds the unique index marks older duplicates replaced by the first
    (nothing deleted), so it can run on a database that already holds some."""
    await asyncio.to_thread(upgrade, "feedback", pg_database, "feedback_0004")
    dsn = pg_database.replace("postgresql+asyncpg", "postgresql")
    owner = await asyncpg.connect(dsn)
    try:
        await owner.execute("SELECT set_config('rapport.sites', '*', false)")
        for number, (response_id, minute) in enumerate([("a", 1), ("b", 2), ("c", 3)]):
            await owner.execute(
                "INSERT INTO feedback_responses (id, episode_id, site_id, therapist_id, "
                "session_number, respondent, respondent_role, instrument, instrument_version, "
                "items, total, late, answered_at, recorded_at, source) VALUES ($1, 'ep', 's', "
                "'th', $2, 'p1_x', 'client', 'srs', 1, '{}', '36', false, now(), $3, 'api')",
                response_id,
                3 if number < 2 else 4,
                datetime(2026, 1, 1, 10, minute, tzinfo=UTC),
            )
        await asyncio.to_thread(upgrade, "feedback", pg_database, "head")
        rows = await owner.fetch("SELECT id, replaced_by FROM feedback_responses ORDER BY id")
    finally:
        await owner.close()
    assert [(r["id"], r["replaced_by"]) for r in rows] == [("a", None), ("b", "a"), ("c", None)]


async def test_concurrent_registrations_of_one_encounter_give_one_winner_and_409s(
    desk: FeedbackDesk,
) -> None:
    """The same Encounter identifier registered for two sessions at once: the unique key lets
    one win and the other gets the 409 it would get coming second (never a 500)."""
    episode_id = await desk.open_episode()
    auth = desk.auth("therapist")
    for round_number in range(ROUNDS):
        body = {"system": "urn:ehr:encounter", "value": f"enc-{round_number}"}
        answers = await asyncio.gather(
            *(
                desk.http.put(
                    f"/feedback/episodes/{episode_id}/sessions/{session}/encounter",
                    headers=auth,
                    json=body,
                )
                for session in (2 * round_number + 1, 2 * round_number + 2)
            )
        )
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 409], [a.text for a in answers]
        losers = [a.json() for a in answers if a.status_code == 409]
        assert all(e["errors"][0]["rule"] == "encounter_registered" for e in losers), losers
