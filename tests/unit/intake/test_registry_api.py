"""The therapist registry over HTTP: site admins manage the therapists of their own sites, and
a record the matching engine could not use is refused with 422 naming the field and rule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.settings import Settings
from tests.unit.intake.desk import IntakeDesk, intake_body, intake_desk, therapist_body


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[IntakeDesk]:
    async with intake_desk(embedded_settings) as opened:
        yield opened


def rules(response: Any) -> set[tuple[str, str]]:
    assert response.headers["content-type"].startswith("application/problem+json")
    return {(e["field"], e["rule"]) for e in response.json()["errors"]}


async def test_a_registered_therapist_is_listed_for_each_of_their_sites(desk: IntakeDesk) -> None:
    await desk.register(therapist_body("th-1", sites=["site-a"]))
    listed = await desk.http.get(
        "/intake/therapists", params={"site_id": "site-a"}, headers=desk.coordinator
    )
    assert listed.status_code == 200
    [only] = listed.json()
    assert only["id"] == "th-1" and only["caseload"] == 0 and only["domains"] == ["depression"]


@pytest.mark.parametrize(
    ("changes", "field", "rule"),
    [
        ({"domains": ["depression", "astrology"]}, "domains.1", "unknown_code"),
        ({"modalities": ["hypnosis"]}, "modalities.0", "unknown_code"),
        ({"scopes": ["pets"]}, "scopes.0", "unknown_code"),
        ({"languages": ["klingon"]}, "languages.0", "unknown_code"),
        ({"capacity": -1}, "capacity", "minimum"),
        (
            {"availability": [{"day": 1, "start_minute": 600, "end_minute": 540}]},
            "availability.0.end_minute",
            "impossible_window",
        ),
        (
            {"availability": [{"day": 7, "start_minute": 540, "end_minute": 600}]},
            "availability.0.day",
            "day_of_week",
        ),
    ],
)
async def test_a_record_the_engine_cannot_use_is_refused_naming_field_and_rule(
    desk: IntakeDesk, changes: dict[str, Any], field: str, rule: str
) -> None:
    refused = await desk.http.post(
        "/intake/therapists", headers=desk.admin, json=therapist_body(**changes)
    )
    assert refused.status_code == 422
    assert (field, rule) in rules(refused)


async def test_a_therapist_at_a_site_the_admin_does_not_manage_is_forbidden(
    desk: IntakeDesk,
) -> None:
    refused = await desk.http.post(
        "/intake/therapists",
        headers=desk.admin,
        json=therapist_body(sites=["site-a", "site-b"]),
    )
    assert refused.status_code == 403
    assert rules(refused) == {("sites", "site_scope")}


async def test_only_site_admins_manage_the_registry(desk: IntakeDesk) -> None:
    refused = await desk.http.post(
        "/intake/therapists", headers=desk.coordinator, json=therapist_body()
    )
    assert refused.status_code == 403
    assert rules(refused) == {("role", "role_scope")}


async def test_another_sites_admin_cannot_update_or_deactivate(desk: IntakeDesk) -> None:
    await desk.register(therapist_body("th-1"))
    other = desk.auth("site_admin", sites=("site-b",))
    body = {k: v for k, v in therapist_body(sites=["site-b"]).items() if k != "id"}
    updated = await desk.http.put("/intake/therapists/th-1", headers=other, json=body)
    deactivated = await desk.http.post("/intake/therapists/th-1/deactivate", headers=other)
    assert updated.status_code == 404 and deactivated.status_code == 404


async def test_update_replaces_the_record_and_keeps_the_caseload(desk: IntakeDesk) -> None:
    await desk.register(therapist_body("th-1", caseload=2))
    body = {k: v for k, v in therapist_body(capacity=8, domains=["anxiety"]).items() if k != "id"}
    updated = await desk.http.put("/intake/therapists/th-1", headers=desk.admin, json=body)
    assert updated.status_code == 200, updated.text
    assert updated.json()["capacity"] == 8 and updated.json()["domains"] == ["anxiety"]
    assert updated.json()["caseload"] == 2


async def test_a_deactivated_therapist_is_never_proposed(desk: IntakeDesk) -> None:
    await desk.register(therapist_body("th-1"))
    done = await desk.http.post("/intake/therapists/th-1/deactivate", headers=desk.admin)
    assert done.status_code == 200 and done.json()["active"] is False
    refused = await desk.http.post("/intake/intakes", headers=desk.coordinator, json=intake_body())
    assert refused.status_code == 409, refused.text
    [error] = refused.json()["errors"]
    assert error["rule"] == "no_therapist_to_offer"
    assert "active excluded 1" in error["message"]


async def test_bulk_import_registers_a_whole_site_and_then_updates(desk: IntakeDesk) -> None:
    team = [therapist_body(f"th-{k}") for k in range(5)]
    first = await desk.http.post("/intake/therapists/import", headers=desk.admin, json=team)
    assert first.status_code == 200, first.text
    assert first.json() == {"created": 5, "updated": 0}
    again = await desk.http.post("/intake/therapists/import", headers=desk.admin, json=team[:2])
    assert again.json() == {"created": 0, "updated": 2}


async def test_bulk_import_is_all_or_nothing_and_names_the_bad_rows(desk: IntakeDesk) -> None:
    team = [therapist_body("th-0"), therapist_body("th-1", modalities=["reiki"])]
    refused = await desk.http.post("/intake/therapists/import", headers=desk.admin, json=team)
    assert refused.status_code == 422
    assert ("1.modalities.0", "unknown_code") in rules(refused)
    team = [therapist_body("th-0"), therapist_body("th-1"), therapist_body("th-2", capacity=-2)]
    refused = await desk.http.post("/intake/therapists/import", headers=desk.admin, json=team)
    assert refused.status_code == 422
    assert rules(refused) == {("2.capacity", "minimum")}
    listed = await desk.http.get(
        "/intake/therapists", params={"site_id": "site-a"}, headers=desk.admin
    )
    assert listed.json() == []


async def test_bulk_import_at_a_foreign_site_is_forbidden(desk: IntakeDesk) -> None:
    team = [therapist_body("th-0"), therapist_body("th-1", sites=["site-z"])]
    refused = await desk.http.post("/intake/therapists/import", headers=desk.admin, json=team)
    assert refused.status_code == 403
    assert rules(refused) == {("1.sites", "site_scope")}
