"""Alliance rules 1–7 (docs/clinical-rules.md, "Alert rules"): risk, low alliance and early
alliance risk, rupture, repair and unresolved rupture, split alliance, rating discrepancy."""

from __future__ import annotations

from collections.abc import Mapping

from services.analytics.domain.changes import (
    as_float,
    as_float_or_none,
    episode_alert_turns,
    open_alert,
    resolve_alert,
    rounded_mean,
)
from services.analytics.domain.kinds import (
    EARLY_ALLIANCE_RISK,
    LOW_ALLIANCE,
    RATING_DISCREPANCY,
    REPAIR,
    RISK,
    RUPTURE,
    SPLIT_ALLIANCE,
    UNRESOLVED_RUPTURE,
    AlertKey,
    InputValue,
)
from services.analytics.domain.records import AlertChange, ScoredRecord
from services.analytics.domain.state import ZERO, EpisodeState, Series
from services.analytics.domain.thresholds import rescaled_gap_holds
from services.analytics.rules_config import InstrumentThresholds, RuleConfig
from shared.instruments import Instrument


def rule_1_risk(
    state: EpisodeState, record: ScoredRecord, th: InstrumentThresholds, out: list[AlertChange]
) -> None:
    """Rule 1 — risk: any risk item above 0 (PHQ-9 item 9, thoughts of self-harm; Kroenke,
    Spitzer & Williams 2001). Urgent, for every such response (an event: no rule resolves it;
    it stays open until a clinician acknowledges it). Confidentiality yields to a risk of harm:
    it must reach a clinician now."""
    items = record.items
    raised = [(item, items[item]) for item in th.risk_items if items.get(item, 0) > 0]
    if raised:
        inputs: dict[str, InputValue] = {"instrument": record.instrument}
        for item, value in raised:
            inputs[f"item_{item}"] = float(value)
        inputs["threshold"] = 0
        open_alert(state, out, record, RISK, record.respondent_id, record.instrument, inputs)


def rules_2_3_low_alliance(
    state: EpisodeState,
    record: ScoredRecord,
    th: InstrumentThresholds,
    concern: bool,
    config: RuleConfig,
    out: list[AlertChange],
) -> None:
    """Rule 2 — low_alliance: a client-side alliance score meets the instrument's concern
    condition (SRS < 36 or an item < 9, Duncan et al. 2003; WAI-SR < 36, Hatcher & Gillaspy
    2006). Rule 3 — early_alliance_risk: low alliance at session 1 or 2, once per respondent:
    early alliance predicts drop-out (Sharf et al. 2010); it resolves with the low alliance."""
    rid = record.respondent_id
    instrument = record.instrument
    session = record.session
    low_key: AlertKey = (LOW_ALLIANCE, rid, instrument)
    if concern:
        if state.last_low_session != session:
            state.low_sessions += 1
            state.last_low_session = session
        early = session in config.early_alliance_sessions
        if early and not state.early_low:
            state.early_low = True
            state.dropout_dirty = True
        if low_key not in state.open_alerts or (early and rid not in state.early_fired):
            inputs: dict[str, InputValue] = {
                "instrument": instrument,
                "score": as_float(record.total),
                "concern_total_below": as_float_or_none(th.concern_total_below),
            }
            if th.concern_any_item_below is not None:
                inputs["lowest_item"] = float(min(record.items.values()))
                inputs["concern_any_item_below"] = as_float(th.concern_any_item_below)
            if low_key not in state.open_alerts:
                open_alert(state, out, record, LOW_ALLIANCE, rid, instrument, inputs)
            if early and rid not in state.early_fired:
                state.early_fired.add(rid)
                early_inputs = dict(inputs)
                early_inputs["session"] = session
                early_inputs["early_sessions_from"] = min(config.early_alliance_sessions)
                early_inputs["early_sessions_to"] = max(config.early_alliance_sessions)
                open_alert(state, out, record, EARLY_ALLIANCE_RISK, rid, instrument, early_inputs)
    elif low_key in state.open_alerts:
        inputs = {"instrument": instrument, "score": as_float(record.total)}
        resolve_alert(state, out, record, low_key, inputs)
        early_key: AlertKey = (EARLY_ALLIANCE_RISK, rid, instrument)
        if early_key in state.open_alerts:
            resolve_alert(state, out, record, early_key, dict(inputs))


