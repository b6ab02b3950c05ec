"""The HTTP edge every service shares (shared/http.py): problem+json errors naming the field,
body limits before parsing, correlation ids and W3C trace context on every response, and the
operations endpoints."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field

from shared.http import create_http_app
from shared.tracing import parse_traceparent

MAX_BODY = 1024
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING_PARENT = "00f067aa0ba902b7"
TRACEPARENT_FORM = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


class Order(BaseModel):
    item: str
    count: int = Field(ge=1)


class Edge:
    """A tiny service behind the shared edge, recording which routes ran."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.checks: dict[str, str] = {"database": "ok", "kafka": "ok", "redis": "ok"}
        self.warnings: dict[str, str] = {}
        router = APIRouter()

        @router.post("/orders")
        async def create_order(order: Order) -> dict[str, Any]:
            self.ran.append("create_order")
            return {"item": order.item, "count": order.count}

        @router.get("/flaky")
        async def flaky() -> dict[str, str]:
            self.ran.append("flaky")
            raise OSError("connection refused")

        async def readiness() -> dict[str, str]:
            return dict(self.checks)

        async def warnings() -> dict[str, str]:
            return dict(self.warnings)

        self.app: FastAPI = create_http_app(
            title="edge test",
            routers=[router],
            readiness=readiness,
            lifespan=None,
            max_body_bytes=MAX_BODY,
            state={},
            warnings=warnings,
        )


@pytest.fixture
def edge() -> Edge:
    return Edge()


@pytest.fixture
async def http(edge: Edge) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=edge.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
        yield client


def is_problem(response: httpx.Response, status: int) -> bool:
    return (
        response.status_code == status
        and response.headers["content-type"] == "application/problem+json"
        and response.json()["status"] == status
    )


async def chunks(total: int, size: int = 256) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b" " * piece


# -- validation ----------------------------------------------------------------------------------


async def test_a_body_failing_validation_gets_a_422_problem_naming_the_field(
    http: httpx.AsyncClient, edge: Edge
) -> None:
    response = await http.post("/orders", json={"item": "srs-pads", "count": "many"})

    assert is_problem(response, 422)
    problem = response.json()
    assert problem["errors"][0]["field"] == "count"
    assert problem["errors"][0]["rule"] == "int_parsing"
    assert problem["detail"].startswith("count: ")
    assert problem["instance"] == "/orders"
    assert edge.ran == []


