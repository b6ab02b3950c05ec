"""The admission limit (shared/admission.py) on the shared HTTP edge: with ``limit`` requests
in flight, one more is refused at once with 503 problem+json naming RAPPORT_HTTP_MAX_IN_FLIGHT
and ``Retry-After``, before the app runs or its body is read; the probes stay open; a slot
comes back however a request ends; 0 means no limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from shared.admission import AdmissionLimit
from shared.http import create_http_app

LIMIT = 2
RETRY_AFTER = 7
SERVICE = "admission-test"


class Waiting:
    """A service whose ``/wait`` answers only once ``release`` is set, counting its calls."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.release = asyncio.Event()
        self.calls: list[str] = []
        router = APIRouter()

        @router.get("/wait")
        async def wait() -> dict[str, str]:
            self.calls.append("wait")
            await self.release.wait()
            return {"status": "done"}

        @router.post("/answers")
        async def answer(request: Request) -> dict[str, int]:
            self.calls.append("answers")
            return {"bytes": len(await request.body())}

        @router.get("/broken")
        async def broken() -> dict[str, str]:
            self.calls.append("broken")
            raise RuntimeError("the endpoint failed")

        async def readiness() -> dict[str, str]:
            return {"database": "ok"}

        self.app: FastAPI = create_http_app(
            title="admission test",
            routers=[router],
            readiness=readiness,
            lifespan=None,
            max_body_bytes=1024,
            state={},
            service=SERVICE,
            max_in_flight=limit,
            retry_after_seconds=RETRY_AFTER,
        )

    def admission(self) -> AdmissionLimit:
        """The app's admission layer (Starlette builds its middleware on the first request)."""
        layer: Any = self.app.middleware_stack
        while not isinstance(layer, AdmissionLimit):
            layer = layer.app
        return layer


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never came true")


@pytest.fixture
def service() -> Waiting:
    return Waiting()


@pytest.fixture
async def http(service: Waiting) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=service.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://admission") as client:
        yield client


async def fill(
    service: Waiting, http: httpx.AsyncClient, count: int = LIMIT
) -> list[asyncio.Task[httpx.Response]]:
    """``count`` requests held in flight at ``/wait``."""
    before = len(service.calls)
    held = [asyncio.create_task(http.get("/wait")) for _ in range(count)]
    await until(lambda: len(service.calls) == before + count)
    return held


def refused_count() -> float:
    return REGISTRY.get_sample_value("rapport_http_refused_total", {"service": SERVICE}) or 0.0


async def test_one_request_over_the_limit_is_refused_with_503_and_retry_after(
    service: Waiting, http: httpx.AsyncClient
) -> None:
    held = await fill(service, http)
    refused_before = refused_count()

    response = await http.get("/wait")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == str(RETRY_AFTER)
    body = response.json()
    assert body["title"] == "Service overloaded"
    assert body["status"] == 503
    assert body["type"].startswith("urn:rapport:problem:")
    assert "RAPPORT_HTTP_MAX_IN_FLIGHT" in body["detail"]
    assert f"{RETRY_AFTER} seconds" in body["detail"]
    assert body["instance"] == "/wait"
    assert service.calls == ["wait"] * LIMIT  # the refused request never reached the app
    assert refused_count() == refused_before + 1
    service.release.set()
    assert [r.status_code for r in await asyncio.gather(*held)] == [200] * LIMIT


async def test_a_refused_request_is_answered_before_its_body_is_read(
    service: Waiting, http: httpx.AsyncClient
) -> None:
    held = await fill(service, http)
    read: list[bytes] = []

    async def body() -> AsyncIterator[bytes]:
        read.append(b"{}")
        yield b"{}"

    response = await http.post(
        "/answers", content=body(), headers={"content-type": "application/json"}
    )
    too_large = await http.post("/answers", content=b"x" * 4096)

    assert response.status_code == 503
    assert read == []
    # Outermost: the body limit (413) behind it never ran either.
    assert too_large.status_code == 503
    assert "answers" not in service.calls
    service.release.set()
    await asyncio.gather(*held)


