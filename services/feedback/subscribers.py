"""Kafka entrypoints of the feedback service: decode the delivery, call the use case, return
what it emitted (decode → state → outbox, in the delivery's one transaction)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.feedback.erasure import erase_client
from services.feedback.usecases.episodes import learn_episode, learn_members
from services.feedback.usecases.sessions import learn_phase
from shared.consumer import Delivery
from shared.contracts import (
    ClientErasureRequested,
    EpisodeMembersChanged,
    EpisodePhaseChanged,
    MatchConfirmed,
)
from shared.events import Event


async def on_match_confirmed(delivery: Delivery[MatchConfirmed]) -> Sequence[Event[Any]]:
    """Learn the episode so that responses for it can be accepted and attributed."""
    await learn_episode(delivery.session, delivery.event.data)
    return []


async def on_members_changed(delivery: Delivery[EpisodeMembersChanged]) -> Sequence[Event[Any]]:
    """Follow the episode's partners and family members as intake changes them."""
    await learn_members(delivery.session, delivery.event.data)
    return []


async def on_phase_changed(delivery: Delivery[EpisodePhaseChanged]) -> Sequence[Event[Any]]:
    """Follow the episode's phase (an ended episode takes no new session facts)."""
    await learn_phase(delivery.session, delivery.event.data)
    return []


async def on_erasure_requested(delivery: Delivery[ClientErasureRequested]) -> Sequence[Event[Any]]:
    """Feedback's share of the client's erasure."""
    await erase_client(delivery.session, delivery.event.data)
    return []
