"""Recording a response: one path for the JSON API, FHIR and one-time links, so all three
store the same rows and emit the same events.

In one transaction: the response row (with its comment sealed under the client's data key),
``risk.flagged`` first when a risk item is above 0, then ``feedback.recorded``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.feedback import domain
from services.feedback.models import FeedbackClientKey, FeedbackEpisode, FeedbackResponse
from shared.contracts import FEEDBACK_RECORDED, RISK_FLAGGED, FeedbackRecorded, RiskFlagged
from shared.crypto import derive_key, pseudonymise, seal
from shared.db import all_sites, use_sites
from shared.erasure import ClientKeys
from shared.events import Event
from shared.instruments import Instrument
from shared.problems import Problem
from shared.runtime import ServiceRuntime
from shared.vocabulary import UNKNOWN_CODE, unknown_code_message


@dataclass(frozen=True)
class Submission:
    episode_id: str
    session_number: int
    respondent_role: str
    instrument: str
    items: dict[str, object]
    respondent_ref: str | None = None
    respondent: str | None = None  # a pseudonym already known (one-time links)
    answered_at: datetime | None = None
    comment: str | None = None
    idempotency_key: str | None = None
    source: str = "api"
    token_id: str | None = None


@dataclass(frozen=True)
class Recorded:
    row: FeedbackResponse
    event: FeedbackRecorded


def instruments_of(runtime: ServiceRuntime) -> dict[str, Instrument]:
    loaded: dict[str, Instrument] = runtime.state["instruments"]
    return loaded


def checked(runtime: ServiceRuntime, submission: Submission) -> tuple[Instrument, domain.Scored]:
    """Validate the answers against the instrument; 422 naming every item and rule."""
    instrument = instruments_of(runtime).get(submission.instrument)
    if instrument is None:
        valid = sorted(instruments_of(runtime))
        message = unknown_code_message(submission.instrument, valid, "instrument")
        raise Problem(
            422,
            "Invalid answers",
            f"instrument: {message}",
            errors=[
                {"field": "instrument", "rule": UNKNOWN_CODE, "message": message, "valid": valid}
            ],
        )
    problems = domain.check_answers(instrument, submission.respondent_role, submission.items)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise Problem(
            422,
            "Invalid answers",
            f"{first.field}: {first.message}{more}",
            errors=[{"field": p.field, "rule": p.rule, "message": p.message} for p in problems],
        )
    return instrument, domain.score(instrument, submission.items)


def _respondent(key: str, episode: FeedbackEpisode, submission: Submission) -> str:
    if submission.respondent is not None:
        return submission.respondent
    if submission.respondent_role == "client":
        return episode.client
    if submission.respondent_role == "therapist":
        return pseudonymise(key, f"therapist:{episode.therapist_id}")
    if submission.respondent_ref is None:
        raise Problem(
            422,
            "Invalid request",
            "respondent_ref: a partner or family member needs the front-end's reference for them",
            errors=[{"field": "respondent_ref", "rule": "required_for_role"}],
        )
    return pseudonymise(key, f"{episode.episode_id}:{submission.respondent_ref}")


def client_keys(runtime: ServiceRuntime) -> ClientKeys:
    """Each client's data key, wrapped by the service key (erasure deletes it)."""
    master = derive_key(runtime.settings.encryption_key.get_secret_value(), "feedback-client-keys")
    return ClientKeys(FeedbackClientKey.__table__, master)  # type: ignore[attr-defined]


async def client_key(runtime: ServiceRuntime, session: AsyncSession, client: str) -> bytes:
    return await client_keys(runtime).key(session, client)


async def use_episode_site(runtime: ServiceRuntime, episode_id: str) -> None:
    """A one-time link carries no staff token: its (verified) episode decides the site the
    request's transactions see (row-level security)."""
    with all_sites():
        async with runtime.sessionmaker() as session:
            site = await session.scalar(
                select(FeedbackEpisode.site_id).where(FeedbackEpisode.episode_id == episode_id)
            )
    use_sites([site] if site else [])


