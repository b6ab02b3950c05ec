"""The outbox relay rides out a brief loss of its database or of Kafka: nothing committed is
lost, and everything is published once the dependency is back (real PostgreSQL and Kafka)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from sqlalchemy.engine import make_url

import services
from shared.auth import mint_token
from shared.contracts import MATCH_CONFIRMED
from shared.host import Host
from shared.settings import Settings
from tests.integration.test_delivery_guarantees import read_topic
from tests.support.infra import Infra
from tests.support.proxy import CuttableProxy
from tests.support.waiting import eventually


async def open_episodes(
    http: httpx.AsyncClient, settings: Settings, n: int, start: int
) -> list[httpx.Response]:
    auth = {
        "Authorization": "Bearer " + mint_token(settings, "c", "intake_coordinator", ["site-a"])
    }
    return [
        await http.post(
            "/intake/episodes",
            headers=auth,
            json={"site_id": "site-a", "therapist_id": "th-1", "client_reference": f"client-{i}"},
        )
        for i in range(start, start + n)
    ]


async def published_episode_ids(settings: Settings, expected: int) -> set[str]:
    records = await read_topic(settings, settings.topic(MATCH_CONFIRMED.topic_name), expected)
    return {json.loads(r["value"])["episode_id"] for r in records}


async def test_relay_recovers_after_the_database_is_briefly_unavailable(
    real_settings: Settings,
) -> None:
    url = make_url(real_settings.database_url)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    proxied = real_settings.model_copy(
        update={
            "database_url": url.set(host="127.0.0.1", port=proxy.port).render_as_string(
                hide_password=False
            )
        }
    )
    host = Host(proxied, services.definitions(["intake"]))
    await host.start()
    relay = host.runtimes["intake"].relay
    try:
        transport = httpx.ASGITransport(app=host.http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as http:
            before = await open_episodes(http, proxied, 5, 0)
            assert [r.status_code for r in before] == [201] * 5

            await proxy.cut()

            async def relay_noticed() -> bool:
                return relay.consecutive_failures >= 2

            await eventually(relay_noticed, timeout=30, what="the relay to hit the outage")
            during = await open_episodes(http, proxied, 1, 100)
            assert during[0].status_code == 503, during[0].text
            assert during[0].headers["content-type"] == "application/problem+json"

            await proxy.restore()
            after = await open_episodes(http, proxied, 5, 5)
            assert [r.status_code for r in after] == [201] * 5

        committed = {r.json()["episode_id"] for r in before + after}
        assert await published_episode_ids(proxied, len(committed)) == committed
        assert await relay.pending() == 0
    finally:
        await host.stop()
        await proxy.stop()


async def test_relay_recovers_after_kafka_is_briefly_unavailable(
    real_settings: Settings, infra: Infra
) -> None:
    if infra.pause_kafka is None or infra.resume_kafka is None:
        pytest.fail(
            "this test needs a Kafka it can pause: unset RAPPORT_TEST_* so that the "
            "project's own stack (or testcontainers) provides one"
        )
    host = Host(real_settings, services.definitions(["intake"]))
    await host.start()
    try:
        transport = httpx.ASGITransport(app=host.http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as http:
            before = await open_episodes(http, real_settings, 3, 0)
            infra.pause_kafka()
            try:
                # The database is fine, so requests still succeed; their events wait.
                during = await open_episodes(http, real_settings, 5, 3)
                await asyncio.sleep(3)
            finally:
                infra.resume_kafka()
            after = await open_episodes(http, real_settings, 2, 8)
        responses = before + during + after
        assert all(r.status_code == 201 for r in responses)
        committed = {r.json()["episode_id"] for r in responses}

        async def drained() -> bool:
            return await host.runtimes["intake"].relay.pending() == 0

        await eventually(drained, timeout=60, what="the outbox to drain after Kafka returns")
        assert await published_episode_ids(real_settings, len(committed)) == committed
    finally:
        await host.stop()
