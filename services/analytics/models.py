"""Tables the analytics service owns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from shared.audit import audit_table
from shared.clock import due_checks_table
from shared.deployment import deployment_table
from shared.erasure import erasure_tables, table_of
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
    when. No note is stored (analytics holds no client keys to seal one under)."""

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


# The same tables in SQLAlchemy Core, for the hot path (every response) and bulk statements.
EPISODES = table_of(AnalyticsEpisode)
SCORES = table_of(AnalyticsScore)
ALERTS = table_of(AnalyticsAlert)
ALERT_ACTIONS = table_of(AnalyticsAlertAction)
CLOSED_EPISODES = table_of(AnalyticsClosedEpisode)

OUTBOX, INBOX = messaging_tables("analytics")
# The topic prefix of the deployment these tables belong to (shared/deployment.py).
DEPLOYMENT = deployment_table("analytics", SQLModel.metadata)
# Staff access to client-level data, append-only and hash-chained (shared/audit.py).
AUDIT = audit_table("analytics", SQLModel.metadata)
ERASURES, ERASED = erasure_tables("analytics", SQLModel.metadata)
# Pending time-driven checks, one row per episode and kind (no_contact, dropout_risk): fired by
# whichever replica's clock takes them (shared/clock.py).
DUE_CHECKS = due_checks_table("analytics", SQLModel.metadata)
