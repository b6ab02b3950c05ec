"""Notify benchmark (issue 6, Performance): signed webhook deliveries on the real stack —
``alliance.alert`` on Kafka → notify (inbox, routing, delivery rows, Redis fast path, claim,
Standard Webhooks signature, HTTP, outcome + ``notification.delivered`` through the outbox) →
a local webhook receiver — against bare baselines measured in the same run on the same machine.

    .venv/bin/python bench/notify_bench.py [--rate 300] [--seconds 10] [--backlog 3000]

``rapport serve notify`` runs as its own process; the receiver, the Kafka producer and the
baselines run in this one. Phases:

* **latency**: ``--rate`` alerts/s for ``--seconds`` produced open-loop to Kafka; latency is
  from the producer's send to the webhook request arriving (p50/p99/max). Baselines: a plain
  httpx POST at the same rate (the HTTP hop alone), and a bare Kafka consumer that POSTs each
  record it reads (Kafka + HTTP, no guarantees).
* **throughput**: ``--backlog`` alerts put on Kafka at once, timed until the last webhook
  arrives (end to end); and the same number of deliveries inserted straight into PostgreSQL
  (the dispatcher alone: claim, dedup check, signing, HTTP, recording). Baseline: a plain
  httpx POST loop with the same concurrency.
* **flaky receiver**: the receiver answers 500 to 30% of calls at random; ``--flaky`` alerts
  at ``--rate``; reports the share eventually delivered and duplicates (a 2xx answered twice
  for one alert). Baseline: the plain POST loop, once per message, against the same receiver.

Prints one JSON object. The machine's cores are shared by Kafka, PostgreSQL, Redis, notify and
this load generator, so absolute numbers are a floor; the ratios to the baselines are the point.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services import upgrade
from shared.auth import mint_token
from shared.contracts import ALLIANCE_ALERT, AllianceAlert
from shared.events import Event, encode
from shared.settings import Settings, load_settings

SITE = "site-bench"
# Notify's default: at most 8 requests in flight to one endpoint (and so 8 connections). The
# baselines use the same 8 — more connections to one host make httpx itself slower.
CONCURRENCY = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_summary(latencies: list[float], expected: int) -> dict[str, Any]:
    return {
        "received": len(latencies),
        "expected": expected,
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2) if latencies else None,
    }


RECEIVER = r"""
import asyncio, json, random, re, sys, time

ALERT = re.compile(rb'"alert_id":\s*"([^"]+)"')
state = {"fail": 0.0, "calls": 0, "arrivals": {}, "accepted": {}, "ids": {}}
rng = random.Random(42)


def handle(method, path, headers, body):
    if method == b"GET" and path == b"/stats":
        return 200, json.dumps(
            {
                "calls": state["calls"],
                "arrivals": state["arrivals"],
                "accepted": state["accepted"],
                "ids": {k: len(v) for k, v in state["ids"].items()},
            }
        ).encode()
    if path.startswith(b"/control"):
        command = json.loads(body)
        if command.get("reset"):
            for key in ("arrivals", "accepted", "ids"):
                state[key] = {}
            state["calls"] = 0
        state["fail"] = float(command.get("fail", state["fail"]))
        return 200, b"{}"
    arrived = time.monotonic()
    state["calls"] += 1
    match = ALERT.search(body)
    alert = match.group(1).decode() if match else "?"
    state["arrivals"].setdefault(alert, arrived)
    state["ids"].setdefault(alert, set()).add(headers.get(b"webhook-id", b""))
    if state["fail"] and rng.random() < state["fail"]:
        return 500, b""
    state["accepted"][alert] = state["accepted"].get(alert, 0) + 1
    return 204, b""


class Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data):
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].split(b"\r\n")
            method, path, _ = head[0].split(b" ", 2)
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0"))
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            status, payload = handle(method, path, headers, body)
            reason = {200: b"OK", 204: b"No Content", 500: b"Internal Server Error"}[status]
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-length: %d\r\ncontent-type: application/json"
                b"\r\n\r\n%s" % (status, reason, len(payload), payload)
            )


async def main():
    server = await asyncio.get_running_loop().create_server(
        Http, "127.0.0.1", int(sys.argv[1]), backlog=4096
    )
    print("ready", flush=True)
    await server.serve_forever()


asyncio.run(main())
"""


class Receiver:
    """The clinic's endpoint, in its own process (a minimal HTTP/1.1 server, so that it costs
    the machine as little as possible): records when each alert first arrives, the webhook-ids
    it came with, and how often it was answered 2xx; answers 500 to a share when flaky."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-c", RECEIVER, str(self.port)], stdout=subprocess.PIPE
        )
        assert self.process.stdout is not None
        self.process.stdout.readline()
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        self.stats: dict[str, Any] = {"arrivals": {}, "accepted": {}, "ids": {}, "calls": 0}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{name}"

    async def control(self, **command: Any) -> None:
        (await self.client.post("/control", json=command)).raise_for_status()

    async def refresh(self) -> dict[str, Any]:
        self.stats = (await self.client.get("/stats")).json()
        return self.stats

    async def count(self) -> int:
        return len((await self.refresh())["arrivals"])

    async def stop(self) -> None:
        await self.client.aclose()
        self.process.terminate()
        self.process.wait(timeout=10)


