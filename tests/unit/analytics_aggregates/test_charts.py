"""Episode charts: valid SVG with the series, reference lines and rupture/repair marks."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from services.analytics.charts import EpisodeChart, Panel, Series, render

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
