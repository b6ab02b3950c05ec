"""Two deployments (two topic prefixes) on one database: the second is refused before it reads
or claims anything, with one line naming the setting; the first's pending deliveries stay its
own. ``rapport migrate``, ``rapport serve`` and a host started in process all refuse."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import services
from shared.host import Host
from shared.settings import Settings, SettingsError
from tests.support.processes import service_env
from tests.support.receiver import _free_port

PENDING = text(
    "insert into notify_deliveries (id, delivery_key, source_event_id, site_id, channel, "
    "endpoint_id, recipient_role, payload, status, attempts, next_attempt_at, created_at, kind, "
    "recipient, urgent) values (:id, :id, 'ev-1', 'site-a', 'webhook', 'hook-1', 'site', '{}', "
    "'pending', 0, :now, :now, 'alert', 'endpoint:hook-1', false)"
)


def second_deployment(settings: Settings) -> Settings:
    return settings.model_copy(update={"topic_prefix": f"b{uuid.uuid4().hex[:10]}."})


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = service_env(settings, _free_port())
    if settings.migration_database_url:
        env["RAPPORT_MIGRATION_DATABASE_URL"] = settings.migration_database_url
    return subprocess.run(
        [sys.executable, "-m", "rapport.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_second_deployment_on_the_same_database_is_refused_and_claims_nothing(
    real_settings: Settings,
) -> None:
    first = real_settings  # its tables are migrated
    owner = first.migration_database_url_for("notify")
    host = Host(first, services.definitions(["notify"]))
    await host.start()  # the first deployment starts on them and records its prefix
    await host.stop()
    engine = create_async_engine(owner)  # as the owner: row-level security hides nothing
    delivery_id = str(uuid.uuid4())
    try:
        async with engine.begin() as connection:
            await connection.execute(PENDING, {"id": delivery_id, "now": datetime.now(UTC)})

        second = second_deployment(first)
        intruder = Host(second, services.definitions(["notify"]))
        try:
            with pytest.raises(SettingsError) as refused:
                await intruder.start()
        finally:  # it never started: nothing to stop or drain, only connections to close
            await intruder.runtimes["notify"].close()
            await intruder.redis.aclose()
        await asyncio.sleep(1.0)  # what a dispatcher that had started would have claimed by now

        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text("select status, attempts, lease_id from notify_deliveries where id = :id"),
                    {"id": delivery_id},
                )
            ).one()
            recorded = (
                await connection.execute(text("select topic_prefix from notify_deployment"))
            ).scalar_one()
    finally:
        await engine.dispose()

    message = str(refused.value)
    assert message.startswith("RAPPORT_TOPIC_PREFIX: the notify tables in this database")
    assert repr(first.topic_prefix) in message and repr(second.topic_prefix) in message
    assert "RAPPORT_DATABASE_URL" in message and "\n" not in message
    assert tuple(row) == ("pending", 0, None)
    assert recorded == first.topic_prefix


async def test_rapport_migrate_and_serve_refuse_another_deployments_tables_in_one_line(
    real_settings: Settings,
) -> None:
    first = real_settings
    migrated = await asyncio.to_thread(run_cli, first, "migrate", "notify")
    assert migrated.returncode == 0, migrated.stderr

    second = second_deployment(first)
    for command in (("migrate", "notify"), ("serve", "notify")):
        refused = await asyncio.to_thread(run_cli, second, *command)
        lines = refused.stderr.strip().splitlines()
        assert refused.returncode == 2, (command, refused.stderr[-2000:])
        assert len(lines) == 1, (command, lines)
        assert lines[0].startswith(
            "rapport: bad setting: RAPPORT_TOPIC_PREFIX: the notify tables in this database "
            f"belong to the deployment with topic prefix {first.topic_prefix!r}"
        ), (command, lines)

    again = await asyncio.to_thread(run_cli, first, "migrate", "notify")
    assert again.returncode == 0, again.stderr
