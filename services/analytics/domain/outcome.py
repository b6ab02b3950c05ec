"""Outcome rules 8–9 (docs/clinical-rules.md, "Alert rules"): deterioration and not on track
(against an expected-trajectories model where it has the client's band and session, else the
fallback rule)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from services.analytics.domain.changes import (
    as_float,
    as_float_or_none,
    open_alert,
    resolve_alert,
)
from services.analytics.domain.kinds import DETERIORATION, NOT_ON_TRACK, AlertKey, InputValue
from services.analytics.domain.records import AlertChange, ScoredRecord
from services.analytics.domain.state import EpisodeState, Series
from services.analytics.domain.thresholds import in_clinical_range, worse_by
from services.analytics.domain.trajectories import (
    SessionPercentiles,
    Trajectories,
    expected_line,
    off_track,
)
from services.analytics.rules_config import InstrumentThresholds, RuleConfig


def rules_8_9_outcome(
    state: EpisodeState,
    record: ScoredRecord,
    th: InstrumentThresholds,
    series: Series,
    config: RuleConfig,
    out: list[AlertChange],
    trajectories: Trajectories | None = None,
) -> None:
    """Rule 8 — deterioration: an outcome score worse than the respondent's first score on the
    instrument by at least RC (ORS lower is worse; PHQ-9, GAD-7 higher is worse); therapists
    rarely see it coming (Hannan et al. 2005). Rule 9 — not_on_track: evaluated once, at the
    first record with session ≥ 4 that is not the respondent's first on the instrument: the first
    score was in the clinical range and no score so far improved on it by at least RC; feedback
    helps most for not-on-track clients (de Jong et al. 2021). It resolves once a later score
    improves on the first by at least RC. Called for every record but the series' first.

    Where ``trajectories`` (a fitted model) has the client's starting band and the record's
    session, rule 9 is :func:`_rule_9_against_model` for that record instead."""
    total = record.total
    rc = th.reliable_change
    rid = record.respondent_id
    instrument = record.instrument
    worse = worse_by(th, series.first, total)
    improved = -worse >= rc
    open_alerts = state.open_alerts

    det_key: AlertKey = (DETERIORATION, rid, instrument)
    if worse >= rc:
        if det_key not in open_alerts:
            inputs = _outcome_inputs(record, th, series, worse)
            open_alert(state, out, record, DETERIORATION, rid, instrument, inputs)
    elif det_key in open_alerts:
        resolve_alert(state, out, record, det_key, _outcome_inputs(record, th, series, worse))

    if improved:
        series.improved_ever = True
    if record.role == "client" and improved != series.latest_improved:
        state.improved_outcomes += 1 if improved else -1
    series.latest_improved = improved

    expected = _basis(state, record, series, trajectories)
    if expected is not None:
        _rule_9_against_model(state, record, th, series, config, expected, worse, out)
        return
    not_key: AlertKey = (NOT_ON_TRACK, rid, instrument)
    if improved and not_key in open_alerts:
        resolve_alert(state, out, record, not_key, _outcome_inputs(record, th, series, worse))
    if not series.not_on_track_done and record.session >= config.not_on_track_session:
        series.not_on_track_done = True
        if in_clinical_range(th, series.first) and not series.improved_ever:
            inputs = _outcome_inputs(record, th, series, worse)
            inputs["clinical_cutoff"] = as_float_or_none(th.clinical_cutoff)
            inputs["evaluated_at_session"] = record.session
            open_alert(state, out, record, NOT_ON_TRACK, rid, instrument, inputs)


def _outcome_inputs(
    record: ScoredRecord, th: InstrumentThresholds, series: Series, worse: Decimal
) -> dict[str, InputValue]:
    return {
        "instrument": record.instrument,
        "score": as_float(record.total),
        "first": as_float(series.first),
        "first_session": series.first_session,
        "change": as_float(-worse),
        "threshold": as_float(th.reliable_change),
        "direction": "lower_is_worse" if th.lower_is_worse else "higher_is_worse",
    }


@dataclass(frozen=True, slots=True)
class KeptPercentiles:
    """The model's percentiles rule 9 used at a session, as kept in the series."""

    n: int
    p10: float
    p25: float
    p50: float
    p75: float
    p90: float


