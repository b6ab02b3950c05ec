"""The fit on small hand-made data: bands, sessions, the minimum number of episodes, numpy's
linear percentiles, amended and late records, and what is left out."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rapport.trajectories.fit import MAX_SESSION, TrajectoryFit
from rapport.trajectories.model import SessionPercentiles, Skipped, band_of


def _episodes(fit: TrajectoryFit, first: str, later: list[int], session: int = 2) -> None:
    """One episode per value of ``later``: first score ``first`` at session 1, then ``later``."""
    for index, total in enumerate(later):
        episode = f"ep-{first}-{index}"
        fit.add("ors", episode, f"{episode}-c", 1, Decimal(first))
        fit.add("ors", episode, f"{episode}-c", session, Decimal(total))


@pytest.mark.parametrize(
    ("first", "width", "band"),
    [
        ("14.9", "5", 2),
        ("15.0", "5", 3),
        ("15.1", "5", 3),
        ("0", "5", 0),
        ("40", "5", 8),
        ("0.3", "0.1", 3),  # exactly, not 2.9999… as in binary floating point
        ("7.4", "2.5", 2),
        ("7.5", "2.5", 3),
    ],
)
def test_band_is_the_floor_of_the_first_score_over_the_band_width(
    first: str, width: str, band: int
) -> None:
    assert band_of(Decimal(first), Decimal(width)) == band


def test_percentiles_are_numpys_linear_interpolation_between_closest_ranks() -> None:
    fit = TrajectoryFit()
    _episodes(fit, "20", list(range(30)))  # totals 0…29 at session 2

    cell = fit.fit(min_episodes=30).instruments["ors"].bands["4"].sessions["2"]

    # rank (n − 1)·p: 2.9, 7.25, 14.5, 21.75, 26.1 between the values 0…29
    assert cell == SessionPercentiles(n=30, p10=2.9, p25=7.25, p50=14.5, p75=21.75, p90=26.1)


def test_a_band_and_session_with_min_episodes_is_fitted_and_with_one_fewer_is_skipped() -> None:
    fit = TrajectoryFit()
    _episodes(fit, "20", [25] * 30)  # band 4: 30 episodes
    _episodes(fit, "10", [15] * 29)  # band 2: 29 episodes

    fitted = fit.fit(min_episodes=30)

    assert list(fitted.instruments["ors"].bands) == ["4"]
    assert fitted.instruments["ors"].bands["4"].sessions["2"].n == 30
    assert fitted.skipped == [
        Skipped(instrument="ors", band=2, session=1, n=29),
        Skipped(instrument="ors", band=2, session=2, n=29),
    ]


def test_too_few_episodes_everywhere_fits_nothing_and_says_where() -> None:
    fit = TrajectoryFit()
    _episodes(fit, "20", [25, 26])

    fitted = fit.fit(min_episodes=30)

    assert fitted.instruments == {}
    assert [(s.band, s.session, s.n) for s in fitted.skipped] == [(4, 1, 2), (4, 2, 2)]


def test_an_amended_answer_replaces_the_one_before_it_at_the_same_session() -> None:
    fit = TrajectoryFit()
    fit.add("ors", "ep-1", "c", 1, Decimal(20))
    fit.add("ors", "ep-1", "c", 2, Decimal(10))
    fit.add("ors", "ep-1", "c", 2, Decimal(30))  # the amended answer stands

    cell = fit.fit(min_episodes=1).instruments["ors"].bands["4"].sessions["2"]

    assert (cell.n, cell.p50) == (1, 30.0)


def test_an_amended_first_answer_moves_the_episode_to_its_band() -> None:
    fit = TrajectoryFit()
    fit.add("ors", "ep-1", "c", 1, Decimal(12))
    fit.add("ors", "ep-1", "c", 1, Decimal(22))

    assert list(fit.fit(min_episodes=1).instruments["ors"].bands) == ["4"]


def test_the_band_comes_from_the_lowest_session_even_when_its_record_arrives_late() -> None:
    fit = TrajectoryFit()
    fit.add("ors", "ep-1", "c", 2, Decimal(30))
    fit.add("ors", "ep-1", "c", 3, Decimal(31))
    fit.add("ors", "ep-1", "c", 1, Decimal(8))  # late

    bands = fit.fit(min_episodes=1).instruments["ors"].bands

    assert list(bands) == ["1"]
    assert sorted(bands["1"].sessions) == ["1", "2", "3"]


def test_an_episode_that_starts_after_session_1_is_banded_on_its_first_score() -> None:
    fit = TrajectoryFit()
    fit.add("ors", "ep-1", "c", 3, Decimal(17))
    fit.add("ors", "ep-1", "c", 4, Decimal(30))

    bands = fit.fit(min_episodes=1).instruments["ors"].bands

    assert list(bands) == ["3"]
    assert sorted(bands["3"].sessions) == ["3", "4"]


def test_each_instrument_has_its_own_band_width_and_bands() -> None:
    fit = TrajectoryFit()
    fit.add("ors", "ep-1", "c", 1, Decimal(20))
    fit.add("phq-9", "ep-1", "c", 1, Decimal(20))

    fitted = fit.fit({"ors": Decimal(5), "phq-9": Decimal(3)}, min_episodes=1)

    assert fitted.instruments["ors"].band_width == 5
    assert list(fitted.instruments["ors"].bands) == ["4"]
    assert fitted.instruments["phq-9"].band_width == 3
    assert list(fitted.instruments["phq-9"].bands) == ["6"]


def test_two_clients_of_one_episode_are_two_series_and_the_counts_say_so() -> None:
    fit = TrajectoryFit()
    fit.add("ors", "ep-1", "ep-1-a", 1, Decimal(20))
    fit.add("ors", "ep-1", "ep-1-b", 1, Decimal(21))
    fit.add("phq-9", "ep-2", "ep-2-c", 1, Decimal(9))

    fitted = fit.fit(min_episodes=1)

    assert fitted.instruments["ors"].bands["4"].sessions["1"].n == 2
    assert fitted.episodes == 2
    assert fitted.records == 3
    assert {k: (c.records, c.episodes) for k, c in fitted.counts.items()} == {
        "ors": (2, 1),
        "phq-9": (1, 1),
    }


def test_sessions_outside_what_the_model_can_key_are_refused() -> None:
    fit = TrajectoryFit()

    fit.add("ors", "ep-1", "c", MAX_SESSION, Decimal(20))
    with pytest.raises(ValueError, match="session must be from 1 to 999"):
        fit.add("ors", "ep-1", "c", MAX_SESSION + 1, Decimal(20))
    with pytest.raises(ValueError, match="session must be from 1"):
        fit.add("ors", "ep-1", "c", 0, Decimal(20))


def test_a_fit_of_no_scores_is_empty() -> None:
    fitted = TrajectoryFit().fit()

    assert (fitted.instruments, fitted.skipped, fitted.counts) == ({}, [], {})
    assert (fitted.episodes, fitted.records) == (0, 0)
