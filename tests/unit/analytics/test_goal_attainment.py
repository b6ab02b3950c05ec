"""Goal progress and attainment (issue 19), pure: each goal's change is from its own first
rating, reliable at 3 points (2 is not); attainment is read at each goal's latest rating; an
episode without goal ratings says nothing on goals; the therapist's goal attainment is shrunk
toward the site like the other rates, over the episodes with goals only (``goal_n``); the
episode chart draws each goal's own line."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest

from services.analytics.charts import render
from services.analytics.domain.goals import goal_attained, goal_progress
from services.analytics.domain.records import ScoredRecord
from services.analytics.effectiveness import ClosedEpisode, therapist_effectiveness
from services.analytics.mapping import GoalProgressOut, TimelineOut
from services.analytics.reports import episode_chart
from shared.instruments import deployment_instruments

RC = {"goals": Decimal(3)}
INSTRUMENTS = deployment_instruments(None)


def rating(session: int, items: dict[str, int], role: str = "client") -> ScoredRecord:
    return ScoredRecord(
        "ep-1", "site-a", "th-1", session, None, role, "p1_c", "goals", items, Decimal(0)
    )


@pytest.mark.parametrize(("last", "reliable"), [(4, False), (5, True), (6, True), (1, False)])
def test_a_goal_is_reliably_better_at_three_points_above_its_own_first_rating(
    last: int, reliable: bool
) -> None:
    progress = goal_progress([rating(1, {"g-a": 2}), rating(2, {"g-a": last})], RC)
    assert [(r.session, r.change_from_first, r.reliable) for r in progress] == [
        (1, Decimal(0), False),
        (2, Decimal(last - 2), reliable),
    ]
    assert goal_attained(progress) is reliable


def test_a_goal_set_later_starts_from_its_own_first_rating_and_orders_after() -> None:
    progress = goal_progress(
        [rating(3, {"g-a": 5, "g-b": 1}), rating(1, {"g-a": 4}), rating(5, {"g-b": 4})], RC
    )
    assert [(r.session, r.goal, r.order, r.change_from_first) for r in progress] == [
        (1, "g-a", 1, Decimal(0)),
        (3, "g-a", 1, Decimal(1)),
        (3, "g-b", 2, Decimal(0)),
        (5, "g-b", 2, Decimal(3)),
    ]
    assert goal_attained(progress) is True


def test_attainment_is_read_at_each_goals_latest_rating() -> None:
    progress = goal_progress([rating(1, {"g": 2}), rating(2, {"g": 6}), rating(3, {"g": 4})], RC)
    assert goal_attained(progress) is False  # it was reached at session 2, not at the end


def test_no_goal_ratings_say_nothing_and_therapist_ratings_are_not_the_clients() -> None:
    assert goal_attained([]) is None
    assert goal_progress([rating(1, {"g": 2}, role="therapist")], RC) == []
    srs = rating(1, {"relationship": 9})._replace(instrument="srs")
    assert goal_progress([srs], RC) == []


def closed(therapist: str, goals: bool | None, improved: bool = False) -> ClosedEpisode:
    return ClosedEpisode(therapist, "site-a", ("depression",), 80.0, improved, False, goals)


def test_goal_attainment_joins_the_effectiveness_figures_shrunk_with_its_own_n() -> None:
    episodes = [
        *(closed("th-a", True) for _ in range(4)),
        closed("th-a", None),
        *(closed("th-b", False) for _ in range(3)),
        closed("th-b", True),
    ]
    by_therapist = {r.therapist_id: r for r in therapist_effectiveness(episodes)}
    a, b = by_therapist["th-a"], by_therapist["th-b"]
    assert (a.n, a.goal_n, b.n, b.goal_n) == (5, 4, 4, 4)
    assert a.goal_attainment_rate is not None and b.goal_attainment_rate is not None
    site = 5 / 8
    # Shrunk toward the site's rate, never past it, and within the scale.
    assert site <= a.goal_attainment_rate.estimate <= 1.0
    assert 0.25 <= b.goal_attainment_rate.estimate <= site
    assert 0.0 <= b.goal_attainment_rate.lower <= b.goal_attainment_rate.upper <= 1.0


def test_without_any_goals_there_is_no_goal_estimate() -> None:
    (only,) = therapist_effectiveness([closed("th-a", None), closed("th-a", None)])
    assert (only.goal_n, only.goal_attainment_rate) == (0, None)


def test_the_chart_draws_each_goals_own_line() -> None:
    timeline = TimelineOut(
        episode_id="ep-1",
        site_id="site-a",
        therapist_id="th-1",
        phase="matched",
        last_session=2,
        scores=[],
        alerts=[],
    )
    goals = [
        GoalProgressOut(
            session_number=s,
            goal_id=g,
            goal_order=o,
            rating=v,
            change_from_first=0,
            reliable_change=False,
        )
        for s, g, o, v in ((1, "g-a", 1, 2.0), (2, "g-a", 1, 5.0), (2, "g-b", 2, 7.0))
    ]
    svg = render(episode_chart(timeline, INSTRUMENTS, goals=goals))
    ET.fromstring(svg)
    assert "Goals, each 0–10 (GOALS)" in svg
    assert "goal 1" in svg and "goal 2" in svg
