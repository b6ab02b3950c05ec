"""The FHIR edge's use cases: QuestionnaireResponses recorded one at a time or as a Bundle
(each entry in its own transaction, answered with its own outcome), checked without storing
(``$validate``), and scored responses read back as Observations.

Context a resource carries in standard elements is resolved here: ``subject`` (the clinic's
client reference, the one intake was given) names the client; feedback knows a client only by
pseudonym, so the reference is pseudonymised as intake does (``client:<site>:<reference>``) for
each of the caller's sites and matched against the episodes feedback learnt from
``match.confirmed``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import col, select

from services.feedback import domain, fhir
from services.feedback.dependencies import FeedbackDependencies
from services.feedback.errors import EpisodeNotFound
from services.feedback.models import FeedbackEpisode, FeedbackResponse
from services.feedback.usecases import encounters, responses
from services.feedback.usecases.episodes import may_see
from shared import fhir_observations
from shared.auth import Staff
from shared.crypto import pseudonymise


@dataclass(frozen=True)
class Checked:
    """A QuestionnaireResponse read, placed in its episode and scored (nothing stored)."""

    submission: responses.Submission
    scored: domain.Scored
    warnings: list[dict[str, str]]


def submission(
    parsed: fhir.ParsedResponse, staff: Staff, idempotency_key: str | None
) -> responses.Submission:
    return responses.Submission(
        episode_id=parsed.episode_id or "",
        session_number=parsed.session_number or 0,  # placed_by_encounter has set it
        respondent_role=parsed.respondent_role,
        respondent_ref=parsed.respondent_ref,
        instrument=parsed.instrument,
        items=parsed.items,
        answered_at=parsed.answered_at(),
        idempotency_key=idempotency_key,
        source="fhir",
        amends_standing=parsed.amended,
        amended_by=staff.subject if parsed.amended else None,
    )


async def episode_of_subject(
    deps: FeedbackDependencies, staff: Staff, parsed: fhir.ParsedResponse
) -> str:
    """The episode the resource is about: the extension's, which the subject (when given) must
    be the client of; else the one episode of the subject's client that the caller may see."""
    if parsed.client_reference is None:
        return parsed.episode_id or ""
    key = deps.settings.pseudonym_key.get_secret_value()
    clients = {
        pseudonymise(key, f"client:{site}:{parsed.client_reference}") for site in staff.sites
    }
    async with deps.runtime.sessionmaker() as session:
        episodes = [
            e
            for e in (
                await session.exec(
                    select(FeedbackEpisode).where(col(FeedbackEpisode.client).in_(clients))
                )
            ).all()
            if may_see(staff)(e)
        ]
    if parsed.episode_id is not None:
        if any(e.episode_id == parsed.episode_id for e in episodes):
            return parsed.episode_id
        raise fhir.FhirError(
            "subject", "subject_mismatch", "the subject is not the client of the named episode"
        )
    if len(episodes) == 1:
        return episodes[0].episode_id
    if not episodes:
        raise EpisodeNotFound(
            "No episode of this subject that you may record for.",
            errors=[{"field": "subject", "rule": "not_found"}],
        )
    raise fhir.FhirError(
        "subject",
        "ambiguous_subject",
        f"the client has {len(episodes)} episodes: name one with the "
        f"{fhir_observations.EXT_EPISODE} extension",
    )


async def placed_by_encounter(
    deps: FeedbackDependencies, staff: Staff, parsed: fhir.ParsedResponse
) -> fhir.ParsedResponse:
    """A response named by its ``encounter`` gets the episode and session registered for it
    (an episode the extension names must be the same); refused when none was registered."""
    if parsed.session_number is not None or parsed.encounter is None:
        return parsed
    found = await encounters.session_of_encounter(deps, staff, *parsed.encounter)
    if found is None:
        raise fhir.FhirError(
            "encounter",
            "unknown_encounter",
            "no session has this Encounter identifier: register it with PUT "
            "/feedback/episodes/{episode_id}/sessions/{session_number}/encounter, or send the "
            f"session number extension ({fhir_observations.EXT_SESSION})",
        )
    episode_id, session_number = found
    if parsed.episode_id is not None and parsed.episode_id != episode_id:
        raise fhir.FhirError(
            "encounter", "encounter_mismatch", "the encounter is of another episode"
        )
    return replace(parsed, episode_id=episode_id, session_number=session_number)