async def record(
    runtime: ServiceRuntime,
    session: AsyncSession,
    submission: Submission,
    may_record: Callable[[FeedbackEpisode], bool],
) -> Recorded:
    """Store and emit one response inside the caller's transaction."""
    instrument, scored = checked(runtime, submission)
    episode = await session.get(FeedbackEpisode, submission.episode_id)
    if episode is None or not may_record(episode):
        raise Problem(
            404,
            "Episode not found",
            f"No episode {submission.episode_id!r} that you may record for.",
            errors=[{"field": "episode_id", "rule": "not_found"}],
        )
    key = runtime.settings.pseudonym_key.get_secret_value()
    respondent = _respondent(key, episode, submission)
    # One query for both: is a later session already in (this one is late), and what was
    # the first score of this respondent on this instrument (change from first)?
    series = (
        await session.execute(
            select(FeedbackResponse.session_number, FeedbackResponse.total)
            .where(
                FeedbackResponse.episode_id == episode.episode_id,
                FeedbackResponse.respondent == respondent,
                FeedbackResponse.instrument == instrument.id,
            )
            .order_by(col(FeedbackResponse.session_number), col(FeedbackResponse.recorded_at))
        )
    ).all()
    later = any(number > submission.session_number for number, _ in series)
    first = series[0] if series else None
    now = datetime.now(UTC)
    row = FeedbackResponse(
        id=str(uuid.uuid4()),
        episode_id=episode.episode_id,
        site_id=episode.site_id,
        therapist_id=episode.therapist_id,
        session_number=submission.session_number,
        respondent=respondent,
        respondent_role=submission.respondent_role,
        instrument=instrument.id,
        instrument_version=instrument.version,
        items={k: str(v) for k, v in scored.items.items()},
        total=str(scored.total),
        late=later,
        answered_at=submission.answered_at or now,
        recorded_at=now,
        idempotency_key=submission.idempotency_key,
        source=submission.source,
        token_id=submission.token_id,
    )
    if submission.comment:
        row.comment_sealed = seal(
            await client_key(runtime, session, episode.client),
            submission.comment,
            associated=row.id,
        )
    session.add(row)
    change = None
    if first is not None and first.session_number <= submission.session_number:
        change = domain.change_from_first(instrument, Decimal(first.total), scored.total)
    event = recorded_event(row, instrument, scored, change)
    events: list[Event[Any]] = []
    if scored.risk_items:  # the urgent event goes out first
        events.append(
            Event(
                RISK_FLAGGED,
                RiskFlagged(
                    response_id=row.id,
                    episode_id=row.episode_id,
                    site_id=row.site_id,
                    therapist_id=row.therapist_id,
                    session_number=row.session_number,
                    respondent=respondent,
                    respondent_role=event.respondent_role,
                    instrument=instrument.id,
                    risk_items={k: float(v) for k, v in scored.risk_items.items()},
                    answered_at=row.answered_at,
                ),
                source=runtime.outbox.source,
            )
        )
    events.append(Event(FEEDBACK_RECORDED, event, source=runtime.outbox.source))
    await runtime.emit(session, *events)
    return Recorded(row, event)


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
        }
    )


async def replay(
    runtime: ServiceRuntime, session: AsyncSession, rows: Sequence[FeedbackResponse]
) -> list[Recorded]:
    """Rebuild the result of responses already recorded (idempotent resubmission)."""
    results = []
    for row in rows:
        instrument = instruments_of(runtime)[row.instrument]
        scored = domain.score(instrument, {k: Decimal(v) for k, v in row.items.items()})
        first = (
            await session.exec(
                select(FeedbackResponse)
                .where(
                    FeedbackResponse.episode_id == row.episode_id,
                    FeedbackResponse.respondent == row.respondent,
                    FeedbackResponse.instrument == row.instrument,
                )
                .order_by(col(FeedbackResponse.session_number), col(FeedbackResponse.recorded_at))
                .limit(1)
            )
        ).first()
        change = None
        if first is not None and first.id != row.id and first.session_number <= row.session_number:
            change = domain.change_from_first(instrument, Decimal(first.total), scored.total)
        results.append(Recorded(row, recorded_event(row, instrument, scored, change)))
    return results