async def test_a_body_breaking_a_rule_names_the_field_and_the_rule(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post("/orders", json={"item": "x", "count": 0})

    assert is_problem(response, 422)
    assert response.json()["errors"][0] == {
        "field": "count",
        "rule": "greater_than_equal",
        "message": "Input should be greater than or equal to 1",
    }


async def test_a_422_with_several_errors_lists_them_all(http: httpx.AsyncClient) -> None:
    response = await http.post("/orders", json={})

    problem = response.json()
    assert sorted(e["field"] for e in problem["errors"]) == ["count", "item"]
    assert problem["detail"].endswith("(and 1 more)")


async def test_a_valid_body_reaches_the_route(http: httpx.AsyncClient, edge: Edge) -> None:
    response = await http.post("/orders", json={"item": "x", "count": 2})

    assert response.status_code == 200
    assert edge.ran == ["create_order"]


# -- body limit --------------------------------------------------------------------------------


async def test_a_body_of_exactly_max_body_bytes_is_accepted(
    http: httpx.AsyncClient, edge: Edge
) -> None:
    body = b'{"item": "x", "count": 1}'
    body += b" " * (MAX_BODY - len(body))

    response = await http.post(
        "/orders", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 200
    assert edge.ran == ["create_order"]


async def test_a_declared_body_over_max_body_bytes_gets_413_before_the_route_runs(
    http: httpx.AsyncClient, edge: Edge
) -> None:
    response = await http.post(
        "/orders", content=b" " * (MAX_BODY + 1), headers={"content-type": "application/json"}
    )

    assert is_problem(response, 413)
    assert response.json()["title"] == "Body too large"
    assert edge.ran == []


async def test_a_non_numeric_content_length_gets_413(http: httpx.AsyncClient, edge: Edge) -> None:
    request = http.build_request("POST", "/orders", content=b"{}")
    request.headers["content-length"] = "lots"

    response = await http.send(request)

    assert is_problem(response, 413)
    assert edge.ran == []


async def test_a_streamed_body_over_max_body_bytes_gets_413_before_the_route_runs(
    http: httpx.AsyncClient, edge: Edge
) -> None:
    request = http.build_request(
        "POST",
        "/orders",
        content=chunks(MAX_BODY + 1),
        headers={"content-type": "application/json"},
    )
    assert "content-length" not in request.headers  # chunked: the size is not declared

    response = await http.send(request)

    assert is_problem(response, 413)
    assert edge.ran == []


async def test_a_streamed_body_within_max_body_bytes_reaches_the_route(
    http: httpx.AsyncClient, edge: Edge
) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b'{"item": "x",'
        yield b' "count": 3}'

    response = await http.post(
        "/orders", content=body(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 200
    assert response.json() == {"item": "x", "count": 3}


# -- correlation id and trace context ----------------------------------------------------------


async def response_for(http: httpx.AsyncClient, kind: str, **headers: str) -> httpx.Response:
    requests: dict[str, tuple[str, str, dict[str, Any]]] = {
        "ok": ("GET", "/healthz", {}),
        "not_found": ("GET", "/nowhere", {}),
        "invalid": ("POST", "/orders", {"json": {"count": "x"}}),
        "too_large": ("POST", "/orders", {"content": b" " * (MAX_BODY + 1)}),
        "unavailable": ("GET", "/flaky", {}),
    }
    method, path, options = requests[kind]
    return await http.request(method, path, headers=headers, **options)


KINDS = ["ok", "not_found", "invalid", "too_large", "unavailable"]


@pytest.mark.parametrize("kind", KINDS)
async def test_every_response_carries_a_correlation_id(http: httpx.AsyncClient, kind: str) -> None:
    response = await response_for(http, kind)

    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-correlation-id"])


@pytest.mark.parametrize("kind", KINDS)
async def test_every_response_carries_a_valid_traceparent(
    http: httpx.AsyncClient, kind: str
) -> None:
    response = await response_for(http, kind)

    traceparent = response.headers.get("traceparent")
    assert traceparent is not None, f"{response.status_code} response without traceparent"
    assert TRACEPARENT_FORM.match(traceparent)
    assert parse_traceparent(traceparent) is not None


async def test_each_request_without_ids_gets_new_ones(http: httpx.AsyncClient) -> None:
    first = await http.get("/healthz")
    second = await http.get("/healthz")

    assert first.headers["x-correlation-id"] != second.headers["x-correlation-id"]
    assert first.headers["traceparent"] != second.headers["traceparent"]


async def test_an_incoming_traceparent_keeps_its_trace_id(http: httpx.AsyncClient) -> None:
    response = await http.get(
        "/healthz", headers={"traceparent": f"00-{TRACE_ID}-{INCOMING_PARENT}-01"}
    )

    outgoing = parse_traceparent(response.headers["traceparent"])
    assert outgoing is not None
    assert outgoing.trace_id == TRACE_ID
    assert outgoing.parent_id != INCOMING_PARENT


async def test_an_invalid_incoming_traceparent_starts_a_new_trace(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz", headers={"traceparent": f"00-{'0' * 32}-{'1' * 16}-01"})

    outgoing = parse_traceparent(response.headers["traceparent"])
    assert outgoing is not None
    assert outgoing.trace_id != "0" * 32


@pytest.mark.parametrize("value", ["req-42", "a" * 128, "ui:2025.01.02_x-y"])
async def test_a_plain_correlation_id_is_echoed(http: httpx.AsyncClient, value: str) -> None:
    response = await http.get("/healthz", headers={"X-Correlation-ID": value})

    assert response.headers["x-correlation-id"] == value


@pytest.mark.parametrize(
    "value",
    ["a b", "a\nb", "a" * 129, "a" * 300, "<script>", "id;drop"],
    ids=["space", "newline", "129-chars", "300-chars", "markup", "semicolon"],
)
async def test_a_malicious_correlation_id_is_replaced(http: httpx.AsyncClient, value: str) -> None:
    response = await http.get("/healthz", headers={"X-Correlation-ID": value})

    returned = response.headers["x-correlation-id"]
    assert returned != value
    assert re.fullmatch(r"[0-9a-f]{32}", returned)


# -- operations endpoints ----------------------------------------------------------------------


async def test_healthz_is_ok_even_when_dependencies_are_down(
    http: httpx.AsyncClient, edge: Edge
) -> None:
    edge.checks = {"database": "unavailable: OperationalError", "kafka": "unavailable"}

    response = await http.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_200_when_every_check_is_ok(http: httpx.AsyncClient) -> None:
    response = await http.get("/readyz")

    assert response.status_code == 200
    assert response.json()["status"] == "ready"


async def test_readyz_is_503_with_the_checks_when_one_is_not_ok(
    http: httpx.AsyncClient, edge: Edge
) -> None:
    edge.checks["kafka"] = "unavailable: KafkaConnectionError"

    response = await http.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "not_ready",
        "checks": {
            "database": "ok",
            "kafka": "unavailable: KafkaConnectionError",
            "redis": "ok",
        },
    }


async def test_readyz_stays_200_and_lists_a_warning(http: httpx.AsyncClient, edge: Edge) -> None:
    edge.warnings["notify.undelivered"] = "1 urgent notice waits for a channel"

    response = await http.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "kafka": "ok", "redis": "ok"},
        "warnings": {"notify.undelivered": "1 urgent notice waits for a channel"},
    }


async def test_readyz_without_warnings_has_no_warnings_key(http: httpx.AsyncClient) -> None:
    response = await http.get("/readyz")

    assert "warnings" not in response.json()


async def test_metrics_serves_prometheus_text(http: httpx.AsyncClient) -> None:
    await http.get("/healthz")

    response = await http.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE rapport_http_request_seconds histogram" in response.text
    assert 'route="/healthz"' in response.text


async def test_an_unknown_route_gets_a_404_problem(http: httpx.AsyncClient) -> None:
    response = await http.get("/nowhere")

    assert is_problem(response, 404)
    assert response.json()["instance"] == "/nowhere"


async def test_a_route_failing_on_an_unavailable_dependency_gets_503_with_retry_after(
    http: httpx.AsyncClient, edge: Edge
) -> None:
    response = await http.get("/flaky")

    assert is_problem(response, 503)
    assert response.headers["retry-after"] == "5"
    assert edge.ran == ["flaky"]
