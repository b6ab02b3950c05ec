"""Analytics' share of a client's erasure (``client.erasure.requested``): the client's episode
state, scores and pending checks are deleted; alerts and closed-episode results are kept for
the site's and therapists' aggregates (alert counts, effectiveness) but cut loose from the
client: a new anonymous episode id, no respondent, no triggering response."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, or_, select, update

from services.analytics.models import (
    ALERTS,
    CLOSED_EPISODES,
    DUE_CHECKS,
    EPISODES,
    ERASED,
    ERASURES,
    OUTBOX,
    SCORES,
)
from shared.consumer import Delivery
from shared.contracts import ClientErasureRequested
from shared.erasure import ErasureRegister, rows_affected
from shared.events import Event

REGISTER = ErasureRegister(ERASURES, ERASED)


async def on_erasure_requested(delivery: Delivery[ClientErasureRequested]) -> list[Event[Any]]:
    data = delivery.event.data
    session = delivery.session
    scores = SCORES
    scored = await session.execute(
        select(scores.c.episode_id).where(scores.c.respondent == data.client).distinct()
    )
    episodes = sorted(set(data.episode_ids) | {str(e) for e in scored.scalars()})
    removed: dict[str, int] = {}
    result = await session.execute(
        delete(scores).where(
            or_(scores.c.episode_id.in_(episodes), scores.c.respondent == data.client)
        )
    )
    removed[scores.name] = rows_affected(result)
    state = EPISODES
    result = await session.execute(delete(state).where(state.c.episode_id.in_(episodes)))
    removed[state.name] = rows_affected(result)
    result = await session.execute(delete(DUE_CHECKS).where(DUE_CHECKS.c.subject.in_(episodes)))
    removed[DUE_CHECKS.name] = rows_affected(result)
    alerts, closed = ALERTS, CLOSED_EPISODES
    removed[alerts.name] = removed[closed.name] = 0
    for episode_id in episodes:
        anonymous = f"erased-{uuid.uuid4().hex[:24]}"
        result = await session.execute(
            update(alerts)
            .where(alerts.c.episode_id == episode_id)
            .values(episode_id=anonymous, respondent=None, triggered_by=None)
        )
        removed[alerts.name] += rows_affected(result)
        result = await session.execute(
            update(closed).where(closed.c.episode_id == episode_id).values(episode_id=anonymous)
        )
        removed[closed.name] += rows_affected(result)
    result = await session.execute(
        update(alerts)
        .where(alerts.c.respondent == data.client)
        .values(respondent=None, triggered_by=None)
    )
    removed[alerts.name] += rows_affected(result)
    await REGISTER.conclude(
        session, data, outbox=OUTBOX, clients=[data.client], episodes=episodes, removed=removed
    )
    return []
