"""The episode's course as the chart draws it (services/analytics/charts.py): how each session
turned out, the phase changes, and each alert with its follow-up (first acted on, resolved or
closed by a clinician). Pure: it reads the timeline (``services.analytics.mapping.TimelineOut``,
by shape) and places each moment on the chart's session axis.

A moment between two sessions (an action, a phase change) is placed between them in proportion
to its time (an action two days into a seven-day gap after session 3 is at 3.29); before the
first session it is at the first; after the latest session, half a session after it (the axis
has no later session to measure against). Without session times (no session reported), a
moment is placed at the alert's opening session, or not at all for a phase change.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import pairwise
from typing import Protocol

from services.analytics.chart_course import PhaseMark, SessionMark
from services.analytics.charts import AlertMark
from services.analytics.domain import plain_name

AFTER_THE_LATEST = 0.5  # how far after the latest session a later moment is drawn


class Action(Protocol):
    @property
    def recorded_at(self) -> datetime: ...


class Alert(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def respondent(self) -> str | None: ...
    @property
    def instrument(self) -> str | None: ...
    @property
    def opened_session(self) -> int: ...
    @property
    def resolved_session(self) -> int | None: ...
    @property
    def resolved_at(self) -> datetime | None: ...
    @property
    def closed_at(self) -> datetime | None: ...
    @property
    def actions(self) -> Sequence[Action]: ...


class Session(Protocol):
    @property
    def session_number(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def at(self) -> datetime: ...


class PhaseChange(Protocol):
    @property
    def from_phase(self) -> str | None: ...
    @property
    def to_phase(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def gap_days(self) -> int | None: ...


SessionTimes = Sequence[tuple[int, datetime]]


def session_times(sessions: Sequence[Session]) -> list[tuple[int, datetime]]:
    """Each reported session's number and time, by number."""
    return sorted((s.session_number, s.at) for s in sessions)


def axis_position(at: datetime, times: SessionTimes) -> float | None:
    """Where the instant ``at`` falls on the session axis (module docstring); None without
    session times."""
    if not times:
        return None
    first_session, first_at = times[0]
    if at <= first_at:
        return float(first_session)
    for (before, before_at), (after, after_at) in pairwise(times):
        if before_at <= at <= after_at:
            if after_at == before_at:
                return float(after)
            share = (at - before_at) / (after_at - before_at)
            return before + (after - before) * share
    latest, latest_at = times[-1]
    if at <= latest_at:  # times out of order with the numbers: the latest session before it
        return float(max(s for s, t in times if t <= at))
    return latest + AFTER_THE_LATEST


def session_marks(sessions: Sequence[Session]) -> list[SessionMark]:
    return [SessionMark(s.session_number, s.status) for s in sessions]


def phase_marks(phases: Sequence[PhaseChange], times: SessionTimes) -> list[PhaseMark]:
    """Each phase change where it falls between the sessions, named as staff say it."""
    marks = []
    for change in sorted(phases, key=lambda p: p.at):
        position = axis_position(change.at, times)
        if position is None:
            continue
        detail = change.reason.replace("_", " ")
        if change.from_phase:
            detail = f"from {change.from_phase.replace('_', ' ')}: {detail}"
        if change.gap_days is not None:
            detail += f", after {change.gap_days} days without contact"
        marks.append(PhaseMark(position, change.to_phase.replace("_", " "), detail))
    return marks


def alert_marks(alerts: Sequence[Alert], times: SessionTimes) -> list[AlertMark]:
    """Each alert at its opening session, with where it was first acted on and where it
    resolved (its resolving session) or was closed."""
    marks = []
    for alert in sorted(alerts, key=lambda a: (a.opened_session, a.kind)):
        if alert.status == "open":
            detail = "still open"
        elif alert.resolved_session is not None and alert.kind not in {"risk", "repair"}:
            detail = f"resolved at session {alert.resolved_session}"
        else:
            detail = ""
        opened = float(alert.opened_session)
        acted_on = None
        if alert.actions:
            first = min(a.recorded_at for a in alert.actions)
            acted_on = max(opened, axis_position(first, times) or opened)
        ended, ending = _ending(alert, times)
        marks.append(
            AlertMark(
                alert.opened_session,
                alert.kind,
                plain_name(alert.kind),
                detail,
                urgent=alert.severity == "urgent",
                acted_on=acted_on,
                ended=ended,
                ending=ending,
            )
        )
    return marks


def _ending(alert: Alert, times: SessionTimes) -> tuple[float | None, str]:
    """Where an alert ended and how: resolved (at its resolving session, else its time) or
    closed by a clinician; (None, "") while open or when nothing places it."""
    opened = float(alert.opened_session)
    if alert.status == "resolved":
        if alert.resolved_session is not None:
            return max(opened, float(alert.resolved_session)), "resolved"
        at = alert.resolved_at
    elif alert.status == "closed":
        at = alert.closed_at
    else:
        return None, ""
    where = None if at is None else axis_position(at, times)
    return (None, "") if where is None else (max(opened, where), alert.status)
