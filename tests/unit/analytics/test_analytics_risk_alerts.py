"""A risk alert stays on the default (open) alerts list until a clinician acknowledges it
(embedded stack): every risk response opens its own alert; acknowledging records who and when,
closes it and publishes the change once, however often it is sent; other sites' staff and
other therapists get 404; alerts the rules close cannot be acknowledged (409)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select, update

from services.analytics.models import OUTBOX, AnalyticsAlert
from shared.db import all_sites
from shared.settings import Settings
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.support.waiting import eventually

PHQ9_RISK = {"1": 2, "2": 2, "3": 1, "4": 2, "5": 1, "6": 2, "7": 1, "8": 0, "9": 1}
HIGH = {"relationship": 9.5, "goals": 9.5, "approach": 9.5, "overall": 9.5}  # 38.0
LOW = {"relationship": 7.5, "goals": 7.5, "approach": 7.5, "overall": 7.5}  # 30.0


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[FeedbackDesk]:
    async with feedback_desk(embedded_settings, ("intake", "feedback", "analytics")) as opened:
        yield opened


async def answer(
    desk: FeedbackDesk, episode_id: str, session: int, instrument: str, items: Any
) -> None:
    answered = await desk.http.post(
        "/feedback/responses",
        headers=desk.auth("therapist"),
        json={
            "episode_id": episode_id,
            "session_number": session,
            "respondent_role": "client",
            "instrument": instrument,
            "items": items,
        },
    )
    assert answered.status_code == 201, answered.text


async def alerts(desk: FeedbackDesk, **params: str) -> list[dict[str, Any]]:
    got = await desk.http.get(
        "/analytics/alerts",
        params={"site_id": "site-a", **params},
        headers=desk.auth("clinical_lead", sub="lead"),
    )
    assert got.status_code == 200, got.text
    listed: list[dict[str, Any]] = got.json()
    return listed


async def risk_alerts(desk: FeedbackDesk, count: int) -> list[dict[str, Any]]:
    """Wait for ``count`` risk alerts on the default (open) list; them."""
    found: list[dict[str, Any]] = []

    async def listed() -> bool:
        found[:] = [a for a in await alerts(desk) if a["kind"] == "risk"]
        return len(found) >= count

    await eventually(listed, what="the risk alerts to be listed as open")
    return found


async def acknowledge(desk: FeedbackDesk, alert_id: str, **auth: Any) -> Any:
    return await desk.http.post(
        f"/analytics/alerts/{alert_id}/acknowledge",
        headers=desk.auth(**({"role": "therapist"} | auth)),
    )


async def acknowledged_events(desk: FeedbackDesk) -> list[dict[str, Any]]:
    """The alliance.alert events analytics put in its outbox with status acknowledged."""
    runtime = desk.host.runtimes["analytics"]
    with all_sites():
        async with runtime.sessionmaker() as session:
            rows = (await session.execute(select(OUTBOX.c.headers, OUTBOX.c.value))).all()
    events = []
    for headers, value in rows:
        header = headers if isinstance(headers, dict) else json.loads(headers)
        data = json.loads(bytes(value))
        if header["ce_type"].endswith("alliance.alert.v1") and data["status"] == "acknowledged":
            events.append(data)
    return events


async def test_a_risk_alert_is_listed_open_until_a_clinician_acknowledges_it(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    await answer(desk, episode_id, 1, "phq-9", PHQ9_RISK)

    (risk,) = await risk_alerts(desk, 1)
    assert risk["status"] == "open" and risk["severity"] == "urgent"
    assert risk["episode_id"] == episode_id and risk["acknowledged_at"] is None

    done = await acknowledge(desk, risk["alert_id"], sub="th-1")

    assert done.status_code == 200, done.text
    body = done.json()
    assert body["status"] == "resolved" and body["acknowledged_by"] == "th-1"
    assert body["acknowledged_at"] is not None and body["resolved_at"] is not None
    assert [a for a in await alerts(desk) if a["kind"] == "risk"] == []
    closed = [a for a in await alerts(desk, status="resolved") if a["kind"] == "risk"]
    assert [a["alert_id"] for a in closed] == [risk["alert_id"]]


async def test_every_risk_response_opens_its_own_alert(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode()
    for session in (1, 2, 3):
        await answer(desk, episode_id, session, "phq-9", PHQ9_RISK)

    listed = await risk_alerts(desk, 3)

    assert sorted(a["opened_session"] for a in listed) == [1, 2, 3]
    assert len({a["alert_id"] for a in listed}) == 3


async def test_acknowledging_twice_answers_the_same_and_publishes_the_change_once(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    await answer(desk, episode_id, 1, "phq-9", PHQ9_RISK)
    (risk,) = await risk_alerts(desk, 1)

    first = await acknowledge(desk, risk["alert_id"], role="supervisor", sub="sup-1")
    second = await acknowledge(desk, risk["alert_id"], role="clinical_lead", sub="lead-2")

    assert first.status_code == second.status_code == 200, second.text
    assert second.json() == first.json()
    assert first.json()["acknowledged_by"] == "sup-1"
    (event,) = await acknowledged_events(desk)
    assert event["alert_id"] == risk["alert_id"] and event["kind"] == "risk"
    assert event["episode_id"] == episode_id and event["session_number"] == 1
    assert "sup-1" not in json.dumps(event)  # who acknowledged stays in analytics


@pytest.mark.parametrize(
    ("role", "sub", "sites", "status"),
    [
        ("clinical_lead", "lead", ("site-b",), 404),  # another site's staff
        ("therapist", "th-2", ("site-a",), 404),  # a therapist who does not treat the client
        ("data_analyst", "ana", ("site-a",), 403),  # aggregates only
        ("site_admin", "adm", ("site-a",), 403),  # not clinical work
    ],
)
async def test_only_clinical_staff_who_may_see_the_alert_acknowledge_it(
    desk: FeedbackDesk, role: str, sub: str, sites: tuple[str, ...], status: int
) -> None:
    episode_id = await desk.open_episode()
    await answer(desk, episode_id, 1, "phq-9", PHQ9_RISK)
    (risk,) = await risk_alerts(desk, 1)

    refused = await acknowledge(desk, risk["alert_id"], role=role, sub=sub, sites=sites)

    assert refused.status_code == status, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert [a["status"] for a in await risk_alerts(desk, 1)] == ["open"]
    assert await acknowledged_events(desk) == []


async def test_an_unknown_alert_is_404_naming_the_field(desk: FeedbackDesk) -> None:
    got = await acknowledge(desk, "no-such-alert")

    assert got.status_code == 404
    assert got.headers["content-type"] == "application/problem+json"
    assert got.json()["errors"] == [{"field": "alert_id", "rule": "not_found"}]


async def test_alerts_the_rules_close_or_already_closed_ones_are_409(desk: FeedbackDesk) -> None:
    episode_id = await desk.open_episode()
    for session, srs in ((1, HIGH), (2, HIGH), (3, LOW)):
        await answer(desk, episode_id, session, "srs", srs)
    await answer(desk, episode_id, 3, "phq-9", PHQ9_RISK)
    (risk,) = await risk_alerts(desk, 1)
    (rupture,) = [a for a in await alerts(desk) if a["kind"] == "rupture"]
    # A risk alert closed without an acknowledgement (as before acknowledgements existed).
    runtime = desk.host.runtimes["analytics"]
    with all_sites():
        async with runtime.sessionmaker() as session, session.begin():
            await session.execute(
                update(AnalyticsAlert)
                .where(AnalyticsAlert.id == risk["alert_id"])  # type: ignore[arg-type]
                .values(status="resolved")
            )

    for alert_id, rule in (
        (rupture["alert_id"], "not_acknowledgeable"),
        (risk["alert_id"], "already_closed"),
    ):
        got = await acknowledge(desk, alert_id)
        assert got.status_code == 409, got.text
        assert got.headers["content-type"] == "application/problem+json"
        assert got.json()["errors"] == [{"field": "alert_id", "rule": rule}]
    assert await acknowledged_events(desk) == []
