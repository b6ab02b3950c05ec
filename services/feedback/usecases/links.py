"""One-time feedback links: what a link asks, and the client's answers through it (no login:
the signed link is the authority, and its episode decides the site the request sees)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.feedback import domain
from services.feedback.dependencies import FeedbackDependencies
from services.feedback.errors import (
    InvalidAnswers,
    LinkExpired,
    LinkNotValid,
    LinkUsed,
    already_answered,
)
from services.feedback.models import FeedbackEpisode, FeedbackResponse, FeedbackTokenUse
from services.feedback.usecases.consents import (
    check_notice_shown,
    require_link_consent,
    site_notice_now,
)
from services.feedback.usecases.responses import (
    Recorded,
    Submission,
    record,
    replay,
    standing_answer,
)
from shared.db import all_sites, use_sites
from shared.instruments import Instrument
from shared.tokens import FeedbackGrant, TokenError, verify


@dataclass(frozen=True)
class QuestionnaireAnswers:
    instrument: str
    items: dict[str, object]


@dataclass(frozen=True)
class LinkQuestions:
    grant: FeedbackGrant
    instruments: list[Instrument]
    notice: domain.Notice  # the site's confidentiality notice, shown before any answer


async def use_episode_site(deps: FeedbackDependencies, episode_id: str) -> None:
    """A one-time link carries no staff token: its (verified) episode decides the site the
    request's transactions see (row-level security)."""
    with all_sites():
        async with deps.runtime.sessionmaker() as session:
            site = await session.scalar(
                select(FeedbackEpisode.site_id).where(FeedbackEpisode.episode_id == episode_id)
            )
    use_sites([site] if site else [])


async def grant_of(deps: FeedbackDependencies, token: str) -> FeedbackGrant:
    """What the link grants (403 forged or malformed, 410 expired)."""
    try:
        grant = verify(deps.settings.encryption_key.get_secret_value(), token)
        await use_episode_site(deps, grant.episode_id)
        return grant
    except TokenError as error:
        refusal = LinkExpired if error.rule == "expired" else LinkNotValid
        raise refusal(str(error), errors=[{"field": "token", "rule": error.rule}]) from None


async def link_questions(deps: FeedbackDependencies, token: str) -> LinkQuestions:
    """The session, role and questionnaires a link asks for, with the site's confidentiality
    notice (410 once used; 403 once the client withdrew consent)."""
    grant = await grant_of(deps, token)
    async with deps.runtime.sessionmaker() as session:
        used = await session.get(FeedbackTokenUse, grant.token_id)
        if used is not None:
            raise LinkUsed(
                "This link has already been used; thank you for your answers.",
                errors=[{"field": "token", "rule": "used"}],
            )
        await require_link_consent(session, grant)
        episode = await session.get(FeedbackEpisode, grant.episode_id)
        notice = (
            await site_notice_now(session, episode.site_id) if episode else domain.DEFAULT_NOTICE
        )
    known = [deps.instruments[i] for i in grant.instruments if i in deps.instruments]
    return LinkQuestions(grant, known, notice)


async def answer_link(
    deps: FeedbackDependencies,
    token: str,
    answers: list[QuestionnaireAnswers],
    comment: str | None,
    notice_version: int | None = None,
) -> tuple[list[Recorded], bool]:
    """Record the answers given through a link, all in one transaction, and mark the link used;
    with whether they are the replay of answers already recorded through it. Each response
    records the version of the confidentiality notice the client was shown (needed for a risk
    item); a client who withdrew consent is refused (403), nothing stored."""
    grant = await grant_of(deps, token)
    for index, answer in enumerate(answers):
        if answer.instrument not in grant.instruments:
            raise InvalidAnswers(
                f"responses.{index}.instrument: this link does not ask for {answer.instrument!r}",
                errors=[{"field": f"responses.{index}.instrument", "rule": "not_in_link"}],
            )
    submissions = [
        Submission(
            episode_id=grant.episode_id,
            session_number=grant.session_number,
            respondent_role=grant.role,
            respondent=grant.respondent,
            instrument=answer.instrument,
            items=answer.items,
            comment=comment if index == 0 else None,
            source="link",
            token_id=grant.token_id,
            notice_version=notice_version,
        )
        for index, answer in enumerate(answers)
    ]
    runtime = deps.runtime
    try:
        async with runtime.transaction() as session:
            if await session.get(FeedbackTokenUse, grant.token_id) is None:
                await require_link_consent(session, grant)
                await _notice_shown(deps, session, grant, answers, notice_version)
                results = [
                    await record(deps, session, submission, lambda _: True)
                    for submission in submissions
                ]
                session.add(
                    FeedbackTokenUse(
                        token_id=grant.token_id,
                        episode_id=grant.episode_id,
                        response_ids=[r.row.id for r in results],
                        used_at=datetime.now(UTC),
                    )
                )
                return results, False
    except IntegrityError:
        # Answered concurrently through the same link: return what was recorded. Or another
        # answer for the same session landed first (the unique index held): 409, link unused.
        async with runtime.sessionmaker() as session:
            if await session.get(FeedbackTokenUse, grant.token_id) is None:
                for submission in submissions:
                    standing = await standing_answer(deps, session, submission)
                    if standing is not None:
                        raise already_answered(standing.id) from None
                raise
    async with runtime.sessionmaker() as session:
        rows = (
            await session.exec(
                select(FeedbackResponse).where(FeedbackResponse.token_id == grant.token_id)
            )
        ).all()
        return await replay(deps, session, rows), True


async def _notice_shown(
    deps: FeedbackDependencies,
    session: AsyncSession,
    grant: FeedbackGrant,
    answers: list[QuestionnaireAnswers],
    version: int | None,
) -> None:
    episode = await session.get(FeedbackEpisode, grant.episode_id)
    site = episode.site_id if episode else ""
    asked = [deps.instruments[a.instrument] for a in answers if a.instrument in deps.instruments]
    await check_notice_shown(session, site, version, asked)
