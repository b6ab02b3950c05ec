"""Tenant isolation on the real stack: staff of site A try every operation of every service on
site B's resources — by id, by list filter, by guessing ids — and get 403 or 404 only, with
nothing of site B in the answer; every role gets only what its role allows (a therapist only
their own clients, a data analyst aggregates only). Each client-level request writes exactly
one audit record, whatever its outcome; other requests write none.

The operations come from the running app (tests/system/routes.py): a route nobody has placed
in the table fails here."""

from __future__ import annotations

import uuid

import httpx

from tests.system.routes import (
    OPERATIONS,
    STAFF_SCOPES,
    Operation,
    app_operations,
    ordered,
    send,
)
from tests.system.world import ALL_ROLES, World, therapist_body

SERVICE_PREFIXES = ("intake", "feedback", "analytics", "notify")
DENIED = (403, 404)


def service_of(path: str) -> str | None:
    first = path.strip("/").split("/")[0]
    return first if first in SERVICE_PREFIXES else None


def leaked(world: World, response: httpx.Response, sent: str) -> list[str]:
    """Site B's values in an answer to site A's staff (except what the request itself said)."""
    site_b = world.sites["site-b"]
    return [s for s in site_b.secrets() if s and s in response.text and s not in sent]


async def expect_audit(
    world: World, path: str, operation: Operation, before: dict[str, int]
) -> None:
    after = await world.audit_counts()
    expected = dict(before)
    service = service_of(path)
    if operation.audited and service is not None:
        expected[service] += 1
    assert after == expected, f"audit records for {path}: {before} → {after}"


def staff_operations(world: World) -> list[tuple[str, str]]:
    return ordered(
        [k for k in app_operations(world.http._transport.app) if k in OPERATIONS]  # type: ignore[attr-defined]
    )


async def test_every_operation_of_every_service_is_in_the_isolation_table(world: World) -> None:
    served = app_operations(world.app)

    unknown = [f"{method} {path}" for method, path in served if (method, path) not in OPERATIONS]
    stale = [f"{m} {p}" for m, p in OPERATIONS if (m, p) not in served]

    assert unknown == [], "routes without a scoping decision in tests/system/routes.py"
    assert stale == [], "table rows for routes that no longer exist"
    assert len(served) >= 45


async def test_site_a_staff_get_only_403_or_404_for_site_b_resources(world: World) -> None:
    site_b = world.sites["site-b"]
    failures: list[str] = []
    tried = 0
    for method, path in staff_operations(world):
        operation = OPERATIONS[(method, path)]
        if operation.scope not in ("site", "client"):
            continue
        call = operation.call(world, site_b)
        for role in ALL_ROLES:
            before = await world.audit_counts()
            answer = await send(world, method, call, world.auth(role, "site-a"))
            tried += 1
            sent = call.path + str(call.params) + str(call.body)
            if answer.status_code not in DENIED:
                failures.append(f"{role}: {method} {call.path} → {answer.status_code}")
            elif found := leaked(world, answer, sent):
                failures.append(f"{role}: {method} {call.path} leaked {found}")
            await expect_audit(world, path, operation, before)
    assert failures == []
    assert tried >= 40 * len(ALL_ROLES)


async def test_guessed_ids_get_404_and_reveal_nothing(world: World) -> None:
    site_a = world.sites["site-a"]
    failures: list[str] = []
    for method, path in staff_operations(world):
        operation = OPERATIONS[(method, path)]
        if not operation.ids:
            continue
        call = operation.call(world, site_a)
        guessed = call.path
        for name in operation.ids:
            real = call.path.split("/")[path.split("/").index("{" + name + "}")]
            guessed = guessed.replace(real, f"guess-{uuid.uuid4().hex[:12]}")
        before = await world.audit_counts()
        answer = await send(
            world,
            method,
            type(call)(guessed, call.params, call.body, call.content_type),
            world.auth_for(operation.roles[0], "site-a"),
        )
        if answer.status_code != 404:
            failures.append(f"{method} {guessed} → {answer.status_code}")
        await expect_audit(world, path, operation, before)
    assert failures == []


async def test_a_list_filtered_by_another_site_is_refused(world: World) -> None:
    failures: list[str] = []
    for method, path in staff_operations(world):
        operation = OPERATIONS[(method, path)]
        call = operation.call(world, world.sites["site-a"])
        if "site_id" not in call.params:
            continue
        for role in operation.roles:
            answer = await send(
                world,
                method,
                type(call)(call.path, {**call.params, "site_id": "site-b"}),
                world.auth_for(role, "site-a"),
            )
            if answer.status_code != 403:
                failures.append(f"{role}: {method} {path}?site_id=site-b → {answer.status_code}")
    assert failures == []


