"""``rapport demo`` on the embedded default with a small network: every stage runs through the
services, every alert reaches the front-end as a verified webhook, the report's effect sizes
are the run's own, and the report renders in headless Chromium with its charts visible (the
screenshot is kept under .rapport/screenshots/ for a developer to open)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from rapport.cli import main
from tests.support.chromium import screenshot
from tests.unit.test_charts_in_chromium import SHOTS, ink, near

SMALL = ["--sites", "2", "--therapists", "6", "--clients", "24", "--weeks", "7", "--seed", "5"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--no-progress", *SMALL]) == 0
    return out, json.loads((out / "summary.json").read_text())


def test_every_client_is_matched_and_sessions_are_recorded(
    demo_run: tuple[Path, dict[str, Any]],
) -> None:
    _, summary = demo_run
    assert summary["clients"] == summary["matched"] == 24
    assert summary["sessions"] > 24
    assert summary["responses"] >= 2 * summary["sessions"]


def test_every_alert_reaches_the_front_end_as_a_verified_webhook(
    demo_run: tuple[Path, dict[str, Any]],
) -> None:
    _, summary = demo_run
    assert summary["alerts"] > 0
    assert summary["webhooks_delivered"] == summary["alerts"]
    assert summary["webhooks_rejected"] == 0


def test_the_report_states_the_effect_sizes_of_this_run(
    demo_run: tuple[Path, dict[str, Any]],
) -> None:
    out, summary = demo_run
    html = (out / "report" / "index.html").read_text()
    for comparison in summary["comparisons"]:
        for d in comparison["differences"]:
            stated = (
                f"{100 * d['estimate']:+.1f} points ({d['note']})"
                if d["low"] is None
                else f"{100 * d['estimate']:+.1f} points [{100 * d['low']:+.1f}, "
                f"{100 * d['high']:+.1f}]"
            )
            assert stated in html, f"{comparison['title']}: {d['measure']} not in the report"
    assert re.search(r"<h2>Alerts on vs off, matching vs first available</h2>", html)


def test_the_report_shows_attendance_and_the_drop_outs_caught(
    demo_run: tuple[Path, dict[str, Any]],
) -> None:
    out, summary = demo_run
    a = summary["attendance"]
    assert a["attended"] == summary["sessions"]
    assert a["dropouts"] == summary["dropped_out"]
    assert a["booked_sessions"] == (
        a["attended"] + a["missed"] + a["cancelled_by_client"] + a["cancelled_by_clinic"]
    )
    html = (out / "report" / "index.html").read_text()
    section = html.split("<h2>Attendance: the client who stops coming</h2>", 1)[1]
    section = section.split("<h2>", 1)[0]
    assert f'<td class="n">{a["booked_sessions"]} / {a["attended"]}</td>' in section
    assert f'<td class="n">{a["missed"]}</td>' in section
    assert f'<td class="n">{a["dropouts"]} / {a["dropouts_caught"]}</td>' in section
    if a["dropouts_caught"]:
        median = a["days_before_dropout_median"]
        low, high = a["days_before_dropout_min"], a["days_before_dropout_max"]
        assert f"{median:g} days (range {low}–{high})" in section
    else:
        assert "none caught" in section


def test_the_clinicians_act_on_alerts_and_the_report_shows_the_follow_up_figures(
    demo_run: tuple[Path, dict[str, Any]],
) -> None:
    out, summary = demo_run
    f = summary["follow_up"]
    assert 0 < f["actions_recorded"] <= summary["alerts"]
    assert sum(f["actions_by_code"].values()) == f["actions_recorded"]
    # Analytics counted each action the simulator recorded (once per alert and code).
    acted_on = sum(s["alerts_acted_on"] for s in f["sites"].values())
    assert acted_on == f["actions_recorded"]
    rows = [(site_id, r) for site_id, s in f["sites"].items() for r in s["actions"]]
    assert {r["code"] for _, r in rows} == set(f["actions_by_code"])
    assert any(r["resolved_within_2_sessions"]["n"] > 0 for _, r in rows)
    html = (out / "report" / "index.html").read_text()
    section = html.split("<h2>Follow-up: what was done about the alerts</h2>", 1)[1]
    section = section.split("<h2>", 1)[0]
    assert f"{f['actions_recorded']} actions recorded" in section
    for site_id, row in rows:
        assert f"<tr><td>{site_id}</td><td>{row['code'].replace('_', ' ')}" in section or (
            row["code"] == "no_action_needed_false_alarm"
        )
        assert f"(n = {row['resolved_within_2_sessions']['n']})" in section


def test_the_report_renders_in_chromium_with_its_charts(
    demo_run: tuple[Path, dict[str, Any]],
) -> None:
    out, _ = demo_run
    html = (out / "report" / "index.html").read_text()
    # Self-contained: no scripts, no stylesheets or images from elsewhere.
    assert not re.search(r"<script|<link|(src|href)=\"https?:", html)
    assert html.count("<svg") >= 5  # episodes, timeline, effectiveness, three comparisons
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = SHOTS / "demo-report.html"
    page.write_text(html)
    shot = screenshot(page, SHOTS / "demo-report.png", width=1000, height=5200)
    painted, colours = ink(shot)
    assert painted > 200_000, "the report is (nearly) blank"
    assert near(colours, (0x1F, 0x6F, 0xEB)), "no alliance line or interval drawn"
    assert near(colours, (0xFB, 0x8F, 0x44)), "no low-alliance bars in the alert timeline"
    assert near(colours, (0xCF, 0x22, 0x2E)), "no concern line or reference line drawn"


def test_a_small_network_says_too_few_events_rather_than_a_zero_interval(
    demo_run: tuple[Path, dict[str, Any]],
) -> None:
    out, summary = demo_run
    html = (out / "report" / "index.html").read_text()
    assert "[+0.0, +0.0]" not in html
    without = [d for c in summary["comparisons"] for d in c["differences"] if d["low"] is None]
    assert without, "24 clients over 7 weeks: some outcome has fewer than 5 events in an arm"
    assert {d["note"] for d in without} <= {
        "too few events for an interval",
        "no client's outcome differed between the arms",
    }
    assert "too few events for an interval" in html


def test_therapist_estimates_below_the_minimum_cases_say_not_enough_data(
    demo_run: tuple[Path, dict[str, Any]],
) -> None:
    out, _ = demo_run
    html = (out / "report" / "index.html").read_text()
    section = html.split("<h2>Therapist effectiveness", 1)[1].split("<h2>", 1)[0]
    assert re.search(r"not enough data \(\d+ of 15 cases\)", section)
    assert "n=1," not in section  # no estimate drawn from a single case


def test_alert_kinds_are_named_plainly(
    demo_run: tuple[Path, dict[str, Any]],
) -> None:
    out, summary = demo_run
    html = (out / "report" / "index.html").read_text()
    assert "<td>Low alliance</td>" in html
    assert not re.search(r"<td>[a-z]+_[a-z_]+</td>", html)  # no alert codes as names
    assert summary["alerts_by_kind"]  # the codes stay in the machine-readable summary
    timeline = html.split("<h2>Alert timeline</h2>", 1)[1].split("<h2>", 1)[0]
    assert "Low alliance</text>" in timeline and "low_alliance</text>" not in timeline


def test_every_report_chart_axis_has_a_zero_tick(demo_run: tuple[Path, dict[str, Any]]) -> None:
    out, _ = demo_run
    html = (out / "report" / "index.html").read_text()
    charts = re.findall(r'<svg [^>]*class="chart">.*?</svg>', html, flags=re.S)
    assert len(charts) >= 4  # the alert timeline and the three comparisons
    for svg in charts:
        ticks = re.findall(r'class="tick">([^<]*)</text>', svg)
        assert "0" in ticks, ticks


def test_the_report_shows_goal_attainment_by_site_and_the_low_support_count(
    demo_run: tuple[Path, dict[str, Any]],
) -> None:
    out, summary = demo_run
    goals = summary["goals"]
    sites = goals["by_site"]
    assert sum(s["episodes"] for s in sites.values()) == summary["matched"]
    assert goals["low_support_alerts"] == summary["alerts_by_kind"].get("low_support", 0)
    assert summary["responses"] >= 3 * summary["sessions"]  # SRS, ORS and goals each session
    html = (out / "report" / "index.html").read_text()
    section = html.split("<h2>The client's own goals and the people around them</h2>", 1)[1]
    section = section.split("<h2>", 1)[0]
    for site_id, s in sites.items():
        assert f"<td>{site_id}</td>" in section
        assert f'<td class="n">{s["goal_attained"]} / {s["episodes"]}</td>' in section
