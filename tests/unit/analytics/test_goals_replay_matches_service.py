"""``rapport replay`` and the embedded service open the same goals_not_progressing and
low_support alerts (and resolve them at the same sessions) for the same records: goal ratings
whose set of goals changes between sessions, and support ratings."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rapport import replay
from shared.settings import Settings
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.support.waiting import eventually

START = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
# (session, instrument, items): support low at 2, 5 at 3 (still open), 6 at 4 (resolved); goals
# flat to session 6 (opens), a goal added at 4 starting from its own first rating, one goal +3
# at 7 (resolves), flat again at 8 (opens again).
RATINGS: list[tuple[int, str, dict[str, int]]] = [
    (1, "support", {"support": 7}),
    (1, "goals", {"g-one": 2, "g-two": 5}),
    (2, "support", {"support": 4}),
    (2, "goals", {"g-one": 3, "g-two": 5}),
    (3, "support", {"support": 5}),
    (3, "goals", {"g-one": 3, "g-two": 6}),
    (4, "support", {"support": 6}),
    (4, "goals", {"g-one": 4, "g-two": 6, "g-three": 1}),
    (5, "goals", {"g-one": 4, "g-two": 7, "g-three": 2}),
    (6, "goals", {"g-one": 4, "g-two": 7, "g-three": 3}),
    (7, "goals", {"g-one": 5, "g-two": 7, "g-three": 4}),
    (8, "goals", {"g-one": 2, "g-two": 6, "g-three": 1}),
]
KINDS = {"goals_not_progressing", "low_support"}
Alert = tuple[str, int, int | None, str]


def at(session: int) -> datetime:
    return START + timedelta(days=7 * (session - 1))


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[FeedbackDesk]:
    async with feedback_desk(embedded_settings, ("intake", "feedback", "analytics")) as opened:
        yield opened


async def service_alerts(desk: FeedbackDesk) -> list[Alert]:
    episode_id = await desk.open_episode()
    ids: dict[str, str] = {}  # the test's goal names -> the ids feedback gave the goals
    for session, instrument, items in RATINGS:
        for name in items:
            if instrument == "goals" and name not in ids:
                goal = await desk.http.post(
                    f"/feedback/episodes/{episode_id}/goals",
                    headers=desk.auth("therapist"),
                    json={"text": f"goal {name}"},
                )
                assert goal.status_code == 201, goal.text
                ids[name] = goal.json()["goal_id"]
        if instrument == "goals":
            items = {ids[name]: value for name, value in items.items()}
        answered = await desk.http.post(
            "/feedback/responses",
            headers=desk.auth("therapist"),
            json={
                "episode_id": episode_id,
                "session_number": session,
                "respondent_role": "client",
                "instrument": instrument,
                "items": items,
                "answered_at": at(session).isoformat(),
            },
        )
        assert answered.status_code == 201, answered.text
    found: list[dict[str, Any]] = []

    async def all_applied() -> bool:
        got = await desk.http.get(
            "/analytics/alerts",
            params={"site_id": "site-a", "status": "all"},
            headers=desk.auth("clinical_lead", sub="lead"),
        )
        assert got.status_code == 200, got.text
        found[:] = [a for a in got.json() if a["kind"] in KINDS]
        # the last rating re-opens goals_not_progressing: everything before it was applied
        return any(a["opened_session"] == 8 for a in found)

    await eventually(all_applied, what="analytics to apply every rating")
    return sorted(
        (
            a["kind"],
            a["opened_session"],
            a["resolved_session"],
            json.dumps(a["inputs"], sort_keys=True),
        )
        for a in found
    )


def replayed_alerts(tmp_path: Path) -> list[Alert]:
    source = tmp_path / "ratings.jsonl"
    lines = [
        json.dumps(
            {
                "episode_id": "ep-1",
                "site_id": "site-a",
                "therapist_id": "th-1",
                "session": session,
                "at": at(session).isoformat(),
                "respondent": "client",
                "respondent_id": "client-1",
                "instrument": instrument,
                "items": items,
            }
        )
        for session, instrument, items in RATINGS
    ]
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "alerts.jsonl"
    assert replay.main([str(source), "--out", str(out), "--include-resolved"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    resolved = {
        (r["kind"], r["opened_session"]): r["session"] for r in rows if r["status"] == "resolved"
    }
    return sorted(
        (
            r["kind"],
            r["session"],
            resolved.get((r["kind"], r["session"])),
            json.dumps(r["inputs"], sort_keys=True),
        )
        for r in rows
        if r["status"] == "opened" and r["kind"] in KINDS
    )


async def test_replay_and_the_service_open_the_same_goal_and_support_alerts(
    desk: FeedbackDesk, tmp_path: Path
) -> None:
    replayed = replayed_alerts(tmp_path)
    assert [(k, o, r) for k, o, r, _ in replayed] == [
        ("goals_not_progressing", 6, 7),
        ("goals_not_progressing", 8, None),
        ("low_support", 2, 4),
    ]
    assert await service_alerts(desk) == replayed
