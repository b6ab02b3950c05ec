"""Kafka entrypoints: each hands its event to a use case, which only records what must be sent
(notices, deliveries, invitations) in the consumer's transaction; the dispatcher sends after
the commit. None emits an event of its own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.notify import mapping
from services.notify.dependencies import of_delivery
from services.notify.usecases import alert_steps, invitations, notices, results
from shared.consumer import Delivery
from shared.contracts import (
    AllianceAlert,
    FeedbackRecorded,
    MatchConfirmed,
    MatchProposed,
    RiskFlagged,
    SessionCompleted,
)
from shared.events import Event


async def on_alliance_alert(delivery: Delivery[AllianceAlert]) -> Sequence[Event[Any]]:
    """Every step of an alert's life: announced once, in order, to whom the policy says."""
    await alert_steps.follow_alert(
        of_delivery(delivery),
        delivery.session,
        delivery.event.id,
        delivery.event.data,
        delivery.after_commit,
    )
    return []


async def on_risk_flagged(delivery: Delivery[RiskFlagged]) -> Sequence[Event[Any]]:
    """Rule 1: the earliest word of a risk response; urgent to therapist and lead."""
    notice = mapping.risk_notice(delivery.event.id, delivery.event.data)
    await notices.tell_site(of_delivery(delivery), delivery.session, notice, delivery.after_commit)
    return []


async def on_match_proposed(delivery: Delivery[MatchProposed]) -> Sequence[Event[Any]]:
    notice = mapping.match_proposed_notice(delivery.event.id, delivery.event.data)
    await notices.tell_site(of_delivery(delivery), delivery.session, notice, delivery.after_commit)
    return []


async def on_match_confirmed(delivery: Delivery[MatchConfirmed]) -> Sequence[Event[Any]]:
    await invitations.episode_from_match(
        of_delivery(delivery),
        delivery.session,
        delivery.event.id,
        delivery.event.data,
        delivery.after_commit,
    )
    return []


async def on_session_completed(delivery: Delivery[SessionCompleted]) -> Sequence[Event[Any]]:
    await invitations.invitations_from_session(
        of_delivery(delivery),
        delivery.session,
        delivery.event.id,
        delivery.event.data,
        delivery.after_commit,
    )
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
