"""Clock benchmark (issue 16): analytics' sweep over its pending time-driven checks
(``analytics_due_checks``) with 100,000 active episodes, each with its two checks pending
(``no_contact``, ``dropout_risk``: 200,000 rows), against a bare ``SELECT … FOR UPDATE SKIP
LOCKED`` + ``DELETE`` loop over the same table, measured in the same run on the same database.

    .venv/bin/python bench/clock_bench.py [--episodes 100000] [--due-share 0.01] [--sweeps 20]

* **nothing due**: ``--sweeps`` sweeps of analytics' clock (``shared.clock.Clock`` with
  analytics' ``fire``: a transaction under the service's site scope, the database's clock, the
  due rows locked and skipped) when no check is due; wall and CPU (this process) per sweep, and
  per minute at the default ``RAPPORT_CLOCK_SWEEP_SECONDS`` (30 s: two sweeps a minute).
  Baseline: the bare loop (one ``SELECT … WHERE due_at <= now() … FOR UPDATE SKIP LOCKED
  LIMIT 200`` in a transaction, nothing to delete).
* **``--due-share`` due** (1%: 1,000 ``no_contact`` checks of episodes four weeks silent, with
  five sessions of feedback in their state): one sweep fires them all through analytics'
  ``fire`` (the episode's state locked and read, the rule decided again, the state saved, the
  alert row and its ``alliance.alert`` outbox row written, the next checks pended); wall and CPU
  per check fired.
  Baseline: the bare loop taking and deleting the same number of due rows (batches of 200).

Prints one JSON object. The machine's cores are shared with Kafka, PostgreSQL and whatever else
runs, so absolute numbers are a floor; the ratios to the bare loop are the point. CPU is this
process's (user + system); PostgreSQL's work shows in the wall times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services import definitions, upgrade
from services.analytics import domain
from services.analytics.usecases import attendance
from shared.db import all_sites
from shared.host import Host
from shared.settings import load_settings

SITE = "site-bench"
BATCH = 200  # the clock's batch (shared.clock.Clock.batch)
DEFAULT_SWEEP_SECONDS = 30.0
START = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def stack_endpoints() -> tuple[str, str, str]:
    if os.environ.get("RAPPORT_TEST_DATABASE_URL"):
        return (
            os.environ["RAPPORT_TEST_KAFKA_BOOTSTRAP"],
            os.environ["RAPPORT_TEST_DATABASE_URL"],
            os.environ["RAPPORT_TEST_REDIS_URL"],
        )
    from rapport import stack

    endpoints = stack.up()
    return endpoints.kafka_bootstrap, endpoints.database_url, endpoints.redis_url


def episode_state(episode_id: str, with_feedback: bool, contact: datetime) -> str:
    """An active episode's rule state as analytics stores it: five attended sessions (and, with
    ``with_feedback``, an SRS and an ORS at each), the last one at ``contact``."""
    from shared.instruments import SHIPPED, load_instruments

    instruments = load_instruments(SHIPPED)
    config = domain.RuleConfig()
    state: domain.EpisodeState | None = None
    for session in range(1, 6):
        at = contact - timedelta(days=7 * (5 - session))
        fact = domain.SessionFact(episode_id, SITE, "th-1", session, "attended", at)
        state, _ = domain.on_session(state, fact, config)
        if with_feedback:
            for instrument, items in (
                ("srs", {"relationship": 9, "goals": 9, "approach": 9, "overall": 9}),
                ("ors", {"individually": 5, "interpersonally": 5, "socially": 5, "overall": 5}),
            ):
                inst = instruments[instrument]
                total = inst.total(items)
                client = "p1_" + "0" * 32
                record = domain.ScoredRecord(
                    episode_id,
                    SITE,
                    "th-1",
                    session,
                    at,
                    "client",
                    client,
                    instrument,
                    items,
                    total,
                )
                state, _ = domain.apply(state, record, instruments, config)
    assert state is not None
    return json.dumps(state.to_json())


async def seed(db_url: str, episodes: int, due: int, now: datetime) -> list[str]:
    """``episodes`` active episodes with both checks pending in the future; the first ``due``
    have six weeks of silence and a full state. Returns the ids of those."""
    connection = await asyncpg.connect(db_url.replace("+asyncpg", ""))
    try:
        ids = [f"ep-{n:07d}" for n in range(episodes)]
        silent = now - timedelta(days=28)  # no_contact due (21 days), rule 10's not (35)
        lean = episode_state("EPISODE", False, now - timedelta(days=3))
        full = episode_state("EPISODE", True, silent)
        rows = [
            (
                eid,
                SITE,
                "th-1",
                "[]",
                "active",
                (full if n < due else lean).replace("EPISODE", eid),
                5,
                now,
            )
            for n, eid in enumerate(ids)
        ]
        await connection.copy_records_to_table(
            "analytics_episodes",
            records=rows,
            columns=[
                "episode_id",
                "site_id",
                "therapist_id",
                "domains",
                "phase",
                "state",
                "last_session",
                "updated_at",
            ],
        )
        checks = []
        for n, eid in enumerate(ids):
            later = now + timedelta(days=1 + n % 20, minutes=n % 1440)
            checks.append((eid, "no_contact", SITE, later, now))
            checks.append((eid, "dropout_risk", SITE, later + timedelta(days=7), now))
        await connection.copy_records_to_table(
            "analytics_due_checks",
            records=checks,
            columns=["subject", "kind", "site_id", "due_at", "scheduled_at"],
        )
        await connection.execute("ANALYZE analytics_due_checks; ANALYZE analytics_episodes")
        return ids[:due]
    finally:
        await connection.close()


async def make_due(db_url: str, subjects: list[str]) -> None:
    """Pend a ``no_contact`` check of each subject, fallen due a minute ago."""
    connection = await asyncpg.connect(db_url.replace("+asyncpg", ""))
    try:
        await connection.executemany(
            "INSERT INTO analytics_due_checks (subject, kind, site_id, due_at, scheduled_at) "
            "VALUES ($1, 'no_contact', $2, now() - interval '1 minute', now()) "
            "ON CONFLICT (subject, kind) DO UPDATE SET due_at = EXCLUDED.due_at",
            [(s, SITE) for s in subjects],
        )
    finally:
        await connection.close()


async def timed(work: Callable[[], Awaitable[int]]) -> tuple[int, float, float]:
    """(what ``work`` returned, wall seconds, CPU seconds of this process)."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = await work()
    return result, time.perf_counter() - wall, time.process_time() - cpu


