"""Tables the notify service owns.

Personal data (staff and client email addresses and phone numbers, feedback links) is stored
only sealed (AES-256-GCM, ``shared.crypto.seal``) and never appears in the delivery log, in
logs or in events: deliveries name their recipient by role and staff id or by pseudonym.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint, false, text
from sqlmodel import Field, SQLModel

from shared.audit import audit_table
from shared.deployment import deployment_table
from shared.erasure import client_keys_table, erasure_tables
from shared.tables import messaging_tables

# Deliveries not yet delivered nor given up: the earlier steps a later one waits for.
UNSENT = ("pending", "sending")
UNSENT_OF_ALERTS = "alert_id IS NOT NULL AND status IN ('pending', 'sending')"
# Urgent deliveries waiting for their turn (a risk response, an urgent alert): claimed first.
URGENT_PENDING = "urgent AND status = 'pending'"


class NotifyWebhook(SQLModel, table=True):
    """A clinic front-end's endpoint for one site."""

    __tablename__ = "notify_webhooks"
    id: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    url: str = Field(max_length=2000)
    secret_sealed: str
    active: bool = True
    created_at: datetime
    # During a rotation the previous secret stays valid (and signs too) until this time.
    previous_secret_sealed: str | None = None
    previous_secret_until: datetime | None = None
    disabled_at: datetime | None = None
    disabled_reason: str | None = Field(default=None, max_length=40)


class NotifyDelivery(SQLModel, table=True):
    """One message to one recipient on one channel; the key makes it happen once.

    Status: ``pending`` (due at ``next_attempt_at``) → ``sending`` (claimed by a dispatcher
    until ``lease_until``) → ``delivered`` | ``failed`` (dead letter, with ``last_error``);
    ``digest`` items wait for their window and become ``batched`` into one digest delivery;
    ``cancelled`` when no longer wanted (an invitation answered before its reminder went).
    """

    __tablename__ = "notify_deliveries"
    __table_args__ = (
        UniqueConstraint("delivery_key", name="uq_notify_delivery_key"),
        Index("ix_notify_deliveries_due", "status", "next_attempt_at"),
        # The unsent webhooks of alerts' steps, by alert and endpoint: a step's webhook waits
        # while an earlier step's to the same endpoint is unsent (small: unsent rows only).
        Index(
            "ix_notify_deliveries_alert_order",
            "alert_id",
            "endpoint_id",
            "alert_position",
            postgresql_where=text(UNSENT_OF_ALERTS),
            sqlite_where=text(UNSENT_OF_ALERTS),
        ),
        # The urgent deliveries that are due: claimed ahead of any backlog of routine ones.
        Index(
            "ix_notify_deliveries_urgent_due",
            "next_attempt_at",
            postgresql_where=text(URGENT_PENDING),
            sqlite_where=text(URGENT_PENDING),
        ),
    )
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
    kind: str = Field(default="alert", max_length=40, sa_column_kwargs={"server_default": "alert"})
    # endpoint:<id> | staff:<role>:<staff id> | client:<pseudonym> — never an address.
    recipient: str = Field(default="", max_length=120, sa_column_kwargs={"server_default": ""})
    notice_id: str | None = Field(default=None, index=True, max_length=64)
    urgent: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    digest_id: str | None = Field(default=None, index=True, max_length=64)
    lease_id: str | None = Field(default=None, max_length=32)
    lease_until: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = Field(default=None, max_length=128)
    failed_at: datetime | None = None
    # Sealed extras that must not be stored in clear (e.g. a feedback link, a bearer secret).
    sealed: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The alert whose step a webhook announces, and the step's place in the alert's life.
    alert_id: str | None = Field(default=None, max_length=64)
    alert_position: int | None = None


class NotifyNotice(SQLModel, table=True):
    """Something people must hear about (an alert, a risk response, a match, an invitation):
    its deliveries, acknowledgement and escalation hang off it. The unique key makes two
    events about the same thing (``risk.flagged`` and the ``alliance.alert`` of kind risk) one
    notice."""

    __tablename__ = "notify_notices"
    id: str = Field(primary_key=True, max_length=64)
    notice_key: str = Field(max_length=300, sa_column_kwargs={"unique": True})
    site_id: str = Field(index=True, max_length=64)
    kind: str = Field(max_length=64)
    severity: str = Field(max_length=10)
    urgent: bool = False
    episode_id: str | None = Field(default=None, max_length=64)
    therapist_id: str | None = Field(default=None, max_length=64)
    source_event_id: str = Field(max_length=200)
    source_type: str = Field(max_length=64)
    # The pseudonymous summary webhooks carry (JSON): ids, kind, rule and numbers, no text.
    data: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime
    escalate_at: datetime | None = Field(default=None, index=True)
    escalated_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = Field(default=None, max_length=128)
    # Undeliverable: no channel of the site could carry it when it arrived (no webhook, no
    # contact for its recipients). It waits (``awaiting_route_since``, cleared once routed)
    # and is delivered as soon as a route exists (``routed_at``); an urgent one is told to the
    # site's fallback address or the deployment's ops fallback once (``fallback_*``).
    undeliverable_reason: str | None = Field(default=None, max_length=40)
    awaiting_route_since: datetime | None = Field(default=None, index=True)
    routed_at: datetime | None = None
    fallback_at: datetime | None = None
    fallback_to: str | None = Field(default=None, max_length=10)


