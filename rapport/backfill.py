"""``rapport backfill analytics``: rebuild the analytics service's state from its Kafka topics,
from offset 0, with the same handlers the live service runs.

Run it with the analytics service stopped (scale it to 0). It takes the end offsets of the
consumed topics, clears the service's state tables, replays every record up to those offsets
through the handlers, in one transaction per record, and records each event id in the inbox.
Events the handlers would emit are NOT published again (they were published the first time;
notify would otherwise deliver them twice). Finally it commits the service's consumer-group
offsets at the snapshot, so the restarted service continues exactly where the backfill stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata
from sqlalchemy import delete

import services
from shared.consumer import Delivery
from shared.contracts import REGISTRY
from shared.db import all_sites, site_scope
from shared.deployment import claim_tables
from shared.events import InvalidEvent, decode, header_dict
from shared.kafka_security import client_options
from shared.logs import configure_logging, get_logger
from shared.runtime import ServiceRuntime
from shared.settings import Settings, SettingsError, load_settings

log = get_logger(__name__)
STATE_TABLES = (
    "analytics_alerts",
    "analytics_scores",
    "analytics_closed_episodes",
    "analytics_episodes",
    "analytics_inbox",
)


async def backfill(settings: Settings) -> dict[str, int]:
    from shared.host import Host

    host = Host(settings, services.definitions(["analytics"]))
    runtime: ServiceRuntime = host.runtimes["analytics"]
    # The tables it empties and rebuilds must be this deployment's (shared/deployment.py).
    try:
        await claim_tables(runtime.engine, "analytics", settings.topic_prefix)
    except BaseException:
        await runtime.close()
        await host.redis.aclose()
        raise
    by_topic = {runtime.topic(s.event_type): s for s in runtime.definition.subscriptions}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
        **client_options(settings),
    )
    await consumer.start()
    counts = {"applied": 0, "invalid": 0, "duplicates": 0}
    try:
        partitions = await _partitions(settings, sorted(by_topic))
        consumer.assign(partitions)
        end = await _end_offsets(consumer, partitions)
        beginning = await consumer.beginning_offsets(partitions) if partitions else {}
        for tp in partitions:
            consumer.seek(tp, beginning[tp])
        with all_sites():
            async with runtime.sessionmaker() as session, session.begin():
                for name in STATE_TABLES:
                    await session.execute(delete(_table(runtime, name)))
        remaining = {tp for tp in partitions if end.get(tp, 0) > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=2000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= end[tp]:
                        remaining.discard(tp)
                        break
                    counts[await _apply(runtime, by_topic[tp.topic], record)] += 1
                    if record.offset + 1 >= end[tp]:
                        remaining.discard(tp)
            if not batch:
                positions = {tp: await consumer.position(tp) for tp in remaining}
                remaining = {tp for tp in remaining if positions[tp] < end[tp]}
        group = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=runtime.group_id,
            enable_auto_commit=False,
            **client_options(settings),
        )
        await group.start()
        try:
            group.assign(partitions)
            if partitions:
                await group.commit(
                    {tp: OffsetAndMetadata(end[tp], "backfill") for tp in partitions}
                )
        finally:
            await group.stop()
    finally:
        await consumer.stop()
        await runtime.close()
        await host.redis.aclose()
    return counts


async def _partitions(settings: Settings, topics: list[str]) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, **client_options(settings)
    )
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return [
        TopicPartition(d["topic"], p["partition"])
        for d in described
        if not d.get("error_code")
        for p in d["partitions"]
    ]


async def _end_offsets(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """The snapshot to rebuild up to. Right after topics are created or a leader moves, the
    client's metadata can lag: refresh it and ask again rather than take a wrong answer."""
    for attempt in range(20):
        try:
            await consumer._client.force_metadata_update()
            end: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
            if set(end) == set(partitions):
                return end
        except KafkaError as error:
            log.info("end offsets not ready; retrying", attempt=attempt, error=str(error))
        await asyncio.sleep(0.5)
    raise RuntimeError("could not read the end offsets of the consumed topics")


def _table(runtime: ServiceRuntime, name: str) -> Any:
    for table in runtime.definition.tables:
        if table.name == name:
            return table
    raise KeyError(name)


async def _apply(runtime: ServiceRuntime, subscription: Any, record: Any) -> str:
    try:
        headers = header_dict(list(record.headers or ()))
        event = decode(headers, record.value, REGISTRY, [subscription.event_type.type])
    except InvalidEvent:
        return "invalid"  # it went to the DLQ the first time; still not applicable
    handler_name = f"{runtime.name}.{subscription.name}"
    with site_scope(str(getattr(event.data, "site_id", ""))):
        async with runtime.sessionmaker() as session, session.begin():
            if not await runtime.consumer.inbox.claim(session, handler_name, event.id):
                return "duplicates"
            await subscription.handler(
                Delivery(event=event, session=session, dependencies=runtime.dependencies)
            )
        # Emitted events are dropped on purpose: they were published the first time.
    return "applied"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rapport backfill", description=__doc__)
    parser.add_argument("service", choices=["analytics"])
    args = parser.parse_args(argv)
    del args
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"rapport: bad setting: {error}", file=sys.stderr)
        return 2
    configure_logging("backfill", settings.log_level, settings.log_json)
    try:
        counts = asyncio.run(backfill(settings))
    except SettingsError as error:  # the tables belong to another deployment
        print(f"rapport: bad setting: {error}", file=sys.stderr)
        return 2
    print(
        f"analytics rebuilt: {counts['applied']} events applied, {counts['invalid']} invalid, "
        f"{counts['duplicates']} duplicates skipped",
        file=sys.stderr,
    )
    return 0


__all__ = ["backfill", "main"]
