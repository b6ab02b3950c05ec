"""Rows ↔ domain objects ↔ response models: the one place analytics converts between them (the
response models of its routes, a row's alert or score as the API shows it, a closed episode's
row as the effectiveness estimate reads it, a ``feedback.recorded`` event as the rules read it).

Over 500 lines: the episode's timeline is one response (scores, alerts with their follow-up,
care, sessions, phases, goals), its models beside the converter that fills them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.analytics.domain import ScoredRecord, SessionFact
from services.analytics.domain.care import CareChange
from services.analytics.domain.followup import CLOSE_REASONS
from services.analytics.domain.followup_figures import ActionFigures, Figure
from services.analytics.domain.goals import GoalRating
from services.analytics.effectiveness import ClosedEpisode, DomainEffectiveness, Estimate
from services.analytics.models import (
    AnalyticsAlert,
    AnalyticsAlertAction,
    AnalyticsAlertDelivery,
    AnalyticsClosedEpisode,
    AnalyticsEpisode,
    AnalyticsEpisodeSession,
    AnalyticsPhaseChange,
    AnalyticsScore,
)
from shared.contracts import (
    EffectivenessEstimate,
    FeedbackRecorded,
    SessionAttended,
    SessionCancelled,
    SessionMissed,
)
from shared.vocabulary import one_of

NOTE_MAX = 2000  # characters of a note on an action
if TYPE_CHECKING:
    CloseReason = str
else:  # an enum in the OpenAPI; another reason is a 422 naming the valid ones
    CloseReason = one_of(CLOSE_REASONS, "close reason")


class AlertOut(BaseModel):
    alert_id: str
    episode_id: str
    site_id: str
    therapist_id: str
    kind: str
    severity: str
    rule: str
    status: str
    respondent: str | None
    instrument: str | None
    opened_session: int
    resolved_session: int | None
    inputs: dict[str, float | int | str | bool | None]
    suggestion_code: str
    suggestion: str
    opened_at: datetime
    resolved_at: datetime | None
    # Set when a clinician acknowledged the alert (a risk alert stays open until then).
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    # Follow-up: first seen (a delivery acknowledged), closed by a clinician with a reason.
    seen_at: datetime | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None
    close_reason: str | None = None


class ActionIn(BaseModel):
    """What a clinician did about an alert: one of the site's coded actions."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=64)
    # Free text, sealed under the client's own data key: never on a topic or in a log.
    note: str | None = Field(default=None, min_length=1, max_length=NOTE_MAX)


class ActionOut(BaseModel):
    action_id: str
    alert_id: str
    code: str
    recorded_by: str
    recorded_at: datetime
    alert_status: str
    note: str | None = None


class CloseIn(BaseModel):
    """A clinician closes an alert, with the reason."""

    model_config = ConfigDict(extra="forbid")
    reason: CloseReason


class ScoreOut(BaseModel):
    session_number: int
    respondent: str
    respondent_role: str
    instrument: str
    score: float
    concern: bool


class GoalProgressOut(BaseModel):
    """One rating of one of the client's goals and its change from that goal's first rating."""

    session_number: int
    goal_id: str
    goal_order: int = Field(description="1 = the first goal the client rated in the episode")
    rating: float
    change_from_first: float
    reliable_change: bool = Field(description="The change reached the instrument's 3 points")


class DeliveryOut(BaseModel):
    """A message about an alert that reached its recipient (by role, never by person)."""

    delivery_kind: str  # alert (the opening or a later step), escalation …
    channel: str
    recipient_role: str
    delivered_at: datetime


class RecordedActionOut(BaseModel):
    code: str
    recorded_by: str
    recorded_at: datetime
    note: str | None = None  # null once the client is erased (their key destroyed)


class TimelineAlertOut(AlertOut):
    """An alert with its whole follow-up: the messages delivered about it, when it was first
    seen (``seen_at``), what was done (``actions``) and how it ended (resolved or closed)."""

    deliveries: list[DeliveryOut] = []
    actions: list[RecordedActionOut] = []