class NotifySiteFallback(SQLModel, table=True):
    """Where a site wants to hear of urgent notices none of its channels can carry: one
    address (sealed), e.g. the clinic's on-call mailbox."""

    __tablename__ = "notify_site_fallbacks"
    site_id: str = Field(primary_key=True, max_length=64)
    email_sealed: str
    updated_at: datetime
    updated_by: str = Field(max_length=128)


class NotifyPolicy(SQLModel, table=True):
    """A site's own routing policy (JSON, validated by ``RoutingPolicy``)."""

    __tablename__ = "notify_policies"
    site_id: str = Field(primary_key=True, max_length=64)
    document: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime
    updated_by: str = Field(max_length=128)


class NotifyStaffContact(SQLModel, table=True):
    """How to reach one staff member of a site in one role (addresses sealed)."""

    __tablename__ = "notify_staff_contacts"
    __table_args__ = (
        UniqueConstraint("site_id", "role", "staff_id", name="uq_notify_staff_contact"),
    )
    id: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    role: str = Field(max_length=40)
    staff_id: str = Field(max_length=64)
    email_sealed: str | None = None
    phone_sealed: str | None = None
    timezone: str = Field(default="UTC", max_length=64)
    quiet_start: str | None = Field(default=None, max_length=5)
    quiet_end: str | None = Field(default=None, max_length=5)
    active: bool = True
    created_at: datetime
    updated_at: datetime


class NotifyClientContact(SQLModel, table=True):
    """How (and whether) a client, partner or family member wants feedback invitations."""

    __tablename__ = "notify_client_contacts"
    __table_args__ = (UniqueConstraint("site_id", "respondent", name="uq_notify_client_contact"),)
    id: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    respondent: str = Field(max_length=40)  # keyed pseudonym
    email_sealed: str | None = None
    phone_sealed: str | None = None
    channel: str = Field(max_length=10)  # email | sms
    consent: bool = False
    consent_at: datetime | None = None
    timezone: str = Field(default="UTC", max_length=64)
    quiet_start: str | None = Field(default=None, max_length=5)
    quiet_end: str | None = Field(default=None, max_length=5)
    updated_at: datetime
    updated_by: str = Field(max_length=128)


class NotifyEpisode(SQLModel, table=True):
    """What notify knows of an episode (from ``match.confirmed``): its site, therapist and
    client-side members (pseudonyms and roles)."""

    __tablename__ = "notify_episodes"
    episode_id: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    therapist_id: str = Field(max_length=64)
    members: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSON))
    confirmed_at: datetime


class NotifySession(SQLModel, table=True):
    """A completed session whose invitations are planned once the episode is known."""

    __tablename__ = "notify_sessions"
    __table_args__ = (UniqueConstraint("episode_id", "session_number", name="uq_notify_session"),)
    id: str = Field(primary_key=True, max_length=64)
    episode_id: str = Field(index=True, max_length=64)
    site_id: str = Field(max_length=64)
    session_number: int
    attended: bool
    source_event_id: str = Field(max_length=200)
    at: datetime
    planned_at: datetime | None = None


class NotifyInvitation(SQLModel, table=True):
    """One respondent's feedback invitation for one session, and its one reminder."""

    __tablename__ = "notify_invitations"
    __table_args__ = (
        UniqueConstraint("episode_id", "session_number", "respondent", name="uq_notify_invitation"),
    )
    id: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    episode_id: str = Field(max_length=64)
    session_number: int
    respondent: str = Field(max_length=40)
    role: str = Field(max_length=20)
    status: str = Field(max_length=12)  # invited | answered | skipped
    skip_reason: str | None = Field(default=None, max_length=40)
    link_sealed: str | None = None
    expires_at: datetime | None = None
    remind_at: datetime | None = Field(default=None, index=True)
    reminded_at: datetime | None = None
    answered_at: datetime | None = None
    created_at: datetime


class NotifyAlertLife(SQLModel, table=True):
    """The steps of an alert's life notify has announced (shared/alert_life.py): each once, in
    order; an alert that ended (resolved or closed) is never reopened by a late opening, and a
    digest leaves it out."""

    __tablename__ = "notify_alert_lives"
    alert_id: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    announced: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    actions: int = 0
    ended_at: datetime | None = None
    updated_at: datetime
    # The key of the alert's opening notice (its escalation stops once it is followed up).
    notice_key: str | None = Field(default=None, index=True, max_length=300)


class NotifyConsent(SQLModel, table=True):
    """What a client consented to for one scope, as ``consent.changed`` last said (issue 19):
    a withdrawal stops the invitations of the client's episodes at once."""

    __tablename__ = "notify_consents"
    site_id: str = Field(primary_key=True, max_length=64)
    client: str = Field(primary_key=True, max_length=40)
    scope: str = Field(primary_key=True, max_length=32)
    granted: bool
    recorded_at: datetime


OUTBOX, INBOX = messaging_tables("notify")
# The topic prefix of the deployment these tables belong to (shared/deployment.py).
DEPLOYMENT = deployment_table("notify", SQLModel.metadata)
# Staff access to client-level data, append-only and hash-chained (shared/audit.py).
AUDIT = audit_table("notify", SQLModel.metadata)
ERASURES, ERASED = erasure_tables("notify", SQLModel.metadata)
CLIENT_KEYS = client_keys_table("notify", SQLModel.metadata)
