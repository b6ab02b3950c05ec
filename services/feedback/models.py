"""Tables the feedback service owns."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from shared.audit import audit_table
from shared.deployment import deployment_table
from shared.erasure import erasure_tables
from shared.tables import messaging_tables


class FeedbackEpisode(SQLModel, table=True):
    """What feedback needs to know of an episode, learnt from ``match.confirmed``."""

    __tablename__ = "feedback_episodes"
    episode_id: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    therapist_id: str = Field(max_length=64)
    client: str = Field(max_length=40)
    members: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSON))
    confirmed_at: datetime
    # The client's age group from match.confirmed (None: unknown): the clinical range is its own.
    age_group: str | None = Field(default=None, max_length=16)
    # The episode's phase as intake publishes it (``episode.phase_changed``): closed, withdrawn
    # and transferred episodes take no new session facts. ``phase_at``: when it changed.
    phase: str = Field(default="matched", max_length=16)
    phase_at: datetime | None = None


# One standing answer per episode, session, respondent and instrument: a second one is refused
# (409), an amendment replaces the first (which keeps its row, with ``replaced_by`` set).
STANDING = "replaced_by IS NULL"


class FeedbackResponse(SQLModel, table=True):
    __tablename__ = "feedback_responses"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_feedback_idempotency_key"),
        Index(
            "uq_feedback_one_answer",
            "episode_id",
            "session_number",
            "respondent",
            "instrument",
            unique=True,
            postgresql_where=text(STANDING),
            sqlite_where=text(STANDING),
        ),
    )
    id: str = Field(primary_key=True, max_length=64)
    episode_id: str = Field(index=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    therapist_id: str = Field(max_length=64)
    session_number: int
    respondent: str = Field(max_length=40)
    respondent_role: str = Field(max_length=16)
    instrument: str = Field(max_length=64)
    instrument_version: int
    items: dict[str, str] = Field(sa_column=Column(JSON, nullable=False))
    total: str = Field(max_length=32)
    late: bool = False
    answered_at: datetime
    recorded_at: datetime
    idempotency_key: str | None = Field(default=None, max_length=200)
    # HMAC of what was asked with the key: the same key with another request is refused (422).
    request_fingerprint: str | None = Field(default=None, max_length=64)
    source: str = Field(default="api", max_length=10)  # api | fhir | link
    token_id: str | None = Field(default=None, index=True, max_length=64)
    comment_sealed: str | None = None  # free text, encrypted with the client's data key
    amends: str | None = Field(default=None, max_length=64)  # the response this one replaced
    replaced_by: str | None = Field(default=None, max_length=64)  # set when amended
    amended_by: str | None = Field(default=None, max_length=128)  # the staff member who amended
    # The version of the site's confidentiality notice the client was shown (one-time links).
    notice_version: int | None = None


class FeedbackSession(SQLModel, table=True):
    """A session of an episode as the front-end reported it (issue 16: scheduled, then one
    outcome; services/feedback/attendance.py), or as a feedback response implied it."""

    __tablename__ = "feedback_sessions"
    __table_args__ = (UniqueConstraint("episode_id", "session_number", name="uq_feedback_session"),)
    id: str = Field(primary_key=True, max_length=64)
    episode_id: str = Field(index=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    session_number: int
    at: datetime  # when the session is to take place (scheduled) or took place
    # scheduled | attended | missed | cancelled_by_client | cancelled_by_clinic
    status: str = Field(max_length=24)
    scheduled_for: datetime | None = None  # the booked time, when it was scheduled
    notice_hours: int | None = None  # a cancellation's notice, where known
    cancelled_at: datetime | None = None
    # Attended because a feedback response for the session said so, not (yet) reported.
    implied_by_feedback: bool = False
    recorded_at: datetime | None = None  # when its status last changed


class FeedbackTokenUse(SQLModel, table=True):
    """A one-time feedback link that has been used, and what it recorded."""

    __tablename__ = "feedback_token_uses"
    token_id: str = Field(primary_key=True, max_length=64)
    episode_id: str = Field(index=True, max_length=64)
    response_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    used_at: datetime


class FeedbackClientKey(SQLModel, table=True):
    """Each client's data key, sealed with the deployment key. Destroying it makes every
    comment of that client unreadable (crypto-shredding on erasure)."""

    __tablename__ = "feedback_client_keys"
    client: str = Field(primary_key=True, max_length=40)
    key_sealed: str
    created_at: datetime


class FeedbackGoal(SQLModel, table=True):
    """One revision of one of the client's own goals in an episode (issue 19): each change (text
    revised, achieved, dropped, active again) is a new revision; the latest one is the goal now.
    The text is sealed under the client's data key (erasure shreds it); only the goal's id and
    order leave this table (as the items of a ``goals`` rating)."""

    __tablename__ = "feedback_goals"
    goal_id: str = Field(primary_key=True, max_length=64)
    revision: int = Field(primary_key=True, ge=1)
    episode_id: str = Field(index=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    position: int = Field(ge=1)  # the goal's order in the episode (1 = set first)
    status: str = Field(max_length=10)  # active | achieved | dropped
    text_sealed: str
    changed_at: datetime
    changed_by: str | None = Field(default=None, max_length=128)


class FeedbackEncounter(SQLModel, table=True):
    """The Encounter identifier a front-end registered for one session of an episode (issue
    20): a QuestionnaireResponse whose ``encounter`` names it is about that session. An
    identifier names one session of the site; a session has one (registering again replaces)."""

    __tablename__ = "feedback_encounters"
    __table_args__ = (
        UniqueConstraint("site_id", "system", "value", name="uq_feedback_encounter_identifier"),
    )
    episode_id: str = Field(primary_key=True, max_length=64)
    session_number: int = Field(primary_key=True, ge=1)
    site_id: str = Field(index=True, max_length=64)
    system: str = Field(max_length=255)
    value: str = Field(max_length=128)
    registered_at: datetime
    registered_by: str = Field(max_length=128)


class FeedbackConsent(SQLModel, table=True):
    """One recording of what a client agreed to (or withdrew) for one scope (issue 19):
    append-only, the latest for a client and scope is what holds now. Nothing is erased by a
    withdrawal; erasure is asked for separately."""

    __tablename__ = "feedback_consents"
    id: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(index=True, max_length=64)
    client: str = Field(index=True, max_length=40)
    episode_id: str = Field(max_length=64)  # the episode it was recorded in
    scope: str = Field(max_length=32)  # feedback_invitations | significant_others | aggregates
    granted: bool
    version: int = Field(ge=0)  # of the consent text / confidentiality notice shown
    recorded_at: datetime
    recorded_by: str = Field(max_length=128)


class FeedbackNotice(SQLModel, table=True):
    """One version of a site's confidentiality notice, as the one-time link page shows it:
    the text and what happens when a risk item is answered (who is told, how soon). Sites edit
    it as data: each edit is a new version; responses record the version shown."""

    __tablename__ = "feedback_notices"
    site_id: str = Field(primary_key=True, max_length=64)
    version: int = Field(primary_key=True, ge=1)
    text: str = Field(max_length=4000)
    risk_contacts: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    risk_within_minutes: int = Field(ge=1)
    created_at: datetime
    created_by: str = Field(max_length=128)


OUTBOX, INBOX = messaging_tables("feedback")
# The topic prefix of the deployment these tables belong to (shared/deployment.py).
DEPLOYMENT = deployment_table("feedback", SQLModel.metadata)
# Staff access to client-level data, append-only and hash-chained (shared/audit.py).
AUDIT = audit_table("feedback", SQLModel.metadata)
ERASURES, ERASED = erasure_tables("feedback", SQLModel.metadata)
