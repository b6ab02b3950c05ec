"""Opening and resolving alerts: the change values the rules report, and the bookkeeping of
the episode's open alerts (and of the rupture counts rule 10 reads) that goes with them. Also
how the numbers that fired a rule are written into a change's ``inputs``."""

from __future__ import annotations

from decimal import Decimal

from services.analytics.domain.kinds import (
    ONE_SHOT,
    RULE_IDS,
    RUPTURE,
    SEVERITY,
    SUGGESTIONS,
    UNRESOLVED_RUPTURE,
    Action,
    AlertKey,
    InputValue,
)
from services.analytics.domain.records import AlertChange, Trigger
from services.analytics.domain.state import EpisodeState


def as_float(value: Decimal) -> float:
    return float(value)


def rounded_mean(total: Decimal, n: int) -> float:
    return round(float(total / n), 4)


def as_float_or_none(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def alert_change(
    action: Action,
    kind: str,
    episode_id: str,
    respondent_id: str | None,
    instrument: str | None,
    session: int,
    opened_session: int,
    inputs: dict[str, InputValue],
    triggered_by: str,
) -> AlertChange:
    code, text = SUGGESTIONS[kind]
    return AlertChange(
        action=action,
        kind=kind,
        severity=SEVERITY[kind],
        rule=RULE_IDS[kind],
        episode_id=episode_id,
        respondent_id=respondent_id,
        instrument=instrument,
        session=session,
        opened_session=opened_session,
        inputs=inputs,
        suggestion_code=code if action == "open" else "none",
        suggestion=text if action == "open" else "",
        triggered_by=triggered_by,
        lasting=kind not in ONE_SHOT,
    )


def open_alert(
    state: EpisodeState,
    out: list[AlertChange],
    record: Trigger,
    kind: str,
    respondent_id: str | None,
    instrument: str | None,
    inputs: dict[str, InputValue],
) -> None:
    change = alert_change(
        "open",
        kind,
        state.episode_id,
        respondent_id,
        instrument,
        record.session,
        record.session,
        inputs,
        record.respondent_id,
    )
    if change.lasting:
        state.open_alerts[(kind, respondent_id, instrument)] = change
        if kind == RUPTURE:
            state.open_ruptures += 1
            state.dropout_dirty = True
        elif kind == UNRESOLVED_RUPTURE:
            state.open_unresolved += 1
            state.dropout_dirty = True
    state.opened_log.add(change.identity)
    out.append(change)


def resolve_alert(
    state: EpisodeState,
    out: list[AlertChange],
    record: Trigger,
    key: AlertKey,
    inputs: dict[str, InputValue],
) -> None:
    opened = state.open_alerts.pop(key)
    if opened.kind == RUPTURE:
        state.open_ruptures -= 1
        state.dropout_dirty = True
    elif opened.kind == UNRESOLVED_RUPTURE:
        state.open_unresolved -= 1
        state.dropout_dirty = True
    out.append(
        alert_change(
            "resolve",
            opened.kind,
            state.episode_id,
            opened.respondent_id,
            opened.instrument,
            record.session,
            opened.opened_session,
            inputs,
            record.respondent_id,
        )
    )


def episode_alert_turns(state: EpisodeState, key: AlertKey, holds: bool, session: int) -> bool:
    """Whether an episode-level alert (rules 6, 7, 10 and 11: at most one open per episode)
    opens or resolves at this record: its condition no longer matches its being open, and a
    resolve waits for a later session than the one the alert opened at."""
    opened = state.open_alerts.get(key)
    if holds == (opened is not None):
        return False
    return opened is None or session > opened.session
