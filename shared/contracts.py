"""The event contracts between services: one closed Pydantic model per event type and version.

These are the public, versioned schemas data teams read (exported to ``docs/events/``). They hold
no logic. Rules for every field: no direct identifiers (clients appear only as keyed pseudonyms,
``p1_`` + 32 hex), no free text (codes and numbers only). Additive changes only within a version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from shared.events import EventData, EventRegistry, EventType

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")]
Pseudonym = Annotated[str, StringConstraints(pattern=r"^p1_[0-9a-f]{32}$")]
Code = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.\-]{0,63}$")]
Score = Annotated[float, Field(allow_inf_nan=False)]
SessionNumber = Annotated[int, Field(ge=1, le=1000)]
RespondentRole = Literal["client", "partner", "family", "therapist"]
Scalar = float | int | Code | bool | None  # strings in events are codes, never free text
# The kinds of ``alliance.alert`` (docs/clinical-rules.md), as consumers filter on.
ALERT_KINDS: tuple[str, ...] = (
    "risk",
    "low_alliance",
    "early_alliance_risk",
    "rupture",
    "repair",
    "unresolved_rupture",
    "split_alliance",
    "rating_discrepancy",
    "deterioration",
    "not_on_track",
    "dropout_risk",
    "rematch_suggested",
    "goals_not_progressing",
    "low_support",
    "missed_sessions",
    "no_contact",
)


class IntakeSubmitted(EventData):
    intake_id: Id
    site_id: Id
    client: Pseudonym
    domains: list[Code]
    severity: Literal["mild", "moderate", "severe"]
    risk: bool
    couple_or_family: bool
    submitted_at: datetime


class MatchOption(EventData):
    therapist_id: Id
    rank: int = Field(ge=1)
    score: Score


class MatchProposed(EventData):
    match_id: Id
    intake_id: Id
    site_id: Id
    client: Pseudonym
    options: list[MatchOption]
    rematch_of_episode: Id | None = None


class EpisodeMember(EventData):
    respondent: Pseudonym
    role: RespondentRole


class MatchConfirmed(EventData):
    match_id: Id
    episode_id: Id
    site_id: Id
    therapist_id: Id
    client: Pseudonym
    domains: list[Code] = []
    severity: Literal["mild", "moderate", "severe"] | None = None
    members: list[EpisodeMember] = []
    confirmed_at: datetime
    # The client's age group as intake recorded it (clinical cutoffs by age: ORS 25 adults, 28
    # adolescents 13–17, 32 children 6–12); absent for an episode opened without one.
    age_group: Literal["child", "adolescent", "adult", "older_adult"] | None = None


class MatchDeclined(EventData):
    match_id: Id
    site_id: Id
    client: Pseudonym
    declined_therapist_ids: list[Id]
    reason_code: Code


class EpisodeClosed(EventData):
    episode_id: Id
    site_id: Id
    therapist_id: Id
    reason: Literal["completed", "dropped_out", "transferred", "withdrawn", "erased"]
    closed_at: datetime


class EpisodeTransferred(EventData):
    episode_id: Id
    site_id: Id
    from_therapist_id: Id
    to_therapist_id: Id
    transferred_at: datetime


class SessionCompleted(EventData):
    episode_id: Id
    site_id: Id
    therapist_id: Id
    session_number: SessionNumber
    attended: bool
    at: datetime


# How a scheduled session turned out (``session.*``; docs/clinical-rules.md, Attendance).
SessionStatus = Literal[
    "scheduled", "attended", "missed", "cancelled_by_client", "cancelled_by_clinic"
]
# The phases of an episode (docs/clinical-rules.md, Episodes and their phases).
EpisodePhase = Literal[
    "referred",
    "matched",
    "active",
    "closing",
    "closed",
    "dropped_out",
    "transferred",
    "withdrawn",
]


class SessionScheduled(EventData):
    episode_id: Id
    site_id: Id
    therapist_id: Id
    session_number: SessionNumber
    # When the session is to take place (an instant; the site's time zone says its local time).
    scheduled_for: datetime
    recorded_at: datetime


class SessionAttended(EventData):
    episode_id: Id
    site_id: Id
    therapist_id: Id
    session_number: SessionNumber
    at: datetime
    # True when no one reported the session and a feedback response for it implied it.
    implied_by_feedback: bool = False


class SessionMissed(EventData):
    """The client did not attend (and did not cancel): a "did not attend"."""

    episode_id: Id
    site_id: Id
    therapist_id: Id
    session_number: SessionNumber
    at: datetime


class SessionCancelled(EventData):
    episode_id: Id
    site_id: Id
    therapist_id: Id
    session_number: SessionNumber
    # The time the session was to take place.
    at: datetime
    by: Literal["client", "clinic"]
    # Hours between the cancellation and the session, where the front-end says (a client's
    # cancellation "with notice"); None when unknown.
    notice_hours: int | None = Field(default=None, ge=0, le=100_000)
    cancelled_at: datetime


class EpisodePhaseChanged(EventData):
    """An episode moved from one phase to another; intake owns the phase, others follow."""

    episode_id: Id
    site_id: Id
    therapist_id: Id
    from_phase: EpisodePhase | None
    to_phase: EpisodePhase
    # Why, as a code: e.g. first_attended_session, no_contact, ending_planned, returned, ...
    reason: Code
    at: datetime
    # On a return after a drop-out (reason ``returned``): whole days since the last contact.
    gap_days: int | None = Field(default=None, ge=0)


class FeedbackRecorded(EventData):
    response_id: Id
    episode_id: Id
    site_id: Id
    therapist_id: Id
    session_number: SessionNumber
    respondent: Pseudonym
    respondent_role: RespondentRole
    instrument: Code
    instrument_version: int = Field(ge=1)
    items: dict[Code, Score]
    total: Score
    subscales: dict[Code, Score] = {}
    band: Code | None = None
    in_concern_or_clinical_range: bool
    risk_items: list[Code] = []
    late: bool = False
    # Relative to this respondent's first score on the instrument in the episode (None on the
    # first): change is positive when better, whatever the instrument's direction.
    first_total: Score | None = None
    change_from_first: Score | None = None
    reliable_change: Literal["improved", "deteriorated", "no_reliable_change"] | None = None
    clinically_significant_change: bool | None = None
    answered_at: datetime
    # Sent only on an amendment, so every other event reads as it did before the field existed.
    amends: Id | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="An amendment: the response_id of the answer this one replaces (same "
        "episode, session, respondent and instrument). Count this one instead of that one.",
    )


class RiskFlagged(EventData):
    response_id: Id
    episode_id: Id
    site_id: Id
    therapist_id: Id
    session_number: SessionNumber
    respondent: Pseudonym
    respondent_role: RespondentRole
    instrument: Code
    risk_items: dict[Code, Score]
    answered_at: datetime


class AllianceAssessed(EventData):
    response_id: Id
    episode_id: Id
    site_id: Id
    therapist_id: Id
    session_number: SessionNumber
    respondent: Pseudonym
    respondent_role: RespondentRole
    instrument: Code
    score: Score
    baseline: Score | None
    concern: bool


class AllianceAlert(EventData):
    alert_id: Id
    episode_id: Id
    site_id: Id
    therapist_id: Id
    # The alert's life (shared/alert_life.py), each step once, in order: "opened";
    # "acknowledged" (seen: its first delivery acknowledged, or a clinician acknowledged a risk
    # alert, which closes it); "action_recorded" (what was done: ``action_code``); "resolved"
    # (its rule no longer holds); "closed" (by a clinician: ``close_reason``). Consumers that
    # act on openings ignore the others.
    status: Literal["opened", "resolved", "acknowledged", "action_recorded", "closed"]
    kind: Code
    severity: Literal["urgent", "high", "routine"]
    rule: Code
    session_number: SessionNumber
    respondent: Pseudonym | None = None
    inputs: dict[Code, Scalar] = {}
    suggestion_code: Code
    at: datetime
    # action_recorded: the coded action (the site's list); closed: the clinician's reason.
    action_code: Code | None = None
    close_reason: Code | None = None


ConsentScope = Literal["feedback_invitations", "significant_others", "aggregates"]


class ConsentChanged(EventData):
    """What a client agreed to (or withdrew) for one scope, as recorded by staff: codes only.
    ``feedback_invitations``: one-time links to the client; ``significant_others``: contact
    with the partners and family members of the client's episodes; ``aggregates``: the
    client's data in the network's aggregates and trajectories from ``recorded_at`` on."""

    consent_id: Id
    site_id: Id
    client: Pseudonym
    scope: ConsentScope
    granted: bool
    # The version of the consent text and confidentiality notice the client was shown.
    version: int = Field(ge=0)
    recorded_at: datetime


class EpisodeMembersChanged(EventData):
    """A partner or family member was added to or removed from an episode after it opened:
    ``members`` is the episode's whole client side now (the client included)."""

    episode_id: Id
    site_id: Id
    therapist_id: Id
    members: list[EpisodeMember]
    added: list[Pseudonym] = []
    removed: list[Pseudonym] = []
    changed_at: datetime


