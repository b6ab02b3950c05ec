"""``rapport replay`` lines may carry the client's ``age_group`` (per episode, as match.confirmed
gives it to analytics): the replay passes it to the analytics domain as the service does, so both
open the same not_on_track for an adolescent's ORS of 27 (below the adolescents' cutoff, 28, above
the adults' 25); an unknown age group is a bad line."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from rapport import replay
from shared.settings import Settings
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.support.waiting import eventually
from tests.unit.analytics.builders import INSTRUMENTS

ORS_27 = {"individually": 6.8, "interpersonally": 6.8, "socially": 6.7, "overall": 6.7}  # 27.0


def line(episode_id: str, session: int, **extra: Any) -> dict[str, Any]:
    return {
        "episode_id": episode_id,
        "site_id": "site-a",
        "therapist_id": "th-1",
        "session": session,
        "at": f"2026-01-{session:02d}T10:00:00+00:00",
        "respondent": "client",
        "respondent_id": "client-1",
        "instrument": "ors",
        "items": ORS_27,
        **extra,
    }


def replayed(lines: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    out = io.StringIO()
    bad: list[str] = []
    replay.replay_lines(
        [json.dumps(x) for x in lines],
        INSTRUMENTS,
        out.write,
        report=lambda lineno, reason: bad.append(f"{lineno}: {reason}"),
    )
    return [json.loads(x) for x in out.getvalue().splitlines()], bad


def not_on_track(alerts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (a["session"], a["instrument"], a["inputs"]["clinical_cutoff"])
        for a in alerts
        if a["kind"] == "not_on_track"
    ]


def test_an_adolescents_age_group_on_a_line_holds_for_the_episode() -> None:
    # given once, on the first line: the episode's later lines keep it
    lines = [line("ep-1", 1, age_group="adolescent")] + [line("ep-1", s) for s in (2, 3, 4)]
    alerts, bad = replayed(lines)
    assert bad == []
    assert not_on_track(alerts) == [(4, "ors", 28.0)]


def test_without_an_age_group_the_general_cutoff_holds() -> None:
    for lines in (
        [line("ep-1", s) for s in (1, 2, 3, 4)],
        [line("ep-1", s, age_group="adult") for s in (1, 2, 3, 4)],
    ):
        alerts, bad = replayed(lines)
        assert bad == [] and not_on_track(alerts) == []


@pytest.mark.parametrize("value", ["teen", "Adolescent", "", 15, True, ["adult"]])
def test_an_unknown_age_group_is_a_bad_line(value: Any) -> None:
    _, bad = replayed([line("ep-1", 1, age_group=value), line("ep-1", 2)])
    assert len(bad) == 1 and bad[0].startswith("1: age_group must be one of")
    assert "adolescent" in bad[0]


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[FeedbackDesk]:
    async with feedback_desk(embedded_settings, ("intake", "feedback", "analytics")) as opened:
        yield opened


async def test_the_service_and_the_replay_open_the_same_not_on_track_for_an_adolescent(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode(age_group="adolescent")

    async def known() -> bool:
        got = await desk.http.get(
            f"/analytics/episodes/{episode_id}/timeline", headers=desk.auth("clinical_lead")
        )
        return got.status_code == 200

    await eventually(known, what="analytics to learn the episode")
    for session in (1, 2, 3, 4):
        answered = await desk.http.post(
            "/feedback/responses",
            headers=desk.auth("therapist"),
            json={
                "episode_id": episode_id,
                "session_number": session,
                "respondent_role": "client",
                "instrument": "ors",
                "items": ORS_27,
            },
        )
        assert answered.status_code == 201, answered.text
    live: list[dict[str, Any]] = []

    async def opened() -> bool:
        got = await desk.http.get(
            "/analytics/alerts",
            params={"site_id": "site-a", "kind": "not_on_track"},
            headers=desk.auth("clinical_lead", sub="lead"),
        )
        live[:] = [a for a in got.json() if a["episode_id"] == episode_id]
        return bool(live)

    await eventually(opened, what="not_on_track for an adolescent's ORS of 27")
    alerts, bad = replayed([line(episode_id, s, age_group="adolescent") for s in (1, 2, 3, 4)])
    assert bad == []
    assert (
        [(a["opened_session"], a["instrument"], a["inputs"]["clinical_cutoff"]) for a in live]
        == not_on_track(alerts)
        == [(4, "ors", 28.0)]
    )
    (replayed_alert,) = [a for a in alerts if a["kind"] == "not_on_track"]
    assert replayed_alert["inputs"] == live[0]["inputs"]
