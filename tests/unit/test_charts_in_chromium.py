"""The episode chart and the site report, rendered by headless Chromium as a person would see
them: the screenshots are kept under .rapport/screenshots/ for a developer to open."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from shared.settings import Settings
from tests.support.chromium import screenshot
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.unit.test_analytics_api import rupture_and_repair

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
    shot = screenshot(page, SHOTS / "episode-chart.png", width=760, height=620)
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


__all__ = ["FeedbackDesk"]
