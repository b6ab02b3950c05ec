"""Every event consumer of every service (enumerated from the service definitions) meets
broken messages — malformed, truncated, oversized, wrong type version, missing or non-UTF-8
CloudEvents attributes, wrong field types — and sends each to ``<topic>.dlq`` with the reason in
its headers, without touching its database and without stopping: in memory for the volume
(hypothesis), then on the real Kafka, where every consumer group's offsets reach the end of
its topics twice over."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from hypothesis import HealthCheck, Phase, given, settings

import services
from shared.consumer import Consumer
from shared.contracts import REGISTRY
from shared.events import KafkaRecord, decode, header_dict
from shared.host import Host
from shared.outbox import Inbox, Outbox
from shared.runtime import ServiceDefinition, Subscription
from shared.settings import Settings
from tests.support.event_fuzz import DEFECTS, Message, broken, valid_data, valid_message
from tests.support.system import read_all
from tests.support.waiting import eventually

# Oversized bodies are the point of one defect; hypothesis warns about their repr.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

DEFINITIONS = services.definitions()
CONSUMERS = [(d, s) for d in DEFINITIONS for s in d.subscriptions]
TOPIC_PREFIX = "rapport."


def _id(value: Any) -> str:
    if isinstance(value, Subscription):
        return value.event_type.topic_name
    return str(getattr(value, "name", value))


def test_every_service_consumes_something() -> None:
    consuming = {d.name for d, _ in CONSUMERS}
    assert consuming == set(services.NAMES)


@asynccontextmanager
async def _no_database(touched: list[str]) -> AsyncIterator[Any]:
    touched.append("session")
    raise AssertionError("a broken message reached the database")
    yield  # pragma: no cover


def _consumer(
    definition: ServiceDefinition, letters: list[KafkaRecord], touched: list[str]
) -> Consumer:
    async def capture(record: KafkaRecord) -> None:
        letters.append(record)

    sessionmaker: Callable[[], Any] = lambda: _no_database(touched)  # noqa: E731
    return Consumer(
        definition.name,
        sessionmaker,  # type: ignore[arg-type]
        Inbox(definition.inbox_table),
        Outbox(definition.outbox_table, topic_for=lambda e: "unused", source="/tests"),
        REGISTRY,
        capture,
    )


@pytest.mark.parametrize(("definition", "subscription"), CONSUMERS, ids=_id)
def test_valid_events_of_the_fuzzer_decode(
    definition: ServiceDefinition, subscription: Subscription
) -> None:
    """The fuzzer's starting point is a valid event, so each defect is the only one."""
    event_type = subscription.event_type
    topic = TOPIC_PREFIX + event_type.topic_name

    @given(data=valid_data(event_type))
    @settings(
        max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(data: Any) -> None:
        message = valid_message(event_type, data, topic)
        event = decode(header_dict(message.headers), message.value, REGISTRY, [event_type.type])
        assert event.data == data

    check()


@pytest.mark.parametrize(("definition", "subscription"), CONSUMERS, ids=_id)
def test_broken_message_goes_to_the_dlq_and_the_consumer_moves_on(
    definition: ServiceDefinition, subscription: Subscription
) -> None:
    event_type = subscription.event_type
    topic = TOPIC_PREFIX + event_type.topic_name
    handler_name = f"{definition.name}.{subscription.name}"
    letters: list[KafkaRecord] = []
    touched: list[str] = []
    consumer = _consumer(definition, letters, touched)

    def check(message: Message) -> None:
        letters.clear()
        outcome = asyncio.run(
            consumer.handle(
                handler_name,
                subscription.handler,
                [event_type.type],
                KafkaRecord(topic=topic, key=message.key, value=message.value, headers={}),
                list(message.headers),
                "0:7",
            )
        )
        assert outcome.status == "dead_lettered", message.defect
        assert not touched, message.defect
        assert len(letters) == 1
        letter = letters[0]
        assert letter.topic == f"{topic}.dlq"
        assert letter.value == message.value and letter.key == message.key
        assert letter.headers["dlq_error"]
        assert letter.headers["dlq_source_topic"] == topic
        assert letter.headers["dlq_source_position"] == "0:7"
        assert letter.headers["dlq_service"] == definition.name
        assert letter.headers["dlq_handler"] == handler_name

    quick = settings(
        max_examples=6, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    for defect in DEFECTS:

        @quick
        @given(message=broken(event_type, topic, defect))
        def each(message: Message) -> None:
            check(message)

        each()


def _one_of_each(event_type: Any, topic: str) -> list[Message]:
    """One drawn message per defect (generation only: no shrinking, nothing failed)."""
    drawn: list[Message] = []
    once = settings(
        max_examples=1,
        phases=[Phase.generate],
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    for defect in DEFECTS:

        @once
        @given(message=broken(event_type, topic, defect))
        def keep(message: Message) -> None:
            drawn.append(message)

        keep()
    return drawn


async def _committed_to_end(settings_: Settings, groups: dict[str, list[str]]) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings_.kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings_.kafka_bootstrap)
    await admin.start()
    await consumer.start()
    try:
        for group, topics in groups.items():
            committed = await admin.list_consumer_group_offsets(group)
            for topic in topics:
                partitions = consumer.partitions_for_topic(topic) or set()
                if not partitions:
                    await consumer._client.force_metadata_update()
                    partitions = consumer._client.cluster.partitions_for_topic(topic) or set()
                tps = [TopicPartition(topic, p) for p in partitions]
                ends = await consumer.end_offsets(tps)
                for tp, end in ends.items():
                    done = committed.get(tp)
                    if end and (done is None or done.offset < end):
                        return False
    finally:
        await consumer.stop()
        await admin.close()
    return True


async def test_on_kafka_every_consumer_dead_letters_and_keeps_its_offsets_moving(
    real_settings: Settings,
) -> None:
    host = Host(real_settings, services.definitions())
    await host.start()
    producer = AIOKafkaProducer(bootstrap_servers=real_settings.kafka_bootstrap)
    await producer.start()
    try:
        by_topic: dict[str, list[Message]] = {}
        groups: dict[str, list[str]] = {}
        for definition, subscription in CONSUMERS:
            topic = real_settings.topic(subscription.event_type.topic_name)
            groups.setdefault(f"{real_settings.topic_prefix}{definition.name}", []).append(topic)
            if topic not in by_topic:
                by_topic[topic] = await asyncio.to_thread(
                    _one_of_each, subscription.event_type, topic
                )
        for _ in range(2):  # the second round proves the first left every consumer running
            for topic, messages in by_topic.items():
                for message in messages:
                    await producer.send_and_wait(
                        topic, message.value, key=message.key, headers=list(message.headers)
                    )

            async def all_committed() -> bool:
                return await _committed_to_end(real_settings, groups)

            await eventually(all_committed, timeout=120, interval=0.5, what="offsets to advance")

        dlqs = [f"{t}.dlq" for t in by_topic]
        letters = await read_all(real_settings, dlqs)
        per_consumer = Counter(
            (r.header("dlq_source_topic"), r.header("dlq_service")) for r in letters
        )
        expected = Counter(
            {
                (real_settings.topic(s.event_type.topic_name), d.name): 2 * len(DEFECTS)
                for d, s in CONSUMERS
            }
        )
        assert per_consumer == expected
        assert all(r.header("dlq_error") for r in letters)
        assert all(r.topic == f"{r.header('dlq_source_topic')}.dlq" for r in letters)
    finally:
        await producer.stop()
        await host.stop()