class CareChangeOut(BaseModel):
    """The episode's match, or a transfer to another therapist."""

    change: Literal["matched", "transferred"]
    therapist_id: str
    from_therapist_id: str | None
    at: datetime


class SessionOut(BaseModel):
    """How one session turned out: attended (``implied_by_feedback`` when only a feedback
    response said so), missed, or cancelled by the client or the clinic; ``at`` when it took
    place or was to."""

    session_number: int
    status: Literal["attended", "missed", "cancelled_by_client", "cancelled_by_clinic"]
    at: datetime
    implied_by_feedback: bool = False


class PhaseChangeOut(BaseModel):
    """The episode moved from one phase to another (intake's ``episode.phase_changed``)."""

    from_phase: str | None
    to_phase: str
    reason: str
    at: datetime
    gap_days: int | None = None  # on a return after a drop-out: days since the last contact


class TimelineOut(BaseModel):
    episode_id: str
    site_id: str
    therapist_id: str
    phase: str
    last_session: int
    scores: list[ScoreOut]
    alerts: list[TimelineAlertOut]
    care: list[CareChangeOut] = []
    sessions: list[SessionOut] = []
    phases: list[PhaseChangeOut] = []
    goal_progress: list[GoalProgressOut] = []


class EstimateOut(BaseModel):
    estimate: float
    lower: float
    upper: float


class DomainEffectivenessOut(BaseModel):
    """One therapist × domain. Below ``min_cases`` closed cases there is no estimate: the
    status is ``not_enough_data`` and the three estimates are null (never a number that looks
    certain)."""

    therapist_id: str
    domain: str
    n: int
    min_cases: int
    status: Literal["estimated", "not_enough_data"]
    mean_alliance: EstimateOut | None
    reliable_improvement_rate: EstimateOut | None
    deterioration_rate: EstimateOut | None
    classification: str
    # The client's own goals: the share of the therapist's closed episodes with goal ratings
    # where a goal ended reliably above its first rating, shrunk like the rates above; null
    # below ``min_cases`` such episodes.
    goal_n: int = 0
    goal_attainment_rate: EstimateOut | None = None


class FigureOut(BaseModel):
    """One follow-up figure and the number of alerts it stands on (no estimate when n is 0)."""

    n: int
    value: EstimateOut | None


class ActionFiguresOut(BaseModel):
    """What followed one action code at a site (``therapist_id`` null) or for one of its
    therapists (shrunk toward the site's figure)."""

    code: str
    therapist_id: str | None
    alerts: int
    resolved_within_2_sessions: FigureOut
    resolved_within_4_sessions: FigureOut
    alliance_change: FigureOut
    outcome_change: FigureOut


class FollowUpOut(BaseModel):
    """A site's follow-up: what followed each action, the open alerts nobody acted on by age,
    and the median time from an alert's opening to its first action."""

    site_id: str
    actions: list[ActionFiguresOut]
    open_unacted_by_age: dict[str, int]
    alerts_acted_on: int
    median_hours_to_first_action: float | None


class SiteSummaryOut(BaseModel):
    site_id: str
    episodes_active: int
    episodes_closed: int
    sessions_with_feedback: int
    alerts_opened: dict[str, int]
    alerts_per_100_sessions: float
    open_alerts: int
    ruptures: int
    ruptures_repaired: int
    median_sessions_to_repair: float | None
    reliable_improvement_rate: float | None
    deterioration_rate: float | None
    therapists: list[DomainEffectivenessOut]


def alert_out(row: AnalyticsAlert) -> AlertOut:
    return AlertOut(
        alert_id=row.id,
        episode_id=row.episode_id,
        site_id=row.site_id,
        therapist_id=row.therapist_id,
        kind=row.kind,
        severity=row.severity,
        rule=row.rule,
        status=row.status,
        respondent=row.respondent,
        instrument=row.instrument,
        opened_session=row.opened_session,
        resolved_session=row.resolved_session,
        inputs=row.inputs,
        suggestion_code=row.suggestion_code,
        suggestion=row.suggestion,
        opened_at=row.opened_at,
        resolved_at=row.resolved_at,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        seen_at=row.seen_at,
        closed_at=row.closed_at,
        closed_by=row.closed_by,
        close_reason=row.close_reason,
    )


