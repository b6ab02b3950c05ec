"""Analytics' Kafka entrypoints: decode the delivery, call the use case, return the events it
emits. A scored response updates its episode's state and alerts; a session fact and a phase
change update the episode's attendance, alerts and pending checks; a closed episode updates its
therapist's effectiveness estimates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.analytics.dependencies import of_delivery
from services.analytics.errors import UnknownInstrument
from services.analytics.mapping import session_fact
from services.analytics.usecases import attendance, consent, episodes, follow_up, responses
from shared.consumer import Delivery, HandlerRejected
from shared.contracts import (
    ConsentChanged,
    EpisodeClosed,
    EpisodePhaseChanged,
    FeedbackRecorded,
    MatchConfirmed,
    NotificationAcknowledged,
    NotificationDelivered,
    SessionAttended,
    SessionCancelled,
    SessionMissed,
)
from shared.events import Event


async def on_match_confirmed(delivery: Delivery[MatchConfirmed]) -> Sequence[Event[Any]]:
    return await episodes.start_episode(delivery.session, delivery.event.data)


async def on_feedback_recorded(delivery: Delivery[FeedbackRecorded]) -> Sequence[Event[Any]]:
    try:
        return await responses.assess_response(
            of_delivery(delivery), delivery.session, delivery.event.data
        )
    except UnknownInstrument as unknown:  # it will never apply: the DLQ, not a retry
        raise HandlerRejected(unknown.detail) from None


async def on_episode_closed(delivery: Delivery[EpisodeClosed]) -> Sequence[Event[Any]]:
    return await episodes.close_episode(
        of_delivery(delivery), delivery.session, delivery.event.data
    )


async def on_notification_acknowledged(
    delivery: Delivery[NotificationAcknowledged],
) -> Sequence[Event[Any]]:
    """A clinician acknowledged an alert's delivery in notify: the alert was seen."""
    return await follow_up.alert_seen(of_delivery(delivery), delivery.session, delivery.event.data)


async def on_consent_changed(delivery: Delivery[ConsentChanged]) -> Sequence[Event[Any]]:
    """A client's consent to the network's aggregates, recorded or withdrawn."""
    return await consent.follow_consent(delivery.session, delivery.event.data)


async def on_session_fact(
    delivery: Delivery[SessionAttended] | Delivery[SessionMissed] | Delivery[SessionCancelled],
) -> Sequence[Event[Any]]:
    """A session attended, missed or cancelled (one subscriber for the three events)."""
    return await attendance.record_session(
        of_delivery(delivery), delivery.session, session_fact(delivery.event.data)
    )


async def on_phase_changed(delivery: Delivery[EpisodePhaseChanged]) -> Sequence[Event[Any]]:
    return await attendance.follow_phase(
        of_delivery(delivery), delivery.session, delivery.event.data
    )


async def on_notification_delivered(
    delivery: Delivery[NotificationDelivered],
) -> Sequence[Event[Any]]:
    """A message about an alert reached its recipient: the episode's timeline shows it."""
    await follow_up.alert_delivered(delivery.session, delivery.event.data)
    return []
