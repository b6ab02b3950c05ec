"""On a simulated network whose true trajectories are known (tests/support/trajectory_truth.py),
the fitted 25th, 50th and 75th percentiles lie within sampling error of the true quantiles at
every band and session; and the same check catches a truth that is off by 1.5 points."""

from __future__ import annotations

import random

from rapport.trajectories.fit import TrajectoryFit
from rapport.trajectories.model import InstrumentTrajectories
from rapport.trajectories.read import read_into
from shared.instruments import SHIPPED, load_instruments
from tests.support.trajectory_truth import KnownTrajectories, misses

# 4 standard errors (plus the ORS's rounding): 120 checks, so a chance miss is about 1 in 100
# runs at worst, and this seed is fixed.
Z = 4
TRUTH = KnownTrajectories(min_sessions=8, max_sessions=8)


def _fitted_ors() -> InstrumentTrajectories:
    fit = TrajectoryFit()
    read_into(fit, TRUTH.lines(random.Random(18), 600), load_instruments(SHIPPED))
    return fit.fit(min_episodes=30).instruments["ors"]


FITTED = _fitted_ors()


def test_the_fit_has_every_band_and_session_of_the_simulated_network() -> None:
    assert sorted(FITTED.bands, key=int) == ["1", "2", "3", "4", "5"]
    for trajectory in FITTED.bands.values():
        assert sorted(trajectory.sessions, key=int) == [str(s) for s in range(1, 9)]
        # One client per episode counted once per session: the partner's ORS, the amended
        # answers and the late first records are not extra episodes.
        assert {cell.n for cell in trajectory.sessions.values()} == {600}


def test_fitted_percentiles_are_within_sampling_error_of_the_true_quantiles() -> None:
    checked, missed = misses(FITTED, TRUTH, Z)

    assert checked == 5 * 8 * 3
    assert missed == []


def test_the_check_catches_a_truth_shifted_by_one_and_a_half_points() -> None:
    for shift in (1.5, -1.5):
        shifted = KnownTrajectories(min_sessions=8, max_sessions=8, shift=shift)

        checked, missed = misses(FITTED, shifted, Z)

        assert len(missed) == checked == 5 * 8 * 3