def _rule_5_repair(
    state: EpisodeState,
    record: ScoredRecord,
    th: InstrumentThresholds,
    series: Series,
    concern: bool,
    config: RuleConfig,
    out: list[AlertChange],
) -> None:
    """Rule 5 for a respondent with an open rupture: repaired, or unresolved after the sessions
    allowed (see :func:`rules_4_5_rupture`)."""
    assert series.rupture_session is not None
    total = record.total
    rc = th.reliable_change
    session = record.session
    rid = record.respondent_id
    instrument = record.instrument
    if session <= series.rupture_session:
        return
    gap_n = series.rupture_sum - total * series.rupture_n  # (baseline − score) × n
    if not concern and gap_n < rc * series.rupture_n:
        inputs: dict[str, InputValue] = {
            "instrument": instrument,
            "score": as_float(total),
            "pre_rupture_baseline": rounded_mean(series.rupture_sum, series.rupture_n),
            "gap": rounded_mean(gap_n, series.rupture_n),
            "threshold": as_float(rc),
            "rupture_session": series.rupture_session,
            "in_concern": concern,
        }
        resolve_alert(state, out, record, (RUPTURE, rid, instrument), dict(inputs))
        unresolved_key: AlertKey = (UNRESOLVED_RUPTURE, rid, instrument)
        if unresolved_key in state.open_alerts:
            resolve_alert(state, out, record, unresolved_key, dict(inputs))
        open_alert(state, out, record, REPAIR, rid, instrument, inputs)
        series.rupture_session = None
        series.rupture_sum = ZERO
        series.rupture_n = 0
        series.unresolved_fired = False
    elif (
        not series.unresolved_fired
        and session >= series.rupture_session + config.unresolved_rupture_sessions
    ):
        series.unresolved_fired = True
        open_alert(
            state,
            out,
            record,
            UNRESOLVED_RUPTURE,
            rid,
            instrument,
            {
                "instrument": instrument,
                "score": as_float(total),
                "pre_rupture_baseline": rounded_mean(series.rupture_sum, series.rupture_n),
                "gap": rounded_mean(gap_n, series.rupture_n),
                "threshold": as_float(rc),
                "in_concern": concern,
                "rupture_session": series.rupture_session,
                "sessions_allowed": config.unresolved_rupture_sessions,
            },
        )


def rules_4_5_rupture(
    state: EpisodeState,
    record: ScoredRecord,
    th: InstrumentThresholds,
    series: Series,
    concern: bool,
    config: RuleConfig,
    out: list[AlertChange],
) -> None:
    """Rule 4 — rupture: with an earlier score and no open rupture, the score is below the
    previous score or below the baseline by at least RC (the larger drop counts). Rule 5 —
    repair: at the first later session within RC of the pre-rupture baseline (baseline − score
    < RC) and not in concern; unresolved_rupture: not repaired by session r + 3, once, escalated
    to the supervisor. Ruptures and their repair: Eubanks, Muran & Safran 2018; RC: Jacobson &
    Truax 1991."""
    if series.rupture_session is not None:
        _rule_5_repair(state, record, th, series, concern, config, out)
        return
    total = record.total
    rc = th.reliable_change
    rid = record.respondent_id
    instrument = record.instrument
    n = series.before_n
    if not n:
        return
    previous = series.before_last
    assert previous is not None
    drop_previous = previous - total
    baseline_gap_n = series.before_sum - total * n  # (baseline − score) × n, exact
    rc_n = rc * n
    if drop_previous >= rc or baseline_gap_n >= rc_n:
        drop_baseline = baseline_gap_n / n
        by_baseline = baseline_gap_n > drop_previous * n
        open_alert(
            state,
            out,
            record,
            RUPTURE,
            rid,
            instrument,
            {
                "instrument": instrument,
                "score": as_float(total),
                "previous": as_float(previous),
                "baseline": rounded_mean(series.before_sum, n),
                "baseline_n": n,
                "drop_previous": as_float(drop_previous),
                "drop_baseline": round(float(drop_baseline), 4),
                "drop": round(float(drop_baseline if by_baseline else drop_previous), 4),
                "counted": "baseline" if by_baseline else "previous",
                "threshold": as_float(rc),
            },
        )
        series.rupture_session = record.session
        series.rupture_sum = series.before_sum
        series.rupture_n = n
        series.unresolved_fired = False


