"""The simulated clinicians' actions on alerts and the demo report's follow-up section (issue 17):
which action for which kind, how often and when (the same in every run of a seed); the report
shows, per site and action code, the shares resolved within 2 and 4 sessions with their n and
the median time to first action."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rapport.report_follow_up import (
    code_words,
    duration_words,
    figure_words,
    follow_up_counts,
    follow_up_html,
)
from rapport.simulate_actions import ACTED_ON, FALSE_ALARM, PlannedAction, plan_action
from shared.contracts import ALERT_KINDS


def test_every_alert_kind_but_repair_has_an_action_from_the_default_list() -> None:
    from rapport.simulate_actions import ACTION_FOR_KIND
    from services.analytics.rules_config import DEFAULT_ACTION_CODES

    assert set(ACTION_FOR_KIND) == set(ALERT_KINDS) - {"repair"}
    assert set(ACTION_FOR_KIND.values()) | {FALSE_ALARM} <= set(DEFAULT_ACTION_CODES)


def test_the_same_seed_plans_the_same_actions_and_another_seed_others() -> None:
    plans = [plan_action(7, f"c-{i}", "rupture", 3) for i in range(200)]

    assert plans == [plan_action(7, f"c-{i}", "rupture", 3) for i in range(200)]
    assert plans != [plan_action(8, f"c-{i}", "rupture", 3) for i in range(200)]


def test_most_alerts_are_acted_on_most_before_the_next_session_risk_always_repair_never() -> None:
    plans = [plan_action(7, f"c-{i}", "not_on_track", w) for i in range(300) for w in (1, 2)]
    acted = [p for p in plans if p is not None]

    assert abs(len(acted) / len(plans) - ACTED_ON) < 0.06
    assert {p.code for p in acted} == {"changed_approach", FALSE_ALARM}
    assert sum(p.code == FALSE_ALARM for p in acted) < 0.12 * len(acted)
    assert 0.5 < sum(p.delay_weeks == 0 for p in acted) / len(acted) < 0.7
    assert {p.delay_weeks for p in acted} == {0, 1}
    risks = [plan_action(7, f"c-{i}", "risk", 1) for i in range(100)]
    assert all(isinstance(p, PlannedAction) and p.code == "safety_plan" for p in risks)
    assert all(plan_action(7, f"c-{i}", "repair", 1) is None for i in range(100))


def figure(n: int, share: float | None) -> dict[str, Any]:
    value = (
        None if share is None else {"estimate": share, "lower": share - 0.2, "upper": share + 0.1}
    )
    return {"n": n, "value": value}


def site(
    code: str, alerts: int, within_2: dict[str, Any], within_4: dict[str, Any]
) -> dict[str, Any]:
    therapist_row = {
        "code": code,
        "therapist_id": "th-1",
        "alerts": 99,
        "resolved_within_2_sessions": figure(99, 0.99),
        "resolved_within_4_sessions": figure(99, 0.99),
    }
    return {
        "site_id": "s-1",
        "actions": [
            {
                "code": code,
                "therapist_id": None,
                "alerts": alerts,
                "resolved_within_2_sessions": within_2,
                "resolved_within_4_sessions": within_4,
            },
            therapist_row,
        ],
        "open_unacted_by_age": {"under_1_day": 2, "1_to_3_days": 1},
        "alerts_acted_on": alerts,
        "median_hours_to_first_action": 0.004,
    }


def test_the_section_shows_each_sites_figures_per_action_with_n() -> None:
    follow_up = {
        "s-1": site("discussed_in_session", 12, figure(10, 0.6), figure(8, 0.75)),
        "s-2": site("no_action_needed_false_alarm", 3, figure(0, None), figure(0, None)),
    }

    html = follow_up_html(follow_up, Counter({"discussed_in_session": 12, FALSE_ALARM: 3}), 1)

    assert (
        '<tr><td>s-1</td><td>discussed in session</td><td class="n">12</td>'
        '<td class="n">60% [40–70%] (n = 10)</td><td class="n">75% [55–85%] (n = 8)</td></tr>'
    ) in html
    assert (
        '<tr><td>s-2</td><td>no action needed (false alarm)</td><td class="n">3</td>'
        '<td class="n">— (n = 0)</td><td class="n">— (n = 0)</td></tr>'
    ) in html
    assert "99%" not in html  # the therapists' rows are not the site's
    assert "15 actions recorded (1 refused: the alert had been closed meanwhile)" in html
    acted = '<tr><td>s-1</td><td class="n">12</td><td class="n">under a minute</td>'
    assert acted + '<td class="n">3</td></tr>' in html


def test_a_run_without_actions_says_so() -> None:
    assert "No action was recorded" in follow_up_html({}, Counter(), 0)


def test_the_summary_keeps_the_sites_figures_and_the_actions_by_code() -> None:
    follow_up = {"s-1": site("changed_approach", 4, figure(4, 0.5), figure(2, 0.5))}

    counts = follow_up_counts(follow_up, Counter({"changed_approach": 4}), 0)

    assert counts["actions_recorded"] == 4
    assert counts["actions_by_code"] == {"changed_approach": 4}
    (row,) = counts["sites"]["s-1"]["actions"]
    assert row["therapist_id"] is None and row["resolved_within_2_sessions"]["n"] == 4
    assert counts["sites"]["s-1"]["median_hours_to_first_action"] == 0.004


def test_words() -> None:
    assert code_words("involved_significant_other") == "involved significant other"
    assert duration_words(None) == "—"
    assert duration_words(2.25) == "2.2 h"
    assert duration_words(0.5) == "30.0 min"
    assert duration_words(0.01) == "under a minute"
    assert figure_words(None) == "—"
