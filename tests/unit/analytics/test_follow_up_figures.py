"""What followed an action on an alert (services/analytics/domain/followup_figures.py): resolution
within 2 and 4 sessions (too recent to tell is left out, not a failure), the change in alliance
and outcome over the next sessions, per site and per therapist shrunk as therapist effectiveness
is, each with n; and a supervisor's view: open unacted alerts by age, median time to a first
action."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.analytics.domain.followup_figures import (
    ActionCase,
    change_after,
    follow_up_figures,
    median_hours_to_first_action,
    on_scale,
    resolved_within,
    session_at,
    unacted_by_age,
)
from services.analytics.effectiveness import RATE, shrink

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def case(
    therapist: str = "th-1",
    code: str = "discussed_in_session",
    *,
    acted: int = 3,
    resolved: int | None = None,
    last: int = 10,
    alliance: dict[int, float] | None = None,
    outcome: dict[int, float] | None = None,
) -> ActionCase:
    return ActionCase(
        "site-a", therapist, code, acted, resolved, last, alliance or {}, outcome or {}
    )


# -- resolved within k sessions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("resolved", "within_2", "within_4"),
    [(3, True, True), (5, True, True), (6, False, True), (7, False, True), (8, False, False)],
)
def test_resolution_counts_at_the_session_boundary(
    resolved: int, within_2: bool, within_4: bool
) -> None:
    acted = case(acted=3, resolved=resolved, last=12)

    assert resolved_within(acted, 2) is within_2
    assert resolved_within(acted, 4) is within_4


def test_an_alert_too_recent_to_tell_is_left_out_not_counted_as_unresolved() -> None:
    assert resolved_within(case(acted=3, resolved=None, last=4), 2) is None
    assert resolved_within(case(acted=3, resolved=None, last=5), 2) is False
    assert resolved_within(case(acted=3, resolved=None, last=6), 4) is None
    assert resolved_within(case(acted=3, resolved=None, last=7), 4) is False
    assert resolved_within(case(acted=3, resolved=4, last=4), 4) is True


def test_an_alert_resolved_before_the_action_counts_as_resolved() -> None:
    assert resolved_within(case(acted=5, resolved=4, last=5), 2) is True


# -- change over the next sessions ------------------------------------------------------------


def test_the_change_is_the_next_sessions_mean_minus_the_last_value_at_the_action() -> None:
    series = {1: 40.0, 3: 50.0, 4: 60.0, 6: 80.0, 7: 70.0, 8: 99.0}

    # at session 3: 50; the next four sessions (4–7) have 60, 80, 70 → mean 70.
    assert change_after(series, 3) == pytest.approx(20.0)
    # at session 2 the last value known is session 1's (40); sessions 3–6: 50, 60, 80.
    assert change_after(series, 2) == pytest.approx(190 / 3 - 40)


def test_no_change_without_a_value_before_and_one_after() -> None:
    assert change_after({4: 50.0}, 3) is None
    assert change_after({3: 50.0}, 3) is None
    assert change_after({3: 50.0, 8: 90.0}, 3) is None  # session 8 is beyond the next four


def test_totals_are_put_on_a_0_to_100_scale_higher_better() -> None:
    assert on_scale(30, 0, 40, higher_is_better=True) == pytest.approx(75)
    assert on_scale(9, 0, 27, higher_is_better=False) == pytest.approx(100 - 100 / 3)


def test_the_session_of_an_action_is_the_latest_with_a_response_by_then() -> None:
    recorded = [(1, NOW - timedelta(days=14)), (2, NOW - timedelta(days=7)), (3, NOW)]

    assert session_at(recorded, NOW - timedelta(days=1)) == 2
    assert session_at(recorded, NOW) == 3
    assert session_at(recorded, NOW - timedelta(days=30)) is None


# -- per site and per therapist ---------------------------------------------------------------


def test_figures_per_code_for_the_site_and_each_therapist_shrunk_toward_it_with_n() -> None:
    cases = [
        case("th-1", acted=3, resolved=4, last=9),
        case("th-1", acted=3, resolved=5, last=9),
        case("th-1", acted=3, resolved=None, last=9),
        case("th-2", acted=3, resolved=None, last=9),
        case("th-2", acted=3, resolved=None, last=4),  # too recent for either share
        case("th-2", "safety_plan", acted=2, resolved=3, last=6),
    ]

    figures = {(f.code, f.therapist_id): f for f in follow_up_figures(cases)}

    site = figures[("discussed_in_session", None)]
    assert site.alerts == 5
    assert site.resolved_within[2].n == 4
    site_share = site.resolved_within[2].estimate
    assert site_share is not None and site_share.estimate == pytest.approx(2 / 4)
    one, two = figures[("discussed_in_session", "th-1")], figures[("discussed_in_session", "th-2")]
    assert (one.alerts, one.resolved_within[2].n) == (3, 3)
    assert (two.alerts, two.resolved_within[2].n) == (2, 1)
    expected = shrink({"th-1": [1.0, 1.0, 0.0], "th-2": [0.0]}, RATE, rate=True)
    assert one.resolved_within[2].estimate == expected["th-1"]
    assert two.resolved_within[2].estimate == expected["th-2"]
    assert figures[("safety_plan", None)].alerts == 1
    assert figures[("safety_plan", "th-2")].resolved_within[4].n == 1


def test_a_therapist_with_no_value_for_a_figure_has_n_0_and_no_estimate() -> None:
    cases = [
        case("th-1", acted=3, alliance={3: 50.0, 4: 60.0}),
        case("th-2", acted=3, alliance={}),
    ]

    figures = {f.therapist_id: f for f in follow_up_figures(cases)}

    assert figures["th-2"].alliance_change.n == 0
    assert figures["th-2"].alliance_change.estimate is None
    assert figures["th-1"].alliance_change.n == 1
    assert figures[None].alliance_change.estimate is not None
    assert figures[None].alliance_change.estimate.estimate == pytest.approx(10.0)


# -- a supervisor's view ----------------------------------------------------------------------


def test_open_unacted_alerts_are_counted_by_age_at_each_band_boundary() -> None:
    day = timedelta(days=1)
    opened = [NOW - day + timedelta(seconds=1), NOW - day, NOW - 3 * day, NOW - 7 * day, NOW]

    assert unacted_by_age(opened, NOW) == {
        "under_1_day": 2,
        "1_to_3_days": 1,
        "3_to_7_days": 1,
        "7_days_or_more": 1,
    }


def test_the_median_time_to_a_first_action_in_hours() -> None:
    pairs = [
        (NOW, NOW + timedelta(hours=1)),
        (NOW, NOW + timedelta(hours=3)),
        (NOW, NOW + timedelta(hours=30)),
    ]

    assert median_hours_to_first_action(pairs) == 3.0
    assert median_hours_to_first_action([]) is None
