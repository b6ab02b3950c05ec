"""Notify's share of a client's erasure (``client.erasure.requested``): the episodes notify
knew of, their sessions and feedback invitations (sealed links), the contacts of the client and
of every member of those episodes with their data keys (the addresses were sealed under them:
crypto-shredding), the notices about those episodes with their deliveries (their alerts' lives
no longer name them), and the client's Redis keys (rate-limit counters named by pseudonym,
fast-path marks of the deleted deliveries) are removed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, or_, select, update

from services.notify.dependencies import of_delivery
from services.notify.models import (
    CLIENT_KEYS,
    ERASED,
    ERASURES,
    OUTBOX,
    NotifyAlertLife,
    NotifyClientContact,
    NotifyConsent,
    NotifyDelivery,
    NotifyEpisode,
    NotifyInvitation,
    NotifyNotice,
    NotifySession,
)
from shared.consumer import Delivery
from shared.contracts import ClientErasureRequested
from shared.erasure import ErasureRegister, rows_affected, table_of
from shared.events import Event

REGISTER = ErasureRegister(ERASURES, ERASED)


async def on_erasure_requested(delivery: Delivery[ClientErasureRequested]) -> list[Event[Any]]:
    deps = of_delivery(delivery)
    data = delivery.event.data
    session = delivery.session
    episodes_t = table_of(NotifyEpisode)
    known = (
        await session.execute(
            select(episodes_t.c.episode_id, episodes_t.c.members).where(
                episodes_t.c.episode_id.in_(data.episode_ids)
            )
        )
    ).all()
    episodes = sorted(set(data.episode_ids))
    respondents = {data.client} | {
        str(m.get("respondent")) for _, members in known for m in (members or ())
    }
    recipients = sorted(f"client:{r}" for r in respondents)
    removed: dict[str, int] = {}
    notices_t = table_of(NotifyNotice)
    deliveries_t = table_of(NotifyDelivery)
    notice_ids = select(notices_t.c.id).where(notices_t.c.episode_id.in_(episodes))
    doomed = or_(deliveries_t.c.notice_id.in_(notice_ids), deliveries_t.c.recipient.in_(recipients))
    delivery_ids = [
        str(i) for i in (await session.execute(select(deliveries_t.c.id).where(doomed))).scalars()
    ]
    result = await session.execute(delete(deliveries_t).where(doomed))
    removed[deliveries_t.name] = rows_affected(result)
    # An alert's life keeps what was announced but no longer names its notice (a risk notice's
    # key names the episode and the respondent).
    lives_t = table_of(NotifyAlertLife)
    notice_keys = select(notices_t.c.notice_key).where(notices_t.c.episode_id.in_(episodes))
    result = await session.execute(
        update(lives_t).where(lives_t.c.notice_key.in_(notice_keys)).values(notice_key=None)
    )
    removed[lives_t.name] = rows_affected(result)
    result = await session.execute(delete(notices_t).where(notices_t.c.episode_id.in_(episodes)))
    removed[notices_t.name] = rows_affected(result)
    invitations_t = table_of(NotifyInvitation)
    result = await session.execute(
        delete(invitations_t).where(
            or_(
                invitations_t.c.episode_id.in_(episodes),
                invitations_t.c.respondent.in_(sorted(respondents)),
            )
        )
    )
    removed[invitations_t.name] = rows_affected(result)
    for model, column in (
        (NotifySession, "episode_id"),
        (NotifyEpisode, "episode_id"),
    ):
        table = table_of(model)
        result = await session.execute(delete(table).where(table.c[column].in_(episodes)))
        removed[table.name] = rows_affected(result)
    contacts_t = table_of(NotifyClientContact)
    result = await session.execute(
        delete(contacts_t).where(contacts_t.c.respondent.in_(sorted(respondents)))
    )
    removed[contacts_t.name] = rows_affected(result)
    consents_t = table_of(NotifyConsent)
    result = await session.execute(delete(consents_t).where(consents_t.c.client == data.client))
    removed[consents_t.name] = rows_affected(result)
    keys = await deps.sealing.client_keys().shred(session, sorted(respondents))
    removed[CLIENT_KEYS.name] = keys  # crypto-shredding of the sealed addresses
    removed["redis_keys"] = await deps.fast.forget(recipients, delivery_ids)
    await REGISTER.conclude(
        session,
        data,
        outbox=OUTBOX,
        clients=sorted(respondents),
        episodes=episodes,
        removed=removed,
    )
    return []
