"""Feedback's share of a client's erasure (``client.erasure.requested``): the client's episodes
with every response, session, used link, goal and registered encounter are deleted, and the
client's data key is destroyed, so any comment or goal sealed under it that survives anywhere
(a backup, a copy) can never be read."""

from __future__ import annotations

from sqlalchemy import delete
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.feedback.models import (
    ERASED,
    ERASURES,
    OUTBOX,
    FeedbackClientKey,
    FeedbackConsent,
    FeedbackEncounter,
    FeedbackEpisode,
    FeedbackGoal,
    FeedbackResponse,
    FeedbackSession,
    FeedbackTokenUse,
)
from shared.contracts import ClientErasureRequested
from shared.erasure import ErasureRegister, rows_affected, shred_client_keys, table_of

REGISTER = ErasureRegister(ERASURES, ERASED)


async def erase_client(session: AsyncSession, data: ClientErasureRequested) -> None:
    """Delete the client's episodes, responses, sessions and used links, shred their data key,
    and record the erasure (its outcome goes out through the outbox)."""
    known = await session.execute(
        select(FeedbackEpisode.episode_id).where(FeedbackEpisode.client == data.client)
    )
    episodes = sorted(set(data.episode_ids) | {str(e) for e in known.scalars()})
    removed: dict[str, int] = {}
    for model in (
        FeedbackResponse,
        FeedbackSession,
        FeedbackTokenUse,
        FeedbackGoal,
        FeedbackEncounter,
        FeedbackEpisode,
    ):
        table = table_of(model)
        result = await session.execute(delete(table).where(table.c.episode_id.in_(episodes)))
        removed[table.name] = rows_affected(result)
    responses = table_of(FeedbackResponse)
    result = await session.execute(delete(responses).where(responses.c.respondent == data.client))
    removed[responses.name] += rows_affected(result)
    consents = table_of(FeedbackConsent)
    result = await session.execute(delete(consents).where(consents.c.client == data.client))
    removed[consents.name] = rows_affected(result)
    keys = table_of(FeedbackClientKey)
    removed[keys.name] = await shred_client_keys(session, keys, [data.client])
    await REGISTER.conclude(
        session, data, outbox=OUTBOX, clients=[data.client], episodes=episodes, removed=removed
    )