def alert_event(alert_id: str, episode: int) -> Event[AllianceAlert]:
    return Event(
        ALLIANCE_ALERT,
        AllianceAlert(
            alert_id=alert_id,
            episode_id=f"ep-{episode}",
            site_id=SITE,
            therapist_id="th-1",
            status="opened",
            kind="rupture",
            severity="high",
            rule="rule-4-rupture",
            session_number=3,
            respondent="p1_" + uuid.uuid4().hex,
            inputs={"instrument": "srs", "score": 28.5, "baseline": 36.0},
            suggestion_code="talk_about_the_relationship",
            at=datetime.now(UTC),
        ),
        source="/bench",
    )


async def produce_at(
    producer: AIOKafkaProducer, settings: Settings, prefix: str, count: int, rate: float
) -> dict[str, float]:
    """Open loop: alert n goes at start + n/rate whatever happens downstream."""
    topic = settings.topic(ALLIANCE_ALERT.topic_name)
    sent: dict[str, float] = {}
    start = time.monotonic()
    for n in range(count):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        alert_id = f"{prefix}-{n}"
        record = encode(alert_event(alert_id, n), topic)
        sent[alert_id] = time.monotonic()
        await producer.send(
            topic,
            value=record.value,
            key=record.key,
            headers=[(k, v.encode()) for k, v in record.headers.items()],
        )
    await producer.flush()
    return sent


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.2)
    return await check()


def latencies_of(sent: dict[str, float], arrivals: dict[str, float]) -> list[float]:
    return [(arrivals[a] - t) * 1000 for a, t in sent.items() if a in arrivals]


async def bare_post_at(
    client: httpx.AsyncClient, receiver: Receiver, count: int, rate: float
) -> dict[str, Any]:
    """The HTTP hop alone: a plain POST per alert at the offered rate."""
    await receiver.control(reset=True)
    sent: dict[str, float] = {}
    tasks = []
    start = time.monotonic()
    for n in range(count):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        alert_id = f"barelat-{n}"
        body = json.dumps({"data": {"alert_id": alert_id}})
        sent[alert_id] = time.monotonic()
        tasks.append(
            asyncio.create_task(
                client.post(
                    receiver.url("bare"), content=body, headers={"content-type": "application/json"}
                )
            )
        )
    await asyncio.gather(*tasks, return_exceptions=True)
    return latency_summary(latencies_of(sent, (await receiver.refresh())["arrivals"]), count)


async def bare_post_loop(
    client: httpx.AsyncClient, receiver: Receiver, count: int, prefix: str
) -> tuple[float, int]:
    """A plain POST loop: ``count`` messages, CONCURRENCY at once, each sent once."""
    queue = iter(range(count))
    ok = 0

    async def worker() -> None:
        nonlocal ok
        for n in queue:
            body = json.dumps({"data": {"alert_id": f"{prefix}-{n}"}})
            try:
                response = await client.post(
                    receiver.url("bare"), content=body, headers={"content-type": "application/json"}
                )
            except httpx.HTTPError:
                continue
            ok += 200 <= response.status_code < 300

    start = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.monotonic() - start, ok


async def bare_kafka_pipeline(
    settings: Settings, producer: AIOKafkaProducer, receiver: Receiver, count: int, rate: float
) -> dict[str, Any]:
    """Kafka → a plain consumer that POSTs every record it reads: no inbox, no outbox, no
    retries, no signatures (the floor our pipeline is compared with)."""
    topic = settings.topic("bench.bare.v1")
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.topic_prefix}bare",
        auto_offset_reset="earliest",
    )
    await producer.send_and_wait(topic, b'{"data":{"alert_id":"warm"}}', key=b"k")
    await consumer.start()
    tasks: set[asyncio.Task[Any]] = set()
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def forward() -> None:
            async for message in consumer:
                task = asyncio.create_task(
                    client.post(
                        receiver.url("bare"),
                        content=message.value,
                        headers={"content-type": "application/json"},
                    )
                )
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        forwarding = asyncio.create_task(forward())

        async def warmed() -> bool:
            return "warm" in (await receiver.refresh())["arrivals"]

        await wait_until(warmed, 30)
        await receiver.control(reset=True)
        sent: dict[str, float] = {}
        start = time.monotonic()
        for n in range(count):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            alert_id = f"barek-{n}"
            sent[alert_id] = time.monotonic()
            await producer.send(
                topic, json.dumps({"data": {"alert_id": alert_id}}).encode(), key=b"k"
            )
        await producer.flush()

        async def all_in() -> bool:
            return await receiver.count() >= count

        await wait_until(all_in, 60)
        forwarding.cancel()
    await consumer.stop()
    return latency_summary(latencies_of(sent, receiver.stats["arrivals"]), count)


