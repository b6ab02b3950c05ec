"""Tables the intake service owns."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from shared.tables import messaging_tables


class IntakeEpisode(SQLModel, table=True):
    """An episode of care: one client (and any partner/family) with one therapist."""

    __tablename__ = "intake_episodes"
    id: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    therapist_id: str = Field(index=True, max_length=64)
    client: str = Field(index=True, max_length=40)  # keyed pseudonym
    client_reference_sealed: str  # the clinic's own reference, encrypted
    domains: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    severity: str | None = Field(default=None, max_length=16)
    members: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSON))
    phase: str = Field(default="matched", max_length=20)
    created_at: datetime


OUTBOX, INBOX = messaging_tables("intake")
