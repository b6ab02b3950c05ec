"""Tables the analytics service owns."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from shared.tables import messaging_tables


class AnalyticsScore(SQLModel, table=True):
    """One scored response in its respondent's series."""

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
    id: str = Field(primary_key=True, max_length=64)
    episode_id: str = Field(index=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    therapist_id: str = Field(index=True, max_length=64)
    kind: str = Field(max_length=40)
    severity: str = Field(max_length=10)
    rule: str = Field(max_length=64)
    respondent: str | None = Field(default=None, max_length=40)
    instrument: str | None = Field(default=None, max_length=64)
    status: str = Field(default="open", index=True, max_length=10)
    opened_session: int
    resolved_session: int | None = None
    inputs: dict[str, float | int | str | bool | None] = Field(
        default_factory=dict, sa_column=Column(JSON)
    )
    suggestion_code: str = Field(max_length=64)
    opened_at: datetime
    resolved_at: datetime | None = None


OUTBOX, INBOX = messaging_tables("analytics")
