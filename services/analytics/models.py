"""Tables the analytics service owns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, true
from sqlmodel import Field, SQLModel

from shared.audit import audit_table
from shared.clock import due_checks_table
from shared.deployment import deployment_table
from shared.erasure import client_keys_table, erasure_tables, table_of
from shared.tables import messaging_tables


class AnalyticsEpisode(SQLModel, table=True):
    """Each episode's alliance/outcome state, updated record by record (domain.EpisodeState)."""

    __tablename__ = "analytics_episodes"
    episode_id: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    therapist_id: str = Field(index=True, max_length=64)
    domains: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    phase: str = Field(default="matched", max_length=20)
    state: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    last_session: int = 0
    updated_at: datetime
    closed_at: datetime | None = None
    close_reason: str | None = Field(default=None, max_length=20)
    # The client's age group from match.confirmed (None: unknown; the general cutoffs apply).
    age_group: str | None = Field(default=None, max_length=16)
    # The client (pseudonym) from match.confirmed: whose data key seals notes on actions,
    # and whose consent to the aggregates counts.
    client: str | None = Field(default=None, max_length=40)


class AnalyticsScore(SQLModel, table=True):
    """One scored response in its respondent's series (for timelines and charts)."""

    __tablename__ = "analytics_scores"
    response_id: str = Field(primary_key=True, max_length=64)
    episode_id: str = Field(index=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    therapist_id: str = Field(index=True, max_length=64)
    session_number: int
    respondent: str = Field(max_length=40)
    respondent_role: str = Field(max_length=16)
    instrument: str = Field(max_length=64)
    total: str = Field(max_length=32)
    concern: bool
    recorded_at: datetime
    # False when the client had withdrawn consent to the network's aggregates when it arrived:
    # it still counts for the episode's own rules and timeline, not in trajectories fitted.
    in_aggregates: bool = Field(default=True, sa_column_kwargs={"server_default": true()})


class AnalyticsAlert(SQLModel, table=True):
    __tablename__ = "analytics_alerts"
    __table_args__ = (Index("ix_analytics_alerts_identity", "episode_id", "kind", "status"),)
    id: str = Field(primary_key=True, max_length=64)
    episode_id: str = Field(index=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    therapist_id: str = Field(index=True, max_length=64)
    kind: str = Field(max_length=40)
    severity: str = Field(max_length=10)
    rule: str = Field(max_length=64)
    respondent: str | None = Field(default=None, max_length=40)
    instrument: str | None = Field(default=None, max_length=64)
    triggered_by: str | None = Field(default=None, max_length=40)
    status: str = Field(default="open", index=True, max_length=10)
    opened_session: int
    resolved_session: int | None = None
    inputs: dict[str, float | int | str | bool | None] = Field(
        default_factory=dict, sa_column=Column(JSON)
    )
    suggestion_code: str = Field(max_length=64)
    suggestion: str = Field(default="", max_length=300)
    opened_at: datetime
    resolved_at: datetime | None = None
    # Who acknowledged the alert and when (a risk alert stays open until a clinician does).
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = Field(default=None, max_length=128)
    # Follow-up (shared/alert_life.py): first seen (a delivery acknowledged in notify), and a
    # clinician's closing with its reason (status "closed").
    seen_at: datetime | None = None
    closed_at: datetime | None = None
    closed_by: str | None = Field(default=None, max_length=128)
    close_reason: str | None = Field(default=None, max_length=40)


class AnalyticsAlertAction(SQLModel, table=True):
    """What a clinician did about an alert: a coded action (the site's list), by whom and
    when, and an optional note sealed under the client's own data key (never on a topic or in
    a log; unreadable once the client is erased)."""

    __tablename__ = "analytics_alert_actions"
    __table_args__ = (
        Index("ux_analytics_alert_actions_retry", "alert_id", "idempotency_key", unique=True),
    )
    id: str = Field(primary_key=True, max_length=64)
    alert_id: str = Field(index=True, max_length=64)
    episode_id: str = Field(index=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    code: str = Field(max_length=64)
    recorded_by: str = Field(max_length=128)
    recorded_at: datetime
    idempotency_key: str | None = Field(default=None, max_length=128)
    note_sealed: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class AnalyticsAlertDelivery(SQLModel, table=True):
    """A message about an alert that reached its recipient (``notification.delivered``): for the
    episode's timeline. The recipient only by role (who it was stays in notify)."""

    __tablename__ = "analytics_alert_deliveries"
    delivery_id: str = Field(primary_key=True, max_length=64)
    alert_id: str = Field(index=True, max_length=64)
    episode_id: str = Field(index=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    channel: str = Field(max_length=10)
    recipient_role: str = Field(max_length=64)
    delivery_kind: str = Field(max_length=64)
    delivered_at: datetime


class AnalyticsEpisodeMatch(SQLModel, table=True):
    """Each confirmed match of an episode (``match.confirmed``): the first is its match, a later
    one to another therapist a transfer. For the episode's timeline."""

    __tablename__ = "analytics_episode_matches"
    match_id: str = Field(primary_key=True, max_length=64)
    episode_id: str = Field(index=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    therapist_id: str = Field(max_length=64)
    confirmed_at: datetime


class AnalyticsEpisodeSession(SQLModel, table=True):
    """How each session of an episode turned out (``session.attended|missed|cancelled``), as the
    attendance rules hold it: for the episode's timeline and chart."""

    __tablename__ = "analytics_episode_sessions"
    episode_id: str = Field(primary_key=True, max_length=64)
    session_number: int = Field(primary_key=True)
    site_id: str = Field(index=True, max_length=64)
    # attended, missed, cancelled_by_client or cancelled_by_clinic
    status: str = Field(max_length=24)
    at: datetime  # when it took place (or was to)
    implied_by_feedback: bool = False


class AnalyticsPhaseChange(SQLModel, table=True):
    """Each phase change of an episode (``episode.phase_changed``): for its timeline and chart."""

    __tablename__ = "analytics_episode_phase_changes"
    episode_id: str = Field(primary_key=True, max_length=64)
    to_phase: str = Field(primary_key=True, max_length=20)
    at: datetime = Field(primary_key=True)
    site_id: str = Field(index=True, max_length=64)
    from_phase: str | None = Field(default=None, max_length=20)
    reason: str = Field(max_length=64)
    gap_days: int | None = None


class AnalyticsClosedEpisode(SQLModel, table=True):
    """What a closed episode says about its therapist (input of the effectiveness estimates)."""

    __tablename__ = "analytics_closed_episodes"
    episode_id: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    therapist_id: str = Field(index=True, max_length=64)
    domains: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    mean_alliance: float | None = None
    reliably_improved: bool
    deteriorated: bool
    closed_at: datetime
    # Any of the client's own goals reliably above its first rating at the end (None: no goals).
    goal_attained: bool | None = None


class AnalyticsConsent(SQLModel, table=True):
    """A client's consent to their data in the network's aggregates and trajectories, as
    ``consent.changed`` last said (withdrawn: excluded from then on; nothing is erased)."""

    __tablename__ = "analytics_consents"
    site_id: str = Field(primary_key=True, max_length=64)
    client: str = Field(primary_key=True, max_length=40)
    granted: bool
    recorded_at: datetime


# The same tables in SQLAlchemy Core, for the hot path (every response) and bulk statements.
EPISODES = table_of(AnalyticsEpisode)
SCORES = table_of(AnalyticsScore)
ALERTS = table_of(AnalyticsAlert)
ALERT_ACTIONS = table_of(AnalyticsAlertAction)
CLOSED_EPISODES = table_of(AnalyticsClosedEpisode)
ALERT_DELIVERIES = table_of(AnalyticsAlertDelivery)
EPISODE_MATCHES = table_of(AnalyticsEpisodeMatch)
EPISODE_SESSIONS = table_of(AnalyticsEpisodeSession)
PHASE_CHANGES = table_of(AnalyticsPhaseChange)

OUTBOX, INBOX = messaging_tables("analytics")
# The topic prefix of the deployment these tables belong to (shared/deployment.py).
DEPLOYMENT = deployment_table("analytics", SQLModel.metadata)
# Staff access to client-level data, append-only and hash-chained (shared/audit.py).
AUDIT = audit_table("analytics", SQLModel.metadata)
ERASURES, ERASED = erasure_tables("analytics", SQLModel.metadata)
# Pending time-driven checks, one row per episode and kind (no_contact, dropout_risk): fired by
# whichever replica's clock takes them (shared/clock.py).
DUE_CHECKS = due_checks_table("analytics", SQLModel.metadata)
CLIENT_KEYS = client_keys_table("analytics", SQLModel.metadata)
