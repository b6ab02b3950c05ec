"""Fitting expected trajectories: the percentiles of clients' totals by starting band and session.

Pure: :class:`TrajectoryFit` takes client outcome scores one at a time (from the replay
format's lines, or later from analytics' closed episodes) and keeps them in flat arrays (about
24 bytes a score), so a million records fit in a few tens of megabytes; :meth:`TrajectoryFit.fit`
then computes, with numpy, per instrument, starting band and session number with enough
episodes, the 10th, 25th, 50th, 75th and 90th percentiles (numpy's default "linear" method:
linear interpolation between the closest ranks, Hyndman & Fan's type 7) and ``n``.

A *series* is one client's scores on one instrument in one episode (one per episode, except
where an episode has two clients, e.g. a couple: each is a series, and each counts as an
episode in ``n``). Where a series has more than one score at a session (an amended answer),
the last one in arrival order stands, as in analytics. The series' band is
``floor(first score / band width)``, its first score being its score at its lowest session
number, whatever order the records arrived in.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from rapport.trajectories.model import (
    MODEL_VERSION,
    PERCENTILES,
    BandTrajectory,
    DataCounts,
    InstrumentCounts,
    InstrumentTrajectories,
    SessionPercentiles,
    Skipped,
    TrajectoryModel,
    band_of,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

DEFAULT_BAND_WIDTH = Decimal(5)
DEFAULT_MIN_EPISODES = 30
MAX_SESSION = 999  # a session number the fit accepts (the model's keys stay short)
_DECIMALS = 3  # of the fitted percentiles


@dataclass(frozen=True)
class Fitted:
    instruments: dict[str, InstrumentTrajectories]
    skipped: list[Skipped]
    counts: dict[str, InstrumentCounts]
    episodes: int
    records: int


class TrajectoryFit:
    """Client outcome scores collected for a fit (see the module's docstring)."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str, str], int] = {}
        self._series_instrument: list[str] = []
        self._first_session: list[int] = []
        self._first_total: list[Decimal] = []
        self._at_series = array("q")
        self._at_session = array("q")
        self._at_total = array("d")

    @property
    def records(self) -> int:
        return len(self._at_series)

    def add(
        self, instrument: str, episode_id: str, respondent_id: str, session: int, total: Decimal
    ) -> None:
        """One client's total on an outcome instrument at a session (1 to MAX_SESSION)."""
        if not 1 <= session <= MAX_SESSION:
            raise ValueError(f"session must be from 1 to {MAX_SESSION}, got {session}")
        key = (episode_id, respondent_id, instrument)
        index = self._series.get(key)
        if index is None:
            index = self._series[key] = len(self._series_instrument)
            self._series_instrument.append(instrument)
            self._first_session.append(session)
            self._first_total.append(total)
        elif session <= self._first_session[index]:  # a late record, or an amended first one
            self._first_session[index] = session
            self._first_total[index] = total
        self._at_series.append(index)
        self._at_session.append(session)
        self._at_total.append(float(total))

    def fit(
        self, band_widths: Mapping[str, Decimal] | None = None, min_episodes: int = 30
    ) -> Fitted:
        """The percentiles per instrument, band and session with at least ``min_episodes``
        series scored there; the bands and sessions with fewer are listed as skipped."""
        import numpy as np

        widths = {name: (band_widths or {}).get(name, DEFAULT_BAND_WIDTH) for name in self._names}
        fitted: dict[str, dict[int, dict[int, SessionPercentiles]]] = {}
        skipped: list[Skipped] = []
        for name, band, session, totals in self._cells(widths):
            n = len(totals)
            if n < min_episodes:
                skipped.append(Skipped(instrument=name, band=band, session=session, n=n))
                continue
            p = np.percentile(totals, PERCENTILES).round(_DECIMALS).tolist()
            fitted.setdefault(name, {}).setdefault(band, {})[session] = SessionPercentiles(
                n=n, p10=p[0], p25=p[1], p50=p[2], p75=p[3], p90=p[4]
            )
        return Fitted(
            instruments={
                name: InstrumentTrajectories(
                    band_width=float(widths[name]),
                    bands={
                        str(band): BandTrajectory(
                            sessions={str(s): by_session[s] for s in sorted(by_session)}
                        )
                        for band, by_session in sorted(bands.items())
                    },
                )
                for name, bands in fitted.items()
            },
            skipped=skipped,
            counts=self._counts(),
            episodes=len({episode for episode, _, _ in self._series}),
            records=self.records,
        )

    @property
    def _names(self) -> list[str]:
        return sorted(set(self._series_instrument))

    def _cells(
        self, widths: Mapping[str, Decimal]
    ) -> Iterator[tuple[str, int, int, npt.NDArray[np.float64]]]:
        """(instrument, band, session, the totals there sorted), in that order: one total per
        series, its last in arrival order at the session."""
        import numpy as np

        names = self._names
        code = {name: i for i, name in enumerate(names)}
        series_instrument = np.array([code[n] for n in self._series_instrument], dtype=np.int64)
        series_band = np.array(
            [
                band_of(first, widths[name])
                for name, first in zip(self._series_instrument, self._first_total, strict=True)
            ],
            dtype=np.int64,
        )
        series = np.frombuffer(self._at_series, dtype=np.int64)
        sessions = np.frombuffer(self._at_session, dtype=np.int64)
        totals = np.frombuffer(self._at_total, dtype=np.float64)
        # The last score in arrival order at each series and session: the first occurrence
        # in the reversed arrays of each (series, session) key.
        keys = series * (MAX_SESSION + 1) + sessions
        _, first_reversed = np.unique(keys[::-1], return_index=True)
        kept = len(keys) - 1 - first_reversed
        series, sessions, totals = series[kept], sessions[kept], totals[kept]
        instrument, band = series_instrument[series], series_band[series]
        order = np.lexsort((totals, sessions, band, instrument))
        instrument, band = instrument[order], band[order]
        sessions, totals = sessions[order], totals[order]
        changes = (
            (instrument[1:] != instrument[:-1])
            | (band[1:] != band[:-1])
            | (sessions[1:] != sessions[:-1])
        )
        if not len(totals):
            return
        starts = [0, *(np.flatnonzero(changes) + 1).tolist()]
        for start, end in zip(starts, [*starts[1:], len(totals)], strict=True):
            name = names[int(instrument[start])]
            yield name, int(band[start]), int(sessions[start]), totals[start:end]

    def _counts(self) -> dict[str, InstrumentCounts]:
        import numpy as np

        names = self._names
        code = {name: i for i, name in enumerate(names)}
        series_instrument = np.array([code[n] for n in self._series_instrument], dtype=np.int64)
        series = np.frombuffer(self._at_series, dtype=np.int64)
        records = np.bincount(series_instrument[series], minlength=len(names)).tolist()
        episodes: dict[str, set[str]] = {name: set() for name in names}
        for episode, _, name in self._series:
            episodes[name].add(episode)
        return {
            name: InstrumentCounts(records=records[i], episodes=len(episodes[name]))
            for i, name in enumerate(names)
        }


def fitted_model(
    fit: TrajectoryFit,
    widths: Mapping[str, Decimal],
    min_episodes: int,
    *,
    fitted_at: datetime,
    lines: int,
    records: int,
    bad_lines: int,
) -> TrajectoryModel:
    """The model file's content for ``fit``: the percentiles, and what they were fitted on
    (``lines``, ``records`` and ``bad_lines`` of the source; counts only)."""
    fitted = fit.fit(widths, min_episodes)
    return TrajectoryModel(
        version=MODEL_VERSION,
        fitted_at=fitted_at.replace(microsecond=0),
        min_episodes=min_episodes,
        percentile_method="linear",
        smoothing="none",
        data=DataCounts(
            lines=lines,
            records=records,
            bad_lines=bad_lines,
            records_fitted=fitted.records,
            episodes=fitted.episodes,
            instruments=fitted.counts,
        ),
        instruments=fitted.instruments,
        skipped=fitted.skipped,
    )
