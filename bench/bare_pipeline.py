"""The limit the end-to-end benchmark is compared with, and the clinic's webhook endpoint.

Each part runs as its own process (``python bench/bare_pipeline.py <part> ...``), so the bare
pipeline has the same processes and hops as ours, minus everything that makes ours safe:

* ``http PORT BOOTSTRAP TOPIC SIZE``: FastAPI under uvicorn parses the response body (same
  shape as ours) and produces it, padded to SIZE bytes, to Kafka (answers 201 on the broker's
  acknowledgement; no validation of answers, no database, no outbox);
* ``relay BOOTSTRAP GROUP SOURCE TARGET SIZE``: consume → produce one record of SIZE bytes per
  record read (analytics' hop, without state or rules); commits after each batch is acked;
* ``notify BOOTSTRAP GROUP SOURCE RECEIVER_URL``: consume → POST the records marked as alerts
  to the receiver with 8 connections (notify's hop, without routing, signatures or retries);
* ``receiver PORT``: a minimal HTTP/1.1 server (so that it costs the machine as little as
  possible) that records when the first webhook for each episode arrived (monotonic clock,
  shared by every process on the machine); ``GET /stats`` and ``POST /control`` (reset).
"""

import asyncio
import json
import re
import sys
import time
from typing import Any

EPISODE = re.compile(rb'"episode_id":\s*"([^"]+)"')


def padded(document: dict[str, Any], size: int) -> bytes:
    body = json.dumps(document, separators=(",", ":")).encode()
    missing = size - len(body) - len(',"pad":""')
    if missing > 0:
        document = {**document, "pad": "x" * missing}
        body = json.dumps(document, separators=(",", ":")).encode()
    return body


# -- receiver ---------------------------------------------------------------------------------
class _Receiver(asyncio.Protocol):
    state: dict[str, Any] = {"calls": 0, "arrivals": {}}

    def connection_made(self, transport: Any) -> None:
        self.transport, self.buffer = transport, b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].split(b"\r\n")
            method, path, _ = head[0].split(b" ", 2)
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            status, payload = self.handle(method, path, body)
            reason = b"OK" if status == 200 else b"No Content"
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-length: %d\r\ncontent-type: application/json"
                b"\r\n\r\n%s" % (status, reason, len(payload), payload)
            )

    def handle(self, method: bytes, path: bytes, body: bytes) -> tuple[int, bytes]:
        state = self.state
        if method == b"GET" and path == b"/stats":
            return 200, json.dumps(state).encode()
        if path.startswith(b"/control"):
            state["calls"], state["arrivals"] = 0, {}
            return 200, b"{}"
        arrived = time.monotonic()
        state["calls"] += 1
        match = EPISODE.search(body)
        if match:
            state["arrivals"].setdefault(match.group(1).decode(), arrived)
        return 204, b""


async def receiver(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Receiver, "127.0.0.1", port, backlog=4096)
    print("ready", flush=True)
    await server.serve_forever()


# -- the three bare hops -----------------------------------------------------------------------
def http(port: int, bootstrap: str, topic: str, size: int) -> None:
    from contextlib import asynccontextmanager

    import uvicorn
    from aiokafka import AIOKafkaProducer
    from fastapi import FastAPI
    from pydantic import BaseModel

    class Body(BaseModel):
        episode_id: str
        session_number: int
        respondent_role: str
        instrument: str
        items: dict[str, float]

    producer: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        producer["p"] = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
        await producer["p"].start()
        yield
        await producer["p"].stop()

    app = FastAPI(lifespan=lifespan)

    @app.post("/feedback/responses", status_code=201)
    async def record(body: Body) -> dict[str, Any]:
        total = sum(body.items.values())
        value = padded({**body.model_dump(), "total": total}, size)
        await producer["p"].send_and_wait(topic, value, key=body.episode_id.encode())
        return {"episode_id": body.episode_id, "total": total}

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


async def relay(bootstrap: str, group: str, source: str, target: str, size: int) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    await consumer.start()
    print("ready", flush=True)
    while True:
        batch = await consumer.getmany(timeout_ms=100)
        sends = []
        for records in batch.values():
            for record in records:
                read = json.loads(record.value)
                alert = sum(read["items"].values()) < 30  # the "rule": a low SRS
                document = {"episode_id": read["episode_id"], "alert": alert}
                sends.append(await producer.send(target, padded(document, size), key=record.key))
        if sends:
            await asyncio.gather(*sends)
            await consumer.commit()


async def notify(bootstrap: str, group: str, source: str, url: str) -> None:
    import httpx
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        print("ready", flush=True)
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            posts = []
            for records in batch.values():
                for record in records:
                    if b'"alert":true' in record.value:
                        posts.append(
                            client.post(
                                url,
                                content=record.value,
                                headers={"content-type": "application/json"},
                            )
                        )
            if batch:
                await asyncio.gather(*posts)
                await consumer.commit()


def main(argv: list[str]) -> None:
    part, *rest = argv
    if part == "receiver":
        asyncio.run(receiver(int(rest[0])))
    elif part == "http":
        http(int(rest[0]), rest[1], rest[2], int(rest[3]))
    elif part == "relay":
        asyncio.run(relay(rest[0], rest[1], rest[2], rest[3], int(rest[4])))
    elif part == "notify":
        asyncio.run(notify(rest[0], rest[1], rest[2], rest[3]))
    else:
        raise SystemExit(f"unknown part {part!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
