"""Expected trajectories refitted from analytics' own closed episodes (docs/trajectories.md).

The same fit as ``rapport trajectories fit --in`` (:class:`TrajectoryFit`), fed from the
analytics tables instead of a file: every client score on an outcome instrument (one with a
clinical direction, not an alliance measure) of every *closed* episode, across all sites (the
service's own work: :func:`shared.db.all_sites`, under row-level security). Open episodes are
left out, so a model never learns from the trajectory it is judging. The model holds counts
only: no episode, respondent, therapist or site id.

Two ways in:

- on demand: ``rapport trajectories fit --from-database --out MODEL.json``
  (:func:`fit_from_database`);
- on a schedule: with ``RAPPORT_TRAJECTORIES_REFIT_HOURS`` above 0, analytics refits every
  that many hours and writes ``RAPPORT_TRAJECTORIES_FILE`` atomically (:func:`refit_forever`).
  On PostgreSQL the refit holds a transaction-level advisory lock and, under it, skips when
  the file's model is younger than the period, so of several replicas sharing the file one
  refits per period. Each replica then re-reads the file as for any other new model
  (services/analytics/trajectory_model.py): alerts already opened are not touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport.trajectories.fit import (
    DEFAULT_BAND_WIDTH,
    DEFAULT_MIN_EPISODES,
    TrajectoryFit,
    fitted_model,
)
from rapport.trajectories.model import ModelRefused, TrajectoryModel, load_model, write_model
from rapport.trajectories.read import fitted_instruments
from services.analytics.dependencies import AnalyticsDependencies
from services.analytics.models import EPISODES, SCORES
from shared.db import Sessionmaker, all_sites, dialect_of
from shared.instruments import Instrument
from shared.logs import get_logger
from shared.runtime import ServiceRuntime, dependencies_of

log = get_logger(__name__)

# pg_try_advisory_xact_lock's key for the scheduled refit (one refit at a time, all replicas).
REFIT_LOCK = 0x7261_7074_7261_6A01  # "raptraj" + 1
_BATCH = 10_000


async def add_closed_scores(
    session: AsyncSession, fit: TrajectoryFit, outcome: frozenset[str]
) -> int:
    """Add every client score on an ``outcome`` instrument of every closed episode to ``fit``,
    in arrival order; returns how many scores were read. The session's transaction must be
    scoped to all sites (or to those to fit on)."""
    if not outcome:
        return 0
    query = (
        select(
            SCORES.c.instrument,
            SCORES.c.episode_id,
            SCORES.c.respondent,
            SCORES.c.session_number,
            SCORES.c.total,
        )
        .join(EPISODES, EPISODES.c.episode_id == SCORES.c.episode_id)
        .where(
            EPISODES.c.closed_at.is_not(None),
            SCORES.c.respondent_role == "client",
            SCORES.c.instrument.in_(sorted(outcome)),
            SCORES.c.session_number >= 1,
            SCORES.c.in_aggregates.is_(True),  # not after the client withdrew consent
        )
        .order_by(SCORES.c.recorded_at, SCORES.c.response_id)
        .execution_options(yield_per=_BATCH)
    )
    read = 0
    result = await session.stream(query)
    async for rows in result.partitions(_BATCH):
        for instrument, episode_id, respondent, session_number, total in rows:
            fit.add(instrument, episode_id, respondent, session_number, Decimal(total))
            read += 1
    return read


async def fit_from_database(
    sessionmaker: Sessionmaker,
    instruments: Mapping[str, Instrument],
    widths: Mapping[str, Decimal],
    min_episodes: int,
) -> TrajectoryModel:
    """A model fitted on analytics' closed episodes, across all sites."""
    fit = TrajectoryFit()
    with all_sites():
        async with sessionmaker() as session, session.begin():
            read = await add_closed_scores(session, fit, fitted_instruments(instruments))
    return fitted_model(
        fit,
        widths,
        min_episodes,
        fitted_at=datetime.now(UTC),
        lines=read,
        records=read,
        bad_lines=0,
    )


def refit_due(current: TrajectoryModel | None, now: datetime, hours: float) -> bool:
    """A refit is due when there is no model yet, or the current one is ``hours`` old."""
    return current is None or now - current.fitted_at >= timedelta(hours=hours)


def current_model(path: Path, instruments: Mapping[str, Instrument]) -> TrajectoryModel | None:
    """The model in the file, or None when there is none (or it cannot be used)."""
    try:
        return load_model(path.read_bytes(), instruments)
    except (OSError, ModelRefused):
        return None


async def refit_once(
    sessionmaker: Sessionmaker,
    instruments: Mapping[str, Instrument],
    path: Path,
    hours: float,
    min_episodes: int = DEFAULT_MIN_EPISODES,
) -> TrajectoryModel | None:
    """Refit and write ``path`` if due; None when not due or another replica holds the lock."""
    widths = {name: DEFAULT_BAND_WIDTH for name in fitted_instruments(instruments)}
    fit = TrajectoryFit()
    with all_sites():
        async with sessionmaker() as session, session.begin():
            if dialect_of(session) == "postgresql" and not await session.scalar(
                select(func.pg_try_advisory_xact_lock(REFIT_LOCK))
            ):
                return None  # another replica is refitting
            now = datetime.now(UTC)
            if not refit_due(current_model(path, instruments), now, hours):
                return None
            read = await add_closed_scores(session, fit, fitted_instruments(instruments))
            model = fitted_model(
                fit, widths, min_episodes, fitted_at=now, lines=read, records=read, bad_lines=0
            )
            # Written while the lock is held, so the next replica under it sees the new model.
            await asyncio.to_thread(write_model, model, path)
    log.info(
        "trajectory model refitted",
        episodes=model.data.episodes,
        records=model.data.records_fitted,
        instruments=sorted(model.instruments),
    )
    return model


async def refit_forever(runtime: ServiceRuntime) -> None:
    """The scheduled refit (``RAPPORT_TRAJECTORIES_REFIT_HOURS``; 0: off)."""
    settings = runtime.settings
    hours = settings.trajectories_refit_hours
    if hours <= 0 or not settings.trajectories_file:
        return
    deps = dependencies_of(runtime, AnalyticsDependencies)
    path = Path(settings.trajectories_file)
    # Checked a few times a period, so a replica takes over soon after another stops.
    interval = min(hours * 3600 / 4, 600.0)
    while not runtime.stopping.is_set():
        try:
            await refit_once(runtime.sessionmaker, deps.instruments, path, hours)
        except Exception as error:  # a failed refit keeps the current model; tried again later
            log.error(
                "trajectory refit failed; the current model stays", reason=type(error).__name__
            )
        try:
            await asyncio.wait_for(runtime.stopping.wait(), interval)
        except TimeoutError:
            pass
