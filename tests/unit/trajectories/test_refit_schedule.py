"""The scheduled refit (RAPPORT_TRAJECTORIES_REFIT_HOURS): due when there is no model yet or
the current one is at least the period old; the setting is off by default and never negative;
off, analytics' refit loop ends at once without touching the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from rapport.trajectories.model import TrajectoryModel
from services.analytics.trajectory_refit import refit_due, refit_forever
from shared.settings import Settings

FITTED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def model_fitted_at(at: datetime) -> TrajectoryModel:
    return TrajectoryModel.model_validate(
        {
            "version": 1,
            "fitted_at": at,
            "min_episodes": 30,
            "percentile_method": "linear",
            "smoothing": "none",
            "data": {
                "lines": 0,
                "records": 0,
                "bad_lines": 0,
                "records_fitted": 0,
                "episodes": 0,
                "instruments": {},
            },
            "instruments": {},
        }
    )


def test_a_refit_is_due_without_a_model() -> None:
    assert refit_due(None, FITTED, 24)


@pytest.mark.parametrize(
    ("age", "due"),
    [
        (timedelta(hours=24) - timedelta(seconds=1), False),
        (timedelta(hours=24), True),
        (timedelta(hours=25), True),
        (timedelta(0), False),
    ],
)
def test_a_refit_is_due_once_the_model_is_the_period_old(age: timedelta, due: bool) -> None:
    assert refit_due(model_fitted_at(FITTED), FITTED + age, 24) is due


def test_the_refit_is_off_by_default_and_never_negative() -> None:
    assert Settings().trajectories_refit_hours == 0
    with pytest.raises(ValidationError, match="trajectories_refit_hours"):
        Settings(trajectories_refit_hours=-1)


async def test_off_the_refit_loop_ends_at_once_without_the_database() -> None:
    settings = SimpleNamespace(trajectories_refit_hours=0, trajectories_file="model.json")
    runtime: Any = SimpleNamespace(settings=settings)  # no sessionmaker, no dependencies

    await refit_forever(runtime)
