"""Events the feedback service applies (decode → state → outbox, in one transaction)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.feedback.models import FeedbackEpisode
from shared.consumer import Delivery
from shared.contracts import MatchConfirmed
from shared.events import Event


async def on_match_confirmed(delivery: Delivery[MatchConfirmed]) -> Sequence[Event[Any]]:
    """Learn the episode so that responses for it can be accepted and attributed."""
    data = delivery.event.data
    episode = await delivery.session.get(FeedbackEpisode, data.episode_id)
    if episode is None:
        episode = FeedbackEpisode(
            episode_id=data.episode_id,
            site_id=data.site_id,
            therapist_id=data.therapist_id,
            client=data.client,
            confirmed_at=data.confirmed_at,
        )
    episode.therapist_id = data.therapist_id
    episode.members = [m.model_dump() for m in data.members]
    delivery.session.add(episode)
    return []
