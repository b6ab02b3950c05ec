"""Sessions as facts on the real stack (issue 16; Kafka, PostgreSQL under row-level security):
each fact puts its ``session.*`` on Kafka once, a repeated fact (a route retried, a diary sent
twice) puts nothing more, every attended or missed session ``session.completed`` exactly once,
a feedback response's implied attendance goes out with ``implied_by_feedback``; feedback
follows intake's ``episode.phase_changed`` from Kafka (closed refuses facts, a drop-out takes
them); each bad input is a 4xx naming the field and the rule with nothing stored."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

import services
from services.feedback.models import FeedbackSession
from shared.auth import mint_token
from shared.contracts import (
    EPISODE_PHASE_CHANGED,
    SESSION_ATTENDED,
    SESSION_CANCELLED,
    SESSION_COMPLETED,
    SESSION_MISSED,
    SESSION_SCHEDULED,
    EpisodePhaseChanged,
)
from shared.events import Event
from shared.host import Host
from shared.settings import Settings
from tests.integration.test_delivery_guarantees import read_topic
from tests.support.notify import Publisher
from tests.support.waiting import eventually

AT = "2026-12-08T17:00:00+01:00"
SRS = {"relationship": 9.2, "goals": 9.2, "approach": 9.2, "overall": 9.4}


class Front:
    """A front-end reporting sessions over HTTP."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        self.http = http
        self.settings = settings

    def auth(self, role: str = "therapist") -> dict[str, str]:
        token = mint_token(self.settings, "th-1", role, ["site-a"])
        return {"Authorization": f"Bearer {token}"}

    async def open_episode(self, reference: str) -> str:
        opened = await self.http.post(
            "/intake/episodes",
            headers=self.auth("intake_coordinator"),
            json={"site_id": "site-a", "therapist_id": "th-1", "client_reference": reference},
        )
        assert opened.status_code == 201, opened.text
        episode: str = opened.json()["episode_id"]

        async def known() -> bool:
            got = await self.http.get(f"/feedback/episodes/{episode}/sessions", headers=self.auth())
            return got.status_code == 200

        await eventually(known, what="feedback to learn the episode")
        return episode

    async def fact(self, episode: str, n: int, kind: str, body: Any = None) -> httpx.Response:
        return await self.http.post(
            f"/feedback/episodes/{episode}/sessions/{n}/{kind}", headers=self.auth(), json=body
        )


def refused(answer: httpx.Response, status: int, field: str, rule: str) -> bool:
    return (
        answer.status_code == status
        and answer.headers["content-type"] == "application/problem+json"
        and any(e["field"] == field and e["rule"] == rule for e in answer.json()["errors"])
    )


async def session_rows(host: Host) -> int:
    async with host.runtimes["feedback"].sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(FeedbackSession)) or 0)


def phase(episode: str, to_phase: str, at: datetime) -> Event[EpisodePhaseChanged]:
    changed = EpisodePhaseChanged(
        episode_id=episode,
        site_id="site-a",
        therapist_id="th-1",
        from_phase=None,
        to_phase=to_phase,  # type: ignore[arg-type]
        reason="test",
        at=at,
    )
    return Event(EPISODE_PHASE_CHANGED, changed, source="/rapport/intake")


