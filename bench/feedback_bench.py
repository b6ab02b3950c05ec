"""Feedback benchmark (issue 4, Performance): sustained submissions through HTTP on the real
stack — validation, scoring, PostgreSQL write and outbox publish to Kafka — against a bare
baseline measured in the same run on the same machine.

    .venv/bin/python bench/feedback_bench.py [--rate 300] [--seconds 10] [--concurrency 32]

Two phases for each server (``rapport serve feedback`` as its own process, and a bare FastAPI
app under the same uvicorn that only parses a JSON body of the same shape and answers 201):

* **offered rate**: an open-loop generator sends ``--rate`` requests/s for ``--seconds``
  (requests start on schedule whatever the answers); prints p50/p99/max latency and how many
  were answered 2xx;
* **saturation**: ``--concurrency`` clients send back to back for ``--seconds``; prints the
  answered rate.

Prints one JSON object with both servers' figures, the ratios ours/bare, and whether every
accepted response reached Kafka (outbox drained). The load generator shares the machine's two
cores with the servers, so the absolute numbers are a floor; the ratios are the point.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services import upgrade
from shared.auth import mint_token
from shared.crypto import pseudonymise
from shared.settings import load_settings

EPISODES = 200
SRS = {"relationship": 9.1, "goals": 9.3, "approach": 8.8, "overall": 9.4}

BARE_APP = """
from fastapi import FastAPI
from pydantic import BaseModel

class Body(BaseModel):
    episode_id: str
    session_number: int
    respondent_role: str
    instrument: str
    items: dict[str, float]

app = FastAPI()

@app.post("/feedback/responses", status_code=201)
async def record(body: Body) -> dict[str, object]:
    return {"episode_id": body.episode_id, "total": sum(body.items.values())}

@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} never answered")