async def test_the_probes_answer_while_the_process_is_full(
    service: Waiting, http: httpx.AsyncClient
) -> None:
    held = await fill(service, http)

    for probe in ("/healthz", "/readyz", "/metrics"):
        assert (await http.get(probe)).status_code == 200, probe
    assert service.admission().in_flight == LIMIT  # probes are not counted
    service.release.set()
    await asyncio.gather(*held)


async def test_a_slot_comes_back_when_a_request_ends(
    service: Waiting, http: httpx.AsyncClient
) -> None:
    held = await fill(service, http)
    service.release.set()
    await asyncio.gather(*held)
    service.release.clear()

    again = await fill(service, http)  # the full limit again: no slot was leaked

    assert service.admission().in_flight == LIMIT
    service.release.set()
    assert [r.status_code for r in await asyncio.gather(*again)] == [200] * LIMIT
    assert service.admission().in_flight == 0


async def test_an_endpoint_that_raises_gives_its_slot_back(
    service: Waiting, http: httpx.AsyncClient
) -> None:
    for _ in range(LIMIT + 1):
        assert (await http.get("/broken")).status_code == 500

    held = await fill(service, http)

    assert service.admission().in_flight == LIMIT
    service.release.set()
    await asyncio.gather(*held)


async def test_a_request_cancelled_mid_flight_gives_its_slot_back(
    service: Waiting, http: httpx.AsyncClient
) -> None:
    held = await fill(service, http)
    for task in held:
        task.cancel()
    await asyncio.gather(*held, return_exceptions=True)

    assert service.admission().in_flight == 0
    again = await fill(service, http)
    service.release.set()
    assert [r.status_code for r in await asyncio.gather(*again)] == [200] * LIMIT


async def test_a_client_that_disconnects_mid_body_gives_its_slot_back(
    service: Waiting, http: httpx.AsyncClient
) -> None:
    await http.get("/healthz")  # builds the middleware stack
    sent: list[dict[str, Any]] = []

    async def disconnected() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/answers",
        "raw_path": b"/answers",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"admission"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("admission", 80),
    }
    for _ in range(LIMIT + 1):
        try:
            await service.app(scope, disconnected, send)
        except Exception:
            pass  # what the server does with a request whose client left is its own affair

    assert service.calls.count("answers") == LIMIT + 1  # each was admitted
    assert service.admission().in_flight == 0
    held = await fill(service, http)
    service.release.set()
    await asyncio.gather(*held)


async def test_limit_zero_admits_everything() -> None:
    service = Waiting(limit=0)
    transport = httpx.ASGITransport(app=service.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admission") as http:
        held = await fill(service, http, count=LIMIT * 5)
        service.release.set()
        answers = await asyncio.gather(*held)

    assert [r.status_code for r in answers] == [200] * LIMIT * 5


async def test_refusals_are_not_logged_one_by_one_but_at_most_once_a_minute() -> None:
    now = [1000.0]
    admitted: list[str] = []

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        admitted.append(scope["path"])

    admission = AdmissionLimit(
        endpoint, limit=1, retry_after_seconds=1, service=SERVICE, clock=lambda: now[0]
    )
    admission.in_flight = 1  # full
    scope = {"type": "http", "method": "GET", "path": "/wait", "headers": []}
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("a refused request's body is never read")

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    async def refuse(times: int) -> None:
        for _ in range(times):
            await admission(scope, receive, send)

    with capture_logs() as logs:
        await refuse(100)
        now[0] += 59
        await refuse(50)
        now[0] += 2
        await refuse(1)

    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert [w["refused"] for w in warnings] == [1, 99 + 50 + 1]
    assert admitted == []
    starts = [m for m in messages if m["type"] == "http.response.start"]
    assert len(starts) == 151 and {m["status"] for m in starts} == {503}
    assert (b"retry-after", b"1") in starts[0]["headers"]


def test_the_admission_limit_is_the_outermost_middleware() -> None:
    service = Waiting()
    layers: list[type] = []
    stack: Any = service.app.build_middleware_stack()
    while hasattr(stack, "app"):
        layers.append(type(stack))
        stack = stack.app

    # The framework's own error catchers wrap everything; the first of ours is the admission
    # limit, so a refused request meets none of the others (body limit, ids, access log).
    ours = [layer for layer in layers if layer.__module__.startswith("shared.")]
    assert ours[0] is AdmissionLimit, layers
