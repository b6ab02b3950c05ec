"""Events notify applies: each becomes delivery rows (sent later by the dispatcher)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import SQLModel, col, select

from services.notify.models import NotifyDelivery, NotifyWebhook
from shared.consumer import Delivery
from shared.contracts import AllianceAlert
from shared.db import dialect_of
from shared.events import Event


def make_alert_handler(wake: asyncio.Event) -> Any:
    async def on_alliance_alert(delivery: Delivery[AllianceAlert]) -> Sequence[Event[Any]]:
        """Opened alerts go to every active webhook of the site, once per endpoint."""
        alert = delivery.event.data
        if alert.status != "opened":
            return []
        session = delivery.session
        hooks = (
            await session.exec(
                select(NotifyWebhook).where(
                    NotifyWebhook.site_id == alert.site_id, col(NotifyWebhook.active).is_(True)
                )
            )
        ).all()
        now = datetime.now(UTC)
        body = json.dumps(
            {
                "type": "alliance.alert",
                "timestamp": now.isoformat(),
                "data": alert.model_dump(mode="json"),
            },
            separators=(",", ":"),
        )
        rows = [
            dict(
                id=str(uuid.uuid4()),
                delivery_key=f"{delivery.event.id}:{hook.id}:webhook",
                source_event_id=delivery.event.id,
                site_id=alert.site_id,
                channel="webhook",
                endpoint_id=hook.id,
                recipient_role="front_end",
                payload=body,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
            for hook in hooks
        ]
        if rows:
            insert = sqlite.insert if dialect_of(session) == "sqlite" else postgresql.insert
            table = SQLModel.metadata.tables[NotifyDelivery.__tablename__]
            await session.execute(
                insert(table).values(rows).on_conflict_do_nothing(index_elements=["delivery_key"])
            )
            delivery.after_commit.append(wake.set)
        return []

    return on_alliance_alert
