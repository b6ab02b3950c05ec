"""Read what a service has written to its transactional outbox, in commit order."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from shared.host import Host


@dataclass(frozen=True)
class OutboxRow:
    headers: dict[str, str]
    value: dict[str, Any]

    @property
    def ce_type(self) -> str:
        return self.headers["ce_type"]


async def outbox_rows(host: Host, service: str) -> list[OutboxRow]:
    runtime = host.runtimes[service]
    table = runtime.definition.outbox_table
    async with runtime.sessionmaker() as session:
        rows = (
            await session.execute(select(table.c.headers, table.c.value).order_by(table.c.id))
        ).all()
    return [OutboxRow(json.loads(r.headers), json.loads(r.value)) for r in rows]
