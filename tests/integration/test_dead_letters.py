"""A message that cannot be decoded, validated or applied goes to ``<topic>.dlq`` with the
reason in its headers, and the consumer keeps consuming (real Kafka and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

import services
from services.analytics.models import AnalyticsScore
from shared.contracts import FEEDBACK_RECORDED, FeedbackRecorded
from shared.crypto import pseudonymise
from shared.db import all_sites
from shared.events import Event, encode
from shared.host import Host
from shared.settings import Settings
from tests.integration.test_delivery_guarantees import read_topic
from tests.support.waiting import eventually


def recorded(session_number: int, instrument: str = "srs") -> Event[FeedbackRecorded]:
    return Event(
        FEEDBACK_RECORDED,
        FeedbackRecorded(
            response_id=str(uuid.uuid4()),
            episode_id="ep-1",
            site_id="site-a",
            therapist_id="th-1",
            session_number=session_number,
            respondent=pseudonymise("k" * 32, "client-1"),
            respondent_role="client",
            instrument=instrument,
            instrument_version=1,
            items={"relationship": 9.0, "goals": 9.0, "approach": 9.0, "overall": 9.0},
            total=36.0,
            in_concern_or_clinical_range=False,
            answered_at=datetime.now(UTC),
        ),
        source="/tests",
    )


@pytest.fixture
async def producer(real_settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=real_settings.kafka_bootstrap)
    await producer.start()
    yield producer
    await producer.stop()


async def test_poison_goes_to_dlq_with_its_reason_and_consumption_continues(
    real_settings: Settings, producer: AIOKafkaProducer
) -> None:
    topic = real_settings.topic(FEEDBACK_RECORDED.topic_name)
    host = Host(real_settings, services.definitions(["analytics"]))
    await host.start()
    try:

        async def send(value: bytes, headers: dict[str, bytes]) -> None:
            await producer.send_and_wait(
                topic, value=value, key=b"ep-1", headers=list(headers.items())
            )

        def good_headers(event: Event[FeedbackRecorded]) -> tuple[bytes, dict[str, bytes]]:
            record = encode(event, topic)
            return record.value, {k: v.encode() for k, v in record.headers.items()}

        poison: list[tuple[str, bytes, dict[str, bytes]]] = []
        _, headers = good_headers(recorded(1))
        poison.append(("not UTF-8 JSON", b"{not json", headers))
        value2, headers2 = good_headers(recorded(1))
        poison.append(
            (
                "missing CloudEvents attribute(s): ce_type",
                value2,
                {k: v for k, v in headers2.items() if k != "ce_type"},
            )
        )
        value3, headers3 = good_headers(recorded(1))
        poison.append(
            ("does not match", value3.replace(b'"total":36.0', b'"total":"lots"'), headers3)
        )
        value4, headers4 = good_headers(recorded(1))
        poison.append(
            (
                "unknown event type",
                value4,
                {**headers4, "ce_type": b"org.rapport.feedback.recorded.v9"},
            )
        )
        value5, headers5 = good_headers(recorded(1))
        poison.append(("not valid UTF-8", value5, {**headers5, "ce_source": b"\xff\xfe"}))
        value6, headers6 = good_headers(recorded(1))
        poison.append(("unsupported specversion", value6, {**headers6, "ce_specversion": b"0.3"}))
        value7, headers7 = good_headers(recorded(1, instrument="made-up"))
        poison.append(("unknown instrument", value7, headers7))

        valid = 0
        for number, (_, bad_value, bad_headers) in enumerate(poison, start=1):
            good_value, good = good_headers(recorded(number))
            await send(good_value, good)
            valid += 1
            await send(bad_value, bad_headers)
        last_value, last = good_headers(recorded(99))
        await send(last_value, last)
        valid += 1

        runtime = host.runtimes["analytics"]

        async def valid_applied() -> bool:
            with all_sites():  # as the service's own work sees it
                async with runtime.sessionmaker() as session:
                    n = await session.scalar(select(func.count()).select_from(AnalyticsScore))
            return n == valid

        await eventually(valid_applied, timeout=60, what="all valid events applied")
        dead = await read_topic(real_settings, f"{topic}.dlq", len(poison))
        assert len(dead) == len(poison)
        for (reason, bad_value, _), letter in zip(poison, dead, strict=True):
            assert reason in letter["dlq_error"], (reason, letter["dlq_error"])
            assert letter["dlq_source_topic"] == topic
            assert letter["dlq_service"] == "analytics"
            assert letter["value"].encode() == bad_value or reason == "not valid UTF-8"
    finally:
        await host.stop()