def rule_6_split(
    state: EpisodeState,
    record: ScoredRecord,
    th: InstrumentThresholds,
    concern: bool,
    out: list[AlertChange],
) -> None:
    """Rule 6 — split_alliance: in one session, two or more client-side respondents on the same
    instrument differ by at least RC, or at least one is in concern and one is not (split
    alliances in couple and family therapy: Pinsof & Catherall 1986). One per episode."""
    group = state.session_alliance.get(record.instrument)
    if group is None:
        group = state.session_alliance[record.instrument] = {}
    group[record.respondent_id] = (record.total, concern)
    if len(group) < 2:
        return
    scores = [score for score, _ in group.values()]
    highest = max(scores)
    lowest = min(scores)
    concerns = sum(1 for _, c in group.values() if c)
    holds_here = highest - lowest >= th.reliable_change or 0 < concerns < len(group)
    state.session_split[record.instrument] = holds_here
    holds = holds_here or any(state.session_split.values())
    key: AlertKey = (SPLIT_ALLIANCE, None, None)
    if not episode_alert_turns(state, key, holds, record.session):
        return
    inputs: dict[str, InputValue] = {
        "instrument": record.instrument,
        "respondents": len(group),
        "highest": as_float(highest),
        "lowest": as_float(lowest),
        "difference": as_float(highest - lowest),
        "threshold": as_float(th.reliable_change),
        "in_concern": concerns,
        "not_in_concern": len(group) - concerns,
    }
    if holds:
        open_alert(state, out, record, SPLIT_ALLIANCE, None, None, inputs)
    else:
        resolve_alert(state, out, record, key, inputs)


def rule_7_discrepancy(
    state: EpisodeState,
    record: ScoredRecord,
    th: InstrumentThresholds,
    instruments: Mapping[str, Instrument],
    config: RuleConfig,
    out: list[AlertChange],
) -> None:
    """Rule 7 — rating_discrepancy: in one session, the therapist's alliance score is above the
    client's by at least RC; across instruments on a 0–100 scale with the larger RC. The client's
    rating predicts outcome better than the therapist's (Flückiger et al. 2018). One per
    episode. The client's score is on the same instrument, else on the paired one
    (``config.discrepancy_pairs``), else their latest alliance score in the session."""
    if record.role == "therapist":
        state.session_therapist = (record.instrument, record.total)
    else:
        state.session_client[record.instrument] = record.total
        state.session_client_last = record.instrument
    therapist = state.session_therapist
    if therapist is None or not state.session_client:
        return
    t_instrument, t_score = therapist
    clients = state.session_client
    c_instrument = t_instrument
    if c_instrument not in clients:
        paired = config.discrepancy_pairs.get(t_instrument)
        if paired is not None and paired in clients:
            c_instrument = paired
        else:
            assert state.session_client_last is not None
            c_instrument = state.session_client_last
    c_score = clients[c_instrument]
    t_th = th if record.instrument == t_instrument else config.thresholds(instruments[t_instrument])
    c_th = th if record.instrument == c_instrument else config.thresholds(instruments[c_instrument])
    same = t_instrument == c_instrument
    if same:
        holds = t_score - c_score >= t_th.reliable_change
    else:
        holds = rescaled_gap_holds(t_score, t_th, c_score, c_th)
    key: AlertKey = (RATING_DISCREPANCY, None, None)
    if not episode_alert_turns(state, key, holds, record.session):
        return
    inputs: dict[str, InputValue] = {
        "therapist_instrument": t_instrument,
        "therapist_score": as_float(t_score),
        "client_instrument": c_instrument,
        "client_score": as_float(c_score),
    }
    if same:
        inputs["difference"] = as_float(t_score - c_score)
        inputs["threshold"] = as_float(t_th.reliable_change)
    else:
        t_span = t_th.total_max - t_th.total_min
        c_span = c_th.total_max - c_th.total_min
        t_scaled = (t_score - t_th.total_min) / t_span * 100
        c_scaled = (c_score - c_th.total_min) / c_span * 100
        rc_scaled = max(t_th.reliable_change / t_span, c_th.reliable_change / c_span) * 100
        inputs["therapist_scaled"] = round(float(t_scaled), 2)
        inputs["client_scaled"] = round(float(c_scaled), 2)
        inputs["difference"] = round(float(t_scaled - c_scaled), 2)
        inputs["threshold"] = round(float(rc_scaled), 2)
        inputs["scale"] = "0-100"
    if holds:
        open_alert(state, out, record, RATING_DISCREPANCY, None, None, inputs)
    else:
        resolve_alert(state, out, record, key, inputs)
