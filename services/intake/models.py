"""Tables the intake service owns."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, text
from sqlmodel import Field, SQLModel

from shared.audit import audit_table
from shared.clock import due_checks_table
from shared.deployment import deployment_table
from shared.erasure import client_keys_table, erasure_tables
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
    # The latest contact (an attended session or a feedback response), site time aside: the
    # drop-out check counts the silence from it; None until the first.
    last_contact_at: datetime | None = None
    # Set when the episode came from a confirmed match: its therapist's place was reserved
    # (caseload + 1) and is freed when the episode closes. Direct episodes reserve nothing.
    match_id: str | None = Field(default=None, max_length=64, index=True)
    intake_id: str | None = Field(default=None, max_length=64)
    # Therapists the episode had before a transfer (never offered again on rematch).
    past_therapists: list[str] | None = Field(default=None, sa_column=Column(JSON))


class IntakeTherapist(SQLModel, table=True):
    """A therapist of the registry, as the matching engine sees them (matching.Therapist)."""

    __tablename__ = "intake_therapists"
    id: str = Field(primary_key=True, max_length=64)
    sites: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    languages: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    capacity: int
    caseload: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    gender: str | None = Field(default=None, max_length=16)
    background: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    modalities: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    domains: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    telehealth: bool = False
    availability: list[dict[str, int]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    years_experience: float = 0.0
    active: bool = True
    exclusions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    accepts_new_clients_from: date | None = None
    updated_at: datetime = Field(index=True)


class IntakeIntake(SQLModel, table=True):
    """A client (or couple/family) waiting to be matched; ``request`` holds what matching needs
    (codes only: domains, languages, preferences, history), never the client reference."""

    __tablename__ = "intake_intakes"
    id: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    client: str = Field(index=True, max_length=40)  # keyed pseudonym
    client_reference_sealed: str
    request: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    members: list[dict[str, str]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    # waiting (no confirmed match yet) | matched
    status: str = Field(default="waiting", max_length=16, index=True)
    declined_therapists: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    created_at: datetime


class IntakeMatch(SQLModel, table=True):
    """A proposal: ranked options with their explanations, and the decision taken on it."""

    __tablename__ = "intake_matches"
    id: str = Field(primary_key=True, max_length=64)
    intake_id: str = Field(index=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    client: str = Field(max_length=40)
    # proposed | confirmed | declined
    status: str = Field(default="proposed", max_length=16)
    # matched | closest | none (the engine's answer)
    fit: str = Field(max_length=16)
    options: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    exclusions: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    summary: str = ""
    eligible: int = 0
    considered: int = 0
    rematch_of_episode: str | None = Field(default=None, max_length=64)
    episode_id: str | None = Field(default=None, max_length=64)
    chosen_therapist_id: str | None = Field(default=None, max_length=64)
    reason_code: str | None = Field(default=None, max_length=64)
    created_at: datetime
    decided_at: datetime | None = None


class IntakeEffectiveness(SQLModel, table=True):
    """The latest therapist.effectiveness.updated per therapist × site × problem domain."""

    __tablename__ = "intake_effectiveness"
    therapist_id: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(primary_key=True, max_length=64)
    domain: str = Field(primary_key=True, max_length=64)
    n: int
    classification: str = Field(max_length=20)
    estimates: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime


OUTBOX, INBOX = messaging_tables("intake")
# The topic prefix of the deployment these tables belong to (shared/deployment.py).
DEPLOYMENT = deployment_table("intake", SQLModel.metadata)
# Staff access to client-level data, append-only and hash-chained (shared/audit.py).
AUDIT = audit_table("intake", SQLModel.metadata)
ERASURES, ERASED = erasure_tables("intake", SQLModel.metadata)
CLIENT_KEYS = client_keys_table("intake", SQLModel.metadata)
# Pending time-driven checks (shared/clock.py): one ``silence`` check per active episode.
DUE_CHECKS = due_checks_table("intake", SQLModel.metadata)
