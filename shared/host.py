"""Hosting one or more services in a process: one Kafka broker connection, one FastAPI app.

``rapport serve intake`` hosts one service; ``rapport serve all`` hosts four; ``--embedded``
swaps the Kafka connection for FastStream's in-process broker (same topics, keys, headers,
serialization and handler code), SQLite and an in-memory Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import fakeredis
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaConnectionError,
    NodeNotReadyError,
    RequestTimedOutError,
    for_code,
)
from fastapi import FastAPI
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.specification import AsyncAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from shared.deployment import check_tables, claim_tables
from shared.http import create_http_app
from shared.kafka_security import broker_security, client_options
from shared.logs import get_logger
from shared.ratelimit import SiteRateLimiter
from shared.runtime import ServiceDefinition, ServiceRuntime
from shared.settings import Settings

log = get_logger(__name__)
TOPIC_ALREADY_EXISTS = 36


def make_redis(url: str) -> Redis:
    if url.startswith("memory://"):
        return fakeredis.FakeAsyncRedis()
    return Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3)


def make_broker(settings: Settings, client_id: str) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap,
        security=broker_security(settings),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=1,
        request_timeout_ms=15_000,
        # FastStream logs "Received" and "Processed" at INFO for every message by default: two
        # formatted lines per event per service, on the hot path. Ours go to DEBUG (failures
        # are still logged at ERROR, and our consumer logs what it does with each event).
        logger=logging.getLogger("rapport.kafka"),
        log_level=logging.DEBUG,
    )


TOPICS_PATIENCE_SECONDS = 60.0


async def ensure_topics(settings: Settings, topics: Sequence[str]) -> None:
    """Create the topics (and their DLQs) this process uses; existing ones are left alone.

    A broker that is briefly unreachable (restarting, a connection reset) is waited for, up to
    a minute, rather than ending the process at start-up."""
    deadline = time.monotonic() + TOPICS_PATIENCE_SECONDS
    backoff = 0.5
    while True:
        try:
            await _ensure_topics(settings, topics)
            return
        except (KafkaConnectionError, NodeNotReadyError, RequestTimedOutError) as error:
            if time.monotonic() + backoff > deadline:
                raise
            log.warning(
                "Kafka not reachable while creating topics; retrying",
                error=f"{type(error).__name__}: {error}"[:300],
                retry_in_s=backoff,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 8.0)


async def _ensure_topics(settings: Settings, topics: Sequence[str]) -> None:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="rapport-admin",
        request_timeout_ms=15_000,
        **client_options(settings),
    )
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = sorted(set(topics) - existing)
        if missing:
            new = [
                NewTopic(
                    name=t,
                    num_partitions=settings.topic_partitions,
                    replication_factor=settings.topic_replication,
                )
                for t in missing
            ]
            response = await admin.create_topics(new)
            failed = [
                f"{topic}: {message or for_code(code).__name__}"
                for topic, code, *rest in response.topic_errors
                for message in [rest[0] if rest else None]
                if code not in (0, TOPIC_ALREADY_EXISTS)  # created by another replica: fine
            ]
            if failed:
                raise RuntimeError(f"could not create topics: {'; '.join(failed[:3])}")
            log.info("topics created", topics=missing)
    finally:
        await admin.close()


async def create_tables(engine: AsyncEngine, definition: ServiceDefinition) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(
            lambda sync: SQLModel.metadata.create_all(sync, tables=list(definition.tables))
        )


@dataclass
class Host:
    settings: Settings
    definitions: Sequence[ServiceDefinition]
    embedded: bool = False
    # Embedded (SQLite) databases get their tables at start-up; a real database is migrated
    # with ``rapport migrate`` (Alembic) before the services start.
    create_tables: bool = False
    runtimes: dict[str, ServiceRuntime] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = "+".join(d.name for d in self.definitions)
        self.broker = make_broker(self.settings, client_id=f"rapport-{names}")
        self.redis = make_redis(self.settings.redis_url)
        for definition in self.definitions:
            runtime = ServiceRuntime(definition, self.settings, self.broker, self.redis)
            runtime.register_subscribers()
            self.runtimes[definition.name] = runtime
        self._stack: AsyncExitStack | None = None

    async def start(self) -> None:
        stack = AsyncExitStack()
        self._stack = stack
        if self.embedded or self.create_tables:
            for runtime in self.runtimes.values():
                await create_tables(runtime.engine, runtime.definition)
        # Nothing is read, claimed or published before the tables are known to be this
        # deployment's (shared/deployment.py): another prefix's stop the start here.
        for runtime in self.runtimes.values():
            await claim_tables(runtime.engine, runtime.name, self.settings.topic_prefix)
        if self.embedded:
            await stack.enter_async_context(TestKafkaBroker(self.broker))
        else:
            topics = sorted(set().union(*(r.topics() for r in self.runtimes.values())))
            await ensure_topics(self.settings, topics)
        for runtime in self.runtimes.values():
            await runtime.start()
        if not self.embedded:
            await self.broker.start()
            stack.push_async_callback(self.broker.stop)
        log.info("services started", services=list(self.runtimes), embedded=self.embedded)

    async def check_deployment(self) -> None:
        """Refuse (:class:`shared.deployment.DeploymentMismatch`) tables that belong to a
        deployment with another topic prefix, before anything starts (``rapport serve``)."""
        for runtime in self.runtimes.values():
            url = self.settings.database_url_for(runtime.name)
            await check_tables(url, runtime.name, self.settings.topic_prefix)

    async def stop(self) -> None:
        """Graceful: stop consuming (an in-flight handler finishes or rolls back, and its
        offset is committed only if it committed), stop relays and background work, publish
        what the outboxes still hold while the producer is open, then close."""
        for runtime in self.runtimes.values():
            runtime.consumer.stopping = True
        if not self.embedded:
            await asyncio.gather(
                *(sub.stop() for sub in self.broker.subscribers), return_exceptions=True
            )
        for runtime in self.runtimes.values():
            await runtime.halt()
        for runtime in self.runtimes.values():
            await runtime.relay.drain(seconds=5)
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None
        for runtime in self.runtimes.values():
            await runtime.close()
        await self.redis.aclose()
        log.info("services stopped", services=list(self.runtimes))

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        for runtime in self.runtimes.values():
            checks.update(await runtime.readiness())
        try:
            await asyncio.wait_for(self.redis.ping(), 3)
            checks["redis"] = "ok"
        except Exception as error:
            checks["redis"] = f"unavailable: {type(error).__name__}"
        if self.embedded:
            checks["kafka"] = "ok"
        else:
            try:
                alive = await self.broker.ping(timeout=3)
                checks["kafka"] = "ok" if alive else "unavailable"
            except Exception as error:
                checks["kafka"] = f"unavailable: {type(error).__name__}"
        return checks

    async def warnings(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for runtime in self.runtimes.values():
            found.update(await runtime.warnings())
        return found

    def http_app(self) -> FastAPI:
        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        return create_http_app(
            title="Rapport " + ", ".join(self.runtimes),
            routers=[r.definition.router for r in self.runtimes.values()],
            readiness=self.readiness,
            warnings=self.warnings,
            lifespan=lifespan,
            max_body_bytes=self.settings.max_body_bytes,
            service=",".join(self.runtimes),
            max_in_flight=self.settings.http_max_in_flight,
            retry_after_seconds=self.settings.http_retry_after_seconds,
            state={
                "settings": self.settings,
                "runtimes": self.runtimes,
                "host": self,
                "rate_limiter": SiteRateLimiter(
                    self.redis,
                    self.settings.rate_limit_per_site_per_minute,
                    namespace=self.settings.topic_prefix,
                ),
            },
        )

    def asyncapi(self) -> dict[str, Any]:
        names = ", ".join(self.runtimes)
        spec = AsyncAPI(
            self.broker,
            title=f"Rapport {names}",
            version="1",
            description="Rapport event streams: CloudEvents 1.0 in Kafka binary "
            "mode (ce_* headers, JSON body). Keys are episode ids or client "
            "pseudonyms. No direct identifiers and no free text.",
        )
        result: dict[str, Any] = spec.to_specification().to_jsonable()
        return result
