"""Recording a response: one path for the JSON API, FHIR and one-time links, so all three
store the same rows and emit the same events.

In one transaction: the response row (with its comment sealed under the client's data key),
``risk.flagged`` first when a risk item is above 0, then ``feedback.recorded``.

One answer per respondent, instrument and session of an episode: a second one is refused (409
naming the standing one) unless it is an amendment, which marks the standing row
``replaced_by`` the new one and publishes ``feedback.recorded`` with ``amends`` (analytics then
re-evaluates the episode with the amended answer in place of the first). The database holds the
rule too (a unique index on the standing answers), so concurrent duplicates cannot both land.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.feedback import domain
from services.feedback.dependencies import FeedbackDependencies
from services.feedback.errors import (
    AlreadyAmended,
    EpisodeNotFound,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidAnswers,
    ResponseNotFound,
    already_answered,
)
from services.feedback.mapping import recorded_event
from services.feedback.models import FeedbackClientKey, FeedbackEpisode, FeedbackResponse
from services.feedback.usecases.episodes import active_goal_ids, may_see
from services.feedback.usecases.sessions import imply_attendance
from shared.auth import Staff
from shared.contracts import FEEDBACK_RECORDED, RISK_FLAGGED, FeedbackRecorded, RiskFlagged
from shared.crypto import derive_key, pseudonymise, seal
from shared.erasure import ClientKeys
from shared.errors import Invalid
from shared.events import Event
from shared.instruments import Instrument
from shared.settings import Settings
from shared.vocabulary import UNKNOWN_CODE, unknown_code_message

MayRecord = Callable[[FeedbackEpisode], bool]


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
    amends: str | None = None  # the standing response this one replaces (amendment route)
    amends_standing: bool = False  # replaces the standing answer, if any (FHIR ``amended``)
    amended_by: str | None = None  # the staff member amending
    notice_version: int | None = None  # the confidentiality notice shown (one-time links)


@dataclass(frozen=True)
class Recorded:
    row: FeedbackResponse
    event: FeedbackRecorded


class HasSettings(Protocol):
    """The service's dependencies, or its runtime: anything that carries the settings."""

    @property
    def settings(self) -> Settings: ...


