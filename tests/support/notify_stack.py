"""Notify on the real Kafka, PostgreSQL and Redis, with everything it talks to: one database,
topic prefix and set of fake endpoints per test module (sites keep tests apart within it).
Timing is configured short (retries of 0.2 s, escalation after 1 s) rather than slept through.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import services
from services import migrate
from shared.auth import mint_token
from shared.host import Host
from shared.settings import Settings, load_settings
from tests.support.infra import Infra, app_url, create_database, drop_database
from tests.support.notify import Endpoints, Publisher, SmtpSink


@asynccontextmanager
async def fresh_database(infra: Infra) -> AsyncIterator[str]:
    url = await create_database(infra.database_url)
    try:
        yield url
    finally:
        await drop_database(infra.database_url, url)


def notify_settings(
    infra: Infra, database_url: str, endpoints: Endpoints, smtp: SmtpSink, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap": infra.kafka_bootstrap,
        "database_url": database_url,
        "redis_url": infra.redis_url,
        "topic_prefix": f"n{uuid.uuid4().hex[:10]}.",
        "topic_partitions": 3,
        "allow_private_webhooks": True,
        "relay_idle_seconds": 0.05,
        "notify_public_base_url": "https://rapport.clinic.test",
        "notify_smtp_host": "127.0.0.1",
        "notify_smtp_port": smtp.port,
        "notify_smtp_tls": "none",
        "notify_smtp_from": "rapport@clinic.test",
        "notify_sms_provider_url": endpoints.sms_url,
        "notify_send_timeout_seconds": 1.0,
        "notify_retry_schedule": "0.2,0.2,0.2",
        "notify_retry_jitter": 0.1,
        "notify_scheduler_seconds": 0.1,
    }
    values.update(overrides)
    return load_settings(**values)


@dataclass
class NotifyStack:
    settings: Settings
    endpoints: Endpoints
    smtp: SmtpSink
    publisher: Publisher
    engine: AsyncEngine
    host: Host | None = None
    http: httpx.AsyncClient | None = None

    def auth(self, role: str, site: str, sub: str = "user-1") -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(self.settings, sub, role, [site])}"}

    @property
    def api(self) -> httpx.AsyncClient:
        assert self.http is not None
        return self.http

    async def webhook(self, site: str, name: str) -> tuple[str, str]:
        got = await self.api.post(
            "/notify/webhooks",
            json={"site_id": site, "url": self.endpoints.url(name)},
            headers=self.auth("site_admin", site),
        )
        assert got.status_code == 201, got.text
        secret = got.json()["secret"]
        self.endpoints.secrets.setdefault(name, []).append(secret)
        return got.json()["id"], secret

    async def contact(self, site: str, role: str, staff_id: str, **body: Any) -> dict[str, Any]:
        got = await self.api.put(
            f"/notify/contacts/{site}/{role}/{staff_id}",
            json=body,
            headers=self.auth("site_admin", site),
        )
        assert got.status_code == 200, got.text
        result: dict[str, Any] = got.json()
        return result

    async def policy(self, site: str, document: dict[str, Any]) -> None:
        got = await self.api.put(
            f"/notify/policies/{site}", json=document, headers=self.auth("site_admin", site)
        )
        assert got.status_code == 200, got.text

    async def deliveries(self, site: str, **params: Any) -> list[dict[str, Any]]:
        got = await self.api.get(
            "/notify/deliveries",
            params={"site_id": site, "limit": 500, **params},
            headers=self.auth("site_admin", site),
        )
        assert got.status_code == 200, got.text
        result: list[dict[str, Any]] = got.json()
        return result

    async def emitted(self, type_suffix: str) -> list[dict[str, Any]]:
        """Data of the events notify put in its outbox, oldest first."""
        async with self.engine.connect() as connection:
            rows = (
                await connection.execute(
                    text("select headers, value from notify_outbox order by id")
                )
            ).all()
        return [
            json.loads(bytes(r.value))
            for r in rows
            if json.loads(r.headers)["ce_type"].endswith(type_suffix)
        ]

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.engine.connect() as connection:
            return (await connection.execute(text(sql), params)).scalar()


@asynccontextmanager
async def notify_stack(
    infra: Infra, *, in_process: bool = True, **overrides: Any
) -> AsyncIterator[NotifyStack]:
    endpoints = Endpoints()
    smtp = SmtpSink()
    smtp.start()
    await endpoints.start()
    try:
        async with fresh_database(infra) as database_url:
            settings = notify_settings(
                infra,
                app_url(database_url),
                endpoints,
                smtp,
                migration_database_url=database_url,
                **overrides,
            )
            await asyncio.to_thread(
                migrate, "notify", database_url, settings.database_url_for("notify")
            )
            publisher = Publisher(settings)
            await publisher.start()
            # The tests look at the tables as the owner (row-level security does not hide rows).
            engine = create_async_engine(database_url)
            stack = NotifyStack(settings, endpoints, smtp, publisher, engine)
            try:
                if in_process:
                    stack.host = Host(settings, services.definitions(["notify"]))
                    app = stack.host.http_app()
                    await stack.host.start()
                    stack.http = httpx.AsyncClient(
                        transport=httpx.ASGITransport(app=app), base_url="http://rapport"
                    )
                yield stack
            finally:
                if stack.http is not None:
                    await stack.http.aclose()
                if stack.host is not None:
                    await stack.host.stop()
                await publisher.stop()
                await engine.dispose()
    finally:
        await endpoints.stop()
        smtp.stop()
