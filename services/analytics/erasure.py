"""Analytics' share of a client's erasure (``client.erasure.requested``): the client's episode
state, scores, pending checks, and its timeline's deliveries, matches, sessions and phase
changes are deleted; alerts and closed-episode results and the actions recorded on alerts are
kept for the site's and therapists' aggregates (alert counts, effectiveness, follow-up figures)
but cut loose from the client: a new anonymous episode id, no respondent, no triggering
response, no note (and the client's data key, which sealed the notes, is destroyed)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, or_, select, update

from services.analytics.models import (
    ALERT_ACTIONS,
    ALERT_DELIVERIES,
    ALERTS,
    CLIENT_KEYS,
    CLOSED_EPISODES,
    DUE_CHECKS,
    EPISODE_MATCHES,
    EPISODE_SESSIONS,
    EPISODES,
    ERASED,
    ERASURES,
    OUTBOX,
    PHASE_CHANGES,
    SCORES,
    AnalyticsConsent,
)
from shared.consumer import Delivery
from shared.contracts import ClientErasureRequested
from shared.erasure import ErasureRegister, rows_affected, shred_client_keys, table_of
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
    # The episode's state, its timeline's deliveries, matches, sessions and phases go with it.
    for table in (EPISODES, ALERT_DELIVERIES, EPISODE_MATCHES, EPISODE_SESSIONS, PHASE_CHANGES):
        result = await session.execute(delete(table).where(table.c.episode_id.in_(episodes)))
        removed[table.name] = rows_affected(result)
    result = await session.execute(delete(DUE_CHECKS).where(DUE_CHECKS.c.subject.in_(episodes)))
    removed[DUE_CHECKS.name] = rows_affected(result)
    alerts, closed, actions = ALERTS, CLOSED_EPISODES, ALERT_ACTIONS
    removed[alerts.name] = removed[closed.name] = removed[actions.name] = 0
    for episode_id in episodes:
        anonymous = f"erased-{uuid.uuid4().hex[:24]}"
        result = await session.execute(
            update(alerts)
            .where(alerts.c.episode_id == episode_id)
            .values(episode_id=anonymous, respondent=None, triggered_by=None)
        )
        removed[alerts.name] += rows_affected(result)
        # What was done stays counted (the follow-up figures); its note goes.
        result = await session.execute(
            update(actions)
            .where(actions.c.episode_id == episode_id)
            .values(episode_id=anonymous, note_sealed=None)
        )
        removed[actions.name] += rows_affected(result)
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
    consents = table_of(AnalyticsConsent)
    result = await session.execute(delete(consents).where(consents.c.client == data.client))
    removed[consents.name] = rows_affected(result)
    # Crypto-shredding: every note sealed under the client's key (here, in a backup or a copy)
    # can never be read again.
    removed[CLIENT_KEYS.name] = await shred_client_keys(session, CLIENT_KEYS, [data.client])
    await REGISTER.conclude(
        session, data, outbox=OUTBOX, clients=[data.client], episodes=episodes, removed=removed
    )
    return []
