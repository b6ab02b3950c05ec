"""Attendance and time (docs/clinical-rules.md, rules 14 and 15, and rule 10's attendance
factors): the client who stops coming.

Pure, like the rest of the domain: the service (session events, phase events, its clock) and
``rapport replay`` (session lines, the replay's clock) call the same functions:

    state, changes = on_session(state, fact, config)     # a session.* event / a session line
    changes = on_phase(state, to_phase, at)              # episode.phase_changed
    due = due_checks(state, config, zone)                # {kind: instant}: what to pend
    changes = fire(state, kind, now, config, zone)       # a pending check fell due

A feedback response is a contact too: :func:`contact_from_record` is called by ``apply``.

* ``missed_sessions`` (rule 14, routine): the latest ``missed_sessions_run`` (2) sessions with an
  outcome, by session number, ignoring cancellations of either kind (they neither count nor
  break the run), were all missed. Opens once while open; resolves at an attended session after
  the one it opened at (a feedback response for a session nobody reported implies it attended).
* ``no_contact`` (rule 15, high): contact is an attended session or a feedback response. Due at
  the site's midnight that begins the day ``no_contact_days`` (21) after the last contact's
  site-local date, while the episode is active (or not yet known active but with a contact).
  Resolves at the next contact; stays open if the episode drops out.
* rule 10 (``dropout_risk``) counts the missed sessions reported and the expected session
  intervals without contact beyond the first: its check falls due when that count would tip the
  score over the threshold.

``fire`` decides again from the state: the due time is only a hint (a contact may have come
since), so a stale check changes nothing. Time-driven alerts are reported at the episode's
latest session number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from services.analytics.domain.changes import open_alert, resolve_alert
from services.analytics.domain.dropout import dropout_points, rule_10_dropout
from services.analytics.domain.kinds import (
    DROPOUT_RISK,
    MISSED_SESSIONS,
    NO_CONTACT,
    AlertKey,
    InputValue,
)
from services.analytics.domain.records import AlertChange, Occasion, ScoredRecord, SessionFact
from services.analytics.domain.state import EpisodeState
from services.analytics.rules_config import RuleConfig
from shared.site_time import aware, days_between, start_of_day_after

# The checks this module pends: due_checks and fire take these kinds.
TIME_DRIVEN: Final = (NO_CONTACT, DROPOUT_RISK)
# Who or what made a change that no questionnaire answer made (AlertChange.triggered_by).
BY_ATTENDANCE: Final = "attendance"
BY_CLOCK: Final = "clock"
# Phases in which an episode is followed for silence (with a contact, also before intake says
# it is active: the phase event may come after the contact).
FOLLOWED: Final = frozenset({"active"})
NOT_YET_ACTIVE: Final = frozenset({"referred", "matched"})
_MISSED_KEY: AlertKey = (MISSED_SESSIONS, None, None)
_NO_CONTACT_KEY: AlertKey = (NO_CONTACT, None, None)


def latest_session(state: EpisodeState) -> int:
    """The episode's latest session number: of a feedback response or a session fact."""
    return max(state.last_session, state.attendance.latest_session())


def on_session(
    state: EpisodeState | None, fact: SessionFact, config: RuleConfig
) -> tuple[EpisodeState, list[AlertChange]]:
    """Apply one session fact: the state to use next (a new one for ``None``) and the alert
    changes (rule 15 resolved by an attended session, rule 14, rule 10). A fact never moves a
    session back to ``scheduled``; a repeated fact changes nothing."""
    if state is None:
        state = EpisodeState(fact.episode_id)
    elif fact.episode_id != state.episode_id:
        raise ValueError(f"fact of episode {fact.episode_id} applied to {state.episode_id}")
    attendance = state.attendance
    known = attendance.sessions.get(fact.session)
    if fact.status == "scheduled" and known is not None:
        return state, []
    if not fact.implied_by_feedback:
        if not attendance.reported:
            state.dropout_dirty = True  # rule 10 now counts the reported missed sessions
        attendance.reported = True
    if known == fact.status:
        return state, []
    attendance.sessions[fact.session] = fact.status
    out: list[AlertChange] = []
    occasion = Occasion(fact.session, BY_ATTENDANCE)
    if fact.status == "attended":
        _contact(state, aware(fact.at), occasion, out)
        _attended(state, fact.session, occasion, out)
    elif fact.status == "missed":
        state.dropout_dirty = True
        _missed(state, config, occasion, out)
    rule_10_dropout(state, occasion, config, out)
    return state, out


def contact_from_record(
    state: EpisodeState, record: ScoredRecord, config: RuleConfig
) -> list[AlertChange]:
    """A feedback response: a contact at its time, and its session attended if nobody reported
    it. Called by ``apply`` before the rules (rule 10 then counts no interval without contact);
    the changes come before the rules'."""
    out: list[AlertChange] = []
    occasion = Occasion(record.session, record.respondent_id)
    if record.at is not None:
        _contact(state, aware(record.at), occasion, out)
    sessions = state.attendance.sessions
    if sessions.get(record.session, "scheduled") == "scheduled":
        sessions[record.session] = "attended"
        _attended(state, record.session, occasion, out)
    return out


def on_phase(state: EpisodeState, to_phase: str, at: datetime | None = None) -> list[AlertChange]:
    """The episode's phase changed at ``at`` (intake's ``episode.phase_changed``, or an
    ``episode.closed``); a change older than the phase already known is ignored (events of two
    topics may arrive in either order). No alert changes: ``no_contact`` stays open when the
    episode drops out; what is due changes (:func:`due_checks`)."""
    attendance = state.attendance
    if at is not None:
        at = aware(at)
        if attendance.phase_at is not None and at < attendance.phase_at:
            return []
        attendance.phase_at = at
    attendance.phase = to_phase
    return []