class BareLoop:
    """The baseline: take due rows with ``FOR UPDATE SKIP LOCKED`` and delete them, batch after
    batch, on one plain asyncpg connection (no ORM, no scope, no firing)."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection

    async def sweep(self) -> int:
        taken = 0
        while True:
            async with self.connection.transaction():
                rows = await self.connection.fetch(
                    "SELECT subject, kind FROM analytics_due_checks WHERE due_at <= now() "
                    "ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED",
                    BATCH,
                )
                if rows:
                    await self.connection.execute(
                        "DELETE FROM analytics_due_checks AS d USING unnest($1::text[], "
                        "$2::text[]) AS t(subject, kind) "
                        "WHERE d.subject = t.subject AND d.kind = t.kind",
                        [r["subject"] for r in rows],
                        [r["kind"] for r in rows],
                    )
            taken += len(rows)
            if len(rows) < BATCH:
                return taken


def per(total: float, n: int, scale: float = 1000.0) -> float | None:
    return round(total / n * scale, 4) if n else None


def ratio(ours: float | None, bare: float | None) -> float | None:
    return round(ours / bare, 2) if ours is not None and bare else None


async def run(args: argparse.Namespace) -> dict[str, Any]:
    kafka, database, redis = stack_endpoints()
    name = f"bench_clock_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database.replace("+asyncpg", ""))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    db_url = database.rsplit("/", 1)[0] + f"/{name}"
    try:
        return await measure(args, kafka, db_url, redis)
    finally:
        admin = await asyncpg.connect(database.replace("+asyncpg", ""))
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def measure(args: argparse.Namespace, kafka: str, db_url: str, redis: str) -> dict[str, Any]:
    await asyncio.to_thread(upgrade, "analytics", db_url)
    settings = load_settings(
        kafka_bootstrap=kafka,
        database_url=db_url,
        redis_url=redis,
        topic_prefix=f"bench{uuid.uuid4().hex[:6]}.",
    )
    due = max(1, round(args.episodes * args.due_share))
    seeded = time.perf_counter()
    subjects = await seed(db_url, args.episodes, due, datetime.now(UTC))
    seed_seconds = time.perf_counter() - seeded
    runtime = Host(settings, definitions(["analytics"])).runtimes["analytics"]
    clock = attendance.clock(runtime)
    bare = BareLoop(await asyncpg.connect(db_url.replace("+asyncpg", "")))
    try:
        with all_sites():  # as the service's background work runs
            await clock.sweep()  # warm: connections, statement caches
            await bare.sweep()
            idle: dict[str, list[float]] = {
                "ours_wall": [],
                "ours_cpu": [],
                "bare_wall": [],
                "bare_cpu": [],
            }
            for _ in range(args.sweeps):  # interleaved, so both see the same machine
                fired, wall, cpu = await timed(clock.sweep)
                assert fired == 0, fired
                idle["ours_wall"].append(wall)
                idle["ours_cpu"].append(cpu)
                taken, wall, cpu = await timed(bare.sweep)
                assert taken == 0, taken
                idle["bare_wall"].append(wall)
                idle["bare_cpu"].append(cpu)

            await make_due(db_url, subjects)
            fired, ours_wall, ours_cpu = await timed(clock.sweep)
            await make_due(db_url, subjects)  # the same rows again, for the bare loop
            taken, bare_wall, bare_cpu = await timed(bare.sweep)
        alerts = await bare.connection.fetchval(
            "SELECT count(*) FROM analytics_alerts WHERE kind = 'no_contact'"
        )
    finally:
        await bare.connection.close()
        await runtime.engine.dispose()
    ours = (fired, ours_wall, ours_cpu, alerts)
    return report(args, due, seed_seconds, idle, ours, taken, bare_wall, bare_cpu)


def report(
    args: argparse.Namespace,
    due: int,
    seed_seconds: float,
    idle: dict[str, list[float]],
    ours: tuple[int, float, float, int],
    taken: int,
    bare_wall: float,
    bare_cpu: float,
) -> dict[str, Any]:
    fired, ours_wall, ours_cpu, alerts = ours
    sweeps = len(idle["ours_wall"])
    per_minute = 60.0 / DEFAULT_SWEEP_SECONDS

    def mean_ms(values: list[float]) -> float:
        return round(sum(values) / len(values) * 1000, 3)

    nothing_due = {
        "sweeps": sweeps,
        "ours_wall_ms_per_sweep": mean_ms(idle["ours_wall"]),
        "ours_cpu_ms_per_sweep": mean_ms(idle["ours_cpu"]),
        "bare_wall_ms_per_sweep": mean_ms(idle["bare_wall"]),
        "bare_cpu_ms_per_sweep": mean_ms(idle["bare_cpu"]),
        "ours_wall_ms_per_minute": round(mean_ms(idle["ours_wall"]) * per_minute, 3),
        "ours_cpu_ms_per_minute": round(mean_ms(idle["ours_cpu"]) * per_minute, 3),
    }
    nothing_due["ratio_wall"] = ratio(
        nothing_due["ours_wall_ms_per_sweep"], nothing_due["bare_wall_ms_per_sweep"]
    )
    nothing_due["ratio_cpu"] = ratio(
        nothing_due["ours_cpu_ms_per_sweep"], nothing_due["bare_cpu_ms_per_sweep"]
    )
    some_due = {
        "due": due,
        "fired": fired,
        "alerts_opened": alerts,
        "ours_wall_ms_per_sweep": round(ours_wall * 1000, 1),
        "ours_cpu_ms_per_sweep": round(ours_cpu * 1000, 1),
        "ours_wall_ms_per_check": per(ours_wall, fired),
        "ours_cpu_ms_per_check": per(ours_cpu, fired),
        "bare_taken": taken,
        "bare_wall_ms_per_sweep": round(bare_wall * 1000, 1),
        "bare_wall_ms_per_check": per(bare_wall, taken),
        "bare_cpu_ms_per_check": per(bare_cpu, taken),
    }
    some_due["ratio_wall_per_check"] = ratio(
        some_due["ours_wall_ms_per_check"], some_due["bare_wall_ms_per_check"]
    )
    some_due["ratio_cpu_per_check"] = ratio(
        some_due["ours_cpu_ms_per_check"], some_due["bare_cpu_ms_per_check"]
    )
    return {
        "benchmark": "analytics_clock_sweep",
        "episodes": args.episodes,
        "pending_checks": 2 * args.episodes,
        "seed_seconds": round(seed_seconds, 1),
        "sweep_seconds": DEFAULT_SWEEP_SECONDS,
        "nothing_due": nothing_due,
        "due_share": args.due_share,
        "some_due": some_due,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--due-share", type=float, default=0.01)
    parser.add_argument("--sweeps", type=int, default=20)
    print(json.dumps(asyncio.run(run(parser.parse_args(argv))), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
