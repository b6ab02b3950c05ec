"""``rapport events TOPIC…``: print Rapport's CloudEvents from Kafka, one JSON line each.

A reading aid for data teams and newcomers: reads the named topics (without the prefix, e.g.
``alliance.alert.v1``; the prefix comes from ``RAPPORT_TOPIC_PREFIX``) from the beginning or
from now, with no consumer group (it commits nothing and never disturbs the services), and
prints ``{"topic", "key", "type", "subject", "time", "data"}`` per event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("topics", nargs="+", help="e.g. alliance.alert.v1 feedback.recorded.v1")
    parser.add_argument(
        "--from-now", action="store_true", help="only new events (default: from the beginning)"
    )
    parser.add_argument("--limit", type=int, default=0, help="stop after N events (0: never)")
    parser.add_argument(
        "--idle", type=float, default=0, help="stop after this many seconds without an event"
    )
    return parser


def as_json_line(message: Any) -> str:
    """One Kafka record as a JSON line: topic, key, the CloudEvent attributes and the data."""
    headers = {k: v.decode("utf-8", "replace") for k, v in (message.headers or [])}
    try:
        data = json.loads(message.value)
    except ValueError:
        data = message.value.decode("utf-8", "replace")
    return json.dumps(
        {
            "topic": message.topic,
            "key": message.key.decode() if message.key else None,
            "type": headers.get("ce_type"),
            "subject": headers.get("ce_subject"),
            "time": headers.get("ce_time"),
            "data": data,
        }
    )


async def read(args: argparse.Namespace) -> int:
    from aiokafka import AIOKafkaConsumer

    from shared.kafka_security import client_options
    from shared.settings import load_settings

    settings = load_settings()
    topics = [settings.topic_prefix + t.removeprefix(settings.topic_prefix) for t in args.topics]
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="latest" if args.from_now else "earliest",
        **client_options(settings),
    )
    await consumer.start()
    seen = 0
    try:
        while not args.limit or seen < args.limit:
            batch = await consumer.getmany(timeout_ms=int((args.idle or 1) * 1000))
            if not batch and args.idle:
                break
            for message in (m for messages in batch.values() for m in messages):
                if args.limit and seen >= args.limit:
                    break
                print(as_json_line(message), flush=True)
                seen += 1
    finally:
        await consumer.stop()
    print(f"rapport events: {seen} event(s)", file=sys.stderr)
    return 0


def main(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(read(args))
    except KeyboardInterrupt:
        return 130
