"""The episode's phase on the real stack (Kafka, PostgreSQL under row-level security): an
attended session reported by the feedback service makes the episode active (once, however often
the event is delivered); a silent episode is dropped out exactly once while two intake replicas
sweep their due checks, its place freed; a returning client is active again with the gap; and
planning the end of a closed episode is a 409 naming the field."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import services
from services.intake.dependencies import IntakeDependencies
from services.intake.models import DUE_CHECKS
from services.intake.usecases.phases import check_silence, record_contact
from shared.clock import Clock, DueCheck
from shared.contracts import (
    EPISODE_CLOSED,
    EPISODE_PHASE_CHANGED,
    SESSION_ATTENDED,
    SessionAttended,
)
from shared.db import all_sites
from shared.events import Event
from shared.host import Host
from shared.runtime import dependencies_of
from shared.settings import Settings
from shared.site_time import days_between
from tests.integration.test_delivery_guarantees import read_topic
from tests.support.notify import Publisher
from tests.support.waiting import eventually
from tests.unit.intake.desk import IntakeDesk, intake_desk, therapist_body

BERLIN = '{"site-a": "Europe/Berlin"}'


def attended(episode_id: str, at: datetime, number: int = 1) -> Event[SessionAttended]:
    """The event feedback publishes when a session is reported attended."""
    return Event(
        SESSION_ATTENDED,
        SessionAttended(
            episode_id=episode_id,
            site_id="site-a",
            therapist_id="th-1",
            session_number=number,
            at=at,
        ),
        source="/feedback",
    )


@asynccontextmanager
async def publisher(settings: Settings) -> AsyncIterator[Publisher]:
    opened = Publisher(settings)
    await opened.start()
    try:
        yield opened
    finally:
        await opened.stop()


async def open_episodes(desk: IntakeDesk, n: int) -> list[str]:
    ids = []
    for k in range(n):
        match = (await desk.submit(f"c-{k}"))["match"]
        confirmed = await desk.http.post(
            f"/intake/matches/{match['match_id']}/confirm",
            headers=desk.coordinator,
            json={"therapist_id": "th-1"},
        )
        assert confirmed.status_code == 201, confirmed.text
        ids.append(confirmed.json()["episode_id"])
    return ids


async def phase_is(desk: IntakeDesk, episode_id: str, phase: str) -> bool:
    got = await desk.http.get(f"/intake/episodes/{episode_id}", headers=desk.coordinator)
    return got.status_code == 200 and got.json()["phase"] == phase


def events(records: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Distinct events (by ce_id) of a topic, in order."""
    return list({r["ce_id"]: json.loads(r["value"]) for r in records}.values())


async def test_an_attended_session_makes_the_episode_active_once_on_kafka(
    real_settings: Settings,
) -> None:
    settings = real_settings.model_copy(update={"site_time_zones": BERLIN})
    async with intake_desk(settings, embedded=False) as desk, publisher(settings) as kafka:
        await desk.register(therapist_body("th-1"))
        [episode_id] = await open_episodes(desk, 1)
        session = attended(episode_id, datetime.now(UTC) - timedelta(hours=2))
        await kafka.publish(session, session)  # delivered twice: one contact

        async def active() -> bool:
            return await phase_is(desk, episode_id, "active")

        await eventually(active, what="the episode to become active")
        closed = await desk.http.post(
            f"/intake/episodes/{episode_id}/close",
            headers=desk.coordinator,
            json={"reason": "completed"},
        )
        assert closed.status_code == 200, closed.text
        refused = await desk.http.post(
            f"/intake/episodes/{episode_id}/closing", headers=desk.coordinator
        )
        assert refused.status_code == 409
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["errors"] == [{"field": "episode_id", "rule": "already_closed"}]

    topic = settings.topic(EPISODE_PHASE_CHANGED.topic_name)
    changes = events(await read_topic(settings, topic, 3))
    assert [(e["from_phase"], e["to_phase"], e["reason"]) for e in changes] == [
        ("referred", "matched", "match_confirmed"),
        ("matched", "active", "first_attended_session"),
        ("active", "closed", "completed"),
    ]
    stamps = [datetime.fromisoformat(e["at"].replace("Z", "+00:00")) for e in changes]
    assert stamps == sorted(stamps)  # each change stamped when intake made it, in order
    assert stamps[1] > session.data.at
    assert {e["episode_id"] for e in changes} == {episode_id}


