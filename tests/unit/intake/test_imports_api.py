"""The imports staff already have: the therapist registry and a site's waiting list as CSV (a
header row, lists separated by ``;``, weekly times as ``mon 09:00-17:00``). Every bad row is
named by line and column before anything is stored; a dry run checks and counts only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.settings import Settings
from tests.unit.intake.desk import IntakeDesk, intake_desk

CSV = {"content-type": "text/csv"}
REGISTRY = (
    "id,sites,languages,capacity,gender,modalities,scopes,domains,availability,telehealth\n"
    "th-1,site-a,en; fr,5,woman,cbt;ipt,adults,depression,mon 09:00-17:00; wed 13:00-24:00,yes\n"
    'th-2,site-a,en,3,man,cbt,adults,depression,"mon-fri 08:00-20:00",no\n'
)
WAITING = (
    "client_reference,domains,languages,preferred_times,preferred_gender\n"
    "MRN-1,depression:severe; anxiety,en,required: mon-fri 08:00-20:00,woman\n"
    "MRN-2,depression,en,,\n"
)


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[IntakeDesk]:
    async with intake_desk(embedded_settings) as opened:
        yield opened


def cells(response: Any) -> set[tuple[int, str, str]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return {(e["line"], e["column"], e["rule"]) for e in response.json()["errors"]}


async def post_csv(desk: IntakeDesk, path: str, body: str | bytes, **params: str) -> Any:
    content = body.encode() if isinstance(body, str) else body
    headers = {**CSV, **(desk.coordinator if "waiting" in path else desk.admin)}
    return await desk.http.post(path, content=content, headers=headers, params=params)


async def listed(desk: IntakeDesk) -> list[dict[str, Any]]:
    got = await desk.http.get(
        "/intake/therapists", params={"site_id": "site-a"}, headers=desk.admin
    )
    result: list[dict[str, Any]] = got.json()
    return result


async def test_a_registry_csv_registers_lists_and_weekly_times(desk: IntakeDesk) -> None:
    done = await post_csv(desk, "/intake/therapists/import", "\ufeff" + REGISTRY)  # Excel's BOM
    assert done.status_code == 200, done.text
    assert done.json() == {"created": 2, "updated": 0}
    first, second = await listed(desk)
    assert first["languages"] == ["en", "fr"] and first["modalities"] == ["cbt", "ipt"]
    assert first["availability"] == [
        {"day": 0, "start_minute": 540, "end_minute": 1020},
        {"day": 2, "start_minute": 780, "end_minute": 1440},
    ]
    assert first["telehealth"] is True and second["telehealth"] is False
    assert [s["day"] for s in second["availability"]] == [0, 1, 2, 3, 4]
    again = await post_csv(desk, "/intake/therapists/import", REGISTRY)
    assert again.json() == {"created": 0, "updated": 2}


async def test_a_dry_run_names_every_bad_row_and_stores_nothing(desk: IntakeDesk) -> None:
    bad = REGISTRY + (  # lines 2 and 3 are fine
        "th-3,site-a,en,-1,woman,cbt,adults,depression,mon 09:00-17:00; tue 18:00-09:00,no\n"
        "th-4,site-a,en,2,woman,reiki,adults,depression,funday 9-5,no\n"
        "th-1,site-a,en,2,woman,cbt,adults,depression,tue 09:00-17:00,maybe\n"
    )
    refused = await post_csv(desk, "/intake/therapists/import", bad, dry_run="true")
    assert cells(refused) == {
        (4, "capacity", "minimum"),
        (4, "availability", "impossible_window"),
        (5, "modalities", "unknown_code"),
        (5, "availability", "weekly_time"),
        (6, "id", "unique"),
        (6, "telehealth", "bool_parsing"),
    }
    assert refused.json()["detail"].startswith("line 4, column capacity")
    refused = await post_csv(desk, "/intake/therapists/import", bad)  # the same, for real
    assert refused.status_code == 422 and await listed(desk) == []
    counted = await post_csv(desk, "/intake/therapists/import", REGISTRY, dry_run="true")
    assert counted.json() == {"created": 2, "updated": 0, "dry_run": True}
    assert await listed(desk) == []


async def test_a_wrong_header_or_encoding_is_refused_naming_the_column(desk: IntakeDesk) -> None:
    header = "id,sites,langs,capacity,salary\nth-1,site-a,en,5,100\n"
    refused = await post_csv(desk, "/intake/therapists/import", header)
    assert cells(refused) == {
        (1, "langs", "unknown_column"),
        (1, "salary", "unknown_column"),
        (1, "languages", "required"),
    }
    latin1 = REGISTRY.replace("th-2", "thé-2").encode("latin-1")
    refused = await post_csv(desk, "/intake/therapists/import", latin1)
    assert cells(refused) == {(3, "(file)", "encoding")}
    wrong = await desk.http.post(
        "/intake/therapists/import",
        content=REGISTRY.encode(),
        headers={**desk.admin, "content-type": "text/plain"},
    )
    assert wrong.status_code == 415 and "text/csv" in wrong.json()["errors"][0]["valid"]
    assert await listed(desk) == []


async def test_a_waiting_list_csv_creates_waiting_intakes_without_proposing(
    desk: IntakeDesk,
) -> None:
    path = "/intake/sites/site-a/waiting-list/import"
    counted = await post_csv(desk, path, WAITING, dry_run="true")
    assert counted.json() == {
        "site_id": "site-a",
        "created": 2,
        "intake_ids": [],
        "already_waiting": 0,
        "dry_run": True,
    }
    assert await desk.emitted() == []
    done = await post_csv(desk, path, WAITING)
    assert done.status_code == 200, done.text
    assert done.json()["created"] == 2 and done.json()["already_waiting"] == 0
    submitted = await desk.emitted_of("intake.submitted")
    assert [s["intake_id"] for s in submitted] == done.json()["intake_ids"]
    assert submitted[0]["domains"] == ["depression", "anxiety"]
    assert await desk.emitted_of("match.proposed") == []
    again = await post_csv(desk, path, WAITING)  # a list imported twice: nobody twice
    assert again.json()["created"] == 0 and again.json()["already_waiting"] == 2
    assert len(await desk.emitted_of("intake.submitted")) == 2


async def test_the_imported_waiting_list_is_assigned_with_its_preferences(
    desk: IntakeDesk,
) -> None:
    registered = await post_csv(desk, "/intake/therapists/import", REGISTRY)
    assert registered.status_code == 200, registered.text
    await post_csv(desk, "/intake/sites/site-a/waiting-list/import", WAITING)
    assigned = await desk.http.post(
        "/intake/sites/site-a/waiting-list/assign", headers=desk.coordinator
    )
    assert assigned.status_code == 200, assigned.text
    placements = assigned.json()["placements"]
    assert len(placements) == 2
    # MRN-1 requires mon-fri 08:00-20:00 and prefers a woman: th-1 (a woman) meets both.
    by_client = {p["intake_id"]: p["therapist_id"] for p in placements}
    assert "th-1" in by_client.values()


async def test_a_bad_waiting_list_row_stores_nothing(desk: IntakeDesk) -> None:
    bad = WAITING + (
        "MRN-3,grief:extreme,xx,,\nMRN-1,depression,en,mon 25:00-26:00,\n,depression,en,,\n"
    )
    refused = await post_csv(desk, "/intake/sites/site-a/waiting-list/import", bad)
    found = cells(refused)
    assert (4, "domains", "unknown_code") in found
    assert (4, "languages", "unknown_code") in found
    assert (5, "client_reference", "unique") in found
    assert (5, "preferred_times", "weekly_time") in found
    assert any(line == 6 for line, _, _ in found)
    assert await desk.emitted() == []
    foreign = await desk.http.post(
        "/intake/sites/site-b/waiting-list/import",
        content=WAITING.encode(),
        headers={**CSV, **desk.coordinator},
    )
    assert foreign.status_code == 403
