"""Episode charts: valid SVG with the series, reference lines and rupture/repair marks."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from services.analytics.chart_marks import session_ticks, ticks
from services.analytics.charts import AlertMark, EpisodeChart, Panel, Series, render

SVG = "{http://www.w3.org/2000/svg}"


def chart() -> EpisodeChart:
    return EpisodeChart(
        "Episode ep-1",
        [
            Panel(
                "Alliance (SRS)",
                0,
                40,
                [
                    Series("client · srs", [(1, 38.0), (2, 37.5), (3, 30.1), (4, 37.0)]),
                    Series("partner · srs", [(1, 36.0), (2, 35.0)]),
                ],
                reference=36,
                reference_label="concern < 36",
                ruptures=[(3, 30.1)],
                repairs=[(4, 37.0)],
            ),
            Panel(
                "Outcome (ORS)",
                0,
                40,
                [Series("client · ors", [(1, 18.0), (4, 26.5)])],
                reference=25,
                reference_label="cutoff 25",
                band=[(1, 16.0, 20.0), (4, 20.0, 30.0)],
            ),
        ],
    )


def test_the_chart_is_well_formed_svg_with_every_point() -> None:
    root = ET.fromstring(render(chart()))
    assert root.tag == f"{SVG}svg"
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert "client · srs session 3: 30.1" in titles
    assert "partner · srs session 2: 35" in titles
    assert len(list(root.iter(f"{SVG}polyline"))) == 3


def test_ruptures_repairs_reference_lines_and_band_are_marked() -> None:
    root = ET.fromstring(render(chart()))
    classes = [e.get("class") for e in root.iter() if e.get("class")]
    assert classes.count("rupture") == 1
    assert classes.count("repair") == 1
    assert len(list(root.iter(f"{SVG}polygon"))) == 1
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "concern < 36" in texts and "cutoff 25" in texts


def test_labels_are_escaped() -> None:
    svg = render(
        EpisodeChart("<script>alert(1)</script>", [Panel("x", 0, 10, [Series("<b>", [(1, 1.0)])])])
    )
    assert "<script>" not in svg
    ET.fromstring(svg)


def test_an_empty_episode_still_renders() -> None:
    ET.fromstring(render(EpisodeChart("empty", [Panel("Alliance", 0, 40, [])])))


# --- Readable for a clinic manager (issue 23, item 9) -----------------------------------------


def legend_markers(root: ET.Element) -> set[str]:
    return {
        e.get("data-marker", "") for e in root.iter(f"{SVG}g") if e.get("class") == "legend-entry"
    }


def test_every_kind_of_mark_has_a_legend_entry() -> None:
    root = ET.fromstring(render(chart()))
    assert {"series", "reference", "band", "rupture", "repair"} <= legend_markers(root)
    legend_texts = [
        t.text for g in root.iter(f"{SVG}g") if g.get("class") == "legend-entry" for t in g
    ]
    for label in ("client · srs", "partner · srs", "client · ors", "concern < 36", "cutoff 25"):
        assert label in legend_texts
    assert "Rupture" in legend_texts and "Rupture repaired" in legend_texts


def test_a_mark_kind_absent_from_the_episode_has_no_legend_entry() -> None:
    calm = EpisodeChart("calm", [Panel("Alliance", 0, 40, [Series("client", [(1, 38.0)])])])
    assert legend_markers(ET.fromstring(render(calm))) == {"series"}


def test_every_alert_is_marked_on_the_alerts_lane_with_its_plain_name() -> None:
    alerts = [
        AlertMark(2, "low_alliance", "Low alliance", "resolved at session 3"),
        AlertMark(3, "risk", "Risk (self-harm item)", urgent=True),
        AlertMark(3, "rupture", "Rupture"),
        AlertMark(5, "low_alliance", "Low alliance", "still open"),
    ]
    root = ET.fromstring(render(EpisodeChart("t", chart().panels, alerts)))
    marks = [e for e in root.iter() if e.get("class") == "alert"]
    assert [m.get("data-kind") for m in marks].count("low_alliance") == 2
    assert {m.get("data-kind") for m in marks} == {"low_alliance", "risk", "rupture"}
    assert {"alert:low_alliance", "alert:risk", "alert:rupture"} <= legend_markers(root)
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert "Low alliance: opened at session 5, still open" in titles
    assert "Risk (self-harm item): opened at session 3" in titles
    # The risk is also drawn across every panel at its session.
    assert [e.get("class") for e in root.iter(f"{SVG}line")].count("urgent") == 2  # each panel


def test_an_episode_without_alerts_says_so() -> None:
    svg = render(chart())
    assert "no alerts in this episode" in svg


def test_an_empty_panel_says_no_data_yet() -> None:
    root = ET.fromstring(
        render(
            EpisodeChart(
                "t",
                [
                    Panel("Alliance", 0, 40, [Series("client", [(1, 38.0), (2, 36.0)])]),
                    Panel("Outcome (ORS)", 0, 40, []),
                ],
            )
        )
    )
    empty = [e.text for e in root.iter(f"{SVG}text") if e.get("class") == "empty"]
    assert empty.count("no data yet") == 1


def y_ticks(svg: str) -> list[float]:
    root = ET.fromstring(svg)
    return [float(t.text or "") for t in root.iter(f"{SVG}text") if t.get("class") == "tick"]


def test_value_axis_ticks_include_zero_when_the_range_holds_it() -> None:
    svg = render(EpisodeChart("t", [Panel("Change", -10, 25, [Series("c", [(1, 3.0)])])]))
    assert y_ticks(svg) == [-10, 0, 10, 20]


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0, 40, [0, 10, 20, 30, 40]),
        (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1]),
        (-0.05, 1.05, [0, 0.25, 0.5, 0.75, 1]),
        (-13, 5, [-10, -5, 0, 5]),
        (0, 15, [0, 5, 10, 15]),
        (0, 12, [0, 2.5, 5, 7.5, 10]),
        (3, 3, [3]),
    ],
)
def test_round_ticks(low: float, high: float, expected: list[float]) -> None:
    assert ticks(low, high) == expected


@pytest.mark.parametrize(
    ("high", "expected"), [(3, [0, 1, 2, 3]), (12, [0, 5, 10]), (15, [0, 5, 10, 15])]
)
def test_counts_get_whole_ticks(high: float, expected: list[float]) -> None:
    assert ticks(0, high, whole=True) == expected


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        (1, 6, [1, 2, 3, 4, 5, 6]),
        (1, 30, [1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30]),
    ],
)
def test_session_ticks_stay_readable(first: int, last: int, expected: list[int]) -> None:
    assert session_ticks(first, last) == expected
