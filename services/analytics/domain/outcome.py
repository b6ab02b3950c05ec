"""Outcome rules 8–9 (docs/clinical-rules.md, "Alert rules"): deterioration and not on track."""

from __future__ import annotations

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
from services.analytics.rules_config import InstrumentThresholds, RuleConfig


def rules_8_9_outcome(
    state: EpisodeState,
    record: ScoredRecord,
    th: InstrumentThresholds,
    series: Series,
    config: RuleConfig,
    out: list[AlertChange],
) -> None:
    """Rule 8 — deterioration: an outcome score worse than the respondent's first score on the
    instrument by at least RC (ORS lower is worse; PHQ-9, GAD-7 higher is worse); therapists
    rarely see it coming (Hannan et al. 2005). Rule 9 — not_on_track: evaluated once, at the
    first record with session ≥ 4 that is not the respondent's first on the instrument: the first
    score was in the clinical range and no score so far improved on it by at least RC; feedback
    helps most for not-on-track clients (de Jong et al. 2021). It resolves once a later score
    improves on the first by at least RC. Called for every record but the series' first."""
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
