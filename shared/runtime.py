"""What a service is (:class:`ServiceDefinition`) and what it has while it runs
(:class:`ServiceRuntime`): its database, outbox relay, idempotent consumer and subscribers."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Request
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.message import KafkaMessage as KafkaStreamMessage
from faststream.kafka.subscriber.usecase import BatchSubscriber
from redis.asyncio import Redis
from sqlalchemy import Table
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.consumer import Arrival, Consumer, Delivery, Handler
from shared.contracts import REGISTRY
from shared.db import all_sites, make_engine, make_sessionmaker, ping
from shared.events import Event, EventType, KafkaRecord
from shared.logs import get_logger
from shared.outbox import Inbox, Outbox, OutboxRelay
from shared.producer import PRODUCER_BROKEN, renew_producer
from shared.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True)
class Subscription:
    event_type: EventType[Any]
    handler: Handler
    name: str
    # Which events of the type the handler acts on; the others are acknowledged without a
    # transaction (they would have no effect, so there is nothing to record or deduplicate).
    wants: Callable[[Event[Any]], bool] | None = None


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    router: APIRouter
    tables: Sequence[Table]
    outbox_table: Table
    inbox_table: Table
    subscriptions: Sequence[Subscription] = ()
    produces: Sequence[EventType[Any]] = ()
    # Long-running work of the service's own (e.g. notify's delivery dispatcher).
    background: Sequence[Callable[[ServiceRuntime], Coroutine[Any, Any, None]]] = ()
    # Loading of configuration data (e.g. instrument definitions) when the runtime is built.
    on_init: Sequence[Callable[[ServiceRuntime], None]] = ()
    # The service's Alembic history (``services/<name>/migrations``), handed to the kernel's
    # ``shared.migrations`` by ``services.migrate``.
    migrations: Path | None = None
    # Builds the service's one typed dependencies object, once, when the runtime is built
    # (after ``on_init``); routes and subscribers reach it through the service's own accessors.
    dependencies: Callable[[ServiceRuntime], object] | None = None
    # Conditions an operator must hear of that do not make the service unready (``/readyz``
    # stays 200 and lists them under ``warnings``): name → one line, no identifiers.
    warnings: Sequence[Callable[[ServiceRuntime], Awaitable[dict[str, str]]]] = ()
    description: str = ""


INVALID_HEADER_MARK = "rapport-invalid-header"


def _tolerant_record(record: Any) -> Any:
    """The record, with a header that is not UTF-8 replaced and named in a mark header."""
    bad = []
    for name, value in record.headers or ():
        try:
            (value or b"").decode("utf-8")
        except UnicodeDecodeError:
            bad.append(name)
    if not bad:
        return record
    clean = [(n, (v or b"").decode("utf-8", errors="replace").encode()) for n, v in record.headers]
    clean.append((INVALID_HEADER_MARK, ",".join(bad).encode()))
    consumer = getattr(record, "consumer", None)
    record = dataclasses.replace(record, headers=clean)
    if consumer is not None:
        record.consumer = consumer
    return record


async def _tolerant_parser(records: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    """FastStream's own parser decodes every header as UTF-8 and, when one is not, the poll is
    skipped with only a log line. Mark such headers instead, so ours dead-letters them."""
    if isinstance(records, tuple | list):
        records = type(records)(_tolerant_record(r) for r in records)
    else:
        records = _tolerant_record(records)
    return await original(records)


async def _raw_body(message: KafkaStreamMessage) -> Any:
    """Hand the handler the raw bytes: decoding is ours, so bad JSON goes to the DLQ."""
    return message.body


class PromptBatchSubscriber(BatchSubscriber):
    """FastStream's batch subscriber without its rest after an empty poll.

    ``getmany`` already waits up to the poll time and returns as soon as a record arrives, so
    a long poll costs an idle consumer one wake-up per poll and a busy one nothing; the rest
    FastStream adds after an empty poll would only delay the first record after a quiet spell
    by up to the poll time (and a short poll, to keep that delay small, costs an idle service
    dozens of wake-ups a second)."""

    __slots__ = ()
    # Set per service (a subclass of its own): how long to wait, after the first records of a
    # poll, for those right behind them, so that under load one transaction applies several.
    linger_seconds: ClassVar[float] = 0.0

    async def get_msg(self, consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord, ...]:
        started = time.monotonic()
        timeout = self.batch_timeout_ms / 1000
        messages = await consumer.getmany(
            timeout_ms=self.batch_timeout_ms, max_records=self.max_records
        )
        if not messages:
            # An empty answer well before the poll time (the consumer between assignments):
            # rest the remainder rather than spin.
            rest = timeout - (time.monotonic() - started)
            if rest > timeout / 2:
                await asyncio.sleep(rest)
            return ()
        records = list(chain.from_iterable(messages.values()))
        room = (self.max_records or 10_000) - len(records)
        if self.linger_seconds and room > 0:
            await asyncio.sleep(self.linger_seconds)
            # Later records of a partition come after its earlier ones: order is kept.
            try:
                more = await consumer.getmany(timeout_ms=0, max_records=room)
            except KafkaError as error:  # the records in hand are applied, never dropped
                log.warning("a consumer's second look failed", error=type(error).__name__)
                more = {}
            records.extend(chain.from_iterable(more.values()))
        return tuple(records)


@dataclass
class ServiceRuntime:
    definition: ServiceDefinition
    settings: Settings
    broker: KafkaBroker
    redis: Redis
    state: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        name = self.definition.name
        self.engine = make_engine(self.settings.database_url_for(name), name=f"rapport-{name}")
        self.sessionmaker = make_sessionmaker(self.engine)
        self.relay = OutboxRelay(
            name,
            self.definition.outbox_table,
            self.sessionmaker,
            self._publish,
            batch_size=self.settings.relay_batch_size,
            idle_seconds=self.settings.relay_idle_seconds,
        )
        self.outbox = Outbox(
            self.definition.outbox_table,
            topic_for=lambda e: self.topic(e.type),
            source=f"/rapport/{name}",
            on_commit=self.relay.wake,
        )
        self.consumer = Consumer(
            name,
            self.sessionmaker,
            Inbox(self.definition.inbox_table),
            self.outbox,
            REGISTRY,
            self.send_raw,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._producer_lock = asyncio.Lock()
        self._producer_generation = 0
        # Set when the service is shutting down; background loops check it between batches.
        self.stopping = asyncio.Event()
        for init in self.definition.on_init:
            init(self)
        build = self.definition.dependencies
        self.dependencies: object = build(self) if build is not None else None
        self.consumer.dependencies = self.dependencies

    @property
    def name(self) -> str:
        return self.definition.name

    def topic(self, event_type: EventType[Any]) -> str:
        return self.settings.topic(event_type.topic_name)

    @property
    def group_id(self) -> str:
        return f"{self.settings.topic_prefix}{self.name}"

    def topics(self) -> set[str]:
        consumed = {self.topic(s.event_type) for s in self.definition.subscriptions}
        produced = {self.topic(t) for t in self.definition.produces}
        return consumed | produced | {f"{t}.dlq" for t in consumed}

    # -- publishing -------------------------------------------------------------------------
    async def _publish(self, record: KafkaRecord) -> Callable[[], Awaitable[None]]:
        generation = self._producer_generation
        try:
            result = await self.broker.publish(
                record.value,
                record.topic,
                key=record.key,
                headers=record.headers,
                correlation_id=record.headers.get("correlation_id"),
                no_confirm=True,
            )
        except PRODUCER_BROKEN:
            await self._renew_producer(generation)
            raise

        async def acknowledged() -> None:
            if isinstance(result, asyncio.Future):
                try:
                    await result
                except PRODUCER_BROKEN:
                    await self._renew_producer(generation)
                    raise

        return acknowledged

    async def send_raw(self, record: KafkaRecord) -> None:
        """Publish and wait for the broker's acknowledgement (dead letters)."""
        acknowledged = await self._publish(record)
        await acknowledged()

    async def _renew_producer(self, generation: int) -> None:
        """Replace a producer that stopped for good (once per failure, however many sends saw
        it). The caller still fails: the relay sends the unacknowledged rows again through the
        new producer, and consumers' inboxes absorb any copy that had arrived after all."""
        async with self._producer_lock:
            if generation != self._producer_generation:
                return  # already renewed
            self._producer_generation += 1
            await renew_producer(self.broker)
            log.warning("Kafka producer renewed after a fatal send error", service=self.name)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work for a route: state changes and outbox rows commit together."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def emit(self, session: AsyncSession, *events: Event[Any]) -> None:
        await self.outbox.add(session, events)

    # -- consuming --------------------------------------------------------------------------
    def register_subscribers(self) -> None:
        if self.definition.subscriptions:
            self._subscribe_all(self.definition.subscriptions)
        for event_type in self.definition.produces:
            # Documentation for the AsyncAPI export; events are published by the relay.
            self.broker.publisher(
                self.topic(event_type),
                schema=event_type.data_model,
                title=self.topic(event_type),
                include_in_schema=True,
                description=f"{event_type.type}: {event_type.description}",
            )

    def _subscribe_all(self, subscriptions: Sequence[Subscription]) -> None:
        """One Kafka consumer per service for all the routine topics it consumes, and one
        more for its urgent ones (a risk response): both in the service's consumer group, so a
        backlog of routine records never holds an urgent one back. Each record is handed to
        the subscriptions of its topic, each with its own inbox key."""
        by_topic: dict[str, list[Subscription]] = {}
        urgent: set[str] = set()
        for subscription in subscriptions:
            topic = self.topic(subscription.event_type)
            by_topic.setdefault(topic, []).append(subscription)
            if subscription.event_type.urgent:
                urgent.add(topic)

        async def consume(bodies: list[bytes], message: KafkaMessage) -> None:
            # One poll's records (the embedded broker hands over a list of one).
            raw = message.raw_message
            records = raw if isinstance(raw, tuple | list) else (raw,)
            arrivals = [
                Arrival(
                    f"{self.name}.{subscription.name}",
                    subscription.handler,
                    [subscription.event_type.type],
                    KafkaRecord(topic=r.topic, key=r.key, value=r.value or b"", headers={}),
                    list(r.headers or ()),
                    f"{r.partition}:{r.offset}",
                    subscription.wants,
                )
                for r in records
                for subscription in by_topic.get(r.topic, ())
            ]
            if arrivals:
                await self.consumer.handle_batch(arrivals)

        routine = sorted(set(by_topic) - urgent)
        for topics, title in ((routine, "consumer"), (sorted(urgent), "urgent-consumer")):
            if topics:
                self._subscribe(topics, [s for t in topics for s in by_topic[t]], title, consume)

    def _subscribe(
        self,
        topics: Sequence[str],
        subscriptions: Sequence[Subscription],
        title: str,
        consume: Callable[[list[bytes], KafkaMessage], Awaitable[None]],
    ) -> None:
        described = "; ".join(
            f"{s.event_type.type} → {s.name} (schema {s.event_type.dataschema})"
            for s in subscriptions
        )
        subscriber = self.broker.subscriber(
            *topics,
            group_id=self.group_id,
            # A poll's records are applied in one transaction and committed with one offset
            # commit; a poll waits at most consumer_poll_ms and returns on the first record.
            batch=True,
            max_records=self.settings.consumer_batch_size,
            batch_timeout_ms=self.settings.consumer_poll_ms,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            parser=_tolerant_parser,
            decoder=_raw_body,
            max_poll_interval_ms=300_000,
            title=f"{self.name}.{title}",
            description=f"{self.name} consumes: {described}",
        )
        subscriber(consume)
        if type(subscriber) is BatchSubscriber:
            subscriber.__class__ = type(
                "PromptBatchSubscriber",
                (PromptBatchSubscriber,),
                {"__slots__": (), "linger_seconds": self.settings.consumer_linger_ms / 1000},
            )

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self.relay.run(), name=f"{self.name}-relay"))
        for work in self.definition.background:
            self._tasks.append(
                asyncio.create_task(self._across_sites(work), name=f"{self.name}-background")
            )

    async def _across_sites(
        self, work: Callable[[ServiceRuntime], Coroutine[Any, Any, None]]
    ) -> None:
        """The service's own background work (dispatcher, scheduler) serves every site."""
        with all_sites():
            await work(self)

    async def halt(self, grace_seconds: float = 10.0) -> None:
        """Stop the relay loop and background work; each finishes the batch in hand (so
        nothing acknowledged is left unmarked and sent again), then exits. The producer stays
        open for a final drain."""
        self.consumer.stopping = True
        self.stopping.set()
        self.relay.stop()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=grace_seconds)
            for task in late:
                task.cancel()
            for task in self._tasks:
                with suppress(asyncio.CancelledError, Exception):
                    await task
        self._tasks.clear()

    async def close(self) -> None:
        await self.engine.dispose()

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(ping(self.engine), 3)
            checks[f"{self.name}.database"] = "ok"
        except Exception as error:
            checks[f"{self.name}.database"] = f"unavailable: {type(error).__name__}"
        return checks

    async def warnings(self) -> dict[str, str]:
        """The definition's warnings; one that cannot be worked out (the database is away:
        the readiness check says so) is left out."""
        found: dict[str, str] = {}
        for warning in self.definition.warnings:
            try:
                found.update(await asyncio.wait_for(warning(self), 3))
            except Exception as error:
                log.warning("readiness warning unavailable", error=type(error).__name__)
        return found


def runtime_of(request: Request, service: str) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtimes[service]
    return runtime


Dependencies = TypeVar("Dependencies")


def dependencies_of(
    source: ServiceRuntime | Delivery[Any], kind: type[Dependencies]
) -> Dependencies:
    """The service's typed dependencies object, checked to be of the kind its accessor expects
    (a subscription wired to the wrong service fails loudly, not with an AttributeError later)."""
    found = source.dependencies
    if not isinstance(found, kind):
        raise TypeError(f"expected {kind.__name__} dependencies, found {type(found).__name__}")
    return found
