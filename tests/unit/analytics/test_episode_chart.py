"""The episode chart and the site report as a clinic manager reads them (issue 23, items 5 and
9): titled with the site, therapist and sessions (not the episode's id), every alert marked with
its plain name, and therapist estimates below the minimum number of cases as "not enough data"."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from services.analytics.charts import render
from services.analytics.mapping import (
    DomainEffectivenessOut,
    EstimateOut,
    ScoreOut,
    SiteSummaryOut,
    TimelineAlertOut,
    TimelineOut,
)
from services.analytics.reports import episode_chart, site_report_html
from shared.instruments import SHIPPED, load_instruments

SVG = "{http://www.w3.org/2000/svg}"
EPISODE = "7d3c0f0e-5b7a-4c1e-9a53-2f4b8d7e6a10"
INSTRUMENTS = load_instruments(SHIPPED)
AT = datetime(2026, 1, 5, tzinfo=UTC)


def score(session: int, instrument: str, value: float, role: str = "client") -> ScoreOut:
    return ScoreOut(
        session_number=session,
        respondent=f"{role}-1",
        respondent_role=role,
        instrument=instrument,
        score=value,
        concern=False,
    )


def alert(
    kind: str, session: int, severity: str = "routine", resolved: int | None = None
) -> TimelineAlertOut:
    return TimelineAlertOut(
        alert_id=f"a-{kind}-{session}",
        episode_id=EPISODE,
        site_id="northside",
        therapist_id="th-007",
        kind=kind,
        severity=severity,
        rule=f"rule-{kind}",
        status="open" if resolved is None else "resolved",
        respondent="client-1",
        instrument="srs",
        opened_session=session,
        resolved_session=resolved,
        inputs={},
        suggestion_code="x",
        suggestion="x",
        opened_at=AT,
        resolved_at=None,
    )


def timeline(alerts: list[TimelineAlertOut], ors: bool = True) -> TimelineOut:
    scores = [score(s, "srs", v) for s, v in ((3, 38.0), (4, 30.0), (5, 37.5), (6, 38.0))]
    if ors:
        scores += [score(s, "ors", v) for s, v in ((3, 18.0), (6, 24.0))]
    return TimelineOut(
        episode_id=EPISODE,
        site_id="northside",
        therapist_id="th-007",
        phase="active",
        last_session=6,
        scores=scores,
        alerts=alerts,
    )


def drawn(t: TimelineOut) -> ET.Element:
    return ET.fromstring(render(episode_chart(t, INSTRUMENTS)))


def test_the_chart_is_titled_with_site_therapist_and_sessions_not_the_episode_id() -> None:
    svg = render(episode_chart(timeline([]), INSTRUMENTS))
    root = ET.fromstring(svg)
    title = next(t.text for t in root.iter(f"{SVG}text") if t.get("class") == "title")
    assert title == "Site northside · therapist th-007 · sessions 3–6"
    assert EPISODE not in svg


def test_risk_and_every_alert_are_marked_with_plain_names() -> None:
    root = drawn(
        timeline(
            [
                alert("low_alliance", 4, resolved=5),
                alert("rupture", 4, "high", resolved=5),
                alert("repair", 5, resolved=5),
                alert("risk", 5, "urgent", resolved=5),
                alert("not_on_track", 6),
            ]
        )
    )
    lane = {e.get("data-kind") for e in root.iter() if e.get("class") == "alert"}
    assert lane == {"low_alliance", "rupture", "repair", "risk", "not_on_track"}
    legend = [t.text for g in root.iter(f"{SVG}g") if g.get("class") == "legend-entry" for t in g]
    for name in ("Low alliance", "Rupture", "Rupture repaired", "Risk (self-harm item)"):
        assert name in legend
    assert "Not on track" in legend
    assert not any("_" in (text or "") for text in legend)
    assert [e.get("class") for e in root.iter(f"{SVG}line")].count("urgent") == 2  # each panel


def test_an_episode_without_outcome_scores_says_no_data_yet_in_that_panel() -> None:
    root = drawn(timeline([], ors=False))
    empty = [e.text for e in root.iter(f"{SVG}text") if e.get("class") == "empty"]
    assert "no data yet" in empty


def summary(therapists: list[DomainEffectivenessOut], alerts: dict[str, int]) -> SiteSummaryOut:
    return SiteSummaryOut(
        site_id="northside",
        episodes_active=3,
        episodes_closed=1,
        sessions_with_feedback=12,
        alerts_opened=alerts,
        alerts_per_100_sessions=25.0,
        open_alerts=1,
        ruptures=1,
        ruptures_repaired=1,
        median_sessions_to_repair=1,
        reliable_improvement_rate=1.0,
        deterioration_rate=0.0,
        therapists=therapists,
    )


def test_the_site_report_says_not_enough_data_below_the_minimum_and_uses_plain_names() -> None:
    one_case = DomainEffectivenessOut(
        therapist_id="th-007",
        domain="depression",
        n=1,
        min_cases=15,
        status="not_enough_data",
        mean_alliance=None,
        reliable_improvement_rate=None,
        deterioration_rate=None,
        classification="not_enough_data",
    )
    enough = DomainEffectivenessOut(
        therapist_id="th-008",
        domain="depression",
        n=20,
        min_cases=15,
        status="estimated",
        mean_alliance=None,
        reliable_improvement_rate=EstimateOut(estimate=0.5, lower=0.31, upper=0.69),
        deterioration_rate=None,
        classification="neutral",
    )
    html = site_report_html(summary([one_case, enough], {"low_alliance": 2, "risk": 1}), [])
    assert "not enough data (1 of 15 cases)" in html
    assert "50% [31%–69%]" in html
    assert "Low alliance" in html and "Risk (self-harm item)" in html
    assert html.index("Risk (self-harm item)") < html.index("Low alliance")  # risk first
    assert "low_alliance" not in html


def test_empty_site_report_sections_say_so() -> None:
    html = site_report_html(summary([], {}), [])
    assert "No alerts have been raised at this site yet." in html
    assert "No closed episodes yet" in html
    assert "No alliance alerts yet." in html
