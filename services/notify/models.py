"""Tables the notify service owns."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.tables import messaging_tables


class NotifyWebhook(SQLModel, table=True):
    """A clinic front-end's endpoint for one site."""

    __tablename__ = "notify_webhooks"
    id: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    url: str = Field(max_length=2000)
    secret_sealed: str
    active: bool = True
    created_at: datetime


class NotifyDelivery(SQLModel, table=True):
    """One message to one recipient on one channel; the key makes it happen once."""

    __tablename__ = "notify_deliveries"
    __table_args__ = (UniqueConstraint("delivery_key", name="uq_notify_delivery_key"),)
    id: str = Field(primary_key=True, max_length=64)
    delivery_key: str = Field(max_length=300)
    source_event_id: str = Field(max_length=200)
    site_id: str = Field(index=True, max_length=64)
    channel: str = Field(max_length=10)
    endpoint_id: str = Field(max_length=64)
    recipient_role: str = Field(max_length=40)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="pending", index=True, max_length=10)
    attempts: int = 0
    next_attempt_at: datetime = Field(index=True)
    last_error: str | None = Field(default=None, max_length=300)
    created_at: datetime
    delivered_at: datetime | None = None


OUTBOX, INBOX = messaging_tables("notify")
