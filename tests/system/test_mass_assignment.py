"""Mass assignment: fields a caller must not set — ``site_id``, ``role``, risk flags, ids,
timestamps, statuses — added to the body of every write operation (enumerated from the app) are
refused with a 422 problem naming the field, or ignored; never stored. The world is built on
the embedded default (the rule is the same on PostgreSQL); afterwards every table of every
service is searched for the injected values."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import SQLModel

from shared.settings import load_settings
from tests.system.routes import (
    OPERATIONS,
    Call,
    app_operations,
    error_media_type,
    ordered,
    send,
)
from tests.system.world import SERVICES, World, build_world

MARK = "injected-7f3a"
# Fields a front-end could try to slip in; each is set to something carrying MARK.
INJECTED: dict[str, Any] = {
    "site_id": f"site-{MARK}",
    "sites": [f"site-{MARK}"],
    "role": f"clinical_lead-{MARK}",
    "respondent": f"p1-{MARK}",
    "risk": True,
    "risk_flagged": True,
    "risk_items": [MARK],
    "therapist_id": f"th-{MARK}",
    "id": f"id-{MARK}",
    "episode_id": f"ep-{MARK}",
    "created_at": "2001-01-01T00:00:00+00:00",
    "updated_by": MARK,
    "status": MARK,
    "acknowledged_by": MARK,
    "secret": f"whsec_{MARK}",
    "active": MARK,
}
WRITES = ("POST", "PUT", "PATCH")


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    folder: Path = tmp_path_factory.mktemp("mass")
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{folder}/{{service}}.db",
        redis_url="memory://",
        allow_private_webhooks=True,
        relay_idle_seconds=0.05,
    )
    async with build_world(settings, embedded=True) as built:
        yield built


def with_extra(body: Any, name: str, value: Any) -> Any | None:
    """The body with one more field (in the first item of a list body); None when the body
    already has a field of that name (then it is the route's own, checked elsewhere)."""
    target = body[0] if isinstance(body, list) else body
    if not isinstance(target, dict) or name in target:
        return None
    extended = {**target, name: value}
    return [extended, *body[1:]] if isinstance(body, list) else extended


async def stored_marks(world: World) -> list[str]:
    found = []
    for service in SERVICES:
        runtime = world.host.runtimes[service]
        tables = [t for n, t in SQLModel.metadata.tables.items() if n.startswith(f"{service}_")]
        async with runtime.sessionmaker() as session:
            for table in tables:
                if table.name.endswith("_audit"):
                    continue  # records what was asked for (the resource path), not state
                for row in (await session.execute(table.select())).all():
                    text = " ".join(
                        v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                        for v in row
                    )
                    if MARK in text:
                        found.append(f"{table.name}: {text[:200]}")
    return found


def write_operations(world: World) -> list[tuple[str, str]]:
    keys = [k for k in app_operations(world.app) if k in OPERATIONS and k[0] in WRITES]
    return ordered(keys)


async def test_every_write_operation_refuses_or_ignores_fields_it_does_not_own(
    world: World,
) -> None:
    site = world.sites["site-b"]
    outcomes: dict[str, set[int]] = {}
    failures: list[str] = []
    for method, path in write_operations(world):
        operation = OPERATIONS[(method, path)]
        call = operation.call(world, site)
        if call.body is None:
            continue
        headers = world.auth_for(operation.roles[0], site.id) if operation.roles else {}
        for name, value in INJECTED.items():
            body = with_extra(call.body, name, value)
            if body is None:
                continue
            answer = await send(
                world, method, Call(call.path, call.params, body, call.content_type), headers
            )
            outcomes.setdefault(f"{method} {path}", set()).add(answer.status_code)
            if answer.status_code == 422:
                fields = [e["field"] for e in answer.json().get("errors", [])]
                if not any(f.split(".")[-1] == name for f in fields):
                    failures.append(f"{method} {path} +{name}: 422 naming {fields}")
            elif answer.status_code >= 500 or answer.status_code in (401, 403, 404):
                failures.append(f"{method} {path} +{name}: {answer.status_code}")
            elif MARK in answer.text:
                failures.append(f"{method} {path} +{name}: echoed in a {answer.status_code}")

    assert failures == []
    assert len(outcomes) >= 15, outcomes
    assert await stored_marks(world) == []


async def test_json_write_bodies_are_refused_with_the_field_and_rule_named(
    world: World,
) -> None:
    """Every JSON body model forbids unknown fields (FHIR resources, which may carry any
    extension, are read for what Rapport understands and the rest is dropped)."""
    site = world.sites["site-b"]
    lenient = []
    for method, path in write_operations(world):
        operation = OPERATIONS[(method, path)]
        call = operation.call(world, site)
        if call.body is None or call.content_type != "application/json":
            continue
        headers = world.auth_for(operation.roles[0], site.id) if operation.roles else {}
        # A body whose own field is "role" (an episode member's) gets another one to smuggle.
        name, body = "role", with_extra(call.body, "role", "clinical_lead")
        if body is None:
            name, body = "is_admin", with_extra(call.body, "is_admin", True)
        answer = await send(
            world, method, Call(call.path, call.params, body, call.content_type), headers
        )
        problem = answer.json() if answer.status_code == 422 else {}
        if {"field": name, "rule": "extra_forbidden"} not in [
            {"field": e["field"].split(".")[-1], "rule": e["rule"]}
            for e in problem.get("errors", [])
        ]:
            lenient.append(f"{method} {path} → {answer.status_code}")
    assert lenient == []


async def test_every_write_operation_refuses_an_oversized_body_with_413(world: World) -> None:
    """Declared (Content-Length): 413 problem+json before the route runs; streamed (chunked,
    no length) to a route that reads a body: 413 once the limit is passed, before parsing.
    Nothing of it is stored."""
    site = world.sites["site-b"]
    limit = world.settings.max_body_bytes
    oversized = json.dumps({"padding": MARK * (limit // len(MARK) + 1)}).encode()
    failures: list[str] = []
    tried = 0
    for method, path in write_operations(world):
        operation = OPERATIONS[(method, path)]
        call = operation.call(world, site)
        headers = world.auth_for(operation.roles[0], site.id) if operation.roles else {}
        headers["content-type"] = call.content_type

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(oversized), 65_536):
                yield oversized[start : start + 65_536]

        declared = await world.http.request(
            method, call.path, params=call.params, content=oversized, headers=headers
        )
        streamed = await world.http.request(
            method, call.path, params=call.params, content=chunks(), headers=headers
        )
        tried += 1
        answers = [("declared", declared)]
        if call.body is not None:
            # A route without a body never reads one: nothing is buffered, nothing parsed.
            answers.append(("streamed", streamed))
        for how, answer in answers:
            if not (
                answer.status_code == 413
                and answer.headers["content-type"] == error_media_type(path)
            ):
                failures.append(f"{how}: {method} {path} → {answer.status_code}")
    assert failures == []
    assert tried >= 20
    assert await stored_marks(world) == []
