"""A producer that the broker no longer agrees with recovers: after a Kafka restart the chaos
test saw aiokafka's idempotent producer fail every send with ``OutOfOrderSequenceNumber`` for
ever (aio-libs/aiokafka#1017), so the outbox never drained. Here the disagreement is made
deterministic — the producer's next sequence number is pushed ahead of the broker's — and the
service's publishing must fail once, renew its producer, and then deliver."""

from __future__ import annotations

from typing import Any

from aiokafka.errors import OutOfOrderSequenceNumber

import services
from shared.events import KafkaRecord
from shared.host import Host
from shared.settings import Settings
from tests.support.system import read_all


async def test_publishing_renews_a_producer_that_lost_step_with_the_broker(
    real_settings: Settings,
) -> None:
    host = Host(real_settings, services.definitions(["feedback"]))
    await host.start()
    runtime = host.runtimes["feedback"]
    topic = real_settings.topic("producer.recovery.v1")
    try:

        def record(n: int) -> KafkaRecord:
            return KafkaRecord(topic=topic, key=b"k", value=b'{"n": %d}' % n, headers={})

        await (await runtime._publish(record(1)))()
        aiokafka_producer: Any = runtime.broker.config.producer._producer.producer
        sequences = aiokafka_producer._txn_manager._sequence_numbers
        for partition in list(sequences):
            sequences[partition] += 7  # the broker now expects an earlier number
        failures = 0
        for n in range(2, 6):
            try:
                await (await runtime._publish(record(n)))()
            except OutOfOrderSequenceNumber:
                failures += 1
        assert 1 <= failures < 4  # the disagreement happened, and publishing recovered
        await (await runtime._publish(record(99)))()
    finally:
        await host.stop()
    values = {r.value for r in await read_all(real_settings, [topic])}
    assert b'{"n": 1}' in values and b'{"n": 99}' in values
