"""Analytics benchmark (issue 5, Performance): consuming ``feedback.recorded`` from the real
Kafka with state in PostgreSQL, against a bare aiokafka consumer reading the same topic in the
same run; latency from publish of ``feedback.recorded`` to publish of ``alliance.alert`` at a
fixed offered rate; state size per active episode.

    .venv/bin/python bench/analytics_bench.py [--events 5000] [--rate 300] [--seconds 10]

``rapport serve analytics`` runs as its own process. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services import upgrade
from services.analytics.domain import EpisodeState
from shared.contracts import ALLIANCE_ALERT, FEEDBACK_RECORDED, FeedbackRecorded
from shared.events import Event, encode
from shared.settings import load_settings

HIGH = {"relationship": 9.5, "goals": 9.5, "approach": 9.5, "overall": 9.5}
LOW = {"relationship": 7.0, "goals": 7.0, "approach": 7.0, "overall": 7.0}


def feedback(
    episode: int, session: int, low: bool, prefix: str
) -> tuple[str, bytes, bytes, list[tuple[str, bytes]]]:
    items = LOW if low else HIGH
    event = Event(
        FEEDBACK_RECORDED,
        FeedbackRecorded(
            response_id=str(uuid.uuid4()),
            episode_id=f"ep-{episode}",
            site_id="site-a",
            therapist_id="th-1",
            session_number=session,
            respondent="p1_" + f"{episode:032x}",
            respondent_role="client",
            instrument="srs",
            instrument_version=1,
            items=items,
            total=sum(items.values()),
            in_concern_or_clinical_range=low,
            answered_at=datetime.now(UTC),
        ),
        source="/bench",
    )
    record = encode(event, f"{prefix}{FEEDBACK_RECORDED.topic_name}")
    return (
        record.topic,
        record.key or b"",
        record.value,
        [(k, v.encode()) for k, v in record.headers.items()],
    )


async def bare_consumer(bootstrap: str, topic: str, expected: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bare-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    try:
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    json.loads(record.value)  # the bare minimum: parse what arrived
                    seen += 1
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()
    return expected / (time.perf_counter() - started)


def stack_endpoints() -> Any:
    """The stack given by ``RAPPORT_TEST_*`` (as for the tests and the other benchmarks), else
    the project's own."""
    if os.environ.get("RAPPORT_TEST_DATABASE_URL"):
        return SimpleNamespace(
            kafka_bootstrap=os.environ["RAPPORT_TEST_KAFKA_BOOTSTRAP"],
            database_url=os.environ["RAPPORT_TEST_DATABASE_URL"],
            redis_url=os.environ["RAPPORT_TEST_REDIS_URL"],
        )
    from rapport import stack

    return stack.up()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    endpoints = stack_endpoints()
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(endpoints.database_url.replace("+asyncpg", ""))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    db_url = endpoints.database_url.rsplit("/", 1)[0] + f"/{name}"
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    settings = load_settings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        database_url=db_url,
        redis_url=endpoints.redis_url,
        topic_prefix=prefix,
    )
    await asyncio.to_thread(upgrade, "analytics", db_url)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    await producer.start()
    topic = f"{prefix}{FEEDBACK_RECORDED.topic_name}"
    episodes = max(1, args.events // 20)
    for n in range(args.events):
        t, key, value, headers = feedback(n % episodes, 1 + n // episodes, False, prefix)
        await producer.send(t, value=value, key=key, headers=headers)
    await producer.flush()

    bare_rate = await bare_consumer(settings.kafka_bootstrap, topic, args.events)

    env = {
        **os.environ,
        "RAPPORT_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "RAPPORT_DATABASE_URL": db_url,
        "RAPPORT_REDIS_URL": settings.redis_url,
        "RAPPORT_TOPIC_PREFIX": prefix,
        "RAPPORT_LOG_LEVEL": "warning",
        "RAPPORT_HTTP_PORT": str(18000 + os.getpid() % 1000),
    }
    connection = await asyncpg.connect(db_url.replace("+asyncpg", ""))
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "rapport.cli", "serve", "analytics"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while await connection.fetchval("select count(*) from analytics_scores") < args.events:
            await asyncio.sleep(0.2)
        ours_rate = args.events / (time.perf_counter() - started)

        # Latency: each low SRS after a high one raises alerts; time publish -> alert publish.
        alerts = AIOKafkaConsumer(
            f"{prefix}{ALLIANCE_ALERT.topic_name}",
            bootstrap_servers=settings.kafka_bootstrap,
            auto_offset_reset="latest",
            group_id=f"lat-{uuid.uuid4()}",
        )
        await alerts.start()
        await asyncio.sleep(2)
        sent_at: dict[str, float] = {}
        total = int(args.rate * args.seconds)
        base = 10**6
        begin = time.perf_counter()
        for n in range(total):
            due = begin + n / args.rate
            if due > time.perf_counter():
                await asyncio.sleep(due - time.perf_counter())
            episode = base + n
            for session, low in ((1, False), (2, True)):
                t, key, value, headers = feedback(episode, session, low, prefix)
                await producer.send(t, value=value, key=key, headers=headers)
            sent_at[f"ep-{episode}"] = time.time()
        await producer.flush()
        latencies: dict[str, float] = {}
        deadline = time.perf_counter() + 60
        while len(latencies) < total and time.perf_counter() < deadline:
            batch = await alerts.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    data = json.loads(record.value)
                    episode_id = data["episode_id"]
                    if episode_id in sent_at and episode_id not in latencies:
                        latencies[episode_id] = record.timestamp / 1000 - sent_at[episode_id]
        await alerts.stop()
        states = await connection.fetch(
            "select state::text as s from analytics_episodes where state is not null limit 200"
        )
        sizes = [len(r["s"]) for r in states]
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        loaded = [EpisodeState.from_json(json.loads(r["s"])) for r in states]
        in_memory = (tracemalloc.get_traced_memory()[0] - before) / max(1, len(loaded))
        tracemalloc.stop()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        await producer.stop()
        await connection.close()
    ordered = sorted(latencies.values())

    def pct(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {
        "benchmark": "analytics_consume_feedback_recorded",
        "events": args.events,
        "rapport_events_per_s": round(ours_rate, 1),
        "bare_aiokafka_events_per_s": round(bare_rate, 1),
        "ratio": round(ours_rate / bare_rate, 4),
        "latency_feedback_to_alert": {
            "offered_per_s": args.rate,
            "episodes": total,
            "alerts_seen": len(ordered),
            "p50_ms": pct(0.5) if ordered else None,
            "p99_ms": pct(0.99) if ordered else None,
            "max_ms": round(1000 * ordered[-1], 1) if ordered else None,
        },
        "state_per_active_episode": {
            "json_bytes_mean": round(sum(sizes) / max(1, len(sizes))),
            "python_bytes_mean": round(in_memory),
            "sessions_per_episode": args.events // episodes,
        },
        "targets": {"ratio": 0.3, "p99_ms_at_300_per_s": 100},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--seconds", type=float, default=10)
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
