"""The episode chart and the site report, rendered by headless Chromium as a person would see
them: the screenshots are kept under .rapport/screenshots/ for a developer to open."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image

from shared.settings import Settings
from tests.support.chromium import screenshot
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.support.waiting import eventually
from tests.unit.analytics.builders import items_for
from tests.unit.analytics.test_analytics_api import rupture_and_repair
from tests.unit.analytics.test_chart_every_measure import SERIES
from tests.unit.analytics.test_rule_9_trajectories import model

SHOTS = Path(__file__).resolve().parents[2] / ".rapport" / "screenshots"


def ink(path: Path) -> tuple[int, set[tuple[int, int, int]]]:
    """How many pixels are not white, and which strong colours appear."""
    image = Image.open(path).convert("RGB")
    pixels = list(image.getdata())
    painted = sum(1 for p in pixels if p != (255, 255, 255))
    colours = {p for p in pixels if max(p) - min(p) > 120}
    return painted, colours


def near(colours: set[tuple[int, int, int]], target: tuple[int, int, int]) -> bool:
    return any(sum(abs(a - b) for a, b in zip(c, target, strict=True)) < 60 for c in colours)


async def test_the_episode_chart_renders_with_its_lines_and_rupture_mark(
    embedded_settings: Settings,
) -> None:
    async with feedback_desk(embedded_settings, ("intake", "feedback", "analytics")) as desk:
        episode_id = await rupture_and_repair(desk)
        svg = (
            await desk.http.get(
                f"/analytics/episodes/{episode_id}/chart.svg", headers=desk.auth("supervisor")
            )
        ).text
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = SHOTS / "episode-chart.svg"
    page.write_text(svg)
    shot = screenshot(page, SHOTS / "episode-chart.png", width=820, height=900)
    painted, colours = ink(shot)
    assert painted > 20_000, "the chart is (nearly) blank"
    assert near(colours, (0x1F, 0x6F, 0xEB)), "no alliance line drawn"
    assert near(colours, (0xCF, 0x22, 0x2E)), "no concern line or rupture mark drawn"


async def test_the_site_report_renders_in_a_browser(embedded_settings: Settings) -> None:
    async with feedback_desk(embedded_settings, ("intake", "feedback", "analytics")) as desk:
        await rupture_and_repair(desk)
        html = (
            await desk.http.get("/analytics/sites/site-a/report", headers=desk.auth("supervisor"))
        ).text
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = SHOTS / "site-report.html"
    page.write_text(html)
    shot = screenshot(page, SHOTS / "site-report.png")
    painted, colours = ink(shot)
    assert painted > 50_000
    assert near(colours, (0x1F, 0x6F, 0xEB))


async def _every_measure(desk: FeedbackDesk) -> str:
    episode_id = await desk.open_episode()
    for session in range(1, 6):
        for instrument, values in SERIES.items():
            total: Any = values[session - 1]
            if instrument not in ("srs", "ors"):
                total = int(total)
            items = {k: float(v) for k, v in items_for(instrument, total).items()}
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
    return episode_id


async def test_the_chart_of_every_measure_with_the_models_bands_renders(
    embedded_settings: Settings, tmp_path: Path
) -> None:
    model_file = tmp_path / "model.json"
    model_file.write_text(json.dumps(json.loads(model().model_dump_json())))
    settings = embedded_settings.model_copy(update={"trajectories_file": str(model_file)})
    async with feedback_desk(settings, ("intake", "feedback", "analytics")) as desk:
        episode_id = await _every_measure(desk)

        async def chart() -> str:
            got = await desk.http.get(
                f"/analytics/episodes/{episode_id}/chart.svg", headers=desk.auth("supervisor")
            )
            return got.text

        async def every_score() -> bool:
            got = await desk.http.get(
                f"/analytics/episodes/{episode_id}/timeline", headers=desk.auth("supervisor")
            )
            return got.status_code == 200 and len(got.json()["scores"]) == 5 * len(SERIES)

        await eventually(every_score, what="analytics to chart every score")
        svg = await chart()
        report = (
            await desk.http.get("/analytics/sites/site-a/report", headers=desk.auth("supervisor"))
        ).text
    # ORS 15.0 at session 1, 22.0 at session 5: inside the model's 20–28 middle half
    assert "<td>on track (within the middle half)</td><td>1</td><td>100%</td>" in report
    (SHOTS / "site-report-on-track.html").parent.mkdir(parents=True, exist_ok=True)
    (SHOTS / "site-report-on-track.html").write_text(report)
    screenshot(SHOTS / "site-report-on-track.html", SHOTS / "site-report-on-track.png")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = SHOTS / "episode-chart-every-measure.svg"
    page.write_text(svg)
    shot = screenshot(page, SHOTS / "episode-chart-every-measure.png", width=820, height=1720)
    painted, colours = ink(shot)
    assert painted > 80_000, "the chart is (nearly) blank"
    for title in ("SRS", "WAI-SR", "ORS", "PHQ-9", "GAD-7", "CORE-10"):
        assert title in svg
    assert svg.count('class="outer-band"') == 2  # ORS and PHQ-9: the model's bands
    assert near(colours, (0x1F, 0x6F, 0xEB)), "no score line drawn"
    assert near(colours, (0xCF, 0x22, 0x2E)), "no cutoff drawn"


__all__ = ["FeedbackDesk"]
