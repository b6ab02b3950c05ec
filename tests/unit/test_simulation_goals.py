"""The simulated network's goals and support (rapport.simulation_goals): every client has 1–3
goals rated each session, on-track clients move a goal reliably and stuck ones do not, support is
rated at the first session and every four after with some clients low early, and the labels are
the rules' definitions at their thresholds."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from rapport.simulation import Network, simulate
from rapport.simulation_goals import goals_not_progressing_at, low_support_at


@pytest.fixture(scope="module")
def network() -> Network:
    return simulate(seed=3, episodes=200)


def _by_episode(network: Network, instrument: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in network.records():
        if record["instrument"] == instrument:
            out[record["episode_id"]].append(record)
    return out


def _best_change(records: list[dict[str, Any]]) -> int:
    firsts: dict[str, int] = {}
    best = 0
    for record in records:
        for goal, value in record["items"].items():
            best = max(best, value - firsts.setdefault(goal, value))
    return best


def test_every_client_rates_one_to_three_goals_at_every_attended_session(
    network: Network,
) -> None:
    goals = _by_episode(network, "goals")
    for episode in network.episodes:
        rated = goals[episode.episode_id]
        assert [r["session"] for r in rated] == episode.numbers
        assert 1 <= len(rated[0]["items"]) <= 3
        assert all(0 <= v <= 10 and isinstance(v, int) for r in rated for v in r["items"].values())


def test_on_track_clients_move_a_goal_by_three_and_stuck_ones_do_not(network: Network) -> None:
    goals = _by_episode(network, "goals")
    labelled = {x.episode_id for x in network.labels() if x.kind == "goals_not_progressing"}
    courses = {e.course for e in network.episodes}
    assert courses == {"on_track", "flat", "deteriorating"}
    for episode in network.episodes:
        rated = goals[episode.episode_id]
        change = _best_change(rated)
        if episode.course == "on_track" and len(rated) >= 3:
            assert change >= 3
            assert _best_change(rated[:3]) >= 3  # by the third attended session
        elif episode.course != "on_track":
            assert change <= 2
            assert (episode.episode_id in labelled) == (episode.numbers[-1] >= 6)


def test_support_is_rated_first_and_every_four_sessions_and_some_start_low(
    network: Network,
) -> None:
    support = _by_episode(network, "support")
    low_early = 0
    for episode in network.episodes:
        rated = support[episode.episode_id]
        assert [r["session"] for r in rated] == episode.numbers[::4]
        low_early += rated[0]["items"]["support"] <= 4
    labelled = [x for x in network.labels() if x.kind == "low_support"]
    assert len(labelled) == low_early
    assert 0.05 * len(network.episodes) < low_early < 0.3 * len(network.episodes)


def test_goals_not_progressing_opens_at_six_without_a_move_of_three_and_again_after() -> None:
    flat = [{"a": 2, "b": 5}] * 5
    numbers = [1, 2, 3, 4, 5]
    assert goals_not_progressing_at(flat, numbers) == []
    assert goals_not_progressing_at([*flat, {"a": 4, "b": 7}], [*numbers, 6]) == [6]
    moved = [*flat, {"a": 5, "b": 5}, {"a": 2, "b": 5}, {"a": 2, "b": 5}]
    assert goals_not_progressing_at(moved, [*numbers, 6, 7, 8]) == [7]
    # A goal set later starts from its own first rating.
    late = [{"a": 2}, {"a": 2, "c": 0}, {"a": 2, "c": 2}, {"a": 2, "c": 3}]
    assert goals_not_progressing_at(late, [1, 6, 7, 8]) == [6]


def test_low_support_opens_once_at_four_or_less_in_the_first_three_sessions() -> None:
    assert low_support_at([4, None, 3], [1, 2, 3]) == 1
    assert low_support_at([5, None, 4], [1, 2, 3]) == 3
    assert low_support_at([5, 4], [1, 4]) is None
    assert low_support_at([None, 5, 6], [1, 2, 3]) is None