class EffectivenessEstimate(EventData):
    estimate: Score
    lower: Score
    upper: Score


class TherapistEffectivenessUpdated(EventData):
    therapist_id: Id
    site_id: Id
    domain: Code
    n: int = Field(ge=0)
    mean_alliance: EffectivenessEstimate | None
    reliable_improvement_rate: EffectivenessEstimate | None
    deterioration_rate: EffectivenessEstimate | None
    classification: Literal["effective", "neutral", "ineffective", "not_enough_data"]
    updated_at: datetime
    # The client's own goals (issue 19): the shrunk share of closed episodes with goal ratings
    # where a goal ended reliably above its first rating, over ``goal_n`` such episodes.
    goal_attainment_rate: EffectivenessEstimate | None = None
    goal_n: int = Field(default=0, ge=0)


class NotificationDelivered(EventData):
    """A message reached its recipient. A delivery about an alert (its opening, a later step,
    its escalation) names the alert as ``notification.acknowledged`` does (``alert_id``, or for
    a risk notice that came first from ``risk.flagged`` its episode, session, respondent and
    instrument) and what it was (``delivery_kind``: alert, escalation …), so the episode's
    timeline shows it; other deliveries leave these out."""

    delivery_id: Id
    source_event_id: Id
    site_id: Id
    channel: Literal["webhook", "email", "sms"]
    recipient_role: Code
    attempts: int = Field(ge=1)
    delivered_at: datetime
    delivery_kind: Code | None = None
    episode_id: Id | None = None
    kind: Code | None = None
    alert_id: Id | None = None
    session_number: SessionNumber | None = None
    respondent: Pseudonym | None = None
    instrument: Code | None = None