async def test_roles_outside_an_operation_are_refused_at_their_own_site(world: World) -> None:
    site_b = world.sites["site-b"]
    failures: list[str] = []
    for method, path in staff_operations(world):
        operation = OPERATIONS[(method, path)]
        if operation.scope not in ("site", "client"):
            continue
        call = operation.call(world, site_b)
        for role in sorted(set(ALL_ROLES) - set(operation.roles)):
            before = await world.audit_counts()
            answer = await send(world, method, call, world.auth(role, "site-b"))
            if answer.status_code not in DENIED:
                failures.append(f"{role}: {method} {call.path} → {answer.status_code}")
            await expect_audit(world, path, operation, before)
    assert failures == []


async def test_a_data_analyst_gets_aggregates_and_no_client_level_data(world: World) -> None:
    site_b = world.sites["site-b"]
    analyst = world.auth("data_analyst", "site-b")
    client_level, aggregates = [], []
    for method, path in staff_operations(world):
        operation = OPERATIONS[(method, path)]
        call = operation.call(world, site_b)
        if operation.scope == "client":
            client_level.append((await send(world, method, call, analyst)).status_code)
        elif "data_analyst" in operation.roles and operation.scope == "site":
            aggregates.append((await send(world, method, call, analyst)).status_code)

    assert client_level and set(client_level) == {403}
    assert aggregates and set(aggregates) == {200}


async def test_a_therapist_sees_only_their_own_clients(world: World) -> None:
    site_b = world.sites["site-b"]
    colleague = world.auth("therapist", "site-b", site_b.other_therapist)
    treating = world.as_treating_therapist("site-b")
    reads = [
        f"/intake/episodes/{site_b.episode_id}",
        f"/feedback/episodes/{site_b.episode_id}/responses",
        f"/analytics/episodes/{site_b.episode_id}/timeline",
        f"/analytics/episodes/{site_b.episode_id}/chart.svg",
        f"/notify/client-contacts/site-b/{site_b.client}",
    ]
    for path in reads:
        assert (await world.http.get(path, headers=treating)).status_code == 200, path
        assert (await world.http.get(path, headers=colleague)).status_code == 404, path
    theirs = await world.http.get(
        "/analytics/alerts", params={"site_id": "site-b"}, headers=treating
    )
    not_theirs = await world.http.get(
        "/analytics/alerts", params={"site_id": "site-b"}, headers=colleague
    )
    assert theirs.json() and not_theirs.json() == []
    recorded = await world.http.post(
        "/feedback/responses",
        json={
            "episode_id": site_b.episode_id,
            "session_number": 9,
            "respondent_role": "client",
            "instrument": "srs",
            "items": {"relationship": 9, "goals": 9, "approach": 9, "overall": 9},
        },
        headers=colleague,
    )
    assert recorded.status_code == 404


async def test_each_operation_works_for_its_own_staff(world: World) -> None:
    """The control: the requests above are refused because of who asks, not because they are
    malformed or name nothing — the right member of staff at site B gets an answer."""
    site_b = world.sites["site-b"]
    failures: list[str] = []
    for method, path in staff_operations(world):
        operation = OPERATIONS[(method, path)]
        if operation.scope not in STAFF_SCOPES:
            continue
        call = operation.call(world, site_b)
        before = await world.audit_counts()
        answer = await send(world, method, call, world.auth_for(operation.roles[0], "site-b"))
        if answer.status_code in (401, 403, 404, 422) or answer.status_code >= 500:
            failures.append(f"{operation.roles[0]}: {method} {call.path} → {answer.status_code}")
        await expect_audit(world, path, operation, before)
    assert failures == []


async def test_every_staff_operation_refuses_a_request_without_a_token(world: World) -> None:
    site_b = world.sites["site-b"]
    failures = []
    for method, path in staff_operations(world):
        operation = OPERATIONS[(method, path)]
        if operation.scope not in STAFF_SCOPES:
            continue
        call = operation.call(world, site_b)
        answer = await send(world, method, call)
        if answer.status_code != 401 or leaked(world, answer, call.path):
            failures.append(f"{method} {path} → {answer.status_code}")
    assert failures == []


async def test_another_sites_therapist_cannot_be_moved_to_ones_own_site(world: World) -> None:
    site_b = world.sites["site-b"]
    a_admin = world.auth("site_admin", "site-a")
    moved = therapist_body(site_b.other_therapist, "site-a")
    fields = {k: v for k, v in moved.items() if k != "id"}

    by_update = await world.http.put(
        f"/intake/therapists/{site_b.other_therapist}", json=fields, headers=a_admin
    )
    by_import = await world.http.post("/intake/therapists/import", json=[moved], headers=a_admin)

    assert by_update.status_code in DENIED
    assert by_import.status_code in DENIED
    listed = await world.http.get(
        "/intake/therapists", params={"site_id": "site-a"}, headers=a_admin
    )
    assert site_b.other_therapist not in listed.text
