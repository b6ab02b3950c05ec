"""Recording what was done about an alert and closing it (embedded stack): a coded action of
the site's list, by whom and when, published once as ``action_recorded``; the same
Idempotency-Key answers the first action; a risk alert closes only once an action is recorded;
bad input (another site's alert, a closed alert, an unknown code, an unknown reason) is a 4xx
naming the field and stores nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from services.analytics.models import ALERT_ACTIONS, OUTBOX
from shared.db import all_sites
from shared.settings import Settings
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.support.waiting import eventually
from tests.unit.analytics.test_analytics_risk_alerts import (
    HIGH,
    LOW,
    PHQ9_RISK,
    alerts,
    answer,
    risk_alerts,
)


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[FeedbackDesk]:
    async with feedback_desk(embedded_settings, ("intake", "feedback", "analytics")) as opened:
        yield opened


async def act(
    desk: FeedbackDesk, alert_id: str, code: str, key: str | None = None, **auth: Any
) -> Any:
    headers = desk.auth(**({"role": "therapist"} | auth))
    if key is not None:
        headers["Idempotency-Key"] = key
    return await desk.http.post(
        f"/analytics/alerts/{alert_id}/actions", headers=headers, json={"code": code}
    )


async def close(desk: FeedbackDesk, alert_id: str, reason: str, **auth: Any) -> Any:
    return await desk.http.post(
        f"/analytics/alerts/{alert_id}/close",
        headers=desk.auth(**({"role": "therapist"} | auth)),
        json={"reason": reason},
    )


async def steps(desk: FeedbackDesk, alert_id: str) -> list[dict[str, Any]]:
    """The alliance.alert events of this alert in analytics' outbox, in order."""
    with all_sites():
        async with desk.host.runtimes["analytics"].sessionmaker() as session:
            rows = (
                await session.execute(
                    select(OUTBOX.c.headers, OUTBOX.c.value).order_by(OUTBOX.c.id)
                )
            ).all()
    found = []
    for headers, value in rows:
        header = headers if isinstance(headers, dict) else json.loads(headers)
        data = json.loads(bytes(value))
        if header["ce_type"].endswith("alliance.alert.v1") and data["alert_id"] == alert_id:
            found.append(data)
    return found


async def actions_stored(desk: FeedbackDesk) -> int:
    with all_sites():
        async with desk.host.runtimes["analytics"].sessionmaker() as session:
            counted = await session.execute(select(func.count()).select_from(ALERT_ACTIONS))
    return int(counted.scalar_one())


async def a_risk_alert(desk: FeedbackDesk) -> dict[str, Any]:
    episode_id = await desk.open_episode()
    await answer(desk, episode_id, 1, "phq-9", PHQ9_RISK)
    (risk,) = await risk_alerts(desk, 1)
    return risk


async def test_an_action_is_recorded_once_and_its_retry_answers_the_same(
    desk: FeedbackDesk,
) -> None:
    risk = await a_risk_alert(desk)

    first = await act(desk, risk["alert_id"], "safety_plan", "k-1", role="supervisor", sub="sup-1")
    again = await act(desk, risk["alert_id"], "safety_plan", "k-1", role="supervisor", sub="sup-1")

    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json()
    body = first.json()
    assert body["code"] == "safety_plan" and body["recorded_by"] == "sup-1"
    assert body["alert_id"] == risk["alert_id"] and body["alert_status"] == "open"
    assert await actions_stored(desk) == 1
    recorded = [s for s in await steps(desk, risk["alert_id"]) if s["status"] != "opened"]
    assert [(s["status"], s["action_code"]) for s in recorded] == [
        ("action_recorded", "safety_plan")
    ]
    assert "sup-1" not in str(recorded)  # who acted stays in analytics


async def test_the_same_key_for_another_action_is_a_conflict(desk: FeedbackDesk) -> None:
    risk = await a_risk_alert(desk)
    assert (await act(desk, risk["alert_id"], "safety_plan", key="k-1")).status_code == 201

    reused = await act(desk, risk["alert_id"], "referred", key="k-1")

    assert reused.status_code == 409, reused.text
    assert reused.json()["errors"] == [{"field": "Idempotency-Key", "rule": "reused"}]
    assert await actions_stored(desk) == 1


async def test_an_unknown_action_code_is_422_listing_the_valid_ones(desk: FeedbackDesk) -> None:
    risk = await a_risk_alert(desk)

    got = await act(desk, risk["alert_id"], "prayed")

    assert got.status_code == 422, got.text
    assert got.headers["content-type"] == "application/problem+json"
    (error,) = got.json()["errors"]
    assert error["field"] == "code" and error["rule"] == "one_of"
    assert "discussed_in_session" in error["allowed"] and len(error["allowed"]) == 8
    assert await actions_stored(desk) == 0


async def test_an_action_on_another_sites_alert_is_404(desk: FeedbackDesk) -> None:
    risk = await a_risk_alert(desk)

    got = await act(desk, risk["alert_id"], "referred", role="clinical_lead", sites=("site-b",))

    assert got.status_code == 404, got.text
    assert got.json()["errors"] == [{"field": "alert_id", "rule": "not_found"}]
    assert await actions_stored(desk) == 0


async def test_a_risk_alert_closes_only_after_an_action_and_then_takes_no_more(
    desk: FeedbackDesk,
) -> None:
    risk = await a_risk_alert(desk)

    early = await close(desk, risk["alert_id"], "addressed")
    assert early.status_code == 409, early.text
    assert early.json()["errors"] == [{"field": "alert_id", "rule": "action_required"}]

    assert (await act(desk, risk["alert_id"], "discussed_in_session")).status_code == 201
    closed = await close(desk, risk["alert_id"], "addressed", sub="th-1")
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert body["status"] == "closed" and body["close_reason"] == "addressed"
    assert body["closed_by"] == "th-1" and body["closed_at"] is not None

    late = await act(desk, risk["alert_id"], "referred")
    again = await close(desk, risk["alert_id"], "addressed")
    assert late.status_code == again.status_code == 409
    assert late.json()["errors"] == [{"field": "alert_id", "rule": "closed"}]
    assert await actions_stored(desk) == 1
    assert [
        (s["status"], s["action_code"], s["close_reason"])
        for s in await steps(desk, risk["alert_id"])
    ] == [
        ("opened", None, None),
        ("action_recorded", "discussed_in_session", None),
        ("closed", None, "addressed"),
    ]
    assert [a["alert_id"] for a in await alerts(desk, status="closed")] == [risk["alert_id"]]


async def test_an_unknown_close_reason_is_422_naming_the_field(desk: FeedbackDesk) -> None:
    risk = await a_risk_alert(desk)

    got = await close(desk, risk["alert_id"], "bored")

    assert got.status_code == 422, got.text
    assert any(e["field"].endswith("reason") for e in got.json()["errors"])


async def test_another_kind_closes_without_an_action(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode()
    for session, srs in ((1, HIGH), (2, HIGH), (3, LOW)):
        await answer(desk, episode_id, session, "srs", srs)
    ruptures: list[dict[str, Any]] = []

    async def opened() -> bool:
        ruptures[:] = [a for a in await alerts(desk) if a["kind"] == "rupture"]
        return len(ruptures) == 1

    await eventually(opened, what="the rupture alert to open")
    (rupture,) = ruptures

    closed = await close(desk, rupture["alert_id"], "false_alarm")

    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    assert [s["status"] for s in await steps(desk, rupture["alert_id"])] == ["opened", "closed"]
    assert [a for a in await alerts(desk) if a["kind"] == "rupture"] == []
