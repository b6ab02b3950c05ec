"""The episode chart draws every instrument the episode has, each in its own panel on its own
range (WAI-SR 12–60: a 55 stays inside its panel), with its concern line or clinical cutoff and,
where the trajectories model has the client's band, the model's 25–75 and 10–90 bands."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from services.analytics.charts import PANEL_HEIGHT, render
from services.analytics.mapping import TimelineOut
from services.analytics.reports import episode_chart
from tests.unit.analytics.test_episode_chart import EPISODE, INSTRUMENTS, score
from tests.unit.analytics.test_rule_9_trajectories import model

SVG = "{http://www.w3.org/2000/svg}"
SERIES = {
    "srs": (38.0, 36.0, 34.0, 37.0, 38.0),
    "wai-sr": (48.0, 50.0, 52.0, 55.0, 55.0),
    "ors": (15.0, 16.0, 19.0, 19.0, 22.0),
    "phq-9": (15.0, 14.0, 13.0, 12.0, 10.0),
    "gad-7": (12.0, 11.0, 9.0, 8.0, 6.0),
    "core-10": (20.0, 19.0, 17.0, 15.0, 12.0),
}


def every_measure() -> TimelineOut:
    return TimelineOut(
        episode_id=EPISODE,
        site_id="northside",
        therapist_id="th-007",
        phase="active",
        last_session=5,
        scores=[
            score(session, instrument, value)
            for instrument, values in SERIES.items()
            for session, value in enumerate(values, start=1)
        ],
        alerts=[],
    )


def panels(root: ET.Element) -> dict[str, tuple[float, float]]:
    """Each panel's title and its frame's top and bottom."""
    texts = [t for t in root.iter(f"{SVG}text") if t.get("font-weight") == "bold"]
    frames = [r for r in root.iter(f"{SVG}rect") if r.get("fill") == "#f6f8fa"]
    out = {}
    for text, frame in zip(texts[1:], frames, strict=False):  # texts[0] is the chart's title
        top = float(frame.get("y", "0"))
        out[text.text or ""] = (top, top + float(frame.get("height", "0")))
    return out


def test_every_instrument_has_its_own_panel_in_a_fixed_order() -> None:
    root = ET.fromstring(render(episode_chart(every_measure(), INSTRUMENTS, model().instruments)))
    titles = list(panels(root))[:6]
    assert titles == [
        "Alliance (SRS)",
        "Alliance (WAI-SR)",
        "Outcome (ORS)",
        "Outcome (PHQ-9)",
        "Outcome (GAD-7)",
        "Outcome (CORE-10)",
    ]


def test_a_wai_sr_of_55_is_drawn_inside_its_own_12_to_60_panel() -> None:
    root = ET.fromstring(render(episode_chart(every_measure(), INSTRUMENTS)))
    top, bottom = panels(root)["Alliance (WAI-SR)"]
    assert bottom - top == PANEL_HEIGHT
    point = next(
        c
        for c in root.iter(f"{SVG}circle")
        if any((t.text or "") == "client (WAI-SR) session 4: 55" for t in c)
    )
    cy = float(point.get("cy", "0"))
    assert top < cy < bottom
    # 55 on 12–60 is 43/48 of the way up
    assert abs((bottom - cy) / PANEL_HEIGHT - 43 / 48) < 0.01
    ticks = {t.text for t in root.iter(f"{SVG}text") if t.get("class") == "tick"}
    assert "60" in ticks


def test_each_panel_has_its_cutoff_or_concern_line() -> None:
    root = ET.fromstring(render(episode_chart(every_measure(), INSTRUMENTS)))
    legend = [t.text for g in root.iter(f"{SVG}g") if g.get("class") == "legend-entry" for t in g]
    for line in (
        "concern (below 36)",  # SRS and WAI-SR
        "clinical cutoff (25)",  # ORS
        "clinical cutoff (10)",  # PHQ-9
        "clinical cutoff (8)",  # GAD-7
        "clinical cutoff (11)",  # CORE-10
    ):
        assert line in legend, line
    references = [e for e in root.iter(f"{SVG}line") if e.get("class") == "reference"]
    assert len(references) == 6


def test_the_models_bands_are_drawn_where_it_has_the_clients_band_and_not_elsewhere() -> None:
    with_model = ET.fromstring(
        render(episode_chart(every_measure(), INSTRUMENTS, model().instruments))
    )
    without = ET.fromstring(render(episode_chart(every_measure(), INSTRUMENTS)))

    def bands(root: ET.Element) -> list[str]:
        return [p.get("class") or "" for p in root.iter(f"{SVG}polygon")]

    # the model has ORS and PHQ-9 band 3 (first scores 15): two bands each; not GAD-7/CORE-10
    assert sorted(bands(with_model)) == ["band", "band", "outer-band", "outer-band"]
    assert bands(without) == []  # no fixed "expected band" any more
    titles = {t.text for p in with_model.iter(f"{SVG}polygon") for t in p}
    assert titles == {
        "expected, 25th–75th percentile",
        "expected, 10th–90th percentile",
    }
