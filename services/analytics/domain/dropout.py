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
from services.analytics.domain.records import AlertChange, ScoredRecord
from services.analytics.domain.state import EpisodeState
from services.analytics.domain.thresholds import dropout_score
from services.analytics.rules_config import DropoutWeights, RuleConfig


def rule_10_dropout(
    state: EpisodeState, record: ScoredRecord, config: RuleConfig, out: list[AlertChange]
) -> None:
    """Rule 10 — dropout_risk: a transparent points score of the drop-out predictors the rules
    name (low early alliance, Sharf et al. 2010; open and unresolved ruptures, Muran et al.
    2009; sessions without client-side alliance feedback; sessions missed, from the gaps between
    session dates), opened when the score is above ``config.dropout_threshold``. Base drop-out
    rate about 20% (Swift & Greenberg 2012). One per episode, checked at every record (the score
    is recomputed when a factor changes and at every new session)."""
    w = config.dropout_weights
    if state.dropout_dirty:
        state.dropout_dirty = False
        state.dropout_holds = _dropout_points(state, w) > config.dropout_threshold
    holds = state.dropout_holds
    key: AlertKey = (DROPOUT_RISK, None, None)
    if not episode_alert_turns(state, key, holds, record.session):
        return
    inputs: dict[str, InputValue] = {
        "score": as_float(_dropout_points(state, w)),
        "threshold": as_float(config.dropout_threshold),
        "early_low_alliance": int(state.early_low),
        "open_ruptures": state.open_ruptures,
        "unresolved_ruptures": state.open_unresolved,
        "missed_feedback_sessions": state.missed_feedback,
        "missed_sessions": state.missed_sessions,
        "weight_early_low_alliance": as_float(w.early_low_alliance),
        "weight_open_rupture": as_float(w.open_rupture),
        "weight_unresolved_rupture": as_float(w.unresolved_rupture),
        "weight_missed_feedback": as_float(w.missed_feedback),
        "weight_missed_session": as_float(w.missed_session),
    }
    if holds:
        open_alert(state, out, record, DROPOUT_RISK, None, None, inputs)
    else:
        resolve_alert(state, out, record, key, inputs)


def _dropout_points(state: EpisodeState, weights: DropoutWeights) -> Decimal:
    return dropout_score(
        weights,
        state.early_low,
        state.open_ruptures,
        state.open_unresolved,
        state.missed_feedback,
        state.missed_sessions,
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
