"""Recovery of a Kafka producer that stopped for good.

aiokafka's idempotent producer gives up for ever when the broker no longer agrees with its
sequence numbers or producer id — as after a broker restart that lost the producer's state
(``OutOfOrderSequenceNumber``; aio-libs/aiokafka#1017): its sender task ends and every later
send raises the same error until the process restarts. Found by the chaos test (Kafka restarted
under load). The cure is a new producer (a new producer id and fresh sequence numbers); the
outbox re-sends what was not acknowledged.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import OutOfOrderSequenceNumber, ProducerFenced, UnknownProducerId
from faststream.kafka import KafkaBroker

PRODUCER_BROKEN: tuple[type[Exception], ...] = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    ProducerFenced,
)


async def renew_producer(broker: KafkaBroker) -> None:
    """Swap the broker's producer for a new one with the same settings."""
    producer: Any = broker.config.producer
    with suppress(Exception):  # the old one is broken; stopping it may raise its error again
        await producer.disconnect()
    connection: dict[str, Any] = broker._connection_kwargs
    await producer.connect(
        AIOKafkaProducer(**connection), serializer=producer.serializer, codec=producer.codec
    )
