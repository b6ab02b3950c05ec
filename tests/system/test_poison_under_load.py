"""Poison mixed into load, on the real Kafka into a real service process: valid events
(``RAPPORT_POISON_VALID``: 5,000 in ``make test``, 20,000 in ``make chaos``), 10% of them
delivered twice, and 1% poison (bad JSON, missing CloudEvents attributes, wrong
types, invalid UTF-8 in the body or a header, an unknown type version) shuffled in. Every
poison message ends in the DLQ with its reason in headers, no valid event does, every valid
event has exactly one effect, and the consumer never restarts.

The consumer is feedback's ``match.confirmed`` subscriber (it learns the episode): the cheapest
effect of the four services, through the same kernel path as every other (tolerant parser,
decode, inbox claim, handler, outbox, commit, DLQ)."""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer

from shared.contracts import MATCH_CONFIRMED, MatchConfirmed
from shared.crypto import pseudonymise
from shared.events import Event, encode
from shared.settings import Settings
from tests.support.processes import ServiceProcess
from tests.support.system import read_all
from tests.support.waiting import eventually

VALID = int(os.environ.get("RAPPORT_POISON_VALID", "5000"))
TWICE = VALID // 10
POISON = VALID // 100
HANDLER = "feedback.episode_from_match"

Raw = tuple[bytes, bytes, list[tuple[str, bytes]]]  # key, value, headers


def valid(number: int, topic: str) -> Raw:
    event = Event(
        MATCH_CONFIRMED,
        MatchConfirmed(
            match_id=f"m-{number}",
            episode_id=f"ep-{number}",
            site_id="site-a",
            therapist_id=f"th-{number % 50}",
            client=pseudonymise("k" * 32, f"client-{number}"),
            confirmed_at=datetime.now(UTC),
        ),
        source="/tests/poison",
    )
    record = encode(event, topic)
    return record.key or b"", record.value, [(k, v.encode()) for k, v in record.headers.items()]


POISONS = (
    "bad_json",
    "missing_attribute",
    "wrong_types",
    "non_utf8_body",
    "non_utf8_header",
    "unknown_version",
)


def poison(number: int, topic: str) -> tuple[str, Raw]:
    """A poison message keyed ``poison-<n>`` so that its dead letter can be recognised."""
    kind = POISONS[number % len(POISONS)]
    _, value, headers = valid(10**9 + number, topic)
    if kind == "bad_json":
        value = value[: len(value) // 2]
    elif kind == "missing_attribute":
        drop = ("ce_id", "ce_type", "ce_source", "ce_specversion", "ce_time")[number % 5]
        headers = [(k, v) for k, v in headers if k != drop]
    elif kind == "wrong_types":
        data = json.loads(value)
        data["confirmed_at"], data["domains"] = 12, "not-a-list"
        value = json.dumps(data).encode()
    elif kind == "non_utf8_body":
        value = value.replace(b"site-a", b"site-\xff")
    elif kind == "non_utf8_header":
        headers = [(k, b"\xc3(" if k == "ce_source" else v) for k, v in headers]
    else:
        headers = [
            (k, MATCH_CONFIRMED.type.replace(".v1", ".v7").encode() if k == "ce_type" else v)
            for k, v in headers
        ]
    return kind, (f"poison-{number}".encode(), value, headers)


async def test_poison_in_load_is_dead_lettered_and_nothing_valid_is_lost_or_doubled(
    real_settings: Settings, tmp_path: Path
) -> None:
    topic = real_settings.topic(MATCH_CONFIRMED.topic_name)
    rng = random.Random(8)
    valid_messages = [valid(n, topic) for n in range(VALID)]
    kinds: Counter[str] = Counter()
    poison_messages = []
    for n in range(POISON):
        kind, raw = poison(n, topic)
        kinds[kind] += 1
        poison_messages.append(raw)
    mixed = valid_messages + rng.sample(valid_messages, TWICE) + poison_messages
    rng.shuffle(mixed)

    feedback = ServiceProcess("feedback", real_settings, tmp_path / "feedback.log")
    await feedback.start()  # creates the topics with the configured partitions
    pid = feedback.process.pid if feedback.process else None
    try:
        started = time.monotonic()
        producer = AIOKafkaProducer(
            bootstrap_servers=real_settings.kafka_bootstrap, linger_ms=20, acks="all"
        )
        await producer.start()
        try:
            for key, value, headers in mixed:
                await producer.send(topic, value, key=key, headers=headers)
            await producer.flush()
        finally:
            await producer.stop()

        async def consumed(outcome: str) -> float:
            return await feedback.metric(
                "rapport_events_consumed_total", handler=HANDLER, outcome=outcome
            )

        async def all_consumed() -> bool:
            assert feedback.process is not None and feedback.process.poll() is None
            done = sum([await consumed(o) for o in ("applied", "duplicate", "dead_lettered")])
            return done >= len(mixed)

        await eventually(all_consumed, timeout=600, interval=1, what="every message consumed")
        seconds = round(time.monotonic() - started, 1)
        applied, duplicate, dead = [
            await consumed(o) for o in ("applied", "duplicate", "dead_lettered")
        ]
        assert feedback.process is not None and feedback.process.pid == pid
        assert feedback.process.poll() is None
        log = feedback.log_path.read_text()
    finally:
        feedback.ensure_stopped()

    letters = await read_all(real_settings, [f"{topic}.dlq"])
    dead_keys = Counter((r.key or b"").decode() for r in letters)
    engine_rows = await _count_rows(real_settings)
    counts = {
        "valid": VALID,
        "delivered_twice": TWICE,
        "poison": POISON,
        "poison_kinds": dict(kinds),
        "applied": applied,
        "duplicates_recognised": duplicate,
        "dead_lettered": dead,
        "dlq_records": len(letters),
        "episodes_stored": engine_rows["episodes"],
        "inbox_rows": engine_rows["inbox"],
        # FastStream logs each partition assignment; a restart or rebalance would add one.
        "consumer_assignments": log.count("assigned to partitions"),
        "seconds": seconds,
        "messages_per_second": round(len(mixed) / seconds),
    }
    print("POISON " + json.dumps(counts, sort_keys=True))
    # 100% of the poison in the DLQ, each once, each with its reason; nothing valid there.
    assert set(dead_keys) == {f"poison-{n}" for n in range(POISON)}
    assert all(n == 1 for n in dead_keys.values())
    for letter in letters:
        assert letter.header("dlq_error")
        assert letter.header("dlq_source_topic") == topic
        assert letter.header("dlq_service") == "feedback"
        assert letter.header("dlq_handler") == HANDLER
    # Exactly one effect per valid event, and every redelivery recognised as one.
    assert applied == VALID and duplicate == TWICE and dead == POISON
    assert engine_rows["episodes"] == VALID and engine_rows["inbox"] == VALID
    assert counts["consumer_assignments"] == 1
    assert "Traceback" not in log


async def _count_rows(settings: Settings) -> dict[str, int]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    # Every site's rows: as the tables' owner, outside row-level security.
    engine = create_async_engine(settings.migration_database_url_for("feedback"))
    try:
        async with engine.connect() as connection:
            episodes = (
                await connection.execute(text("select count(*) from feedback_episodes"))
            ).scalar_one()
            inbox = (
                await connection.execute(
                    text("select count(*) from feedback_inbox where handler = :h"), {"h": HANDLER}
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    return {"episodes": int(episodes), "inbox": int(inbox)}
