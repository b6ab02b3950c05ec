"""The clinics' side of the webhooks, for ``rapport demo`` and ``rapport simulate --live``:
a receiver on 127.0.0.1 that checks each delivery's signature, served by uvicorn inside the
running event loop."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rapport.simulate_live import AlertInbox
from services.notify import signing


@dataclass
class Receiver:
    """The clinics' front-end: receives webhooks and checks their signatures."""

    inbox: AlertInbox
    secrets: dict[str, str]

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        site = request.path_params["site"]
        expected = signing.sign(
            self.secrets[site],
            request.headers["webhook-id"],
            int(request.headers["webhook-timestamp"]),
            body,
        )
        if expected not in request.headers["webhook-signature"].split(" "):
            self.inbox.rejected += 1
            return Response(status_code=401)
        self.inbox.received.append(json.loads(body))
        return Response(status_code=204)

    def app(self) -> Starlette:
        """The receiver as an ASGI app: ``POST /hooks/{site}``."""
        return Starlette(routes=[Route("/hooks/{site}", self.hook, methods=["POST"])])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def serve(app: Any, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    """Serve ``app`` on 127.0.0.1:``port`` in this event loop; returns once it listens (set
    ``server.should_exit`` and await the task to stop it)."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    return server, task
