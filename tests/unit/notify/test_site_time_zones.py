"""Notify in each site's own time: a policy or a contact that names no time zone takes its
site's (RAPPORT_SITE_TIME_ZONES), so digests and quiet hours are site-local; one that names
a zone keeps it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text

import services
from shared.auth import mint_token
from shared.host import Host
from shared.settings import Settings
from tests.unit.notify.test_api import Desk

ZONES = '{"site-a": "America/Toronto"}'


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[Desk]:
    settings = embedded_settings.model_copy(
        update={"site_time_zones": ZONES, "default_time_zone": "Europe/Berlin"}
    )
    host = Host(settings, services.definitions(["notify"]), embedded=True)
    await host.start()
    transport = httpx.ASGITransport(app=host.http_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://rapport") as http:
        yield Desk(host, http, settings)
    await host.stop()


def admin(desk: Desk, site: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(desk.settings, 'adm', 'site_admin', [site])}"}


@pytest.mark.parametrize(
    ("site", "zone"), [("site-a", "America/Toronto"), ("site-b", "Europe/Berlin")]
)
async def test_the_default_policy_is_read_in_the_sites_time_zone(
    desk: Desk, site: str, zone: str
) -> None:
    got = await desk.http.get(f"/notify/policies/{site}", headers=admin(desk, site))
    assert got.status_code == 200, got.text
    assert got.json()["policy"]["timezone"] == zone


async def test_a_stored_policy_keeps_its_own_zone_or_takes_the_sites(desk: Desk) -> None:
    auth = admin(desk, "site-a")
    unnamed = {"risk": {"escalate_after_seconds": 300}}
    put = await desk.http.put("/notify/policies/site-a", json=unnamed, headers=auth)
    assert put.status_code == 200, put.text
    got = await desk.http.get("/notify/policies/site-a", headers=auth)
    assert got.json()["policy"]["timezone"] == "America/Toronto"

    named = {"timezone": "UTC", "risk": {"escalate_after_seconds": 300}}
    await desk.http.put("/notify/policies/site-a", json=named, headers=auth)
    got = await desk.http.get("/notify/policies/site-a", headers=auth)
    assert got.json()["policy"]["timezone"] == "UTC"


async def test_a_contact_without_a_zone_keeps_quiet_hours_in_the_sites(desk: Desk) -> None:
    quiet = {"quiet_hours": {"start": "22:00", "end": "07:00"}}
    for staff_id, body in (("th-1", quiet), ("th-2", {**quiet, "timezone": "Asia/Tokyo"})):
        put = await desk.http.put(
            f"/notify/contacts/site-a/therapist/{staff_id}",
            json={"email": f"{staff_id}@clinic.test", **body},
            headers=admin(desk, "site-a"),
        )
        assert put.status_code == 200, put.text
    runtime = desk.host.runtimes["notify"]
    async with runtime.sessionmaker() as session:
        rows = await session.execute(
            text("select staff_id, timezone from notify_staff_contacts order by staff_id")
        )
        zones = [tuple(r) for r in rows.all()]
    assert zones == [("th-1", "America/Toronto"), ("th-2", "Asia/Tokyo")]
