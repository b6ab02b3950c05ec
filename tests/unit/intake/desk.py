"""An intake service on a host (embedded or real stack), driven over HTTP like a front-end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

import services
from services.intake.models import IntakeTherapist
from shared.auth import mint_token
from shared.host import Host
from shared.settings import Settings

EVERY_DAY = [{"day": d, "start_minute": 8 * 60, "end_minute": 20 * 60} for d in range(7)]


def therapist_body(id: str = "th-1", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": id,
        "sites": ["site-a"],
        "languages": ["en"],
        "capacity": 5,
        "gender": "woman",
        "modalities": ["cbt"],
        "scopes": ["adults"],
        "domains": ["depression"],
        "availability": EVERY_DAY,
        "years_experience": 5,
    }
    body.update(changes)
    return body


def intake_body(reference: str = "c-1", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "site_id": "site-a",
        "client_reference": reference,
        "domains": [{"code": "depression", "severity": "moderate"}],
        "languages": ["en"],
    }
    body.update(changes)
    return body


@dataclass
class IntakeDesk:
    host: Host
    http: httpx.AsyncClient
    settings: Settings

    def auth(
        self, role: str, sites: tuple[str, ...] = ("site-a",), sub: str = "staff-1"
    ) -> dict[str, str]:
        return {"Authorization": "Bearer " + mint_token(self.settings, sub, role, list(sites))}

    @property
    def admin(self) -> dict[str, str]:
        return self.auth("site_admin")

    @property
    def coordinator(self) -> dict[str, str]:
        return self.auth("intake_coordinator")

    async def register(self, *bodies: dict[str, Any]) -> None:
        for body in bodies:
            created = await self.http.post("/intake/therapists", headers=self.admin, json=body)
            assert created.status_code == 201, created.text

    async def submit(self, reference: str = "c-1", **changes: Any) -> dict[str, Any]:
        submitted = await self.http.post(
            "/intake/intakes", headers=self.coordinator, json=intake_body(reference, **changes)
        )
        assert submitted.status_code == 201, submitted.text
        result: dict[str, Any] = submitted.json()
        return result

    async def caseload(self, therapist_id: str) -> int:
        async with self.host.runtimes["intake"].sessionmaker() as session:
            row = await session.get(IntakeTherapist, therapist_id)
            assert row is not None
            return row.caseload

    async def emitted(self) -> list[tuple[str, dict[str, Any]]]:
        runtime = self.host.runtimes["intake"]
        table = runtime.definition.outbox_table
        async with runtime.sessionmaker() as session:
            rows = (
                await session.execute(select(table.c.headers, table.c.value).order_by(table.c.id))
            ).all()
        return [(json.loads(r.headers)["ce_type"], json.loads(r.value)) for r in rows]

    async def emitted_of(self, event_type: str) -> list[dict[str, Any]]:
        """Data of the outbox's events of one type, by name (``match.confirmed``)."""
        wanted = f"org.rapport.{event_type}.v1"
        return [data for kind, data in await self.emitted() if kind == wanted]


@asynccontextmanager
async def intake_desk(
    settings: Settings, names: tuple[str, ...] = ("intake",), embedded: bool = True
) -> AsyncIterator[IntakeDesk]:
    host = Host(settings, services.definitions(list(names)), embedded=embedded)
    await host.start()
    try:
        transport = httpx.ASGITransport(app=host.http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as http:
            yield IntakeDesk(host, http, settings)
    finally:
        await host.stop()