def followed(state: EpisodeState) -> bool:
    """Whether the episode is followed for silence: active, or not yet known to be but with a
    contact (a phase of None: analytics has heard of none)."""
    attendance = state.attendance
    if attendance.last_contact is None:
        return False
    phase = attendance.phase
    return phase in FOLLOWED or phase is None or phase in NOT_YET_ACTIVE


def due_checks(state: EpisodeState, config: RuleConfig, zone: ZoneInfo) -> dict[str, datetime]:
    """The time-driven checks the episode has pending and when each falls due (an instant, from
    the site's calendar): ``no_contact`` while it is followed and none is open; ``dropout_risk``
    when counting intervals without contact can tip rule 10 and it is not open. Any kind not
    returned has no check pending."""
    last = state.attendance.last_contact
    if last is None or not followed(state):
        return {}
    due: dict[str, datetime] = {}
    if _NO_CONTACT_KEY not in state.open_alerts:
        due[NO_CONTACT] = start_of_day_after(last, config.no_contact_days, zone)
    intervals = _intervals_tipping_rule_10(state, config)
    if intervals is not None:
        days = intervals * config.session_interval_days
        due[DROPOUT_RISK] = start_of_day_after(last, days, zone)
    return due


def fire(
    state: EpisodeState, kind: str, now: datetime, config: RuleConfig, zone: ZoneInfo
) -> list[AlertChange]:
    """A pending check of ``kind`` fell due at ``now``: decide again from the state (a stale
    check changes nothing) and report the changes at the episode's latest session."""
    last = state.attendance.last_contact
    if last is None or not followed(state):
        return []
    now = aware(now)
    occasion = Occasion(latest_session(state), BY_CLOCK)
    out: list[AlertChange] = []
    days = days_between(last, now, zone)
    if kind == NO_CONTACT:
        if _NO_CONTACT_KEY not in state.open_alerts and days >= config.no_contact_days:
            inputs: dict[str, InputValue] = {
                "days_without_contact": days,
                "no_contact_days": config.no_contact_days,
            }
            open_alert(state, out, occasion, NO_CONTACT, None, None, inputs)
    elif kind == DROPOUT_RISK:
        intervals = max(days // config.session_interval_days - 1, 0)
        if intervals > state.attendance.intervals_without_contact:
            state.attendance.intervals_without_contact = intervals
            state.dropout_dirty = True
            rule_10_dropout(state, occasion, config, out)
    else:
        raise ValueError(f"{kind!r} is no time-driven check (one of {', '.join(TIME_DRIVEN)})")
    return out


def _contact(state: EpisodeState, at: datetime, occasion: Occasion, out: list[AlertChange]) -> None:
    """A contact at ``at``: the latest contact moves on (an earlier one reported late changes
    nothing), rule 10's count of intervals without contact starts again, and an open
    ``no_contact`` resolves."""
    attendance = state.attendance
    if attendance.last_contact is not None and at <= attendance.last_contact:
        return
    attendance.last_contact = at
    if attendance.intervals_without_contact:
        attendance.intervals_without_contact = 0
        state.dropout_dirty = True
    if _NO_CONTACT_KEY in state.open_alerts:
        resolve_alert(
            state, out, occasion, _NO_CONTACT_KEY, {"contact_at_session": occasion.session}
        )


def _attended(
    state: EpisodeState, session: int, occasion: Occasion, out: list[AlertChange]
) -> None:
    """Rule 14 resolves at an attended session after the one it opened at."""
    opened = state.open_alerts.get(_MISSED_KEY)
    if opened is not None and session > opened.opened_session:
        resolve_alert(state, out, occasion, _MISSED_KEY, {"attended_session": session})


def _missed(
    state: EpisodeState, config: RuleConfig, occasion: Occasion, out: list[AlertChange]
) -> None:
    """Rule 14 at a missed session: opens when the latest sessions with an outcome (attended
    or missed; cancellations ignored) are ``missed_sessions_run`` missed ones."""
    if _MISSED_KEY in state.open_alerts:
        return
    run = missed_in_a_row(state)
    if run >= config.missed_sessions_run:
        inputs: dict[str, InputValue] = {
            "missed_in_a_row": run,
            "missed_sessions_run": config.missed_sessions_run,
        }
        open_alert(state, out, occasion, MISSED_SESSIONS, None, None, inputs)


def missed_in_a_row(state: EpisodeState) -> int:
    """How many of the latest sessions with an outcome (by session number, cancellations
    ignored) were missed."""
    run = 0
    for _, status in sorted(state.attendance.sessions.items(), reverse=True):
        if status == "missed":
            run += 1
        elif status == "attended":
            break
    return run


def _intervals_tipping_rule_10(state: EpisodeState, config: RuleConfig) -> int | None:
    """The count of intervals without contact at which rule 10's score would go above the
    threshold, when more than the clock has counted; None when no count can (no weight for it)
    or the alert is open or already holds without it."""
    weight = config.dropout_weights.interval_without_contact
    if weight <= 0 or (DROPOUT_RISK, None, None) in state.open_alerts:
        return None
    counted = state.attendance.intervals_without_contact
    base = dropout_points(state, config.dropout_weights, 0)
    if base > config.dropout_threshold:
        return None  # holds already: rule 10 at the next fact or record decides
    # the fewest k with base + weight * k > threshold
    threshold = config.dropout_threshold
    k = int((threshold - base) / weight) + 1
    while base + weight * k <= threshold:  # exact at the boundary, whatever the division
        k += 1
    while k > 1 and base + weight * (k - 1) > threshold:
        k -= 1
    if k <= counted:
        return None  # the clock counted that many already: rule 10 decided then
    # k intervals beyond the first: (k + 1) expected intervals since the contact
    return k + 1
