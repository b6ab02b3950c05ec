"""The demo report's charts (rapport.report_charts): round ticks that include zero, a legend
entry for every kind of mark, plain alert names, and an estimate without an interval drawn
hollow with the reason beside it (issue 23, items 5 and 9)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter

from rapport.report_charts import Row, alert_timeline_svg, forest_svg

SVG = "{http://www.w3.org/2000/svg}"


def tick_labels(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text") if t.get("class") == "tick"]


def legend(root: ET.Element) -> set[str]:
    return {
        g.get("data-marker", "") for g in root.iter(f"{SVG}g") if g.get("class") == "legend-entry"
    }


def test_a_forest_plot_of_differences_has_a_zero_tick_and_a_legend_for_every_mark() -> None:
    root = ET.fromstring(
        forest_svg(
            [
                Row("recovered", 0.0, None, None, "too few events for an interval"),
                Row("reliably improved", 0.045, -0.044, 0.135),
                Row("dropped out", -0.042, -0.123, 0.04),
            ],
            label="difference",
        )
    )
    assert "0" in tick_labels(root)
    assert legend(root) == {
        "estimate",
        "95% interval",
        "no difference (0)",
        "estimate without an interval",
    }
    hollow = [e for e in root.iter(f"{SVG}rect") if e.get("class") == "no-interval"]
    assert len(hollow) == 1
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "too few events for an interval" in texts
    assert "recovered" in texts  # the row keeps its own short label


def test_a_forest_plot_of_rates_runs_from_zero_to_a_hundred_percent() -> None:
    root = ET.fromstring(
        forest_svg([Row("th-1", 0.4, 0.3, 0.5)], label="rate", reference=None, low=0, high=1)
    )
    assert tick_labels(root) == ["0", "20", "40", "60", "80", "100"]
    assert legend(root) == {"estimate", "95% interval"}


def test_the_alert_timeline_names_kinds_plainly_with_whole_ticks_from_zero() -> None:
    by_week = {1: Counter({"low_alliance": 2}), 2: Counter({"risk": 1, "not_on_track": 8})}
    root = ET.fromstring(alert_timeline_svg(by_week, 3))
    assert tick_labels(root) == ["0", "2", "4", "6", "8", "10"]
    assert legend(root) == {"alert:risk", "alert:low_alliance", "alert:not_on_track"}
    texts = {t.text for t in root.iter(f"{SVG}text")}
    assert {"Risk (self-harm item)", "Low alliance", "Not on track"} <= texts
    assert "low_alliance" not in texts


def test_an_alert_timeline_without_alerts_says_so() -> None:
    root = ET.fromstring(alert_timeline_svg({}, 4))
    assert [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "empty"] == [
        "no alerts delivered"
    ]
