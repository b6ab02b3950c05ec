"""Scored responses for a site's front-ends (issue 20): with the site's policy ``results.webhook``
on (off by default), each ``feedback.recorded`` goes once to every active webhook of the site
with the response's FHIR R4 Observations, as ``GET /feedback/fhir/Observation`` gives them
(``shared.fhir_observations``), so a front-end writes them to the chart without mapping
anything. Built from the event's scores: notify holds no answers and no free text."""

from __future__ import annotations

from decimal import Decimal

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify import domain
from services.notify.dependencies import NotifyDependencies
from services.notify.models import NotifyEpisode
from services.notify.usecases.notices import AfterCommit, open_notice
from shared import fhir_observations
from shared.contracts import FeedbackRecorded
from shared.instruments import Instrument
from shared.logs import get_logger

log = get_logger(__name__)

RESULT_FIELDS = {
    "response_id",
    "episode_id",
    "site_id",
    "therapist_id",
    "session_number",
    "respondent_role",
    "instrument",
    "instrument_version",
    "total",
    "subscales",
    "band",
    "in_concern_or_clinical_range",
    "answered_at",
    "amends",
}


def results_notice(
    event_id: str, recorded: FeedbackRecorded, instrument: Instrument, client: str | None
) -> domain.NoticeSpec:
    """A scored response as the webhook tells it: what ``feedback.recorded`` says of it (ids,
    codes, numbers) and its Observations (the client's pseudonym as subject when known)."""
    scored = fhir_observations.ScoredResponse(
        response_id=recorded.response_id,
        episode_id=recorded.episode_id,
        session_number=recorded.session_number,
        answered_at=recorded.answered_at,
        total=Decimal(str(recorded.total)),
        in_concern_or_clinical_range=recorded.in_concern_or_clinical_range,
        subscales={k: Decimal(str(v)) for k, v in recorded.subscales.items()},
        band=recorded.band,
        amended=recorded.amends is not None,
        client=client,
    )
    return domain.NoticeSpec(
        key=f"results:{recorded.response_id}",
        site_id=recorded.site_id,
        kind=domain.RESULTS,
        severity="routine",
        source_event_id=event_id,
        source_type="feedback.recorded",
        data={
            "type": "feedback.recorded",
            **recorded.model_dump(mode="json", include=RESULT_FIELDS),
            "observations": fhir_observations.observations(instrument, scored),
        },
        episode_id=recorded.episode_id,
        therapist_id=recorded.therapist_id,
    )


async def client_of(session: AsyncSession, recorded: FeedbackRecorded) -> str | None:
    """The client's pseudonym: the respondent when the client answered, else the client member
    of the episode notify knows (from ``match.confirmed``), else unknown."""
    if recorded.respondent_role == "client":
        return recorded.respondent
    members = (
        await session.exec(
            select(NotifyEpisode.members).where(NotifyEpisode.episode_id == recorded.episode_id)
        )
    ).first()
    return next((m["respondent"] for m in members or () if m.get("role") == "client"), None)


async def send_results(
    deps: NotifyDependencies,
    session: AsyncSession,
    event_id: str,
    recorded: FeedbackRecorded,
    after_commit: AfterCommit,
) -> bool:
    """One webhook per active endpoint of the site when its policy asks for results; True if
    deliveries were made. The same response under another event id is one notice (its key)."""
    if "webhook" not in deps.channels:
        return False
    routing = await deps.policies.routing(session, recorded.site_id)
    if not routing.policy.results.webhook or not routing.endpoints:
        return False  # not asked for, or nowhere to send: nothing waits (not a notice to staff)
    instrument = deps.instruments.get(recorded.instrument)
    if instrument is None:  # a site instrument this deployment does not ship: nothing to code
        log.warning("results webhook skipped: instrument unknown here", site_id=recorded.site_id)
        return False
    notice = results_notice(event_id, recorded, instrument, await client_of(session, recorded))
    planned = domain.plan(
        [domain.Intent("therapist", "webhook", "immediate", False)],
        therapist_id=recorded.therapist_id,
        contacts=[],
        endpoints=routing.endpoints,
    )
    return await open_notice(deps, session, notice, routing, after_commit, planned)
