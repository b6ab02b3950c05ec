"""Rows ↔ domain objects ↔ response models: the one place feedback converts between them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from services.feedback import domain
from services.feedback.models import (
    FeedbackConsent,
    FeedbackEncounter,
    FeedbackGoal,
    FeedbackResponse,
    FeedbackSession,
)
from shared.contracts import FeedbackRecorded
from shared.instruments import Instrument
from shared.tokens import FeedbackGrant


class ResponseOut(BaseModel):
    response_id: str
    episode_id: str
    session_number: int
    instrument: str
    instrument_version: int
    respondent: str
    total: float
    subscales: dict[str, float]
    band: str | None
    in_concern_or_clinical_range: bool
    risk_items: list[str]
    late: bool
    first_total: float | None
    change_from_first: float | None
    reliable_change: str | None
    clinically_significant_change: bool | None
    amends: str | None = Field(
        default=None, description="The response this amendment replaced (None: a first answer)."
    )


class FhirResponseOut(ResponseOut):
    warnings: list[dict[str, str]] = Field(
        default_factory=list,
        description="What the sender should know but did not stop the answer (e.g. the total "
        "the form computed is not the score of its answers): field, rule, message.",
    )


class InstrumentOut(BaseModel):
    id: str
    version: int
    title: str
    kind: str
    respondents: list[str]
    items: list[str]
    item_min: float
    item_max: float
    step: float
    total_min: float
    total_max: float
    subscales: dict[str, list[str]]
    reliable_change: float
    risk_items: list[str]
    free_to_use: bool


class SessionOut(BaseModel):
    session_id: str
    episode_id: str
    session_number: int
    at: datetime
    attended: bool


class EncounterOut(BaseModel):
    episode_id: str
    session_number: int
    system: str
    value: str
    registered_at: datetime


def encounter_out(row: FeedbackEncounter) -> EncounterOut:
    return EncounterOut(
        episode_id=row.episode_id,
        session_number=row.session_number,
        system=row.system,
        value=row.value,
        registered_at=row.registered_at,
    )


class NoticeOut(BaseModel):
    """A site's confidentiality notice: show it before the questions, and send its ``version``
    back with the answers (``notice_version``: needed when a risk item is answered)."""

    version: int = Field(description="0: the deployment's default, until the site writes its own")
    text: str
    risk_contacts: list[str] = Field(description="Who is told when a risk item is answered")
    risk_within_minutes: int = Field(description="How soon they are told")


class ConsentOut(BaseModel):
    consent_id: str
    client: str
    scope: str
    granted: bool
    version: int
    recorded_at: datetime
    recorded_by: str


class LinkForm(BaseModel):
    session_number: int
    respondent_role: str
    instruments: list[InstrumentOut]
    expires_at: datetime
    notice: NoticeOut


class StoredResponse(BaseModel):
    response_id: str
    session_number: int
    respondent: str
    respondent_role: str
    instrument: str
    total: float
    items: dict[str, float]
    late: bool
    source: str
    answered_at: datetime
    amends: str | None = None
    replaced_by: str | None = Field(
        default=None, description="Set when an amendment replaced this answer: it no longer counts."
    )


def response_out(event: FeedbackRecorded) -> ResponseOut:
    """A recorded response as the API answers it (what ``feedback.recorded`` said of it)."""
    return ResponseOut(
        response_id=event.response_id,
        episode_id=event.episode_id,
        session_number=event.session_number,
        instrument=event.instrument,
        instrument_version=event.instrument_version,
        respondent=event.respondent,
        total=event.total,
        subscales=dict(event.subscales),
        band=event.band,
        in_concern_or_clinical_range=event.in_concern_or_clinical_range,
        risk_items=list(event.risk_items),
        late=event.late,
        first_total=event.first_total,
        change_from_first=event.change_from_first,
        reliable_change=event.reliable_change,
        clinically_significant_change=event.clinically_significant_change,
        amends=event.amends,
    )


def instruments_out(instruments: Iterable[Instrument]) -> list[InstrumentOut]:
    return [InstrumentOut.model_validate(i.model_dump()) for i in instruments]


def link_form(
    grant: FeedbackGrant, instruments: Iterable[Instrument], notice: domain.Notice
) -> LinkForm:
    return LinkForm(
        session_number=grant.session_number,
        respondent_role=grant.role,
        instruments=instruments_out(instruments),
        expires_at=datetime.fromtimestamp(grant.expires_at, UTC),
        notice=notice_out(notice),
    )


def notice_out(notice: domain.Notice) -> NoticeOut:
    return NoticeOut(
        version=notice.version,
        text=notice.text,
        risk_contacts=list(notice.risk_contacts),
        risk_within_minutes=notice.risk_within_minutes,
    )


def consent_out(row: FeedbackConsent) -> ConsentOut:
    return ConsentOut(
        consent_id=row.id,
        client=row.client,
        scope=row.scope,
        granted=row.granted,
        version=row.version,
        recorded_at=row.recorded_at,
        recorded_by=row.recorded_by,
    )


def stored_response(r: FeedbackResponse) -> StoredResponse:
    return StoredResponse(
        response_id=r.id,
        session_number=r.session_number,
        respondent=r.respondent,
        respondent_role=r.respondent_role,
        instrument=r.instrument,
        total=float(r.total),
        items={k: float(v) for k, v in r.items.items()},
        late=r.late,
        source=r.source,
        answered_at=r.answered_at,
        amends=r.amends,
        replaced_by=r.replaced_by,
    )


def session_out(row: FeedbackSession) -> SessionOut:
    return SessionOut(
        session_id=row.id,
        episode_id=row.episode_id,
        session_number=row.session_number,
        at=row.at,
        attended=row.status == "attended",
    )


class SessionFactOut(BaseModel):
    """A session of an episode as reported so far (issue 16)."""

    session_id: str
    episode_id: str
    session_number: int
    status: str = Field(
        description="scheduled | attended | missed | cancelled_by_client | cancelled_by_clinic"
    )
    at: datetime = Field(description="When the session is (scheduled) or was.")
    scheduled_for: datetime | None = None
    notice_hours: int | None = None
    cancelled_at: datetime | None = None
    implied_by_feedback: bool = Field(
        default=False,
        description="Attended because a feedback response for the session said so (not "
        "reported by the front-end).",
    )


def session_fact_out(row: FeedbackSession) -> SessionFactOut:
    return SessionFactOut(
        session_id=row.id,
        episode_id=row.episode_id,
        session_number=row.session_number,
        status=row.status,
        at=row.at,
        scheduled_for=row.scheduled_for,
        notice_hours=row.notice_hours,
        cancelled_at=row.cancelled_at,
        implied_by_feedback=row.implied_by_feedback,
    )


class DiaryLineOut(BaseModel):
    line: int = Field(description="The CSV file line (header = 1), or the JSON list index.")
    episode_id: str
    session_number: int
    status: str = Field(description="The session's status after the line.")
    result: str = Field(description="recorded | unchanged (the same fact was already stored)")


class DiaryOut(BaseModel):
    site_id: str
    recorded: int
    unchanged: int
    lines: list[DiaryLineOut]
    dry_run: bool = False


def recorded_event(
    row: FeedbackResponse,
    instrument: Instrument,
    scored: domain.Scored,
    change: domain.Change | None,
) -> FeedbackRecorded:
    return FeedbackRecorded.model_validate(
        {
            "response_id": row.id,
            "episode_id": row.episode_id,
            "site_id": row.site_id,
            "therapist_id": row.therapist_id,
            "session_number": row.session_number,
            "respondent": row.respondent,
            "respondent_role": row.respondent_role,
            "instrument": instrument.id,
            "instrument_version": instrument.version,
            "items": {k: float(v) for k, v in scored.items.items()},
            "total": float(scored.total),
            "subscales": {k: float(v) for k, v in scored.subscales.items()},
            "band": scored.band,
            "in_concern_or_clinical_range": scored.in_concern_or_clinical_range,
            "risk_items": sorted(scored.risk_items),
            "late": row.late,
            "first_total": float(change.first_total) if change else None,
            "change_from_first": float(change.change_from_first) if change else None,
            "reliable_change": change.reliable_change if change else None,
            "clinically_significant_change": change.clinically_significant if change else None,
            "answered_at": row.answered_at,
            "amends": row.amends,
        }
    )


class GoalOut(BaseModel):
    goal_id: str
    episode_id: str
    position: int = Field(description="The goal's order in the episode (1: set first).")
    status: str = Field(description="active | achieved | dropped")
    text: str = Field(description="The client's own words.")
    revision: int
    changed_at: datetime


def goal_out(row: FeedbackGoal, text: str) -> GoalOut:
    return GoalOut(
        goal_id=row.goal_id,
        episode_id=row.episode_id,
        position=row.position,
        status=row.status,
        text=text,
        revision=row.revision,
        changed_at=row.changed_at,
    )
