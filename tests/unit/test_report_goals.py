"""The live simulator's goals and support (rapport.simulate_goals, answered by each Course) and the
demo report's goal attainment by site and low-support count (rapport.report_goals)."""

from __future__ import annotations

import pytest

from rapport.report_goals import SiteGoals, goal_attained, goals_by_site, goals_html, goals_json
from rapport.simulate import Course, Network, build_network
from rapport.simulate_live import LiveRun


def _ratings(course: Course) -> list[dict[str, float]]:
    return [dict(a.items) for r in course.history for a in r.answers if a.instrument == "goals"]


@pytest.fixture(scope="module")
def walked() -> tuple[Network, list[Course]]:
    network = build_network(seed=4, clients=120)
    courses = []
    for n, client in enumerate(network.clients):
        course = Course(network.seed, client, network.therapists[n % len(network.therapists)])
        for _ in range(12):
            if course.session().ended:
                break
        courses.append(course)
    return network, courses


def test_a_goal_is_attained_at_three_points_above_its_own_first_rating() -> None:
    assert goal_attained([{"a": 2}, {"a": 5}]) is True
    assert goal_attained([{"a": 2}, {"a": 4}]) is False
    assert goal_attained([{"a": 2}, {"a": 6}, {"a": 4}]) is False  # the latest rating counts
    assert goal_attained([{"a": 2}, {"a": 2, "b": 0}, {"a": 2, "b": 3}]) is True
    assert goal_attained([{"a": 5}, {"a": 5, "b": 8}, {"a": 5, "b": 9}]) is False
    assert goal_attained([]) is None


def test_every_client_rates_one_to_three_goals_each_session_and_support_every_four(
    walked: tuple[Network, list[Course]],
) -> None:
    _, courses = walked
    for course in courses:
        for result in course.history:
            by_instrument = {a.instrument: a for a in result.answers}
            assert 1 <= len(by_instrument["goals"].items) <= 3
            assert ("support" in by_instrument) == (result.session_number % 4 == 1)
    early = [dict(c.history[0].answers[-1].items)["support"] for c in courses]
    low = sum(value <= 4 for value in early)
    assert 0.05 * len(courses) < low < 0.3 * len(courses)


def test_goals_follow_the_course_improving_clients_move_one_and_stuck_ones_do_not(
    walked: tuple[Network, list[Course]],
) -> None:
    _, courses = walked
    improved = stuck = 0
    for course in courses:
        gain = course.ors - course.client.intake_ors
        if gain >= 5:
            improved += 1
            assert goal_attained(_ratings(course)) is True
        elif gain <= 1.5:
            stuck += 1
            assert goal_attained(_ratings(course)) is False
    assert improved >= 10 and stuck >= 5


def test_the_report_shows_goal_attainment_and_low_support_by_site(
    walked: tuple[Network, list[Course]],
) -> None:
    _, courses = walked
    live = LiveRun(courses={f"ep-{n}": c for n, c in enumerate(courses)})
    alerts = [
        {"episode_id": "ep-0", "kind": "low_support"},
        {"episode_id": "ep-1", "kind": "low_support"},
        {"episode_id": "ep-1", "kind": "rupture"},
    ]
    sites = goals_by_site(live, alerts)

    for site in sites:
        mine = [c for c in courses if c.client.site_id == site.site_id]
        assert site.episodes == len(mine)
        assert site.attained == sum(bool(goal_attained(_ratings(c))) for c in mine)
    assert sum(s.low_support for s in sites) == 2
    assert 0 < sum(s.attained for s in sites) < len(courses)
    figures = goals_json(sites)
    assert figures["low_support_alerts"] == 2
    html = goals_html(sites)
    for site in sites:
        share = f"{100 * site.attained / site.episodes:.1f}%"
        assert f'<td>{site.site_id}</td><td class="n">{share}</td>' in html
        assert f'<td class="n">{site.attained} / {site.episodes}</td>' in html


def test_a_site_without_goal_ratings_has_no_rate_not_zero() -> None:
    site = SiteGoals("site-x", episodes=0, attained=0, low_support=1)
    assert site.share is None
    assert goals_json([site])["by_site"]["site-x"]["goal_attainment_rate"] is None
    assert '<td class="n">–</td>' in goals_html([site])
