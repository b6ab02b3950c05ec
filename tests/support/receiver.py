"""A webhook receiver on loopback that checks signatures with an independent implementation
of the Standard Webhooks spec (the ``standardwebhooks`` package: HMAC, and timestamps at most
5 minutes off), and detects replays as integrators should: a verified ``webhook-id`` seen
before is a replay (or a retry of a message already received) and is not acted on again."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Received:
    webhook_id: str
    body: dict[str, Any]
    verified: bool
    replay: bool = False  # a verified webhook-id this receiver had already seen


@dataclass
class WebhookReceiver:
    secrets: dict[str, str] = field(default_factory=dict)  # path -> whsec_ secret
    received: list[Received] = field(default_factory=list)
    fail_first: int = 0  # answer 500 to the first N calls
    calls: int = 0
    seen: set[str] = field(default_factory=set)  # verified webhook-ids
    # Where it listens; another address of this machine than loopback when the senders run
    # in containers on a bridge (make cluster-test).
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[Route("/hooks/{name}", self._hook, methods=["POST"])])
        self.port = _free_port()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    def url(self, name: str) -> str:
        return f"http://{self.host}:{self.port}/hooks/{name}"

    async def _hook(self, request: Request) -> Response:
        self.calls += 1
        if self.calls <= self.fail_first:
            return Response(status_code=500)
        body = await request.body()
        secret = self.secrets.get(request.path_params["name"])
        verified = False
        if secret is not None:
            try:
                Webhook(secret).verify(body, dict(request.headers))
                verified = True
            except Exception:
                verified = False
        webhook_id = request.headers.get("webhook-id", "")
        # Only a verified id counts as seen: a forged message must not block a real one.
        replay = verified and webhook_id in self.seen
        if verified:
            self.seen.add(webhook_id)
        self.received.append(Received(webhook_id, json.loads(body), verified, replay))
        return Response(status_code=204)

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            await self._task


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
