"""Per-site request budgets (shared/ratelimit.py): over its budget a site's staff get a 429
problem with ``Retry-After``; the budget is kept in Redis, so two processes serving the same
site share it; another site is not held back; the in-memory default keeps it per process; a
Redis outage does not take the API down; 0 turns the limit off."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest

import services
from shared.auth import mint_token
from shared.host import Host
from shared.ratelimit import WINDOW_SECONDS
from shared.settings import Settings, load_settings
from tests.support.infra import Infra
from tests.support.receiver import _free_port
from tests.support.waiting import eventually

BUDGET = 5
READ = "/feedback/instruments"  # any staff route; this one touches no database


def settings_for(folder: Path, redis_url: str, namespace: str, budget: int = BUDGET) -> Settings:
    return load_settings(
        database_url=f"sqlite+aiosqlite:///{folder}/{{service}}.db",
        redis_url=redis_url,
        topic_prefix=namespace,
        rate_limit_per_site_per_minute=budget,
    )


@asynccontextmanager
async def process(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """One Rapport process (feedback only, embedded broker) and a client for it."""
    host = Host(settings, services.definitions(["feedback"]), embedded=True)
    await host.start()
    try:
        transport = httpx.ASGITransport(app=host.http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as http:
            yield http
    finally:
        await host.stop()


def staff(settings: Settings, site: str) -> dict[str, str]:
    token = mint_token(settings, f"lead-{site}", "clinical_lead", [site])
    return {"Authorization": f"Bearer {token}"}


async def a_fresh_window() -> None:
    """Start well inside a budget window, so the whole test falls in one."""

    async def early_in_window() -> bool:
        return time.time() % WINDOW_SECONDS < WINDOW_SECONDS - 10

    await eventually(early_in_window, timeout=WINDOW_SECONDS, interval=0.5, what="a new window")


async def test_a_site_over_its_budget_gets_429_with_retry_after_across_processes(
    infra: Infra, tmp_path: Path
) -> None:
    namespace = f"rl{time.time_ns()}."
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(
            process(settings_for(tmp_path / "1", infra.redis_url, namespace))
        )
        second = await stack.enter_async_context(
            process(settings_for(tmp_path / "2", infra.redis_url, namespace))
        )
        settings = settings_for(tmp_path, infra.redis_url, namespace)
        await a_fresh_window()
        statuses = [
            (await (first if i % 2 else second).get(READ, headers=staff(settings, "site-a")))
            for i in range(BUDGET + 1)
        ]
        other_site = await first.get(READ, headers=staff(settings, "site-b"))

    assert [s.status_code for s in statuses] == [200] * BUDGET + [429]
    refused = statuses[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= WINDOW_SECONDS
    assert refused.json()["errors"] == [
        {"field": "site_id", "rule": "rate_limit", "site_id": "site-a"}
    ]
    assert other_site.status_code == 200


async def test_the_in_memory_default_keeps_the_budget_per_process(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "memory://", "mem.")
    async with process(settings) as http:
        await a_fresh_window()
        statuses = [
            (await http.get(READ, headers=staff(settings, "site-a"))).status_code
            for _ in range(BUDGET + 1)
        ]
    assert statuses == [200] * BUDGET + [429]


async def test_a_redis_outage_lets_requests_through(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, f"redis://127.0.0.1:{_free_port()}/0", "down.", budget=1)
    async with process(settings) as http:
        statuses = [
            (await http.get(READ, headers=staff(settings, "site-a"))).status_code for _ in range(3)
        ]
    assert statuses == [200, 200, 200]


async def test_a_budget_of_0_turns_the_limit_off(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "memory://", "off.", budget=0)
    async with process(settings) as http:
        statuses = [
            (await http.get(READ, headers=staff(settings, "site-a"))).status_code for _ in range(20)
        ]
    assert set(statuses) == {200}


def test_the_budget_setting_is_validated() -> None:
    from shared.settings import SettingsError

    with pytest.raises(SettingsError, match="RAPPORT_RATE_LIMIT_PER_SITE_PER_MINUTE"):
        load_settings(rate_limit_per_site_per_minute=-1)
