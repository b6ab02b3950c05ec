"""Analytics over HTTP (embedded stack): an episode's timeline and chart show the rupture and its
repair; reads are scoped to site and role; closed episodes feed therapist estimates; the site
report renders."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from shared.settings import Settings
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.support.waiting import eventually

SVG = "{http://www.w3.org/2000/svg}"
HIGH = {"relationship": 9.5, "goals": 9.5, "approach": 9.5, "overall": 9.5}  # 38.0
LOW = {"relationship": 7.5, "goals": 7.5, "approach": 7.5, "overall": 7.5}  # 30.0
ORS = {"individually": 4.0, "interpersonally": 5.0, "socially": 5.0, "overall": 4.0}


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[FeedbackDesk]:
    async with feedback_desk(embedded_settings, ("intake", "feedback", "analytics")) as opened:
        yield opened


async def record(
    desk: FeedbackDesk,
    episode_id: str,
    session: int,
    instrument: str,
    items: dict[str, float],
    therapist: str = "th-1",
) -> None:
    answered = await desk.http.post(
        "/feedback/responses",
        headers=desk.auth("therapist", sub=therapist),
        json={
            "episode_id": episode_id,
            "session_number": session,
            "respondent_role": "client",
            "instrument": instrument,
            "items": items,
        },
    )
    assert answered.status_code == 201, answered.text


async def analysed(desk: FeedbackDesk, episode_id: str, responses: int) -> None:
    async def done() -> bool:
        got = await desk.http.get(
            f"/analytics/episodes/{episode_id}/timeline", headers=desk.auth("clinical_lead")
        )
        return got.status_code == 200 and len(got.json()["scores"]) == responses

    await eventually(done, what="analytics to score every response")


async def rupture_and_repair(desk: FeedbackDesk) -> str:
    episode_id = await desk.open_episode()
    for session, srs in ((1, HIGH), (2, HIGH), (3, LOW), (4, HIGH)):
        await record(desk, episode_id, session, "srs", srs)
        await record(desk, episode_id, session, "ors", ORS)
    await analysed(desk, episode_id, 8)
    return episode_id


async def test_the_timeline_shows_the_rupture_and_its_repair(desk: FeedbackDesk) -> None:
    episode_id = await rupture_and_repair(desk)
    timeline = (
        await desk.http.get(
            f"/analytics/episodes/{episode_id}/timeline", headers=desk.auth("therapist")
        )
    ).json()
    alerts = {(a["kind"], a["opened_session"]): a for a in timeline["alerts"]}
    assert alerts[("rupture", 3)]["status"] == "resolved"
    assert alerts[("rupture", 3)]["resolved_session"] == 4
    assert alerts[("rupture", 3)]["inputs"]["drop"] == 8.0
    assert ("repair", 4) in alerts
    assert alerts[("low_alliance", 3)]["status"] == "resolved"


async def test_the_chart_is_svg_with_the_rupture_and_repair_marked(desk: FeedbackDesk) -> None:
    episode_id = await rupture_and_repair(desk)
    chart = await desk.http.get(
        f"/analytics/episodes/{episode_id}/chart.svg", headers=desk.auth("supervisor")
    )
    assert chart.status_code == 200
    assert chart.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(chart.text)
    classes = [e.get("class") for e in root.iter() if e.get("class")]
    assert classes.count("rupture") == 1 and classes.count("repair") == 1


@pytest.mark.parametrize(
    ("role", "sub", "sites", "status"),
    [
        ("clinical_lead", "lead", ("site-b",), 404),  # another site
        ("therapist", "th-2", ("site-a",), 404),  # another therapist's client
        ("data_analyst", "ana", ("site-a",), 403),  # aggregates only
    ],
)
async def test_episode_reads_are_scoped(
    desk: FeedbackDesk, role: str, sub: str, sites: tuple[str, ...], status: int
) -> None:
    episode_id = await rupture_and_repair(desk)
    for path in ("timeline", "chart.svg"):
        got = await desk.http.get(
            f"/analytics/episodes/{episode_id}/{path}",
            headers=desk.auth(role, sub=sub, sites=sites),
        )
        assert got.status_code == status, (path, got.text)


async def test_a_therapist_lists_only_their_own_alerts(desk: FeedbackDesk) -> None:
    await rupture_and_repair(desk)
    own = await desk.http.get(
        "/analytics/alerts",
        params={"site_id": "site-a", "status": "all"},
        headers=desk.auth("therapist", sub="th-1"),
    )
    other = await desk.http.get(
        "/analytics/alerts",
        params={"site_id": "site-a", "status": "all"},
        headers=desk.auth("therapist", sub="th-2"),
    )
    assert len(own.json()) >= 3 and other.json() == []


async def test_closed_episodes_publish_therapist_effectiveness(desk: FeedbackDesk) -> None:
    episode_id = await rupture_and_repair(desk)
    closed = await desk.http.post(
        f"/intake/episodes/{episode_id}/close",
        headers=desk.auth("intake_coordinator"),
        json={"reason": "completed"},
    )
    assert closed.status_code == 200, closed.text
    runtime = desk.host.runtimes["analytics"]
    table = runtime.definition.outbox_table

    async def published() -> bool:
        async with runtime.sessionmaker() as session:
            rows = (await session.execute(select(table.c.headers))).all()
        return any("therapist.effectiveness.updated" in r.headers for r in rows)

    await eventually(published, what="therapist.effectiveness.updated")
    estimates = (
        await desk.http.get(
            "/analytics/therapists/th-1/effectiveness",
            params={"site_id": "site-a"},
            headers=desk.auth("supervisor"),
        )
    ).json()
    assert estimates[0]["n"] == 1
    assert estimates[0]["classification"] == "not_enough_data"
    again = await desk.http.post(
        f"/intake/episodes/{episode_id}/close",
        headers=desk.auth("intake_coordinator"),
        json={"reason": "completed"},
    )
    assert again.status_code == 409


async def test_site_summary_and_report(desk: FeedbackDesk) -> None:
    await rupture_and_repair(desk)
    summary = (
        await desk.http.get("/analytics/sites/site-a/summary", headers=desk.auth("data_analyst"))
    ).json()
    assert summary["ruptures"] == 1 and summary["ruptures_repaired"] == 1
    assert summary["median_sessions_to_repair"] == 1
    assert summary["sessions_with_feedback"] == 4
    report = await desk.http.get("/analytics/sites/site-a/report", headers=desk.auth("supervisor"))
    assert report.status_code == 200
    assert "<svg" in report.text and "Site report: site-a" in report.text
    denied = await desk.http.get(
        "/analytics/sites/site-a/report", headers=desk.auth("data_analyst")
    )
    assert denied.status_code == 403
    assert json.loads(denied.text)["errors"][0]["rule"] == "role_scope"


async def close(desk: FeedbackDesk, episode_id: str) -> None:
    closed = await desk.http.post(
        f"/intake/episodes/{episode_id}/close",
        headers=desk.auth("intake_coordinator"),
        json={"reason": "completed"},
    )
    assert closed.status_code == 200, closed.text


async def test_one_closed_case_is_not_enough_data_in_the_api_and_the_site_report(
    desk: FeedbackDesk,
) -> None:
    await close(desk, await rupture_and_repair(desk))

    async def estimated() -> bool:
        got = await desk.http.get(
            "/analytics/therapists/th-1/effectiveness",
            params={"site_id": "site-a"},
            headers=desk.auth("supervisor"),
        )
        return got.status_code == 200 and len(got.json()) > 0

    await eventually(estimated, what="the closed episode to reach analytics")
    (estimate,) = (
        await desk.http.get(
            "/analytics/therapists/th-1/effectiveness",
            params={"site_id": "site-a"},
            headers=desk.auth("supervisor"),
        )
    ).json()
    assert estimate["status"] == "not_enough_data"
    assert (estimate["n"], estimate["min_cases"]) == (1, 15)
    assert estimate["reliable_improvement_rate"] is None
    assert estimate["mean_alliance"] is None and estimate["deterioration_rate"] is None
    summary = (
        await desk.http.get("/analytics/sites/site-a/summary", headers=desk.auth("supervisor"))
    ).json()
    assert summary["therapists"] == [estimate]
    report = (
        await desk.http.get("/analytics/sites/site-a/report", headers=desk.auth("supervisor"))
    ).text
    assert "not enough data (1 of 15 cases)" in report
    assert "0.00" not in report


async def test_the_chart_is_titled_as_staff_know_the_episode_with_every_alert_named(
    desk: FeedbackDesk,
) -> None:
    episode_id = await rupture_and_repair(desk)
    svg = (
        await desk.http.get(
            f"/analytics/episodes/{episode_id}/chart.svg", headers=desk.auth("supervisor")
        )
    ).text
    root = ET.fromstring(svg)
    title = next(t.text for t in root.iter(f"{SVG}text") if t.get("class") == "title")
    assert title == "Site site-a · therapist th-1 · sessions 1–4"
    assert episode_id not in svg
    timeline = (
        await desk.http.get(
            f"/analytics/episodes/{episode_id}/timeline", headers=desk.auth("supervisor")
        )
    ).json()
    lane = [e.get("data-kind") for e in root.iter() if e.get("class") == "alert"]
    assert sorted(lane) == sorted(a["kind"] for a in timeline["alerts"])
    assert {"low_alliance", "rupture", "repair"} <= set(lane)
    legend = {t.text for g in root.iter(f"{SVG}g") if g.get("class") == "legend-entry" for t in g}
    assert {"Low alliance", "Rupture", "Rupture repaired"} <= legend


async def test_the_site_report_names_alert_kinds_plainly(desk: FeedbackDesk) -> None:
    await rupture_and_repair(desk)
    report = (
        await desk.http.get("/analytics/sites/site-a/report", headers=desk.auth("supervisor"))
    ).text
    assert "<td>Low alliance</td>" in report and "<td>Rupture repaired</td>" in report
    assert "<td>low_alliance</td>" not in report and "<td>repair</td>" not in report


async def test_an_amended_answer_replaces_the_first_in_the_episode_and_its_alerts(
    desk: FeedbackDesk,
) -> None:
    """A low SRS opened low_alliance (and early_alliance_risk); amended to a high one, the
    episode holds only the amended score, and those alerts are resolved."""
    episode_id = await desk.open_episode()
    await record(desk, episode_id, 1, "srs", HIGH)
    first = await desk.http.post(
        "/feedback/responses",
        headers=desk.auth("therapist"),
        json={
            "episode_id": episode_id,
            "session_number": 2,
            "respondent_role": "client",
            "instrument": "srs",
            "items": LOW,
        },
    )
    await analysed(desk, episode_id, 2)
    timeline_url = f"/analytics/episodes/{episode_id}/timeline"
    before = (await desk.http.get(timeline_url, headers=desk.auth("therapist"))).json()
    assert {(a["kind"], a["status"]) for a in before["alerts"]} >= {("low_alliance", "open")}

    amended = await desk.http.post(
        f"/feedback/responses/{first.json()['response_id']}/amend",
        headers=desk.auth("therapist"),
        json={"items": HIGH},
    )
    assert amended.status_code == 201, amended.text

    async def re_evaluated() -> bool:
        got = (await desk.http.get(timeline_url, headers=desk.auth("therapist"))).json()
        return [(s["session_number"], s["score"]) for s in got["scores"]] == [(1, 38.0), (2, 38.0)]

    await eventually(re_evaluated, what="analytics to replace the amended score")
    after = (await desk.http.get(timeline_url, headers=desk.auth("therapist"))).json()
    by_kind = {a["kind"]: a for a in after["alerts"] if a["opened_session"] == 2}
    for kind in ("low_alliance", "early_alliance_risk", "rupture"):
        assert (by_kind[kind]["status"], by_kind[kind]["resolved_session"]) == ("resolved", 2)
    assert not [a for a in after["alerts"] if a["status"] == "open"]
