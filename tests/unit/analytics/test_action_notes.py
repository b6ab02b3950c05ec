"""A note on a recorded action (embedded stack): sealed under the client's own data key, never on
a topic; shown on the episode's timeline to the clinicians who may see the client; too long is a
422 naming the field with nothing stored; a retry with its Idempotency-Key answers the same, and
the same key with another note is a conflict; once the client's key is destroyed (erasure) the
note cannot be read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import delete, select

from services.analytics.mapping import NOTE_MAX
from services.analytics.models import ALERT_ACTIONS, CLIENT_KEYS
from shared.db import all_sites
from shared.settings import Settings
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.unit.analytics.test_analytics_alert_follow_up import a_risk_alert, actions_stored, steps

NOTE = "Client agreed a safety plan with her sister; call booked for Thursday."


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[FeedbackDesk]:
    async with feedback_desk(embedded_settings, ("intake", "feedback", "analytics")) as opened:
        yield opened


async def act(desk: FeedbackDesk, alert_id: str, note: str | None, key: str | None = None) -> Any:
    headers = desk.auth("therapist")
    if key is not None:
        headers["Idempotency-Key"] = key
    body: dict[str, Any] = {"code": "safety_plan"}
    if note is not None:
        body["note"] = note
    return await desk.http.post(f"/analytics/alerts/{alert_id}/actions", headers=headers, json=body)


async def stored_notes(desk: FeedbackDesk) -> list[str | None]:
    with all_sites():
        async with desk.host.runtimes["analytics"].sessionmaker() as session:
            rows = await session.execute(select(ALERT_ACTIONS.c.note_sealed))
    return [r[0] for r in rows.all()]


async def timeline_notes(desk: FeedbackDesk, episode_id: str) -> list[str | None]:
    got = await desk.http.get(
        f"/analytics/episodes/{episode_id}/timeline", headers=desk.auth("therapist")
    )
    assert got.status_code == 200, got.text
    return [a["note"] for alert in got.json()["alerts"] for a in alert["actions"]]


async def test_a_note_is_sealed_under_the_clients_key_and_shown_on_the_timeline(
    desk: FeedbackDesk,
) -> None:
    risk = await a_risk_alert(desk)

    recorded = await act(desk, risk["alert_id"], NOTE)

    assert recorded.status_code == 201, recorded.text
    assert recorded.json()["note"] == NOTE
    (sealed,) = await stored_notes(desk)
    assert sealed is not None and sealed.startswith("c1.") and "safety" not in sealed
    assert NOTE not in str(await steps(desk, risk["alert_id"]))  # on no topic
    assert await timeline_notes(desk, risk["episode_id"]) == [NOTE]

    with all_sites():  # the client's key destroyed, as erasure does
        async with desk.host.runtimes["analytics"].sessionmaker() as session, session.begin():
            await session.execute(delete(CLIENT_KEYS))
    assert await timeline_notes(desk, risk["episode_id"]) == [None]


async def test_a_note_over_the_limit_is_422_naming_the_field_and_nothing_is_stored(
    desk: FeedbackDesk,
) -> None:
    risk = await a_risk_alert(desk)

    refused = await act(desk, risk["alert_id"], "x" * (NOTE_MAX + 1))

    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["note"]
    assert await actions_stored(desk) == 0
    assert [s["status"] for s in await steps(desk, risk["alert_id"])] == ["opened"]


async def test_a_retry_answers_the_same_note_and_another_note_under_its_key_is_a_conflict(
    desk: FeedbackDesk,
) -> None:
    risk = await a_risk_alert(desk)

    first = await act(desk, risk["alert_id"], NOTE, key="n-1")
    again = await act(desk, risk["alert_id"], NOTE, key="n-1")
    other = await act(desk, risk["alert_id"], "Something else entirely.", key="n-1")
    bare = await act(desk, risk["alert_id"], None, key="n-1")

    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json()
    assert other.status_code == bare.status_code == 409, other.text
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert await actions_stored(desk) == 1