async def report_and_refuse(front: Front, host: Host, episode: str) -> None:
    """Every fact once, then again (nothing more), then each bad input (nothing stored)."""
    for _ in range(2):
        assert (await front.fact(episode, 1, "scheduled", {"scheduled_for": AT})).status_code in (
            201,
            200,
        )
        assert (await front.fact(episode, 1, "attended")).status_code in (201, 200)
        assert (await front.fact(episode, 2, "missed", {"at": AT})).status_code in (201, 200)
        cancelled = await front.fact(
            episode, 3, "cancelled", {"by": "client", "at": AT, "notice_hours": 2}
        )
        assert cancelled.status_code in (201, 200), cancelled.text
    answered = await front.http.post(
        "/feedback/responses",
        headers=front.auth(),
        json={
            "episode_id": episode,
            "session_number": 4,
            "respondent_role": "client",
            "instrument": "srs",
            "items": SRS,
        },
    )
    assert answered.status_code == 201, answered.text
    rows = await session_rows(host)
    assert rows == 4
    assert refused(
        await front.fact(episode, 5, "attended", {"at": "2026-12-08T17:00:00"}),
        422,
        "at",
        "timezone_aware",
    )
    assert refused(
        await front.fact("no-such-episode", 1, "attended", {"at": AT}),
        404,
        "episode_id",
        "not_found",
    )
    assert refused(
        await front.fact(episode, 1, "scheduled", {"scheduled_for": "2026-12-01T09:00:00Z"}),
        409,
        "status",
        "goes_backwards",
    )
    assert refused(
        await front.fact(episode, 2, "attended", {"at": AT}), 409, "status", "disagrees_with_stored"
    )
    diary = (
        "episode_id,session_number,status,at\n"
        f"{episode},6,attended,{AT}\n"
        f"{episode},2,attended,{AT}\n"
    ).encode()
    whole = await front.http.post(
        "/feedback/sites/site-a/session-diary",
        headers={**front.auth(), "content-type": "text/csv"},
        content=diary,
    )
    assert whole.status_code == 422 and whole.json()["errors"][0]["line"] == 3, whole.text
    assert await session_rows(host) == rows  # line 2 was fine, but all or nothing


async def test_session_facts_reach_kafka_once_and_follow_the_phase(
    real_settings: Settings,
) -> None:
    host = Host(real_settings, services.definitions(["intake", "feedback"]))
    publisher = Publisher(real_settings)
    await host.start()
    await publisher.start()
    try:
        transport = httpx.ASGITransport(app=host.http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as http:
            front = Front(http, real_settings)
            episode = await front.open_episode("c-1")
            await report_and_refuse(front, host, episode)

            ended = await front.open_episode("c-2")
            now = datetime.now(UTC)
            await publisher.publish(phase(ended, "closed", now))

            # The first try may land before the event: then the episode takes the fact, as
            # it should while still open. Use a fresh session number each try instead.
            attempt = iter(range(1, 1000))

            async def closed_fresh() -> bool:
                answer = await front.fact(ended, next(attempt), "missed", {"at": AT})
                return refused(answer, 409, "episode_id", "episode_ended")

            await eventually(closed_fresh, what="feedback to follow episode.phase_changed")
            rows = await session_rows(host)
            # A client who returns after a drop-out: the episode takes facts again.
            await publisher.publish(phase(ended, "dropped_out", now + timedelta(seconds=1)))

            async def returned() -> bool:
                answer = await front.fact(ended, 900, "attended", {"at": AT})
                return answer.status_code == 201

            await eventually(returned, what="a dropped-out episode to take facts")
            assert await session_rows(host) == rows + 1
    finally:
        await publisher.stop()
        await host.stop()

    async def on_kafka(event_type: Any, expected: int) -> list[dict[str, Any]]:
        records = await read_topic(
            real_settings, real_settings.topic(event_type.topic_name), expected
        )
        unique = {r["ce_id"]: json.loads(r["value"]) for r in records}  # at-least-once
        return [v for v in unique.values() if v["episode_id"] == episode]

    scheduled = await on_kafka(SESSION_SCHEDULED, 1)
    attended = await on_kafka(SESSION_ATTENDED, 2)
    missed = await on_kafka(SESSION_MISSED, 1)
    cancelled = await on_kafka(SESSION_CANCELLED, 1)
    completed = await on_kafka(SESSION_COMPLETED, 2)
    assert [e["session_number"] for e in scheduled] == [1]
    assert sorted((e["session_number"], e["implied_by_feedback"]) for e in attended) == [
        (1, False),
        (4, True),
    ]
    assert [e["session_number"] for e in missed] == [2]
    assert [(e["session_number"], e["by"], e["notice_hours"]) for e in cancelled] == [
        (3, "client", 2)
    ]
    # One session.completed per reported attended or missed session, none for the implied one.
    assert Counter((e["session_number"], e["attended"]) for e in completed) == {
        (1, True): 1,
        (2, False): 1,
    }