async def test_silent_episodes_drop_out_once_with_two_replicas_and_a_client_returns(
    real_settings: Settings,
) -> None:
    settings = real_settings.model_copy(
        update={"site_time_zones": BERLIN, "clock_sweep_seconds": 0.2}
    )
    n = 8
    second = Host(settings, services.definitions(["intake"]), embedded=False)
    async with intake_desk(settings, embedded=False) as desk, publisher(settings) as kafka:
        await second.start()
        try:
            await desk.register(therapist_body("th-1", capacity=n))
            ids = await open_episodes(desk, n)
            assert await desk.caseload("th-1") == n
            # Each client was last seen 40 days ago: the episode is active and already silent
            # past its 28 days, so its check falls due at once and both replicas race for it.
            last = datetime.now(UTC) - timedelta(days=40)
            await kafka.publish(*(attended(episode_id, last) for episode_id in ids))

            async def all_dropped_out() -> bool:
                return all([await phase_is(desk, e, "dropped_out") for e in ids])

            await eventually(all_dropped_out, what="every silent episode to drop out")
            assert await desk.caseload("th-1") == 0
            back = datetime.now(UTC)
            await kafka.publish(attended(ids[0], back, number=2))

            async def returned() -> bool:
                return await phase_is(desk, ids[0], "active")

            await eventually(returned, what="the returning client's episode to be active")
            assert await desk.caseload("th-1") == 1
        finally:
            await second.stop()

    changes = events(
        await read_topic(settings, settings.topic(EPISODE_PHASE_CHANGED.topic_name), 3 * n + 1)
    )
    drop_outs = [e for e in changes if e["to_phase"] == "dropped_out"]
    assert sorted(e["episode_id"] for e in drop_outs) == sorted(ids)  # each exactly once
    assert {e["reason"] for e in drop_outs} == {"no_contact"}
    closed = events(await read_topic(settings, settings.topic(EPISODE_CLOSED.topic_name), n))
    assert sorted((e["episode_id"], e["reason"]) for e in closed) == sorted(
        (episode_id, "dropped_out") for episode_id in ids
    )
    [comeback] = [e for e in changes if e["reason"] == "returned"]
    assert comeback["episode_id"] == ids[0]
    assert comeback["gap_days"] == days_between(last, back, ZoneInfo("Europe/Berlin"))
    assert comeback["gap_days"] in (39, 40, 41)  # 40 days, counted on Berlin's calendar
    assert len(changes) == 3 * n + 1  # opened, active, dropped out; one return


async def test_a_contact_arriving_while_its_check_fires_waits_and_then_returns(
    real_settings: Settings,
) -> None:
    """The clock holds the episode's check and is about to read the episode when the client's
    session is reported: the contact waits for the firing (no deadlock, nothing lost), the
    episode drops out, then the contact brings it back."""
    settings = real_settings.model_copy(
        update={"site_time_zones": BERLIN, "clock_sweep_seconds": 3600}
    )
    async with intake_desk(settings, embedded=False) as desk:
        await desk.register(therapist_body("th-1"))
        [episode_id] = await open_episodes(desk, 1)
        deps = dependencies_of(desk.host.runtimes["intake"], IntakeDependencies)
        last = datetime.now(UTC) - timedelta(days=40)
        with all_sites():
            async with deps.runtime.transaction() as session:
                await deps.runtime.emit(
                    session,
                    *await record_contact(deps, session, episode_id, last, "attended_session"),
                )

            async def report_a_session() -> None:
                async with deps.runtime.transaction() as session:
                    back = await record_contact(
                        deps, session, episode_id, datetime.now(UTC), "attended_session"
                    )
                    await deps.runtime.emit(session, *back)

            reported: list[asyncio.Task[None]] = []

            async def slow_fire(session: Any, check: DueCheck, now: datetime) -> list[Any]:
                reported.append(asyncio.create_task(report_a_session()))
                await asyncio.sleep(1.0)  # the report runs meanwhile, as far as it can
                return await check_silence(deps, session, check, now)

            clock = Clock(deps.runtime, DUE_CHECKS, slow_fire)
            assert await clock.sweep() == 1
            await asyncio.wait_for(reported[0], 30)
        assert await phase_is(desk, episode_id, "active")
        changes = await desk.emitted_of("episode.phase_changed")
        assert [(e["to_phase"], e["reason"]) for e in changes] == [
            ("matched", "match_confirmed"),
            ("active", "first_attended_session"),
            ("dropped_out", "no_contact"),
            ("active", "returned"),
        ]


async def test_a_close_arriving_while_the_check_fires_waits_and_finds_it_dropped_out(
    real_settings: Settings,
) -> None:
    settings = real_settings.model_copy(
        update={"site_time_zones": BERLIN, "clock_sweep_seconds": 3600}
    )
    async with intake_desk(settings, embedded=False) as desk:
        await desk.register(therapist_body("th-1"))
        [episode_id] = await open_episodes(desk, 1)
        deps = dependencies_of(desk.host.runtimes["intake"], IntakeDependencies)
        last = datetime.now(UTC) - timedelta(days=40)
        with all_sites():
            async with deps.runtime.transaction() as session:
                await deps.runtime.emit(
                    session,
                    *await record_contact(deps, session, episode_id, last, "attended_session"),
                )
        answers: list[asyncio.Task[Any]] = []

        async def slow_fire(session: Any, check: DueCheck, now: datetime) -> list[Any]:
            answers.append(
                asyncio.create_task(
                    desk.http.post(
                        f"/intake/episodes/{episode_id}/close",
                        headers=desk.coordinator,
                        json={"reason": "completed"},
                    )
                )
            )
            await asyncio.sleep(1.0)
            return await check_silence(deps, session, check, now)

        with all_sites():
            assert await Clock(deps.runtime, DUE_CHECKS, slow_fire).sweep() == 1
        answer = await asyncio.wait_for(answers[0], 30)
        assert answer.status_code == 409, answer.text
        assert answer.json()["errors"] == [{"field": "episode_id", "rule": "already_closed"}]
        assert await phase_is(desk, episode_id, "dropped_out")
        assert [e["reason"] for e in await desk.emitted_of("episode.closed")] == ["dropped_out"]
        assert await desk.caseload("th-1") == 0