def _basis(
    state: EpisodeState,
    record: ScoredRecord,
    series: Series,
    trajectories: Trajectories | None,
) -> SessionPercentiles | None:
    """What rule 9 judges this record against: the basis kept for its session when a rebuild
    re-applies a session decided before (so a new model never changes decisions already
    taken), else the model's percentiles now (None: the fallback rule); remembered per session
    for a client's series."""
    if record.role != "client":
        return None
    kept = state.kept_rule_9_basis.get((record.respondent_id, record.instrument))
    if kept is not None and record.session in kept:
        basis = kept[record.session]
        series.rule_9_basis[record.session] = basis
        return None if basis is None else KeptPercentiles(int(basis[0]), *basis[1:])
    expected = _expected(trajectories, record, series)
    series.rule_9_basis[record.session] = (
        None
        if expected is None
        else (
            expected.n,
            float(expected.p10),
            float(expected.p25),
            float(expected.p50),
            float(expected.p75),
            float(expected.p90),
        )
    )
    return expected


def _expected(
    trajectories: Trajectories | None, record: ScoredRecord, series: Series
) -> SessionPercentiles | None:
    """The model's percentiles for this client's band at this session (clients only)."""
    if trajectories is None or record.role != "client":
        return None
    trajectory = trajectories.get(record.instrument)
    return None if trajectory is None else trajectory.at(series.first, record.session)


def _rule_9_against_model(
    state: EpisodeState,
    record: ScoredRecord,
    th: InstrumentThresholds,
    series: Series,
    config: RuleConfig,
    expected: SessionPercentiles,
    worse: Decimal,
    out: list[AlertChange],
) -> None:
    """Rule 9 with the model: a score worse than the expected line (:func:`expected_line`) at
    ``trajectory_consecutive_records`` (2) consecutive records from session
    ``trajectory_from_session`` (3) opens not_on_track, once while open; a record back on the
    line's good side resolves it. Records before that session count for nothing."""
    assert th.lower_is_worse is not None
    line = expected_line(expected, th.lower_is_worse, config.not_on_track_percentile)
    key: AlertKey = (NOT_ON_TRACK, record.respondent_id, record.instrument)
    if record.session < config.trajectory_from_session:
        series.off_track_run = 0
        return
    if not off_track(record.total, line, th.lower_is_worse):
        series.off_track_run = 0
        if key in state.open_alerts:
            inputs = _model_inputs(record, th, series, worse, expected, line, config)
            resolve_alert(state, out, record, key, inputs)
        return
    series.off_track_run += 1
    if series.off_track_run >= config.trajectory_consecutive_records and key not in (
        state.open_alerts
    ):
        inputs = _model_inputs(record, th, series, worse, expected, line, config)
        rid = record.respondent_id
        open_alert(state, out, record, NOT_ON_TRACK, rid, record.instrument, inputs)


def _model_inputs(
    record: ScoredRecord,
    th: InstrumentThresholds,
    series: Series,
    worse: Decimal,
    expected: SessionPercentiles,
    line: Decimal,
    config: RuleConfig,
) -> dict[str, InputValue]:
    inputs = _outcome_inputs(record, th, series, worse)
    inputs["basis"] = "trajectory"
    inputs["percentile"] = (
        config.not_on_track_percentile
        if th.lower_is_worse
        else 100 - config.not_on_track_percentile
    )
    inputs["expected_line"] = as_float(line)
    inputs["expected_median"] = float(expected.p50)
    inputs["expected_n"] = expected.n
    inputs["consecutive_records"] = series.off_track_run
    inputs["evaluated_at_session"] = record.session
    return inputs