class NotificationAcknowledged(EventData):
    """A staff member acknowledged a delivery of a notice: the first one of an alert's notice
    means the alert was seen. ``alert_id`` when the notice came from ``alliance.alert``; a risk
    notice that came first from ``risk.flagged`` names its response's episode, session,
    respondent and instrument instead."""

    delivery_id: Id
    notice_id: Id
    site_id: Id
    episode_id: Id
    kind: Code
    alert_id: Id | None = None
    session_number: SessionNumber | None = None
    respondent: Pseudonym | None = None
    instrument: Code | None = None
    acknowledged_at: datetime


class NotificationFailed(EventData):
    delivery_id: Id
    source_event_id: Id
    site_id: Id
    channel: Literal["webhook", "email", "sms"]
    recipient_role: Code
    attempts: int = Field(ge=1)
    reason_code: Code
    failed_at: datetime


class ClientErasureRequested(EventData):
    request_id: Id
    client: Pseudonym
    site_id: Id
    requested_at: datetime
    # The client's episodes (random ids): services that know episodes only by id erase these.
    episode_ids: list[Id] = []


def _t(
    name: str, model: type[Any], key: str, by: str, description: str, *, urgent: bool = False
) -> EventType[Any]:
    return EventType(
        name=name,
        version=1,
        data_model=model,
        description=description,
        key_field=key,
        produced_by=by,
        urgent=urgent,
    )


