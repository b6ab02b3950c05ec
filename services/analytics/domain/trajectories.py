"""Expected trajectories as rule 9 reads them: what the domain needs of a fitted model
(``rapport trajectories fit``, docs/trajectories.md), as a shape, so the rules stay pure and
take the model as data. The service and ``rapport replay --trajectories`` both pass
``TrajectoryModel.instruments`` (instrument id → its bands), which has this shape."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Protocol


class SessionPercentiles(Protocol):
    """The totals at one session of the clients who started in one band."""

    @property
    def n(self) -> int: ...
    @property
    def p10(self) -> float: ...
    @property
    def p25(self) -> float: ...
    @property
    def p50(self) -> float: ...
    @property
    def p75(self) -> float: ...
    @property
    def p90(self) -> float: ...


class InstrumentTrajectory(Protocol):
    def at(self, first_score: Decimal | float, session: int) -> SessionPercentiles | None:
        """The percentiles for a series that started at ``first_score``, at ``session``; None
        where the model has no data for that band and session."""
        ...


# instrument id → its fitted trajectories
Trajectories = Mapping[str, InstrumentTrajectory]


def expected_line(
    percentiles: SessionPercentiles, lower_is_worse: bool, percentile: int
) -> Decimal:
    """The line a score must not cross to be on track: for an instrument where lower is worse
    (ORS) the model's ``percentile``-th percentile (default 25th), else its (100 − percentile)-th
    (PHQ-9, GAD-7, CORE-10: the 75th). Exact: the float the model file holds, as written."""
    wanted = percentile if lower_is_worse else 100 - percentile
    return Decimal(repr(float(getattr(percentiles, f"p{wanted}"))))


def off_track(score: Decimal, line: Decimal, lower_is_worse: bool) -> bool:
    """Worse than the expected line: ORS below it, PHQ-9/GAD-7/CORE-10 above it (a score
    exactly on the line is on track)."""
    return score < line if lower_is_worse else score > line


def track_position(score: Decimal, percentiles: SessionPercentiles, lower_is_worse: bool) -> str:
    """Where a score lies against the model's middle half: ``below`` track (worse than the
    25–75 band: ORS under p25, PHQ-9 over p75), ``above`` track (better than it) or ``on``."""
    low = Decimal(repr(float(percentiles.p25)))
    high = Decimal(repr(float(percentiles.p75)))
    if score < low:
        return "below" if lower_is_worse else "above"
    if score > high:
        return "above" if lower_is_worse else "below"
    return "on"