def fingerprint(settings: Settings, submission: Submission) -> str:
    """A keyed hash of what was asked (not of how it was sent): a retry with the same
    Idempotency-Key must ask the same thing. Keyed, because the comment is free text."""
    asked = {
        "episode_id": submission.episode_id,
        "session_number": submission.session_number,
        "respondent_role": submission.respondent_role,
        "respondent_ref": submission.respondent_ref,
        "instrument": submission.instrument,
        "items": {k: _canonical(v) for k, v in submission.items.items()},
        "answered_at": submission.answered_at.isoformat() if submission.answered_at else None,
        "comment": submission.comment,
        "amends": submission.amends,
        "amends_standing": submission.amends_standing,
    }
    key = derive_key(settings.pseudonym_key.get_secret_value(), "feedback-idempotency")
    text = json.dumps(asked, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _canonical(value: object) -> object:
    """9, 9.0 and 9.00 are the same answer."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = Decimal(str(value))
        return str(number.normalize()) if number.is_finite() else str(value)
    return value


def checked(deps: FeedbackDependencies, submission: Submission) -> tuple[Instrument, domain.Scored]:
    """Validate the answers against the instrument; 422 naming every item and rule."""
    instrument = deps.instruments.get(submission.instrument)
    if instrument is None:
        valid = sorted(deps.instruments)
        message = unknown_code_message(submission.instrument, valid, "instrument")
        raise InvalidAnswers(
            f"instrument: {message}",
            errors=[
                {"field": "instrument", "rule": UNKNOWN_CODE, "message": message, "valid": valid}
            ],
        )
    problems = domain.check_answers(instrument, submission.respondent_role, submission.items)
    if problems:
        raise _invalid(problems)
    return instrument, domain.score(instrument, submission.items)


async def check_goal_ratings(
    session: AsyncSession,
    instrument: Instrument,
    episode: FeedbackEpisode,
    submission: Submission,
) -> None:
    """A rating for a goal the episode does not have (or no longer has active): 422 naming it."""
    active = await active_goal_ids(session, episode.episode_id)
    problems = domain.check_answers(
        instrument, submission.respondent_role, submission.items, active
    )
    if problems:
        raise _invalid(problems)


def _invalid(problems: list[domain.AnswerError]) -> InvalidAnswers:
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return InvalidAnswers(
        f"{first.field}: {first.message}{more}",
        errors=[{"field": p.field, "rule": p.rule, "message": p.message} for p in problems],
    )


def _respondent(key: str, episode: FeedbackEpisode, submission: Submission) -> str:
    if submission.respondent is not None:
        return submission.respondent
    if submission.respondent_role == "client":
        return episode.client
    if submission.respondent_role == "therapist":
        return pseudonymise(key, f"therapist:{episode.therapist_id}")
    if submission.respondent_ref is None:
        raise Invalid(
            "respondent_ref: a partner or family member needs the front-end's reference for them",
            errors=[{"field": "respondent_ref", "rule": "required_for_role"}],
        )
    return pseudonymise(key, f"{episode.episode_id}:{submission.respondent_ref}")


def client_keys(settings: Settings) -> ClientKeys:
    """Each client's data key, wrapped by the service key (erasure deletes it)."""
    master = derive_key(settings.encryption_key.get_secret_value(), "feedback-client-keys")
    return ClientKeys(FeedbackClientKey.__table__, master)  # type: ignore[attr-defined]


async def client_key(owner: HasSettings, session: AsyncSession, client: str) -> bytes:
    """The client's data key (created on first use), which seals their comments."""
    return await client_keys(owner.settings).key(session, client)


async def record(
    deps: FeedbackDependencies,
    session: AsyncSession,
    submission: Submission,
    may_record: MayRecord,
) -> Recorded:
    """Store and emit one response inside the caller's transaction."""
    instrument, scored = checked(deps, submission)
    episode = await session.get(FeedbackEpisode, submission.episode_id)
    if episode is None or not may_record(episode):
        raise EpisodeNotFound(
            f"No episode {submission.episode_id!r} that you may record for.",
            errors=[{"field": "episode_id", "rule": "not_found"}],
        )
    if instrument.open_items is not None:  # goal ratings: the episode's active goals only
        await check_goal_ratings(session, instrument, episode, submission)
    if episode.age_group is not None:  # the clinical range is the client's own
        scored = domain.score(instrument, submission.items, episode.age_group)
    key = deps.settings.pseudonym_key.get_secret_value()
    respondent = _respondent(key, episode, submission)
    series = await _series(session, episode.episode_id, respondent, instrument.id)
    standing = next((s for s in series if s.session_number == submission.session_number), None)
    row_id = str(uuid.uuid4())
    replaced = await _replace(session, submission, standing, row_id)
    if replaced is not None:
        series = [s for s in series if s.id != replaced.id]
    first = series[0] if series else None
    now = datetime.now(UTC)
    row = FeedbackResponse(
        id=row_id,
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
        late=any(s.session_number > submission.session_number for s in series),
        answered_at=submission.answered_at or now,
        recorded_at=now,
        idempotency_key=submission.idempotency_key,
        request_fingerprint=(
            fingerprint(deps.settings, submission) if submission.idempotency_key else None
        ),
        source=submission.source,
        token_id=submission.token_id,
        amends=replaced.id if replaced else None,
        amended_by=submission.amended_by if replaced else None,
        notice_version=submission.notice_version,
    )
    if submission.comment:
        row.comment_sealed = seal(
            await client_key(deps, session, episode.client), submission.comment, associated=row.id
        )
    session.add(row)
    change = None
    if first is not None and first.session_number <= submission.session_number:
        change = domain.change_from_first(
            instrument, Decimal(first.total), scored.total, episode.age_group
        )
    event = recorded_event(row, instrument, scored, change)
    source = deps.runtime.outbox.source
    events: list[Event[Any]] = []
    if _flags_risk(scored, replaced):  # the urgent event goes out first
        events.append(Event(RISK_FLAGGED, _risk_flagged(row, scored), source=source))
    events.append(Event(FEEDBACK_RECORDED, event, source=source))
    await deps.runtime.emit(session, *events)
    await imply_attendance(deps, session, episode, submission.session_number, row.answered_at)
    return Recorded(row, event)


async def _series(
    session: AsyncSession, episode_id: str, respondent: str, instrument: str
) -> Sequence[Any]:
    """In one query, the standing answers of this respondent on this instrument in the episode
    (id, session number, total), oldest session first: is a later session already in (this one
    is late), what was the first score (change from first), and is there a standing answer for
    this session already (refused, or replaced by an amendment)?"""
    return (
        await session.execute(
            select(FeedbackResponse.id, FeedbackResponse.session_number, FeedbackResponse.total)
            .where(
                FeedbackResponse.episode_id == episode_id,
                FeedbackResponse.respondent == respondent,
                FeedbackResponse.instrument == instrument,
                col(FeedbackResponse.replaced_by).is_(None),
            )
            .order_by(col(FeedbackResponse.session_number), col(FeedbackResponse.recorded_at))
        )
    ).all()


def _risk_flagged(row: FeedbackResponse, scored: domain.Scored) -> RiskFlagged:
    return RiskFlagged(
        response_id=row.id,
        episode_id=row.episode_id,
        site_id=row.site_id,
        therapist_id=row.therapist_id,
        session_number=row.session_number,
        respondent=row.respondent,
        respondent_role=row.respondent_role,
        instrument=row.instrument,
        risk_items={k: float(v) for k, v in scored.risk_items.items()},
        answered_at=row.answered_at,
    )


async def standing_answer(
    deps: FeedbackDependencies, session: AsyncSession, submission: Submission
) -> FeedbackResponse | None:
    """The answer that stands for the submission's episode, session, respondent and
    instrument (after a concurrent duplicate lost the race to the unique index)."""
    episode = await session.get(FeedbackEpisode, submission.episode_id)
    if episode is None:
        return None
    key = deps.settings.pseudonym_key.get_secret_value()
    return (
        await session.exec(
            select(FeedbackResponse).where(
                FeedbackResponse.episode_id == episode.episode_id,
                FeedbackResponse.session_number == submission.session_number,
                FeedbackResponse.respondent == _respondent(key, episode, submission),
                FeedbackResponse.instrument == submission.instrument,
                col(FeedbackResponse.replaced_by).is_(None),
            )
        )
    ).first()


async def _replace(
    session: AsyncSession, submission: Submission, standing: Any, row_id: str
) -> FeedbackResponse | None:
    """The standing answer this submission replaces, marked ``replaced_by`` the new row (None
    when there is nothing to replace). A second answer that is no amendment: 409."""
    if submission.amends is not None:
        if standing is None:
            raise AlreadyAmended(
                f"Response {submission.amends} no longer stands: it was amended already.",
                errors=[{"field": "response_id", "rule": "already_amended"}],
            )
        if standing.id != submission.amends:
            raise already_answered(standing.id)
    elif standing is None:
        return None
    elif not submission.amends_standing:
        raise already_answered(standing.id)
    marked = await session.execute(
        update(FeedbackResponse)
        .where(
            col(FeedbackResponse.id) == standing.id,
            col(FeedbackResponse.replaced_by).is_(None),
        )
        .values(replaced_by=row_id)
    )
    if getattr(marked, "rowcount", 1) != 1:  # amended concurrently
        raise already_answered(standing.id)
    return await session.get(FeedbackResponse, standing.id)


def _flags_risk(scored: domain.Scored, replaced: FeedbackResponse | None) -> bool:
    """A risk item above 0 is flagged; an amendment flags it again only when it raises a risk
    item above what the replaced answer said (the first answer's flag already went out)."""
    if replaced is None:
        return bool(scored.risk_items)
    before = {k: Decimal(v) for k, v in replaced.items.items()}
    return any(value > before.get(item, Decimal(0)) for item, value in scored.risk_items.items())


async def replay(
    deps: FeedbackDependencies, session: AsyncSession, rows: Sequence[FeedbackResponse]
) -> list[Recorded]:
    """Rebuild the result of responses already recorded (idempotent resubmission)."""
    results = []
    for row in rows:
        instrument = deps.instruments[row.instrument]
        episode = await session.get(FeedbackEpisode, row.episode_id)
        age_group = episode.age_group if episode is not None else None
        scored = domain.score(instrument, {k: Decimal(v) for k, v in row.items.items()}, age_group)
        first = (
            await session.exec(
                select(FeedbackResponse)
                .where(
                    FeedbackResponse.episode_id == row.episode_id,
                    FeedbackResponse.respondent == row.respondent,
                    FeedbackResponse.instrument == row.instrument,
                    col(FeedbackResponse.replaced_by).is_(None)
                    | (col(FeedbackResponse.id) == row.id),
                )
                .order_by(col(FeedbackResponse.session_number), col(FeedbackResponse.recorded_at))
                .limit(1)
            )
        ).first()
        change = None
        if first is not None and first.id != row.id and first.session_number <= row.session_number:
            change = domain.change_from_first(
                instrument, Decimal(first.total), scored.total, age_group
            )
        results.append(Recorded(row, recorded_event(row, instrument, scored, change)))
    return results


async def record_response(
    deps: FeedbackDependencies, staff: Staff, submission: Submission
) -> tuple[Recorded, bool]:
    """Record one response a member of staff sent (JSON, FHIR or an amendment), in its own
    transaction; with whether it is the replay of an earlier request (same Idempotency-Key)."""
    runtime = deps.runtime
    if submission.idempotency_key is not None:
        earlier = await answer_to_retry(deps, staff, submission)
        if earlier is not None:
            return earlier, True
    try:
        async with runtime.transaction() as session:
            return await record(deps, session, submission, may_see(staff)), False
    except IntegrityError:
        # A concurrent request won: the same Idempotency-Key (a retry), or another answer for
        # the same episode, session, respondent and instrument (the unique index held).
        if submission.idempotency_key is not None:
            earlier = await answer_to_retry(deps, staff, submission)
            if earlier is not None:
                return earlier, True
        async with runtime.sessionmaker() as session:
            standing = await standing_answer(deps, session, submission)
        if standing is None:
            raise
        raise already_answered(standing.id) from None


async def answer_to_retry(
    deps: FeedbackDependencies, staff: Staff, submission: Submission
) -> Recorded | None:
    """The original answer to a retry (None: the key is new). The key must come with the same
    request: another request under a used key is refused (422), not answered with the first."""
    async with deps.runtime.sessionmaker() as session:
        row = (
            await session.exec(
                select(FeedbackResponse).where(
                    FeedbackResponse.idempotency_key == submission.idempotency_key
                )
            )
        ).first()
        if row is None:
            return None
        episode = await session.get(FeedbackEpisode, row.episode_id)
        if episode is None or not may_see(staff)(episode):
            # Not yours (another site, or another therapist's client): say nothing about it.
            raise IdempotencyKeyInUse(
                "This Idempotency-Key was already used for another request.",
                errors=[{"field": "Idempotency-Key", "rule": "reused"}],
            )
        if row.request_fingerprint not in (None, fingerprint(deps.settings, submission)):
            raise IdempotencyKeyReused(
                "Idempotency-Key: this key was used for a request with other content; a retry "
                "must repeat the same request, and a new request needs a new key.",
                errors=[{"field": "Idempotency-Key", "rule": "same_key_same_request"}],
            )
        return (await replay(deps, session, [row]))[0]


async def response_and_episode(
    deps: FeedbackDependencies, staff: Staff, response_id: str
) -> tuple[FeedbackResponse, FeedbackEpisode]:
    """A stored response the caller may see, and its episode."""
    async with deps.runtime.sessionmaker() as session:
        row = await session.get(FeedbackResponse, response_id)
        episode = await session.get(FeedbackEpisode, row.episode_id) if row else None
    if row is None or episode is None or not may_see(staff)(episode):
        raise ResponseNotFound(
            f"No response {response_id!r} that you may see.",
            errors=[{"field": "response_id", "rule": "not_found"}],
        )
    return row, episode


def amendment(
    original: FeedbackResponse,
    staff: Staff,
    items: dict[str, object],
    answered_at: datetime | None,
    comment: str | None,
    idempotency_key: str | None,
) -> Submission:
    """New answers for ``original``: same episode, session, respondent and instrument."""
    return Submission(
        episode_id=original.episode_id,
        session_number=original.session_number,
        respondent_role=original.respondent_role,
        respondent=original.respondent,
        instrument=original.instrument,
        items=items,
        answered_at=answered_at,
        comment=comment,
        idempotency_key=idempotency_key,
        amends=original.id,
        amended_by=staff.subject,
    )
