"""Therapist effectiveness: empirical-Bayes shrinkage and the Match-trial classification."""

from __future__ import annotations

import random

import pytest

from services.analytics.effectiveness import ClosedEpisode, shrink, therapist_effectiveness


def episodes(
    therapist: str,
    n: int,
    improved: int,
    domain: str = "depression",
    site: str = "s",
    alliance: float = 80.0,
) -> list[ClosedEpisode]:
    return [
        ClosedEpisode(therapist, site, (domain,), alliance, i < improved, False) for i in range(n)
    ]


def test_a_therapist_with_three_cases_is_pulled_most_of_the_way_to_the_site_mean() -> None:
    rng = random.Random(1)
    groups = {f"t{i}": [rng.gauss(50, 20) for _ in range(40)] for i in range(30)}
    groups["lucky"] = [95.0, 96.0, 94.0]
    estimates = shrink(groups)
    site_mean = sum(v for vs in groups.values() for v in vs) / sum(map(len, groups.values()))
    assert abs(estimates["lucky"].estimate - site_mean) < abs(95.0 - site_mean) / 2


def test_more_cases_give_a_narrower_interval() -> None:
    rng = random.Random(2)
    groups = {
        "few": [rng.gauss(50, 10) for _ in range(5)],
        "many": [rng.gauss(50, 10) for _ in range(200)],
        **{f"t{i}": [rng.gauss(50 + i, 10) for _ in range(30)] for i in range(8)},
    }
    estimates = shrink(groups)
    few, many = estimates["few"], estimates["many"]
    assert (many.upper - many.lower) < (few.upper - few.lower)


def test_identical_groups_shrink_to_the_grand_mean() -> None:
    estimates = shrink({"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0, 3.0]})
    assert estimates["a"].estimate == pytest.approx(2.0)
    assert estimates["a"].lower < 2.0 < estimates["a"].upper


@pytest.mark.parametrize(("n", "expected"), [(14, "not_enough_data"), (15, "effective")])
def test_classification_needs_at_least_fifteen_cases(n: int, expected: str) -> None:
    cohort = [e for i in range(6) for e in episodes(f"avg{i}", 30, 12)]
    star = episodes("star", n, n)  # every client reliably improved
    results = {r.therapist_id: r for r in therapist_effectiveness(cohort + star)}
    assert results["star"].classification == expected
    assert results["star"].n == n


def test_a_therapist_well_below_the_site_is_ineffective_and_the_middle_is_neutral() -> None:
    cohort = [e for i in range(6) for e in episodes(f"avg{i}", 30, 15)]
    low = episodes("low", 40, 1)
    results = {r.therapist_id: r for r in therapist_effectiveness(cohort + low)}
    assert results["low"].classification == "ineffective"
    assert results["avg0"].classification == "neutral"


def test_estimates_are_per_domain_and_site() -> None:
    mixed = episodes("t1", 20, 10, domain="anxiety") + episodes("t1", 20, 10, site="other")
    keys = {(r.site_id, r.domain) for r in therapist_effectiveness(mixed)}
    assert keys == {("s", "anxiety"), ("other", "depression")}


# --- No false certainty (issue 23, item 5) -----------------------------------------------------


def test_one_case_has_an_honest_interval_not_a_point() -> None:
    (result,) = therapist_effectiveness(episodes("solo", 1, 0))
    rate = result.reliable_improvement_rate
    assert rate is not None
    assert rate.upper - rate.lower >= 0.9  # one case says almost nothing about a rate
    assert 0.0 <= rate.lower <= rate.estimate <= rate.upper <= 1.0
    alliance = result.mean_alliance
    assert alliance is not None and alliance.upper - alliance.lower >= 90  # of the 0–100 scale
    assert result.classification == "not_enough_data" and not result.enough_data


@pytest.mark.parametrize("improved", [0, 20])
def test_every_case_alike_still_has_an_interval(improved: int) -> None:
    (result,) = therapist_effectiveness(episodes("same", 20, improved))
    rate = result.reliable_improvement_rate
    assert rate is not None
    assert rate.upper - rate.lower > 0.05
    assert 0.0 <= rate.lower and rate.upper <= 1.0


def test_rates_stay_within_zero_and_one() -> None:
    cohort = [e for i in range(6) for e in episodes(f"avg{i}", 30, 2)] + episodes("low", 3, 0)
    for result in therapist_effectiveness(cohort):
        for rate in (result.reliable_improvement_rate, result.deterioration_rate):
            assert rate is not None and 0.0 <= rate.lower and rate.upper <= 1.0


@pytest.mark.parametrize(("n", "enough"), [(14, False), (15, True)])
def test_enough_data_from_the_minimum_number_of_cases(n: int, enough: bool) -> None:
    (result,) = therapist_effectiveness(episodes("t", n, 5))
    assert result.enough_data is enough and result.min_cases == 15


def test_a_single_score_without_bounds_is_refused_rather_than_made_certain() -> None:
    with pytest.raises(ValueError, match="cannot be estimated"):
        shrink({"a": [50.0]})
