"""A service starting while Kafka is briefly unreachable (a broker restart, a connection reset)
waits for it instead of exiting at start-up; past its patience it still fails loudly."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from shared import host
from shared.settings import load_settings


async def test_creating_topics_is_retried_while_kafka_is_briefly_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts: list[int] = []

    async def flaky(settings: Any, topics: Any) -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise KafkaConnectionError("Connection at 127.0.0.1:19092 closed")

    monkeypatch.setattr(host, "_ensure_topics", flaky)
    monkeypatch.setattr(host.asyncio, "sleep", _no_wait)

    await host.ensure_topics(load_settings(), ["rapport.x.v1"])

    assert len(attempts) == 3


async def test_kafka_unreachable_past_the_patience_fails_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def down(settings: Any, topics: Any) -> None:
        raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1)]")

    monkeypatch.setattr(host, "_ensure_topics", down)
    monkeypatch.setattr(host, "TOPICS_PATIENCE_SECONDS", 0.0)

    with pytest.raises(KafkaConnectionError):
        await host.ensure_topics(load_settings(), ["rapport.x.v1"])


async def _no_wait(_: float) -> None:
    return None
