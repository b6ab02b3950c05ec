"""Kafka entrypoints: each hands its event to a use case, which only records what must be sent
(notices, deliveries, invitations) in the consumer's transaction; the dispatcher sends after
the commit. None emits an event of its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify import mapping
from services.notify.dependencies import NotifyDependencies, of_delivery
from services.notify.domain import NoticeSpec
from services.notify.usecases import alert_steps, consent, invitations, notices, results
from services.notify.usecases.notices import AfterCommit
from shared.consumer import Delivery
from shared.contracts import (
    AllianceAlert,
    ConsentChanged,
    EpisodeMembersChanged,
    FeedbackRecorded,
    MatchConfirmed,
    MatchProposed,
    RiskFlagged,
    SessionCompleted,
)
from shared.events import Event, EventData

D = TypeVar("D", bound=EventData)


async def _tell_site(delivery: Delivery[Any], notice: NoticeSpec) -> None:
    """A notice for the site's staff, recorded in the consumer's transaction."""
    await notices.tell_site(of_delivery(delivery), delivery.session, notice, delivery.after_commit)


async def _hand_to(
    use_case: Callable[[NotifyDependencies, AsyncSession, str, D, AfterCommit], Awaitable[object]],
    delivery: Delivery[D],
) -> None:
    """The event, its id and the consumer's transaction handed to a use case (what it answers
    is not needed here)."""
    await use_case(
        of_delivery(delivery),
        delivery.session,
        delivery.event.id,
        delivery.event.data,
        delivery.after_commit,
    )


async def on_alliance_alert(delivery: Delivery[AllianceAlert]) -> Sequence[Event[Any]]:
    """Every step of an alert's life: announced once, in order, to whom the policy says."""
    await _hand_to(alert_steps.follow_alert, delivery)
    return []


async def on_risk_flagged(delivery: Delivery[RiskFlagged]) -> Sequence[Event[Any]]:
    """Rule 1: the earliest word of a risk response; urgent to therapist and lead."""
    notice = mapping.risk_notice(delivery.event.id, delivery.event.data)
    await _tell_site(delivery, notice)
    return []


async def on_match_proposed(delivery: Delivery[MatchProposed]) -> Sequence[Event[Any]]:
    notice = mapping.match_proposed_notice(delivery.event.id, delivery.event.data)
    await _tell_site(delivery, notice)
    return []


async def on_match_confirmed(delivery: Delivery[MatchConfirmed]) -> Sequence[Event[Any]]:
    await _hand_to(invitations.episode_from_match, delivery)
    return []


async def on_session_completed(delivery: Delivery[SessionCompleted]) -> Sequence[Event[Any]]:
    await _hand_to(invitations.invitations_from_session, delivery)
    return []


async def on_feedback_recorded(delivery: Delivery[FeedbackRecorded]) -> Sequence[Event[Any]]:
    """An answer stops the respondent's reminder; the site's front-ends get the scores as FHIR
    Observations when its policy asks for them (``results.webhook``)."""
    await invitations.answers_stop_reminders(delivery.session, delivery.event.data)
    await results.send_results(
        of_delivery(delivery),
        delivery.session,
        delivery.event.id,
        delivery.event.data,
        delivery.after_commit,
    )
    return []


async def on_consent_changed(delivery: Delivery[ConsentChanged]) -> Sequence[Event[Any]]:
    """A withdrawal stops the invitations it covers at once."""
    await _hand_to(consent.follow_consent, delivery)
    return []


async def on_members_changed(delivery: Delivery[EpisodeMembersChanged]) -> Sequence[Event[Any]]:
    """The sessions from now on invite the episode's members as they are."""
    await _hand_to(invitations.members_of_episode, delivery)
    return []