def action_out(
    action: AnalyticsAlertAction, alert: AnalyticsAlert, note: str | None = None
) -> ActionOut:
    return ActionOut(
        action_id=action.id,
        alert_id=action.alert_id,
        code=action.code,
        recorded_by=action.recorded_by,
        recorded_at=action.recorded_at,
        alert_status=alert.status,
        note=note,
    )


def score_out(row: AnalyticsScore) -> ScoreOut:
    return ScoreOut(
        session_number=row.session_number,
        respondent=row.respondent,
        respondent_role=row.respondent_role,
        instrument=row.instrument,
        score=float(row.total),
        concern=row.concern,
    )


def timeline_alert_out(
    row: AnalyticsAlert,
    deliveries: Iterable[AnalyticsAlertDelivery],
    actions: Iterable[AnalyticsAlertAction],
    notes: Mapping[str, str] | None = None,
) -> TimelineAlertOut:
    notes = notes or {}
    return TimelineAlertOut(
        **alert_out(row).model_dump(),
        deliveries=[
            DeliveryOut(
                delivery_kind=d.delivery_kind,
                channel=d.channel,
                recipient_role=d.recipient_role,
                delivered_at=d.delivered_at,
            )
            for d in sorted(deliveries, key=lambda d: (d.delivered_at, d.delivery_id))
        ],
        actions=[
            RecordedActionOut(
                code=a.code,
                recorded_by=a.recorded_by,
                recorded_at=a.recorded_at,
                note=notes.get(a.id),
            )
            for a in sorted(actions, key=lambda a: (a.recorded_at, a.id))
        ],
    )


def timeline_out(
    episode: AnalyticsEpisode,
    scores: Iterable[AnalyticsScore],
    alerts: Iterable[AnalyticsAlert],
    deliveries: Iterable[AnalyticsAlertDelivery] = (),
    actions: Iterable[AnalyticsAlertAction] = (),
    care: Iterable[CareChange] = (),
    notes: Mapping[str, str] | None = None,
    sessions: Iterable[AnalyticsEpisodeSession] = (),
    phases: Iterable[AnalyticsPhaseChange] = (),
    goals: Iterable[GoalRating] = (),
) -> TimelineOut:
    """The timeline as the API shows it; ``notes`` are the actions' notes, unsealed, by id."""
    delivered: dict[str, list[AnalyticsAlertDelivery]] = {}
    for delivery in deliveries:
        delivered.setdefault(delivery.alert_id, []).append(delivery)
    done: dict[str, list[AnalyticsAlertAction]] = {}
    for action in actions:
        done.setdefault(action.alert_id, []).append(action)
    return TimelineOut(
        episode_id=episode.episode_id,
        site_id=episode.site_id,
        therapist_id=episode.therapist_id,
        phase=episode.phase,
        last_session=episode.last_session,
        scores=[score_out(s) for s in scores],
        alerts=[
            timeline_alert_out(a, delivered.get(a.id, []), done.get(a.id, []), notes)
            for a in alerts
        ],
        care=[
            CareChangeOut(
                change=c.change,
                therapist_id=c.therapist_id,
                from_therapist_id=c.from_therapist_id,
                at=c.at,
            )
            for c in care
        ],
        sessions=[
            SessionOut(
                session_number=s.session_number,
                status=s.status,  # stored from the checked event
                at=s.at,
                implied_by_feedback=s.implied_by_feedback,
            )
            for s in sorted(sessions, key=lambda s: s.session_number)
        ],
        phases=[
            PhaseChangeOut(
                from_phase=p.from_phase,
                to_phase=p.to_phase,
                reason=p.reason,
                at=p.at,
                gap_days=p.gap_days,
            )
            for p in sorted(phases, key=lambda p: (p.at, p.to_phase))
        ],
        goal_progress=[
            GoalProgressOut(
                session_number=g.session,
                goal_id=g.goal,
                goal_order=g.order,
                rating=float(g.rating),
                change_from_first=float(g.change_from_first),
                reliable_change=g.reliable,
            )
            for g in goals
        ],
    )