async def visible_episode(
    deps: FeedbackDependencies, staff: Staff, episode_id: str, field: str
) -> FeedbackEpisode:
    """The episode, when the caller may see it; else 404 naming ``field``."""
    async with deps.runtime.sessionmaker() as session:
        episode = await session.get(FeedbackEpisode, episode_id)
    if episode is None or not may_see(staff)(episode):
        raise EpisodeNotFound(
            f"No episode {episode_id!r} that you may see.",
            errors=[{"field": field, "rule": "not_found"}],
        )
    return episode


async def check(
    deps: FeedbackDependencies, staff: Staff, resource: object, idempotency_key: str | None
) -> Checked:
    """Read, place and score a QuestionnaireResponse without storing it; a refusal names the
    item (``fhir.FhirError``, ``InvalidAnswers``, ``EpisodeNotFound``)."""
    parsed = await placed_by_encounter(
        deps, staff, fhir.parse_questionnaire_response(resource, deps.instruments)
    )
    episode_id = await episode_of_subject(deps, staff, parsed)
    asked = replace(submission(parsed, staff, idempotency_key), episode_id=episode_id)
    _, scored = responses.checked(deps, asked)
    await visible_episode(deps, staff, episode_id, "episode_id")
    return Checked(asked, scored, fhir.total_warnings(parsed, scored.total))


async def record(
    deps: FeedbackDependencies, staff: Staff, resource: object, idempotency_key: str | None
) -> tuple[responses.Recorded, bool, list[dict[str, str]]]:
    """Record one QuestionnaireResponse in its own transaction: the result, whether it replays
    an earlier request (same Idempotency-Key), and the warnings for the sender."""
    checked = await check(deps, staff, resource, idempotency_key)
    recorded, replayed = await responses.record_response(deps, staff, checked.submission)
    return recorded, replayed, checked.warnings


async def scored_responses(
    deps: FeedbackDependencies,
    staff: Staff,
    episode_id: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> Sequence[tuple[FeedbackResponse, FeedbackEpisode]]:
    """Standing responses the caller may see, of one episode or of every episode at their
    sites, answered within [since, until], oldest first."""
    async with deps.runtime.sessionmaker() as session:
        query = (
            select(FeedbackResponse, FeedbackEpisode)
            .join(FeedbackEpisode, col(FeedbackEpisode.episode_id) == FeedbackResponse.episode_id)
            .where(
                col(FeedbackResponse.replaced_by).is_(None),
                col(FeedbackResponse.site_id).in_(sorted(staff.sites)),
            )
        )
        if episode_id is not None:
            query = query.where(FeedbackResponse.episode_id == episode_id)
        if since is not None:
            query = query.where(col(FeedbackResponse.answered_at) >= since)
        if until is not None:
            query = query.where(col(FeedbackResponse.answered_at) <= until)
        if staff.role == "therapist":
            query = query.where(FeedbackEpisode.therapist_id == staff.subject)
        rows = (
            await session.exec(
                query.order_by(
                    col(FeedbackResponse.answered_at), col(FeedbackResponse.recorded_at)
                ).limit(limit)
            )
        ).all()
    if episode_id is not None and not rows:
        await visible_episode(deps, staff, episode_id, "episode")
    return [(r, e) for r, e in rows if may_see(staff)(e)]


async def observations(
    deps: FeedbackDependencies,
    staff: Staff,
    episode_id: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The scored responses the caller may see as FHIR Observations (see scored_responses)."""
    found: list[dict[str, Any]] = []
    for row, episode in await scored_responses(deps, staff, episode_id, since, until, limit):
        instrument = deps.instruments[row.instrument]
        scored = domain.score(
            instrument, {k: Decimal(v) for k, v in row.items.items()}, episode.age_group
        )
        found += fhir_observations.observations(
            instrument,
            fhir_observations.ScoredResponse(
                response_id=row.id,
                episode_id=row.episode_id,
                session_number=row.session_number,
                answered_at=row.answered_at,
                total=scored.total,
                in_concern_or_clinical_range=scored.in_concern_or_clinical_range,
                subscales=scored.subscales,
                band=scored.band,
                amended=row.amends is not None,
                client=episode.client,
            ),
        )
    return found
