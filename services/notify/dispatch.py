"""Sends pending deliveries: signed webhooks with retries, each outcome published once."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlmodel import col, select

from services.notify import domain, signing
from services.notify.models import NotifyDelivery, NotifyWebhook
from shared.contracts import (
    NOTIFICATION_DELIVERED,
    NOTIFICATION_FAILED,
    NotificationDelivered,
    NotificationFailed,
)
from shared.crypto import derive_key, unseal
from shared.db import dialect_of
from shared.events import Event
from shared.logs import get_logger
from shared.runtime import ServiceRuntime

log = get_logger(__name__)
SOURCE = "/rapport/notify"


def secret_key(runtime: ServiceRuntime) -> bytes:
    return derive_key(runtime.settings.encryption_key.get_secret_value(), "notify-webhook-secret")


async def _send(
    client: httpx.AsyncClient, runtime: ServiceRuntime, row: NotifyDelivery, hook: NotifyWebhook
) -> tuple[int | None, str | None]:
    body = row.payload.encode()
    timestamp = int(time.time())
    secret = unseal(secret_key(runtime), hook.secret_sealed, associated=hook.id)
    headers = {
        "content-type": "application/json",
        "webhook-id": row.id,  # the same on every attempt, so receivers can dedupe
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.signature_header([secret], row.id, timestamp, body),
    }
    try:
        response = await client.post(hook.url, content=body, headers=headers)
    except httpx.HTTPError as error:
        return None, type(error).__name__
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"http_{response.status_code}"


async def dispatch_once(runtime: ServiceRuntime, client: httpx.AsyncClient, batch: int = 50) -> int:
    now = datetime.now(UTC)
    async with runtime.sessionmaker() as session, session.begin():
        statement = (
            select(NotifyDelivery)
            .where(NotifyDelivery.status == "pending", col(NotifyDelivery.next_attempt_at) <= now)
            .order_by(col(NotifyDelivery.next_attempt_at))
            .limit(batch)
        )
        if dialect_of(session) == "postgresql":
            statement = statement.with_for_update(skip_locked=True)
        rows = (await session.exec(statement)).all()
        if not rows:
            return 0
        hook_ids = {r.endpoint_id for r in rows}
        hooks = {
            h.id: h
            for h in (
                await session.exec(select(NotifyWebhook).where(col(NotifyWebhook.id).in_(hook_ids)))
            ).all()
        }
        results = await asyncio.gather(
            *(_send(client, runtime, row, hooks[row.endpoint_id]) for row in rows)
        )
        events: list[Event[Any]] = []
        finished = datetime.now(UTC)
        for row, (status, error) in zip(rows, results, strict=True):
            row.attempts += 1
            if error is None:
                row.status, row.delivered_at, row.last_error = "delivered", finished, None
                events.append(
                    Event(
                        NOTIFICATION_DELIVERED,
                        NotificationDelivered(
                            delivery_id=row.id,
                            source_event_id=row.source_event_id,
                            site_id=row.site_id,
                            channel="webhook",
                            recipient_role=row.recipient_role,
                            attempts=row.attempts,
                            delivered_at=finished,
                        ),
                        source=SOURCE,
                    )
                )
            else:
                retry_at = (
                    domain.next_attempt(row.attempts, finished)
                    if domain.is_retryable(status)
                    else None
                )
                row.last_error = error
                if retry_at is None:
                    row.status = "failed"
                    events.append(
                        Event(
                            NOTIFICATION_FAILED,
                            NotificationFailed(
                                delivery_id=row.id,
                                source_event_id=row.source_event_id,
                                site_id=row.site_id,
                                channel="webhook",
                                recipient_role=row.recipient_role,
                                attempts=row.attempts,
                                reason_code=error.lower(),
                                failed_at=finished,
                            ),
                            source=SOURCE,
                        )
                    )
                else:
                    row.next_attempt_at = retry_at
            session.add(row)
        await runtime.emit(session, *events)
    runtime.relay.wake()
    return len(rows)


async def dispatch_forever(runtime: ServiceRuntime) -> None:
    wake: asyncio.Event = runtime.state["dispatch_wake"]
    backoff = 0.1
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0), follow_redirects=False) as client:
        while not runtime.stopping.is_set():
            try:
                sent = await dispatch_once(runtime, client)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning(
                    "dispatch failed; retrying", error=f"{type(error).__name__}: {error}"[:300]
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if sent == 0:
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), 0.5)
                except TimeoutError:
                    pass
                if runtime.stopping.is_set():
                    return