def estimate_out(value: Estimate | None) -> EstimateOut | None:
    return (
        None
        if value is None
        else EstimateOut(
            estimate=round(value.estimate, 4),
            lower=round(value.lower, 4),
            upper=round(value.upper, 4),
        )
    )


def figure_out(figure: Figure) -> FigureOut:
    return FigureOut(n=figure.n, value=estimate_out(figure.estimate))


def action_figures_out(f: ActionFigures) -> ActionFiguresOut:
    return ActionFiguresOut(
        code=f.code,
        therapist_id=f.therapist_id,
        alerts=f.alerts,
        resolved_within_2_sessions=figure_out(f.resolved_within[2]),
        resolved_within_4_sessions=figure_out(f.resolved_within[4]),
        alliance_change=figure_out(f.alliance_change),
        outcome_change=figure_out(f.outcome_change),
    )


def effectiveness_out(result: DomainEffectiveness) -> DomainEffectivenessOut:
    """One therapist × domain as the API shows it: no estimate below the minimum of cases."""
    enough = result.enough_data
    return DomainEffectivenessOut(
        therapist_id=result.therapist_id,
        domain=result.domain,
        n=result.n,
        min_cases=result.min_cases,
        status="estimated" if enough else "not_enough_data",
        mean_alliance=estimate_out(result.mean_alliance) if enough else None,
        reliable_improvement_rate=(
            estimate_out(result.reliable_improvement_rate) if enough else None
        ),
        deterioration_rate=estimate_out(result.deterioration_rate) if enough else None,
        goal_n=result.goal_n,
        goal_attainment_rate=(
            estimate_out(result.goal_attainment_rate) if result.goal_n >= result.min_cases else None
        ),
        classification=result.classification,
    )


def estimate_event(value: Estimate | None) -> EffectivenessEstimate | None:
    """An estimate as the ``therapist.effectiveness.updated`` event carries it (unrounded)."""
    if value is None:
        return None
    return EffectivenessEstimate(estimate=value.estimate, lower=value.lower, upper=value.upper)


def closed_episodes(rows: Sequence[AnalyticsClosedEpisode]) -> list[ClosedEpisode]:
    """Closed episodes' rows as the effectiveness estimate reads them."""
    return [
        ClosedEpisode(
            c.therapist_id,
            c.site_id,
            tuple(c.domains),
            c.mean_alliance,
            c.reliably_improved,
            c.deteriorated,
            c.goal_attained,
        )
        for c in rows
    ]


def scored_record(data: FeedbackRecorded) -> ScoredRecord:
    """A ``feedback.recorded`` event as the alert rules read it (numbers as exact Decimals)."""
    items: dict[str, Any] = {k: Decimal(str(v)) for k, v in data.items.items()}
    return ScoredRecord(
        episode_id=data.episode_id,
        site_id=data.site_id,
        therapist_id=data.therapist_id,
        session=data.session_number,
        at=data.answered_at,
        role=data.respondent_role,
        respondent_id=data.respondent,
        instrument=data.instrument,
        items=items,
        total=Decimal(str(data.total)),
        response_id=data.response_id,
    )


def session_fact(data: SessionAttended | SessionMissed | SessionCancelled) -> SessionFact:
    """A ``session.*`` event as the attendance rules read it."""
    if isinstance(data, SessionCancelled):
        status = f"cancelled_by_{data.by}"
    elif isinstance(data, SessionMissed):
        status = "missed"
    else:
        status = "attended"
    return SessionFact(
        episode_id=data.episode_id,
        site_id=data.site_id,
        therapist_id=data.therapist_id,
        session=data.session_number,
        status=status,
        at=data.at,
        implied_by_feedback=isinstance(data, SessionAttended) and data.implied_by_feedback,
    )
