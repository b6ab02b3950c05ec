"""Sessions as facts over HTTP (issue 16; embedded stack): one route per fact, idempotent,
site- and role-scoped, each fact's ``session.*`` through the outbox; a feedback response
implies attendance; the day's diary as JSON or CSV, all or nothing. Bad input (a time without
an offset, an unknown or ended episode, a fact going backwards or disagreeing) gets a 4xx
naming the field and the rule, and nothing is stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.feedback.usecases.sessions import learn_phase
from shared.contracts import EpisodePhaseChanged
from shared.settings import Settings
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.support.outbox import outbox_rows

SRS = {"relationship": 9.2, "goals": 9.2, "approach": 9.2, "overall": 9.4}
AT = "2026-12-08T17:00:00+01:00"
P = "org.rapport."


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[FeedbackDesk]:
    async with feedback_desk(embedded_settings) as opened:
        yield opened


async def emitted(desk: FeedbackDesk) -> list[tuple[str, dict[str, Any]]]:
    return [
        (row.ce_type.removeprefix(P).removesuffix(".v1"), row.value)
        for row in await outbox_rows(desk.host, "feedback")
    ]


async def fact(
    desk: FeedbackDesk, episode: str, n: int, kind: str, body: Any = None, role: str = "therapist"
) -> Any:
    return await desk.http.post(
        f"/feedback/episodes/{episode}/sessions/{n}/{kind}",
        headers=desk.auth(role),
        json=body,
    )


async def sessions(desk: FeedbackDesk, episode: str) -> list[dict[str, Any]]:
    listed = await desk.http.get(
        f"/feedback/episodes/{episode}/sessions", headers=desk.auth("therapist")
    )
    assert listed.status_code == 200, listed.text
    result: list[dict[str, Any]] = listed.json()
    return result


def assert_refused(answer: Any, status: int, field: str, rule: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert any(e["field"] == field and e["rule"] == rule for e in answer.json()["errors"]), (
        answer.json()
    )


async def set_phase(
    desk: FeedbackDesk, episode: str, phase: str, at: datetime | None = None
) -> None:
    """What feedback's ``phase_of_episode`` subscriber does with intake's event."""
    changed = EpisodePhaseChanged(
        episode_id=episode,
        site_id="site-a",
        therapist_id="th-1",
        from_phase="active",
        to_phase=phase,  # type: ignore[arg-type]
        reason="test",
        at=at or datetime.now(UTC),
    )
    async with desk.host.runtimes["feedback"].transaction() as session:
        await learn_phase(session, changed)


async def test_a_session_is_scheduled_then_attended_each_fact_once(desk: FeedbackDesk) -> None:
    episode = await desk.open_episode()
    scheduled = await fact(desk, episode, 1, "scheduled", {"scheduled_for": AT})
    assert scheduled.status_code == 201, scheduled.text
    assert scheduled.json()["status"] == "scheduled"
    again = await fact(desk, episode, 1, "scheduled", {"scheduled_for": "2026-12-08T16:00:00Z"})
    assert again.status_code == 200  # the same instant, another offset: the same fact
    attended = await fact(desk, episode, 1, "attended")  # at the scheduled time
    assert attended.status_code == 201, attended.text
    assert attended.json()["at"].startswith("2026-12-08T16:00:00")
    repeated = await fact(desk, episode, 1, "attended", {})
    assert repeated.status_code == 200
    assert repeated.json() == attended.json()
    events = await emitted(desk)
    assert [t for t, _ in events] == ["session.scheduled", "session.attended", "session.completed"]
    assert events[1][1]["implied_by_feedback"] is False
    assert events[2][1]["attended"] is True
    assert [s["status"] for s in await sessions(desk, episode)] == ["attended"]


async def test_missed_and_cancelled_facts(desk: FeedbackDesk) -> None:
    episode = await desk.open_episode()
    assert (await fact(desk, episode, 1, "missed", {"at": AT})).status_code == 201
    by_client = await fact(
        desk,
        episode,
        2,
        "cancelled",
        {"by": "client", "at": AT, "cancelled_at": "2026-12-07T17:30:00+01:00"},
    )
    assert by_client.status_code == 201, by_client.text
    assert (by_client.json()["status"], by_client.json()["notice_hours"]) == (
        "cancelled_by_client",
        23,
    )
    by_clinic = await fact(desk, episode, 3, "cancelled", {"by": "clinic", "at": AT})
    assert by_clinic.json()["status"] == "cancelled_by_clinic"
    events = await emitted(desk)
    assert [t for t, _ in events] == [
        "session.missed",
        "session.completed",
        "session.cancelled",
        "session.cancelled",
    ]
    assert events[1][1]["attended"] is False
    assert (events[2][1]["by"], events[2][1]["notice_hours"]) == ("client", 23)
    assert events[3][1]["by"] == "clinic"


async def test_a_fact_that_disagrees_or_goes_backwards_is_refused_and_nothing_stored(
    desk: FeedbackDesk,
) -> None:
    episode = await desk.open_episode()
    assert (await fact(desk, episode, 1, "attended", {"at": AT})).status_code == 201
    before = await emitted(desk)
    assert_refused(
        await fact(desk, episode, 1, "missed", {"at": AT}), 409, "status", "disagrees_with_stored"
    )
    assert_refused(
        await fact(desk, episode, 1, "cancelled", {"by": "clinic"}),
        409,
        "status",
        "disagrees_with_stored",
    )
    assert_refused(
        await fact(desk, episode, 1, "scheduled", {"scheduled_for": AT}),
        409,
        "status",
        "goes_backwards",
    )
    assert (await fact(desk, episode, 2, "scheduled", {"scheduled_for": AT})).status_code == 201
    assert_refused(
        await fact(desk, episode, 2, "scheduled", {"scheduled_for": "2026-12-09T17:00:00+01:00"}),
        409,
        "scheduled_for",
        "differs_from_stored",
    )
    assert_refused(
        await fact(desk, episode, 3, "attended"), 422, "at", "required_when_not_scheduled"
    )
    assert len(await emitted(desk)) == len(before) + 1  # session 2's scheduled only
    assert [(s["session_number"], s["status"]) for s in await sessions(desk, episode)] == [
        (1, "attended"),
        (2, "scheduled"),
    ]


async def test_bad_input_is_refused_naming_the_field(desk: FeedbackDesk) -> None:
    episode = await desk.open_episode()
    assert_refused(
        await fact(desk, episode, 1, "scheduled", {"scheduled_for": "2026-12-08T17:00:00"}),
        422,
        "scheduled_for",
        "timezone_aware",
    )
    assert_refused(
        await fact(desk, episode, 1, "attended", {"at": "2026-12-08T17:00:00"}),
        422,
        "at",
        "timezone_aware",
    )
    assert_refused(
        await fact(desk, episode, 1, "cancelled", {"by": "nobody", "at": AT}),
        422,
        "by",
        "unknown_code",
    )
    assert_refused(
        await fact(desk, "no-such-episode", 1, "attended", {"at": AT}),
        404,
        "episode_id",
        "not_found",
    )
    other_site = await desk.http.post(
        f"/feedback/episodes/{episode}/sessions/1/attended",
        headers=desk.auth("clinical_lead", sites=("site-b",)),
        json={"at": AT},
    )
    assert_refused(other_site, 404, "episode_id", "not_found")
    other_therapist = await desk.http.post(
        f"/feedback/episodes/{episode}/sessions/1/attended",
        headers=desk.auth("therapist", sub="th-2"),
        json={"at": AT},
    )
    assert other_therapist.status_code == 404
    analyst = await fact(desk, episode, 1, "attended", {"at": AT}, role="data_analyst")
    assert analyst.status_code == 403
    assert await emitted(desk) == []
    assert await sessions(desk, episode) == []


@pytest.mark.parametrize("phase", ["closed", "withdrawn", "transferred"])
async def test_an_ended_episode_takes_no_new_facts(desk: FeedbackDesk, phase: str) -> None:
    episode = await desk.open_episode()
    await set_phase(desk, episode, phase)
    assert_refused(
        await fact(desk, episode, 1, "attended", {"at": AT}), 409, "episode_id", "episode_ended"
    )
    old_route = await desk.http.post(
        "/feedback/sessions",
        headers=desk.auth("therapist"),
        json={"episode_id": episode, "session_number": 1, "at": AT},
    )
    assert_refused(old_route, 409, "episode_id", "episode_ended")
    assert await emitted(desk) == []


async def test_a_dropped_out_episode_still_takes_facts(desk: FeedbackDesk) -> None:
    episode = await desk.open_episode()
    await set_phase(desk, episode, "dropped_out")
    assert (await fact(desk, episode, 5, "attended", {"at": AT})).status_code == 201


async def test_an_older_phase_change_delivered_late_does_not_reopen_an_episode(
    desk: FeedbackDesk,
) -> None:
    episode = await desk.open_episode()
    closed_at = datetime.now(UTC)
    await set_phase(desk, episode, "closed", closed_at)
    await set_phase(desk, episode, "active", closed_at - timedelta(days=1))
    assert_refused(
        await fact(desk, episode, 1, "attended", {"at": AT}), 409, "episode_id", "episode_ended"
    )


async def test_the_old_report_route_is_the_attended_or_missed_fact(desk: FeedbackDesk) -> None:
    episode = await desk.open_episode()
    body = {"episode_id": episode, "session_number": 1, "at": AT, "attended": False}
    first = await desk.http.post("/feedback/sessions", headers=desk.auth("therapist"), json=body)
    assert first.status_code == 201 and first.json()["attended"] is False
    assert [s["status"] for s in await sessions(desk, episode)] == ["missed"]
    assert [t for t, _ in await emitted(desk)] == ["session.missed", "session.completed"]
    disagreeing = await desk.http.post(
        "/feedback/sessions", headers=desk.auth("therapist"), json={**body, "attended": True}
    )
    assert_refused(disagreeing, 409, "status", "disagrees_with_stored")
    assert (await fact(desk, episode, 1, "missed")).status_code == 200
    assert len(await emitted(desk)) == 2


async def answer(desk: FeedbackDesk, episode: str, n: int) -> Any:
    answered = await desk.http.post(
        "/feedback/responses",
        headers=desk.auth("therapist"),
        json={
            "episode_id": episode,
            "session_number": n,
            "respondent_role": "client",
            "instrument": "srs",
            "items": SRS,
        },
    )
    assert answered.status_code == 201, answered.text
    return answered


async def test_a_response_implies_attendance_once_and_a_report_then_completes_it(
    desk: FeedbackDesk,
) -> None:
    episode = await desk.open_episode()
    await answer(desk, episode, 1)
    (implied,) = await sessions(desk, episode)
    assert (implied["status"], implied["implied_by_feedback"]) == ("attended", True)
    events = await emitted(desk)
    assert [t for t, _ in events] == ["feedback.recorded", "session.attended"]
    assert events[1][1]["implied_by_feedback"] is True
    # The front-end reports the session: now it is completed (notify's invitations), once.
    reported = await fact(desk, episode, 1, "attended", {"at": AT})
    assert reported.status_code == 201 and reported.json()["implied_by_feedback"] is False
    assert (await fact(desk, episode, 1, "attended")).status_code == 200
    assert [t for t, _ in await emitted(desk)] == [
        "feedback.recorded",
        "session.attended",
        "session.completed",
    ]


async def test_a_response_for_a_scheduled_session_attends_it_at_its_time(
    desk: FeedbackDesk,
) -> None:
    episode = await desk.open_episode()
    await fact(desk, episode, 2, "scheduled", {"scheduled_for": AT})
    await answer(desk, episode, 2)
    (attended,) = await sessions(desk, episode)
    assert attended["status"] == "attended" and attended["implied_by_feedback"] is True
    assert attended["at"].startswith("2026-12-08T16:00:00")


async def test_a_response_for_a_missed_session_is_recorded_and_the_session_unchanged(
    desk: FeedbackDesk,
) -> None:
    episode = await desk.open_episode()
    await fact(desk, episode, 1, "missed", {"at": AT})
    await answer(desk, episode, 1)
    assert [s["status"] for s in await sessions(desk, episode)] == ["missed"]
    assert [t for t, _ in await emitted(desk)] == [
        "session.missed",
        "session.completed",
        "feedback.recorded",
    ]


async def diary(desk: FeedbackDesk, body: Any, csv: bool = False, dry_run: bool = False) -> Any:
    headers = {**desk.auth("intake_coordinator"), "content-type": "text/csv"} if csv else {}
    return await desk.http.post(
        "/feedback/sites/site-a/session-diary" + ("?dry_run=true" if dry_run else ""),
        headers=headers or desk.auth("intake_coordinator"),
        **({"content": body} if csv else {"json": body}),
    )


async def test_a_days_diary_is_recorded_in_one_call_and_again_changes_nothing(
    desk: FeedbackDesk,
) -> None:
    first, second = await desk.open_episode(), await desk.open_episode()
    lines = [
        {"episode_id": first, "session_number": 1, "status": "scheduled", "at": AT},
        {"episode_id": first, "session_number": 1, "status": "attended"},
        {"episode_id": second, "session_number": 4, "status": "missed", "at": AT},
        {
            "episode_id": second,
            "session_number": 5,
            "status": "cancelled_by_client",
            "at": AT,
            "notice_hours": 30,
        },
    ]
    checked = await diary(desk, lines, dry_run=True)
    assert checked.status_code == 200, checked.text
    assert (checked.json()["recorded"], checked.json()["dry_run"]) == (4, True)
    assert await emitted(desk) == []
    done = await diary(desk, lines)
    assert done.status_code == 200, done.text
    assert (done.json()["recorded"], done.json()["unchanged"]) == (4, 0)
    assert [t for t, _ in await emitted(desk)] == [
        "session.scheduled",
        "session.attended",
        "session.completed",
        "session.missed",
        "session.completed",
        "session.cancelled",
    ]
    again = await diary(desk, lines)
    assert (again.json()["recorded"], again.json()["unchanged"]) == (0, 4)
    assert len(await emitted(desk)) == 6


async def test_a_diary_with_one_bad_line_stores_nothing_and_names_it(desk: FeedbackDesk) -> None:
    episode = await desk.open_episode()
    await fact(desk, episode, 1, "attended", {"at": AT})
    before = len(await emitted(desk))
    lines = [
        {"episode_id": episode, "session_number": 2, "status": "attended", "at": AT},
        {"episode_id": episode, "session_number": 1, "status": "missed", "at": AT},
        {"episode_id": "no-such-episode", "session_number": 1, "status": "missed", "at": AT},
    ]
    refused = await diary(desk, lines)
    assert refused.status_code == 422, refused.text
    assert [(e["field"], e["rule"]) for e in refused.json()["errors"]] == [
        ("1.status", "disagrees_with_stored"),
        ("2.episode_id", "not_found"),
    ]
    assert len(await emitted(desk)) == before
    assert [s["session_number"] for s in await sessions(desk, episode)] == [1]
    no_offset = await diary(
        desk,
        [
            {
                "episode_id": episode,
                "session_number": 2,
                "status": "missed",
                "at": "2026-12-08T09:00",
            }
        ],
    )
    assert_refused(no_offset, 422, "0.at", "timezone_aware")


async def test_the_diary_from_csv_names_line_and_column(desk: FeedbackDesk) -> None:
    episode = await desk.open_episode()
    other_site = await desk.open_episode(site="site-b")
    good = (
        "episode_id,session_number,status,at,notice_hours\n"
        f"{episode},1,attended,{AT},\n"
        f"{episode},2,cancelled_by_clinic,2026-12-15T17:00:00+01:00,48\n"
    ).encode()
    done = await diary(desk, good, csv=True)
    assert done.status_code == 200, done.text
    assert [(line["line"], line["result"]) for line in done.json()["lines"]] == [
        (2, "recorded"),
        (3, "recorded"),
    ]
    stored = len(await emitted(desk))
    bad = (
        "episode_id,session_number,status,at\n"
        f"{episode},3,attended,2026-12-22T17:00:00\n"
        f"{episode},1,missed,{AT}\n"
        f"{episode},4,maybe,{AT}\n"
        f"{other_site},1,attended,{AT}\n"
    ).encode()
    refused = await diary(desk, bad, csv=True)
    assert refused.status_code == 422, refused.text
    named = [(e["line"], e["column"], e["rule"]) for e in refused.json()["errors"]]
    assert (2, "at", "timezone_aware") in named
    assert (4, "status", "unknown_code") in named
    wrong_header = await diary(desk, b"episode,session_number,status\n", csv=True)
    assert wrong_header.status_code == 422
    assert wrong_header.json()["errors"][0]["line"] == 1
    assert wrong_header.json()["errors"][0]["column"] == "episode"
    # The rows read, the facts are checked: a disagreeing fact and another site's episode.
    facts = (
        "episode_id,session_number,status,at\n"
        f"{episode},1,missed,{AT}\n"
        f"{other_site},1,attended,{AT}\n"
    ).encode()
    refused = await diary(desk, facts, csv=True)
    assert refused.status_code == 422, refused.text
    assert [(e["line"], e["column"], e["rule"]) for e in refused.json()["errors"]] == [
        (2, "status", "disagrees_with_stored"),
        (3, "episode_id", "not_found"),
    ]
    assert len(await emitted(desk)) == stored