async def insert_pending(dsn: str, count: int, hook_id: str) -> None:
    """Deliveries as a handler would create them, straight into PostgreSQL."""
    connection = await asyncpg.connect(dsn)
    now = datetime.now(UTC)
    rows = []
    for n in range(count):
        delivery_id = str(uuid.uuid4())
        body = json.dumps(
            {"type": "alliance.alert", "id": delivery_id, "data": {"alert_id": f"disp-{n}"}},
            separators=(",", ":"),
        )
        rows.append(
            (
                delivery_id,
                f"bench:{delivery_id}",
                f"bench-{n}",
                SITE,
                "webhook",
                hook_id,
                "front_end",
                body,
                "pending",
                0,
                now,
                now,
                "alert",
                f"endpoint:{hook_id}",
                False,
            )
        )
    await connection.copy_records_to_table(
        "notify_deliveries",
        records=rows,
        columns=[
            "id",
            "delivery_key",
            "source_event_id",
            "site_id",
            "channel",
            "endpoint_id",
            "recipient_role",
            "payload",
            "status",
            "attempts",
            "next_attempt_at",
            "created_at",
            "kind",
            "recipient",
            "urgent",
        ],
    )
    await connection.close()


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


async def measure_rapport(
    args: argparse.Namespace,
    settings: Settings,
    dsn: str,
    receiver: Receiver,
    producer: AIOKafkaProducer,
    api: httpx.AsyncClient,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    token = mint_token(settings, "admin", "site_admin", [SITE])
    hook = await api.post(
        "/notify/webhooks",
        json={"site_id": SITE, "url": receiver.url("site")},
        headers={"Authorization": f"Bearer {token}"},
    )
    hook.raise_for_status()
    hook_id = hook.json()["id"]

    async def received(n: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return await receiver.count() >= n

        return check

    # Warm-up: the consumer joined, connections open, caches filled.
    await produce_at(producer, settings, "warm", 200, 100)
    await wait_until(await received(200), 60)
    await asyncio.sleep(1)

    # -- latency at the offered rate (and at lower rates, to find what this machine sustains) --
    results["latency_kafka_to_webhook"] = []
    for rate in args.rates:
        await receiver.control(reset=True)
        count = int(rate * args.seconds)
        sent = await produce_at(producer, settings, f"lat{int(rate)}", count, rate)
        await wait_until(await received(count), 300)
        results["latency_kafka_to_webhook"].append(
            {
                "offered_alerts_per_s": rate,
                **latency_summary(latencies_of(sent, receiver.stats["arrivals"]), count),
            }
        )
        await asyncio.sleep(2)

    # -- throughput ----------------------------------------------------------------------------
    await receiver.control(reset=True)
    started = time.monotonic()
    await produce_at(producer, settings, "burst", args.backlog, 1e9)
    await wait_until(await received(args.backlog), 300)
    elapsed = time.monotonic() - started
    results["throughput_from_kafka_backlog"] = {
        "alerts": args.backlog,
        "delivered": len(receiver.stats["arrivals"]),
        "deliveries_per_s": round(len(receiver.stats["arrivals"]) / elapsed, 1),
    }
    await asyncio.sleep(1)
    await receiver.control(reset=True)
    started = time.monotonic()
    await insert_pending(dsn, args.backlog, hook_id)
    await wait_until(await received(args.backlog), 300)
    # Rows written straight into the table (no notify process wakes the dispatcher for them)
    # are noticed at its next idle look (RAPPORT_NOTIFY_SCHEDULER_SECONDS): reported apart, and
    # the sending rate measured from the first webhook to the last.
    times = sorted(receiver.stats["arrivals"].values())
    sending = max(1e-6, times[-1] - times[0])
    results["throughput_dispatcher"] = {
        "deliveries": args.backlog,
        "delivered": len(times),
        "noticed_after_s": round(times[0] - started, 2),
        "deliveries_per_s": round((len(times) - 1) / sending, 1),
    }
    await asyncio.sleep(1)

    # -- a receiver failing 30% of calls -------------------------------------------------------
    await receiver.control(reset=True, fail=0.3)
    flaky = await produce_at(producer, settings, "flaky", args.flaky, args.rate)

    async def all_accepted() -> bool:
        accepted = (await receiver.refresh())["accepted"]
        return all(accepted.get(a) for a in flaky)

    await wait_until(all_accepted, 300)
    await asyncio.sleep(3)  # a late duplicate would show now
    stats = await receiver.refresh()
    accepted = stats["accepted"]
    results["flaky_receiver"] = {
        "fail_ratio": 0.3,
        "alerts": args.flaky,
        "delivered_pct": round(100 * sum(1 for a in flaky if accepted.get(a)) / args.flaky, 3),
        "duplicates": sum(max(0, accepted.get(a, 0) - 1) for a in flaky),
        "webhook_ids_per_alert_max": max(stats["ids"].get(a, 0) for a in flaky),
        "calls": stats["calls"],
    }
    await receiver.control(fail=0.0)
    connection = await asyncpg.connect(dsn)
    results["deliveries_failed"] = await connection.fetchval(
        "select count(*) from notify_deliveries where status = 'failed'"
    )
    results["outbox_unpublished"] = await connection.fetchval(
        "select count(*) from notify_outbox where published_at is null"
    )
    await connection.close()
    return results


async def run(args: argparse.Namespace) -> dict[str, Any]:
    kafka, database, redis = stack_endpoints()
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database.replace("postgresql+asyncpg", "postgresql"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    db_url = database.rsplit("/", 1)[0] + f"/{name}"
    dsn = db_url.replace("postgresql+asyncpg", "postgresql")
    settings = load_settings(
        kafka_bootstrap=kafka,
        database_url=db_url,
        redis_url=redis,
        topic_prefix=f"nbench{uuid.uuid4().hex[:6]}.",
        allow_private_webhooks=True,
    )
    await asyncio.to_thread(upgrade, "notify", db_url)
    receiver = Receiver()
    port = free_port()
    env = {
        **os.environ,
        "RAPPORT_KAFKA_BOOTSTRAP": kafka,
        "RAPPORT_DATABASE_URL": db_url,
        "RAPPORT_REDIS_URL": redis,
        "RAPPORT_TOPIC_PREFIX": settings.topic_prefix,
        "RAPPORT_HTTP_PORT": str(port),
        "RAPPORT_ALLOW_PRIVATE_WEBHOOKS": "true",
        "RAPPORT_LOG_LEVEL": "warning",
        "RAPPORT_RELAY_IDLE_SECONDS": "0.05",
        # Fast retries so the flaky phase ends in seconds (10 attempts, as in production).
        "RAPPORT_NOTIFY_RETRY_SCHEDULE": "0.1,0.2,0.4,0.8,1,1,1,1,1",
        "RAPPORT_NOTIFY_SEND_TIMEOUT_SECONDS": "5",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "rapport.cli", "serve", "notify"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka, linger_ms=0, acks="all")
    await producer.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
            for _ in range(600):
                try:
                    if (await api.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            ours = await measure_rapport(args, settings, dsn, receiver, producer, api)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)

    # -- bare baselines: same receiver, same machine, same run ---------------------------------
    count = int(args.rate * args.seconds)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        await bare_post_loop(client, receiver, 200, "warm")
        bare_latency = await bare_post_at(client, receiver, count, args.rate)
        await receiver.control(reset=True)
        seconds, ok = await bare_post_loop(client, receiver, args.backlog, "bare")
        await receiver.control(reset=True, fail=0.3)
        _, flaky_ok = await bare_post_loop(client, receiver, args.flaky, "bareflaky")
        accepted = (await receiver.refresh())["accepted"]
        await receiver.control(fail=0.0)
    bare_pipeline = await bare_kafka_pipeline(settings, producer, receiver, count, args.rate)
    await producer.stop()
    await receiver.stop()
    return {
        "benchmark": "notify_signed_webhooks",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rapport": ours,
        "bare": {
            "http_post_latency_at_offered_rate": bare_latency,
            "kafka_consumer_to_http_post_latency_at_offered_rate": bare_pipeline,
            "http_post_loop": {
                "posts": args.backlog,
                "ok": ok,
                "posts_per_s": round(ok / seconds, 1),
            },
            "http_post_loop_flaky_receiver": {
                "delivered_pct": round(100 * flaky_ok / args.flaky, 3),
                "duplicates": sum(max(0, n - 1) for n in accepted.values()),
            },
        },
        "ratio_dispatcher_throughput_to_bare_post_loop": round(
            ours["throughput_dispatcher"]["deliveries_per_s"] / (ok / seconds), 3
        ),
        "targets": {
            "p99_ms_at_300_alerts_per_s": 100,
            "flaky_delivered_pct": 100,
            "flaky_duplicates": 0,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument(
        "--also-rates",
        type=float,
        nargs="*",
        default=[200, 100],
        help="further offered rates for the latency phase",
    )
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--backlog", type=int, default=3000)
    parser.add_argument("--flaky", type=int, default=1000)
    args = parser.parse_args()
    args.rates = [args.rate, *args.also_rates]
    print(json.dumps(asyncio.run(run(args)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