async def offered_rate(
    send: Callable[[int], Awaitable[int]], rate: float, seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: list[int] = []
    total = int(rate * seconds)
    start = time.perf_counter()

    async def one(n: int) -> None:
        began = time.perf_counter()
        status = await send(n)
        latencies.append((time.perf_counter() - began) * 1000)
        statuses.append(status)

    tasks = []
    for n in range(total):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    ok = sum(200 <= s < 300 for s in statuses)
    return {
        "offered_per_s": rate,
        "sent": total,
        "ok": ok,
        "answered_per_s": round(ok / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2),
    }


async def saturation(
    send: Callable[[int], Awaitable[int]], concurrency: int, seconds: float, offset: int
) -> dict[str, Any]:
    counter = {"n": offset, "ok": 0, "not_2xx": 0}
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()

    async def worker() -> None:
        while time.perf_counter() < deadline:
            counter["n"] += 1
            if 200 <= await send(counter["n"]) < 300:
                counter["ok"] += 1
            else:
                counter["not_2xx"] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return {
        "concurrency": concurrency,
        "ok": counter["ok"],
        "not_2xx": counter["not_2xx"],
        "answered_per_s": round(counter["ok"] / elapsed, 1),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from rapport import stack

    if os.environ.get("RAPPORT_TEST_DATABASE_URL"):
        kafka, database, redis = (
            os.environ["RAPPORT_TEST_KAFKA_BOOTSTRAP"],
            os.environ["RAPPORT_TEST_DATABASE_URL"],
            os.environ["RAPPORT_TEST_REDIS_URL"],
        )
    else:
        endpoints = stack.up()
        kafka, database, redis = (
            endpoints.kafka_bootstrap,
            endpoints.database_url,
            endpoints.redis_url,
        )
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin_dsn = database.replace("postgresql+asyncpg", "postgresql")
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    db_url = database.rsplit("/", 1)[0] + f"/{name}"
    settings = load_settings(
        kafka_bootstrap=kafka,
        database_url=db_url,
        redis_url=redis,
        topic_prefix=f"bench{uuid.uuid4().hex[:6]}.",
        # Saturation load from one site: measure the service, not its per-site rate limit.
        rate_limit_per_site_per_minute=0,
    )
    await asyncio.to_thread(upgrade, "feedback", db_url)
    connection = await asyncpg.connect(db_url.replace("postgresql+asyncpg", "postgresql"))
    key = settings.pseudonym_key.get_secret_value()
    await connection.executemany(
        "insert into feedback_episodes (episode_id, site_id, therapist_id, client, members,"
        " confirmed_at, phase) values ($1, 'site-a', 'th-1', $2, '[]', $3, 'matched')",
        [(f"ep-{i}", pseudonymise(key, f"c-{i}"), datetime.now(UTC)) for i in range(EPISODES)],
    )
    token = mint_token(settings, "th-1", "therapist", ["site-a"])
    headers = {"Authorization": f"Bearer {token}"}
    env = {
        **os.environ,
        "RAPPORT_KAFKA_BOOTSTRAP": kafka,
        "RAPPORT_DATABASE_URL": db_url,
        "RAPPORT_REDIS_URL": redis,
        "RAPPORT_TOPIC_PREFIX": settings.topic_prefix,
        "RAPPORT_LOG_LEVEL": "warning",
        # Saturation load from one site: measure the service, not its per-site rate limit.
        "RAPPORT_RATE_LIMIT_PER_SITE_PER_MINUTE": "0",
    }
    results: dict[str, Any] = {}
    for label in ("bare", "rapport"):
        port = free_port()
        if label == "rapport":
            command = [
                sys.executable,
                "-m",
                "rapport.cli",
                "serve",
                "feedback",
                "--port",
                str(port),
            ]
        else:
            bare = Path("/tmp") / f"bare_app_{port}.py"
            bare.write_text(BARE_APP)
            command = [
                sys.executable,
                "-m",
                "uvicorn",
                f"{bare.stem}:app",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--app-dir",
                str(bare.parent),
            ]
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        base = f"http://127.0.0.1:{port}"
        try:
            await wait_ready(f"{base}/healthz", process)
            # aiohttp: light enough that the load generator is not what saturates first.
            async with aiohttp.ClientSession(
                base_url=base,
                connector=aiohttp.TCPConnector(limit=256),
                timeout=aiohttp.ClientTimeout(total=30),
            ) as client:
                answers = itertools.count()

                async def send(n: int, answers: Iterator[int] = answers) -> int:
                    # Every request a new answer (one per episode, session, respondent and
                    # instrument: a repeat would be refused with 409), whatever the phase's n.
                    k = next(answers)
                    body = {
                        "episode_id": f"ep-{k % EPISODES}",
                        "session_number": 1 + (k // EPISODES) % 1000,
                        "respondent_role": "client",
                        "instrument": "srs",
                        "items": SRS,
                    }
                    try:
                        async with client.post(
                            "/feedback/responses", headers=headers, json=body
                        ) as response:
                            await response.read()
                            return response.status
                    except (aiohttp.ClientError, TimeoutError):
                        return 0  # counted as not answered

                await offered_rate(send, 50, 1)  # warm-up
                rate = await offered_rate(send, args.rate, args.seconds)
                saturated = await saturation(send, args.concurrency, args.seconds, 10**6)
            results[label] = {"offered": rate, "saturation": saturated}
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)

    pending = await connection.fetchval(
        "select count(*) from feedback_outbox where published_at is null"
    )
    stored = await connection.fetchval("select count(*) from feedback_responses")
    await connection.close()
    ours, bare = results["rapport"], results["bare"]
    return {
        "benchmark": "feedback_http_submissions",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rapport": ours,
        "bare_fastapi": bare,
        "ratio_saturation_throughput": round(
            ours["saturation"]["answered_per_s"] / bare["saturation"]["answered_per_s"], 3
        ),
        "ratio_p99_at_offered_rate": round(
            ours["offered"]["p99_ms"] / bare["offered"]["p99_ms"], 2
        ),
        "responses_stored": stored,
        "outbox_unpublished_after_stop": pending,
        "targets": {"throughput_per_s": 1000, "p99_ms_at_300_per_s": 50},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
