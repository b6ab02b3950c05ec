"""Intake's Kafka entrypoints: each decodes its delivery, calls the use case in the delivery's
transaction and returns the events to write to the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.intake import erasure
from services.intake.dependencies import of_delivery
from services.intake.usecases.effectiveness import record_effectiveness
from services.intake.usecases.phases import record_contact
from services.intake.usecases.proposals import rematch_on_alert
from shared.consumer import Delivery
from shared.contracts import (
    AllianceAlert,
    ClientErasureRequested,
    FeedbackRecorded,
    SessionAttended,
    TherapistEffectivenessUpdated,
)
from shared.events import Event


async def on_effectiveness_updated(
    delivery: Delivery[TherapistEffectivenessUpdated],
) -> Sequence[Event[Any]]:
    await record_effectiveness(delivery.session, delivery.event.data)
    return []


def opens_a_rematch(event: Event[AllianceAlert]) -> bool:
    """The one alert intake acts on: ``rematch_suggested`` opened (the others, most of the
    stream, are acknowledged without a transaction)."""
    return event.data.kind == "rematch_suggested" and event.data.status == "opened"


async def on_alliance_alert(delivery: Delivery[AllianceAlert]) -> Sequence[Event[Any]]:
    if not opens_a_rematch(delivery.event):
        return []
    return await rematch_on_alert(of_delivery(delivery), delivery.session, delivery.event.data)


async def on_erasure_requested(
    delivery: Delivery[ClientErasureRequested],
) -> Sequence[Event[Any]]:
    return await erasure.erase_client(delivery.session, delivery.event.data)


async def on_session_attended(delivery: Delivery[SessionAttended]) -> Sequence[Event[Any]]:
    data = delivery.event.data
    return await record_contact(
        of_delivery(delivery), delivery.session, data.episode_id, data.at, "attended_session"
    )


async def on_feedback_recorded(delivery: Delivery[FeedbackRecorded]) -> Sequence[Event[Any]]:
    data = delivery.event.data
    return await record_contact(
        of_delivery(delivery), delivery.session, data.episode_id, data.answered_at, "feedback"
    )
