"""The admission limit on the real stack (Kafka, PostgreSQL, Redis): with
RAPPORT_HTTP_MAX_IN_FLIGHT=1 and one real request held open (its body still arriving), a
``POST /feedback/responses`` is refused with 503 and ``Retry-After`` and nothing of it is
stored (no response row, no outbox row); the request that was admitted is stored once, and the
refused one, sent again, is accepted."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from sqlmodel import select

from services.feedback.models import FeedbackResponse
from shared.db import all_sites
from shared.settings import Settings
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.support.outbox import outbox_rows

RETRY_AFTER = 3
SRS = {"relationship": 9.2, "goals": 9.2, "approach": 9.2, "overall": 9.4}


@pytest.fixture
async def desk(real_settings: Settings) -> AsyncIterator[FeedbackDesk]:
    one_at_a_time = real_settings.model_copy(
        update={"http_max_in_flight": 1, "http_retry_after_seconds": RETRY_AFTER}
    )
    async with feedback_desk(one_at_a_time, embedded=False) as desk:
        yield desk


def srs(episode_id: str, session_number: int) -> dict[str, object]:
    return {
        "episode_id": episode_id,
        "session_number": session_number,
        "respondent_role": "client",
        "instrument": "srs",
        "items": SRS,
    }


async def stored_sessions(desk: FeedbackDesk) -> list[int]:
    with all_sites():
        async with desk.host.runtimes["feedback"].sessionmaker() as session:
            rows = (await session.exec(select(FeedbackResponse))).all()
    return sorted(r.session_number for r in rows)


async def recorded_sessions(desk: FeedbackDesk) -> list[int]:
    rows = await outbox_rows(desk.host, "feedback")
    return sorted(
        int(str(r.value["session_number"]))
        for r in rows
        if r.ce_type.endswith("feedback.recorded.v1")
    )


async def test_a_response_refused_under_overload_is_not_stored(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode()
    auth = desk.auth("therapist")
    arriving = asyncio.Event()
    finish = asyncio.Event()
    held_body = json.dumps(srs(episode_id, 1)).encode()

    async def slow_body() -> AsyncIterator[bytes]:
        arriving.set()
        yield held_body[:10]
        await finish.wait()
        yield held_body[10:]

    held = asyncio.create_task(
        desk.http.post(
            "/feedback/responses",
            content=slow_body(),
            headers={**auth, "content-type": "application/json", "Idempotency-Key": "held-1"},
        )
    )
    await asyncio.wait_for(arriving.wait(), 60)  # the held request is in the app, reading

    refused = await desk.http.post(
        "/feedback/responses",
        json=srs(episode_id, 2),
        headers={**auth, "Idempotency-Key": "refused-2"},
    )

    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == str(RETRY_AFTER)
    assert refused.headers["content-type"] == "application/problem+json"
    assert "RAPPORT_HTTP_MAX_IN_FLIGHT" in refused.json()["detail"]
    assert await stored_sessions(desk) == []
    assert await recorded_sessions(desk) == []

    finish.set()
    admitted = await held
    assert admitted.status_code == 201, admitted.text
    assert await stored_sessions(desk) == [1]  # the admitted one, once; nothing of the refused
    assert await recorded_sessions(desk) == [1]

    again = await desk.http.post(
        "/feedback/responses",
        json=srs(episode_id, 2),
        headers={**auth, "Idempotency-Key": "refused-2"},
    )
    assert again.status_code == 201, again.text
    assert await stored_sessions(desk) == [1, 2]
    assert await recorded_sessions(desk) == [1, 2]