INTAKE_SUBMITTED = _t(
    "intake.submitted",
    IntakeSubmitted,
    "client",
    "intake",
    "A client's intake was submitted (domains, severity, risk screen).",
)
MATCH_PROPOSED = _t(
    "match.proposed",
    MatchProposed,
    "client",
    "intake",
    "Ranked therapist options were proposed for an intake or a rematch.",
)
MATCH_CONFIRMED = _t(
    "match.confirmed",
    MatchConfirmed,
    "episode_id",
    "intake",
    "A match was confirmed: an episode of care exists with its therapist.",
)
MATCH_DECLINED = _t(
    "match.declined",
    MatchDeclined,
    "client",
    "intake",
    "A proposal was declined; the next one excludes the declined therapists.",
)
EPISODE_CLOSED = _t(
    "episode.closed",
    EpisodeClosed,
    "episode_id",
    "intake",
    "An episode ended (completed, dropped out, transferred, withdrawn).",
)
EPISODE_TRANSFERRED = _t(
    "episode.transferred",
    EpisodeTransferred,
    "episode_id",
    "intake",
    "An episode moved to another therapist after a rematch.",
)
SESSION_COMPLETED = _t(
    "session.completed",
    SessionCompleted,
    "episode_id",
    "feedback",
    "A session took place (or was missed); schedules feedback invitations.",
)
SESSION_SCHEDULED = _t(
    "session.scheduled",
    SessionScheduled,
    "episode_id",
    "feedback",
    "A session of an episode was booked for a time (the first fact of a session).",
)
SESSION_ATTENDED = _t(
    "session.attended",
    SessionAttended,
    "episode_id",
    "feedback",
    "The client attended a session (reported, or implied by a feedback response for it).",
)
SESSION_MISSED = _t(
    "session.missed",
    SessionMissed,
    "episode_id",
    "feedback",
    "The client did not attend a session and did not cancel it.",
)
SESSION_CANCELLED = _t(
    "session.cancelled",
    SessionCancelled,
    "episode_id",
    "feedback",
    "A session was cancelled, by the client (with the notice given) or by the clinic.",
)
EPISODE_PHASE_CHANGED = _t(
    "episode.phase_changed",
    EpisodePhaseChanged,
    "episode_id",
    "intake",
    "An episode's phase changed (from, to, reason, at): active at the first attended session, "
    "dropped_out after a silence, closing, closed, and back to active when a client returns.",
)
FEEDBACK_RECORDED = _t(
    "feedback.recorded",
    FeedbackRecorded,
    "episode_id",
    "feedback",
    "A questionnaire response was scored (item values and scores only).",
)
RISK_FLAGGED = _t(
    "risk.flagged",
    RiskFlagged,
    "episode_id",
    "feedback",
    "A response had a risk item above 0; a clinician must know now.",
    urgent=True,
)
ALLIANCE_ASSESSED = _t(
    "alliance.assessed",
    AllianceAssessed,
    "episode_id",
    "analytics",
    "An alliance score was placed in its respondent's series.",
)
ALLIANCE_ALERT = _t(
    "alliance.alert",
    AllianceAlert,
    "episode_id",
    "analytics",
    "An alert's step: opened, acknowledged (seen by a clinician; a risk alert stays open until "
    "then), action_recorded (what was done, coded), resolved (its rule no longer holds) or "
    "closed by a clinician with a reason; with its rule and the numbers that fired it.",
)
THERAPIST_EFFECTIVENESS_UPDATED = _t(
    "therapist.effectiveness.updated",
    TherapistEffectivenessUpdated,
    "therapist_id",
    "analytics",
    "Shrunken per-domain effectiveness estimates for a therapist, with intervals and n.",
)
NOTIFICATION_DELIVERED = _t(
    "notification.delivered",
    NotificationDelivered,
    "delivery_id",
    "notify",
    "A notification reached its channel.",
)
NOTIFICATION_ACKNOWLEDGED = _t(
    "notification.acknowledged",
    NotificationAcknowledged,
    "episode_id",
    "notify",
    "The first acknowledgement of a notice's deliveries by staff (for an alert: it was seen).",
)
NOTIFICATION_FAILED = _t(
    "notification.failed",
    NotificationFailed,
    "delivery_id",
    "notify",
    "A notification failed permanently after its retries.",
)
CLIENT_ERASURE_REQUESTED = _t(
    "client.erasure.requested",
    ClientErasureRequested,
    "client",
    "intake",
    "An authorised request to erase a client's data.",
)
CONSENT_CHANGED = _t(
    "consent.changed",
    ConsentChanged,
    "client",
    "feedback",
    "A client's consent for one scope was recorded or withdrawn (codes only).",
)
EPISODE_MEMBERS_CHANGED = _t(
    "episode.members.changed",
    EpisodeMembersChanged,
    "episode_id",
    "intake",
    "A partner or family member was added to or removed from an episode.",
)

REGISTRY = EventRegistry(
    [
        INTAKE_SUBMITTED,
        MATCH_PROPOSED,
        MATCH_CONFIRMED,
        MATCH_DECLINED,
        EPISODE_CLOSED,
        EPISODE_TRANSFERRED,
        SESSION_COMPLETED,
        SESSION_SCHEDULED,
        SESSION_ATTENDED,
        SESSION_MISSED,
        SESSION_CANCELLED,
        EPISODE_PHASE_CHANGED,
        FEEDBACK_RECORDED,
        RISK_FLAGGED,
        ALLIANCE_ASSESSED,
        ALLIANCE_ALERT,
        THERAPIST_EFFECTIVENESS_UPDATED,
        NOTIFICATION_DELIVERED,
        NOTIFICATION_ACKNOWLEDGED,
        NOTIFICATION_FAILED,
        CLIENT_ERASURE_REQUESTED,
        CONSENT_CHANGED,
        EPISODE_MEMBERS_CHANGED,
    ]
)
