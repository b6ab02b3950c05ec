"""Every list route (every GET whose answer is a JSON array, enumerated from the app) pages
with ``limit`` (default 100, at most 500) and ``offset``; a ``limit`` above the cap is refused
with a 422 problem naming ``limit`` — not clamped, so no one mistakes a cut list for the whole."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import services
from shared.auth import mint_token
from shared.host import Host
from shared.http import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from shared.settings import Settings, load_settings
from tests.system.routes import OPERATIONS, Call
from tests.system.world import Site


@pytest.fixture(scope="module")
async def app(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings, dict[str, Any]]]:
    folder: Path = tmp_path_factory.mktemp("pages")
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{folder}/{{service}}.db", redis_url="memory://"
    )
    host = Host(settings, services.definitions(), embedded=True)
    await host.start()
    try:
        served = host.http_app()
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as http:
            yield http, settings, served.openapi()
    finally:
        await host.stop()


def list_routes(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path, item in spec["paths"].items():
        get = item.get("get")
        if get is None:
            continue
        ok = get.get("responses", {}).get("200", {}).get("content", {})
        schema = ok.get("application/json", {}).get("schema", {})
        if schema.get("type") == "array":
            found.append((path, get))
    return found


def a_call(path: str) -> Call:
    """The request the isolation table makes, for a site with made-up ids (the limit is
    checked before anything is looked up)."""
    site = Site("site-a", therapist="th-1", other_therapist="th-2", episode_id="ep-1")
    return OPERATIONS[("GET", path)].call(None, site)  # type: ignore[arg-type]


async def test_every_list_route_documents_a_capped_limit_and_an_offset(
    app: tuple[httpx.AsyncClient, Settings, dict[str, Any]],
) -> None:
    _, _, spec = app
    routes = list_routes(spec)
    unpaged = []
    for path, operation in routes:
        params = {p["name"]: p for p in operation.get("parameters", [])}
        limit = params.get("limit", {}).get("schema", {})
        if (
            limit.get("maximum") != MAX_PAGE_SIZE
            or limit.get("default") != DEFAULT_PAGE_SIZE
            or "offset" not in params
        ):
            unpaged.append(path)
    assert unpaged == []
    assert len(routes) >= 7


@pytest.mark.parametrize("limit", [MAX_PAGE_SIZE + 1, 0, 10_000])
async def test_a_limit_outside_the_range_is_refused_naming_limit(
    app: tuple[httpx.AsyncClient, Settings, dict[str, Any]], limit: int
) -> None:
    http, settings, spec = app
    refused = []
    for path, _ in list_routes(spec):
        call = a_call(path)
        role = OPERATIONS[("GET", path)].roles[0]
        token = mint_token(settings, "th-1" if role == "therapist" else "u-1", role, ["site-a"])
        answer = await http.get(
            call.path,
            params={**call.params, "limit": str(limit)},
            headers={"Authorization": f"Bearer {token}"},
        )
        body = answer.json()
        fields = [e["field"] for e in body.get("errors", [])] if isinstance(body, dict) else []
        if answer.status_code != 422 or fields != ["limit"]:
            refused.append(f"{path} → {answer.status_code} {fields}")
    assert refused == []


async def test_the_cap_itself_is_accepted(
    app: tuple[httpx.AsyncClient, Settings, dict[str, Any]],
) -> None:
    http, settings, spec = app
    statuses = {}
    for path, _ in list_routes(spec):
        call = a_call(path)
        role = OPERATIONS[("GET", path)].roles[0]
        token = mint_token(settings, "th-1" if role == "therapist" else "u-1", role, ["site-a"])
        answer = await http.get(
            call.path,
            params={**call.params, "limit": str(MAX_PAGE_SIZE)},
            headers={"Authorization": f"Bearer {token}"},
        )
        statuses[path] = answer.status_code
    # 404: an episode this empty deployment does not have; what matters is no 422.
    assert set(statuses.values()) <= {200, 404}, statuses
