"""Applying records to an episode (:func:`apply`): each in-order record runs the rules 1–13 in
order; a late record or an amendment rebuilds the episode and reports the difference."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from services.analytics.domain.alliance import (
    rule_1_risk,
    rule_6_split,
    rule_7_discrepancy,
    rules_2_3_low_alliance,
    rules_4_5_rupture,
)
from services.analytics.domain.attendance import contact_from_record
from services.analytics.domain.changes import alert_change
from services.analytics.domain.dropout import rule_10_dropout, rule_11_rematch
from services.analytics.domain.goals import rule_12_goals_not_progressing, rule_13_low_support
from services.analytics.domain.kinds import ATTENDANCE_KINDS, InputValue
from services.analytics.domain.outcome import rules_8_9_outcome
from services.analytics.domain.records import (
    CLIENT_SIDE,
    AlertChange,
    ScoredRecord,
    UnknownInstrumentError,
)
from services.analytics.domain.state import ZERO, EpisodeState, Series
from services.analytics.domain.thresholds import in_concern
from services.analytics.domain.trajectories import Trajectories
from services.analytics.rules_config import InstrumentThresholds, RuleConfig
from shared.instruments import Instrument


def apply(
    state: EpisodeState | None,
    record: ScoredRecord,
    instruments: Mapping[str, Instrument],
    config: RuleConfig,
    replaces: str | None = None,
    trajectories: Trajectories | None = None,
    age_group: str | None = None,
) -> tuple[EpisodeState, list[AlertChange]]:
    """Apply one scored record to its episode's state: the state to use next and the alert
    changes, in the order the rules fire (rule 1 first, then 2 … 11).

    ``state`` None starts a new episode. Takes ownership of ``state`` (see the module docstring).
    A record earlier than the episode's latest session rebuilds the episode (late data). An
    amendment (``replaces``: the response id of the record it replaces) rebuilds the episode
    with the amended record in the place of the one it replaces, so it never counts twice.
    ``trajectories`` is the expected-trajectories model rule 9 uses where it has the client's
    band and session (None: the fallback rule everywhere). ``age_group`` is the client's (child,
    adolescent, adult, older_adult; None unknown): the clinical cutoffs are the instrument's for
    that age group (:meth:`shared.instruments.Clinical.cutoff_for`).
    Raises :class:`UnknownInstrumentError` for an instrument not in ``instruments``, and
    ``ValueError`` for a record of another episode than ``state``'s.
    """
    instrument = instruments.get(record.instrument)
    if instrument is None:
        raise UnknownInstrumentError(record.instrument)
    rebuild = False
    if state is None:
        state = EpisodeState(record.episode_id)
    elif record.episode_id != state.episode_id:
        raise ValueError(f"record of episode {record.episode_id} applied to {state.episode_id}")
    else:
        rebuild = replaces is not None or record.session < state.last_session
    # a contact (and its session attended): before the rules, so rule 10 counts no interval
    # without contact; its changes (no_contact, missed_sessions resolved) come first
    changes = contact_from_record(state, record, config)
    if rebuild:
        state, rebuilt = _rebuild(
            state, record, instruments, config, replaces, trajectories, age_group
        )
        return state, changes + rebuilt
    state.records.append(record)
    th = config.thresholds(instrument, age_group)
    _step(state, record, th, instruments, config, changes, trajectories)
    return state, changes


def apply_all(
    records: Iterable[ScoredRecord],
    instruments: Mapping[str, Instrument],
    config: RuleConfig,
    state: EpisodeState | None = None,
    trajectories: Trajectories | None = None,
    age_group: str | None = None,
) -> tuple[EpisodeState | None, list[AlertChange]]:
    """Apply records of one episode one after the other (e.g. a backfill); all changes."""
    changes: list[AlertChange] = []
    for record in records:
        state, more = apply(
            state, record, instruments, config, trajectories=trajectories, age_group=age_group
        )
        changes.extend(more)
    return state, changes


def _rebuild(
    old: EpisodeState,
    record: ScoredRecord,
    instruments: Mapping[str, Instrument],
    config: RuleConfig,
    replaces: str | None = None,
    trajectories: Trajectories | None = None,
    age_group: str | None = None,
) -> tuple[EpisodeState, list[AlertChange]]:
    """Late record or amendment: re-apply the episode in session order (an amendment in the
    place of the record it replaces), report the difference. Rule 9 keeps the basis it
    decided on (the model's percentiles then, or the fallback) at every session it judged: of
    every series but the late record's (their scores did not change), and of the late record's
    series at the sessions before the late record's; only that series' sessions from the late
    record's on are judged with the model in use now (a new model never changes alerts already
    opened)."""
    records = _with_amendment(old.records, record, replaces)
    new = EpisodeState(
        old.episode_id, records=records, rebuilds=old.rebuilds + 1, attendance=old.attendance
    )
    # attendance alerts are about sessions and time, not answers: the rebuild keeps them
    new.open_alerts = {k: a for k, a in old.open_alerts.items() if a.kind in ATTENDANCE_KINDS}
    late_series = (record.respondent_id, record.instrument)
    new.kept_rule_9_basis = {
        key: (
            {s: basis for s, basis in series.rule_9_basis.items() if s < record.session}
            if key == late_series
            else dict(series.rule_9_basis)
        )
        for key, series in old.series.items()
        if series.rule_9_basis
    }
    history: list[AlertChange] = []
    for r in sorted(records, key=_session_of):  # stable: arrival order within a session
        th = config.thresholds(instruments[r.instrument], age_group)
        _step(new, r, th, instruments, config, history, trajectories)
    new.kept_rule_9_basis = {}
    reported = old.opened_log
    reported_open = {a.identity: a for a in old.open_alerts.values()}
    out: list[AlertChange] = []
    for change in history:
        ident = change.identity
        if change.action == "open":
            if ident not in reported:
                out.append(change)
                if change.lasting:
                    reported_open[ident] = change
        elif ident in reported_open:
            del reported_open[ident]
            out.append(change)
    still_open = {a.identity for a in new.open_alerts.values()}
    withdrawn: dict[str, InputValue] = (
        {"reason": "amended", "amended_session": record.session}
        if replaces is not None
        else {"reason": "late-record", "late_session": record.session}
    )
    for ident, opened in reported_open.items():
        if ident not in still_open:  # the re-evaluated history no longer has it open
            out.append(
                alert_change(
                    "resolve",
                    opened.kind,
                    old.episode_id,
                    opened.respondent_id,
                    opened.instrument,
                    old.last_session,  # withdrawn now, i.e. at the episode's latest session
                    opened.opened_session,
                    dict(withdrawn),
                    record.respondent_id,
                )
            )
    for alert in new.open_alerts.values():
        ident = alert.identity
        if ident in reported and ident not in reported_open:
            out.append(alert)  # reported resolved before, open in the rebuilt history
    new.opened_log |= reported
    return new, out


def _with_amendment(
    records: list[ScoredRecord], record: ScoredRecord, replaces: str | None
) -> list[ScoredRecord]:
    """The episode's records with ``record`` added: in the place of the record it replaces
    (by response id; for a state kept before records carried ids, the latest record of the
    same session, respondent and instrument), else at the end."""
    if replaces is not None:
        position = next((i for i, r in enumerate(records) if r.response_id == replaces), None)
        if position is None:
            same = [
                i
                for i, r in enumerate(records)
                if r.response_id is None
                and (r.session, r.respondent_id, r.instrument)
                == (record.session, record.respondent_id, record.instrument)
            ]
            position = same[-1] if same else None
        if position is not None:
            return [*records[:position], record, *records[position + 1 :]]
    return [*records, record]


def _session_of(record: ScoredRecord) -> int:
    return record.session


def _step(
    state: EpisodeState,
    record: ScoredRecord,
    th: InstrumentThresholds,
    instruments: Mapping[str, Instrument],
    config: RuleConfig,
    out: list[AlertChange],
    trajectories: Trajectories | None = None,
) -> None:
    """Apply one in-order record (session ≥ the episode's latest)."""
    session = record.session
    if session != state.last_session:
        _new_session(state, record, config)
    total = record.total
    rid = record.respondent_id
    client_side = record.role in CLIENT_SIDE

    if th.risk_items:
        rule_1_risk(state, record, th, out)

    key = (rid, record.instrument)
    series = state.series.get(key)
    if series is None:
        series = state.series[key] = Series(record.role, total, session, cur_session=session)
    elif session != series.cur_session:
        series.before_sum += series.cur_sum
        series.before_n += series.cur_n
        series.before_last = series.cur_last
        series.cur_session = session
        series.cur_sum = ZERO
        series.cur_n = 0

    if th.kind == "alliance":
        concern = in_concern(th, total, record.items)
        if client_side:
            state.session_feedback = True
            rules_2_3_low_alliance(state, record, th, concern, config, out)
            rules_4_5_rupture(state, record, th, series, concern, config, out)
            rule_6_split(state, record, th, concern, out)
        if record.role == "client" or record.role == "therapist":
            rule_7_discrepancy(state, record, th, instruments, config, out)
    elif th.kind == "goals":
        rule_12_goals_not_progressing(state, record, th, config, out)
    elif th.kind == "support":
        rule_13_low_support(state, record, config, out)
    elif th.lower_is_worse is not None and client_side and series.n:
        rules_8_9_outcome(state, record, th, series, config, out, trajectories)

    series.n += 1
    series.cur_sum += total
    series.cur_n += 1
    series.cur_last = total

    rule_10_dropout(state, record, config, out)
    if session >= config.rematch_session:
        rule_11_rematch(state, record, config, out)


def _new_session(state: EpisodeState, record: ScoredRecord, config: RuleConfig) -> None:
    """Close the latest session (rule 10 counts it if it had no client-side alliance rating,
    and counts missed sessions from the gap in dates) and start the record's."""
    if state.last_session:
        if not state.session_feedback:
            state.missed_feedback += 1
        if record.at is not None and state.session_at is not None:
            gap_days = (record.at - state.session_at).days
            missed = gap_days // config.session_interval_days - 1
            if missed > 0:
                state.missed_sessions += missed
    state.last_session = record.session
    state.session_at = record.at
    state.session_feedback = False
    state.dropout_dirty = True
    if state.session_alliance:
        state.session_alliance = {}
        state.session_split = {}
    state.session_therapist = None
    if state.session_client:
        state.session_client = {}
    state.session_client_last = None
