"""The demo report's follow-up section (issue 17): what the simulated therapists recorded about
the alerts they received, and analytics' follow-up figures per site (``GET
/analytics/sites/{id}/follow-up``): for each action code the share of the alerts acted on that
resolved within 2 and within 4 sessions of the action, each with its n (alerts old enough to
tell), and the median time from an alert's opening to its first action. Only the site-level
rows are shown (a therapist's row is shrunk toward its site's and has fewer alerts still)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from html import escape
from typing import Any


def code_words(code: str) -> str:
    """An action code as people read it: "discussed in session", "no action needed (false
    alarm)"."""
    if code == "no_action_needed_false_alarm":
        return "no action needed (false alarm)"
    return code.replace("_", " ")


def figure_words(figure: Mapping[str, Any] | None) -> str:
    """A share with its interval and n, e.g. "62% [41–79%] (n = 21)"; "— (n = 0)" without any
    alert old enough to tell."""
    if not figure:
        return "—"
    n = figure.get("n", 0)
    value = figure.get("value")
    if value is None:
        return f"— (n = {n})"
    return (
        f"{100 * value['estimate']:.0f}% [{100 * value['lower']:.0f}–{100 * value['upper']:.0f}%]"
        f" (n = {n})"
    )


def duration_words(hours: float | None) -> str:
    """A median time to first action (analytics gives hours to two decimals): hours, minutes,
    or "under a minute"."""
    if hours is None:
        return "—"
    if hours >= 1:
        return f"{hours:.1f} h"
    if hours * 60 >= 1:
        return f"{hours * 60:.1f} min"
    return "under a minute"


def site_rows(follow_up: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, Mapping[str, Any]]]:
    """Each site's rows (``therapist_id`` null) by site and action code."""
    return [
        (site_id, row)
        for site_id, figures in sorted(follow_up.items())
        for row in sorted(figures.get("actions", []), key=lambda r: r["code"])
        if row.get("therapist_id") is None
    ]


def follow_up_counts(
    follow_up: Mapping[str, Mapping[str, Any]], actions: Counter[str], refused: int
) -> dict[str, Any]:
    """For summary.json: the actions the simulated therapists recorded, and per site the alerts
    acted on, the median hours to first action and each code's figures as analytics gave them."""
    return {
        "actions_recorded": sum(actions.values()),
        "actions_by_code": dict(sorted(actions.items())),
        "actions_refused": refused,
        "sites": {
            site_id: {
                "alerts_acted_on": figures.get("alerts_acted_on", 0),
                "median_hours_to_first_action": figures.get("median_hours_to_first_action"),
                "open_unacted_by_age": figures.get("open_unacted_by_age", {}),
                "actions": [r for r in figures.get("actions", []) if r.get("therapist_id") is None],
            }
            for site_id, figures in sorted(follow_up.items())
        },
    }


def follow_up_html(
    follow_up: Mapping[str, Mapping[str, Any]], actions: Counter[str], refused: int
) -> str:
    """The section's tables (its heading and explanation are in the page template)."""
    recorded = sum(actions.values())
    if not recorded:
        return '<p class="none">No action was recorded on an alert in this run.</p>'
    by_code = "".join(
        f'<tr><td>{escape(code_words(code))}</td><td class="n">{n}</td></tr>'
        for code, n in sorted(actions.items(), key=lambda item: (-item[1], item[0]))
    )
    parts = [
        f"<p>{recorded} actions recorded"
        + (f" ({refused} refused: the alert had been closed meanwhile)" if refused else "")
        + ".</p>",
        f"<table><tr><th>action</th><th>recorded</th></tr>{by_code}</table>",
    ]
    rows = "".join(
        f"<tr><td>{escape(site_id)}</td><td>{escape(code_words(row['code']))}</td>"
        f'<td class="n">{row.get("alerts", 0)}</td>'
        f'<td class="n">{escape(figure_words(row.get("resolved_within_2_sessions")))}</td>'
        f'<td class="n">{escape(figure_words(row.get("resolved_within_4_sessions")))}</td></tr>'
        for site_id, row in site_rows(follow_up)
    )
    parts.append(
        "<table><tr><th>site</th><th>action</th><th>alerts</th>"
        "<th>resolved within 2 sessions</th><th>resolved within 4 sessions</th></tr>"
        f"{rows}</table>"
        if rows
        else '<p class="none">Analytics has no follow-up figures for this run.</p>'
    )
    sites = "".join(
        f"<tr><td>{escape(site_id)}</td>"
        f'<td class="n">{figures.get("alerts_acted_on", 0)}</td>'
        f'<td class="n">{escape(duration_words(figures.get("median_hours_to_first_action")))}</td>'
        f'<td class="n">{sum(figures.get("open_unacted_by_age", {}).values())}</td></tr>'
        for site_id, figures in sorted(follow_up.items())
    )
    parts.append(
        "<table><tr><th>site</th><th>alerts acted on</th><th>median time to first action</th>"
        f"<th>open alerts nobody acted on</th></tr>{sites}</table>"
    )
    return "".join(parts)
