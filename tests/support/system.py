"""The whole system as in production: intake, feedback, analytics and notify as four separate
``rapport serve`` processes on the real Kafka, PostgreSQL and Redis, JSON logs to one file per
service, and a Standard Webhooks receiver for what notify sends. Driven over HTTP only, with a
client that retries through outages the way a careful front-end does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.auth import mint_token
from shared.settings import Settings
from tests.support.processes import ServiceProcess
from tests.support.receiver import WebhookReceiver

SERVICES = ("intake", "feedback", "analytics", "notify")

# Short notify timings so that a delivery whose sender was killed is re-sent within seconds
# (its lease is a few send timeouts), not after the production ten-second timeouts.
NOTIFY_ENV = {
    "RAPPORT_NOTIFY_SEND_TIMEOUT_SECONDS": "2",
    "RAPPORT_NOTIFY_RETRY_SCHEDULE": "0.5,1,2,5",
    "RAPPORT_NOTIFY_SCHEDULER_SECONDS": "0.2",
}


class NotAccepted(Exception):
    """The service answered with a 4xx: the request itself is wrong, retrying will not help."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"{response.status_code}: {response.text[:500]}")
        self.response = response


@dataclass
class SystemUnderTest:
    settings: Settings
    processes: dict[str, ServiceProcess]
    receiver: WebhookReceiver
    engine: AsyncEngine
    http: httpx.AsyncClient
    retries: int = 0  # HTTP attempts that met an outage and were tried again
    webhooks: dict[str, str] = field(default_factory=dict)  # site -> endpoint id

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.processes[service].port}{path}"

    def auth(self, role: str, site: str, sub: str = "staff-1") -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(self.settings, sub, role, [site])}"}

    async def call(
        self,
        method: str,
        service: str,
        path: str,
        *,
        timeout: float = 180.0,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send until the service gives an answer that is not an outage (connection refused or
        reset, a timeout, 5xx). A 4xx raises :class:`NotAccepted`. Retries are safe only for
        requests that are idempotent or carry an ``Idempotency-Key``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.1
        while True:
            try:
                response = await self.http.request(method, self.url(service, path), **kwargs)
            except httpx.HTTPError as error:
                problem: str = f"{type(error).__name__}: {error}"
            else:
                if response.status_code < 400:
                    return response
                if response.status_code < 500:
                    raise NotAccepted(response)
                problem = f"{response.status_code}: {response.text[:200]}"
            if loop.time() > deadline:
                raise AssertionError(f"{method} {service}{path} kept failing: {problem}")
            self.retries += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.engine.connect() as connection:
            return (await connection.execute(text(sql), params)).scalar()

    async def rows(self, sql: str, **params: Any) -> Sequence[Any]:
        async with self.engine.connect() as connection:
            return (await connection.execute(text(sql), params)).all()

    async def register_webhook(self, site: str, policy: dict[str, Any]) -> None:
        """The site's routing policy and one webhook endpoint on the receiver."""
        admin = self.auth("site_admin", site)
        await self.call("PUT", "notify", f"/notify/policies/{site}", json=policy, headers=admin)
        created = await self.call(
            "POST",
            "notify",
            "/notify/webhooks",
            json={"site_id": site, "url": self.receiver.url(site)},
            headers=admin,
        )
        self.receiver.secrets[site] = created.json()["secret"]
        self.webhooks[site] = created.json()["id"]

    def logs(self) -> dict[str, str]:
        return {name: p.log_path.read_text(errors="replace") for name, p in self.processes.items()}


@asynccontextmanager
async def running_system(
    settings: Settings,
    log_dir: Path,
    names: Sequence[str] = SERVICES,
    env: dict[str, str] | None = None,
) -> AsyncIterator[SystemUnderTest]:
    """``env``: more RAPPORT_* settings for every process (notify also gets :data:`NOTIFY_ENV`)."""
    receiver = WebhookReceiver()
    await receiver.start()
    processes = {
        name: ServiceProcess(
            name,
            settings,
            log_dir / f"{name}.log",
            extra_env={**(NOTIFY_ENV if name == "notify" else {}), **(env or {})},
        )
        for name in names
    }
    # The test reads every site's rows: as the tables' owner, outside row-level security.
    engine = create_async_engine(settings.migration_database_url_for("tests"))
    try:
        await asyncio.gather(*(p.start() for p in processes.values()))
        async with httpx.AsyncClient(timeout=30) as http:
            yield SystemUnderTest(settings, processes, receiver, engine, http)
    finally:
        for process in processes.values():
            process.ensure_stopped()
        await engine.dispose()
        await receiver.stop()


async def topics_of(settings: Settings) -> list[str]:
    """Every topic of this test's prefix that the broker knows (DLQs included)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        names = await admin.list_topics()
    finally:
        await admin.close()
    return sorted(t for t in names if t.startswith(settings.topic_prefix))


@dataclass(frozen=True)
class Consumed:
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode(errors="replace")
        return None

    def data(self) -> Any:
        return json.loads(self.value)


async def read_all(settings: Settings, topics: Sequence[str]) -> list[Consumed]:
    """Every record of the topics, from the beginning up to their current end offsets."""
    if not topics:
        return []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    records: list[Consumed] = []
    try:
        partitions = []
        for topic in topics:
            known = consumer.partitions_for_topic(topic)
            if not known:
                await consumer._client.force_metadata_update()
                known = consumer._client.cluster.partitions_for_topic(topic) or set()
            partitions.extend(TopicPartition(topic, p) for p in known)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp, end in ends.items() if end > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=2000)
            for tp, messages in batch.items():
                for message in messages:
                    records.append(
                        Consumed(
                            tp.topic,
                            message.key,
                            message.value or b"",
                            tuple((k, v or b"") for k, v in message.headers),
                        )
                    )
                if messages and messages[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return records
