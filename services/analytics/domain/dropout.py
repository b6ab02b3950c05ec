"""Episode rules 10–11 (docs/clinical-rules.md, "Alert rules"): drop-out risk and a suggested
rematch with a different therapist."""

from __future__ import annotations

from decimal import Decimal

from services.analytics.domain.changes import (
    as_float,
    episode_alert_turns,
    open_alert,
    resolve_alert,
)
from services.analytics.domain.kinds import DROPOUT_RISK, REMATCH_SUGGESTED, AlertKey, InputValue
from services.analytics.domain.records import AlertChange, ScoredRecord, Trigger
from services.analytics.domain.state import EpisodeState
from services.analytics.domain.thresholds import dropout_score
from services.analytics.rules_config import DropoutWeights, RuleConfig


def rule_10_dropout(
    state: EpisodeState, record: Trigger, config: RuleConfig, out: list[AlertChange]
) -> None:
    """Rule 10 — dropout_risk: a transparent points score of the drop-out predictors the rules
    name (low early alliance, Sharf et al. 2010; open and unresolved ruptures, Muran et al.
    2009; sessions without client-side alliance feedback; sessions missed: those reported
    missed when a front-end reports the episode's sessions, else estimated from the gaps
    between session dates; expected session intervals without contact beyond the first, counted
    by the clock), opened when the score is above ``config.dropout_threshold``. Base drop-out
    rate about 20% (Swift & Greenberg 2012). One per episode, checked at every record, every
    session fact and when the clock's count of intervals without contact would tip it (the
    score is recomputed when a factor changes and at every new session)."""
    w = config.dropout_weights
    if state.dropout_dirty:
        state.dropout_dirty = False
        state.dropout_holds = dropout_points(state, w) > config.dropout_threshold
    holds = state.dropout_holds
    key: AlertKey = (DROPOUT_RISK, None, None)
    if not episode_alert_turns(state, key, holds, record.session):
        return
    inputs: dict[str, InputValue] = {
        "score": as_float(dropout_points(state, w)),
        "threshold": as_float(config.dropout_threshold),
        "early_low_alliance": int(state.early_low),
        "open_ruptures": state.open_ruptures,
        "unresolved_ruptures": state.open_unresolved,
        "missed_feedback_sessions": state.missed_feedback,
        "missed_sessions": missed_sessions(state),
        "intervals_without_contact": state.attendance.intervals_without_contact,
        "weight_early_low_alliance": as_float(w.early_low_alliance),
        "weight_open_rupture": as_float(w.open_rupture),
        "weight_unresolved_rupture": as_float(w.unresolved_rupture),
        "weight_missed_feedback": as_float(w.missed_feedback),
        "weight_missed_session": as_float(w.missed_session),
        "weight_interval_without_contact": as_float(w.interval_without_contact),
    }
    if holds:
        open_alert(state, out, record, DROPOUT_RISK, None, None, inputs)
    else:
        resolve_alert(state, out, record, key, inputs)


def missed_sessions(state: EpisodeState) -> int:
    """Rule 10's missed sessions: those reported missed when the episode's sessions are
    reported (a gap explained by cancellations is no missed session), else the estimate from
    the gaps between the dates of the sessions with feedback."""
    return state.attendance.missed() if state.attendance.reported else state.missed_sessions


def dropout_points(
    state: EpisodeState, weights: DropoutWeights, intervals_without_contact: int | None = None
) -> Decimal:
    """Rule 10's score of the episode (with ``intervals_without_contact`` instead of the
    state's count, when given)."""
    return dropout_score(
        weights,
        state.early_low,
        state.open_ruptures,
        state.open_unresolved,
        state.missed_feedback,
        missed_sessions(state),
        state.attendance.intervals_without_contact
        if intervals_without_contact is None
        else intervals_without_contact,
    )


def rule_11_rematch(
    state: EpisodeState, record: ScoredRecord, config: RuleConfig, out: list[AlertChange]
) -> None:
    """Rule 11 — rematch_suggested: at a session ≥ 6, low alliance in at least 2 sessions or an
    unresolved rupture, and no reliable improvement in outcome (no client outcome instrument's
    latest score improved on the first by RC): suggest offering a different therapist (matching
    matters: Constantino et al. 2021). One per episode, checked at every record from session 6."""
    key: AlertKey = (REMATCH_SUGGESTED, None, None)
    low_enough = state.low_sessions >= config.rematch_low_alliance_sessions
    holds = (low_enough or state.open_unresolved > 0) and state.improved_outcomes == 0
    if not episode_alert_turns(state, key, holds, record.session):
        return
    inputs: dict[str, InputValue] = {
        "session": record.session,
        "from_session": config.rematch_session,
        "low_alliance_sessions": state.low_sessions,
        "low_alliance_sessions_needed": config.rematch_low_alliance_sessions,
        "unresolved_ruptures": state.open_unresolved,
        "reliably_improved_outcomes": state.improved_outcomes,
    }
    if holds:
        open_alert(state, out, record, REMATCH_SUGGESTED, None, None, inputs)
    else:
        resolve_alert(state, out, record, key, inputs)
