"""Notify's HTTP API on the embedded stack: routing policies (a malformed one refused with the
field named), contacts whose addresses are sealed and never shown, the site-scoped delivery log
without personal data, the SSRF guard, and an event driving it end to end in one process."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text

import services
from shared.auth import mint_token
from shared.events import encode
from shared.host import Host
from shared.settings import Settings
from tests.support.notify import alert, pseudonym
from tests.support.receiver import _free_port
from tests.support.waiting import eventually

SITE = "site-a"


@dataclass
class Desk:
    host: Host
    http: httpx.AsyncClient
    settings: Settings

    def auth(self, role: str, site: str = SITE, sub: str = "user-1") -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(self.settings, sub, role, [site])}"}

    async def publish(self, event: Any) -> None:
        record = encode(event, self.settings.topic(event.type.topic_name))
        await self.host.broker.publish(
            record.value, record.topic, key=record.key, headers=record.headers
        )

    async def rows(self, sql: str) -> list[Any]:
        runtime = self.host.runtimes["notify"]
        async with runtime.sessionmaker() as session:
            return list((await session.execute(text(sql))).all())


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[Desk]:
    # An SMTP server that is not there (nothing listens on the port) and quick retries.
    settings = embedded_settings.model_copy(
        update={
            "allow_private_webhooks": False,
            "notify_smtp_host": "127.0.0.1",
            "notify_smtp_port": _free_port(),
            "notify_smtp_tls": "none",
            "notify_retry_schedule": "0.05",
            "notify_send_timeout_seconds": 2.0,
        }
    )
    host = Host(settings, services.definitions(["notify"]), embedded=True)
    await host.start()
    transport = httpx.ASGITransport(app=host.http_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://rapport") as http:
        yield Desk(host, http, settings)
    await host.stop()


# -- policies -------------------------------------------------------------------------------------


async def test_a_site_without_its_own_policy_uses_the_default(desk: Desk) -> None:
    got = await desk.http.get(f"/notify/policies/{SITE}", headers=desk.auth("site_admin"))

    assert got.status_code == 200
    assert got.json()["source"] == "default"
    assert got.json()["policy"]["risk"]["escalate_to"] == ["supervisor"]


async def test_a_stored_policy_is_what_the_site_uses(desk: Desk) -> None:
    document = {"timezone": "Europe/Berlin", "risk": {"escalate_after_seconds": 300}}

    put = await desk.http.put(
        f"/notify/policies/{SITE}", json=document, headers=desk.auth("site_admin", sub="adm-7")
    )
    got = await desk.http.get(f"/notify/policies/{SITE}", headers=desk.auth("clinical_lead"))

    assert put.status_code == 200, put.text
    assert got.json()["source"] == "site"
    assert got.json()["updated_by"] == "adm-7"
    assert got.json()["policy"]["timezone"] == "Europe/Berlin"
    assert got.json()["policy"]["risk"]["escalate_after_seconds"] == 300


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"rules": [{"to": ["therapist"], "channels": ["fax"]}]}, "rules.0.channels.0"),
        ({"rules": [{"to": [], "channels": ["email"]}]}, "rules.0.to"),
        ({"risk": {"escalate_after_seconds": -1}}, "risk.escalate_after_seconds"),
        ({"timezone": "Nowhere/Atlantis"}, "timezone"),
        ({"digest": {"starts_at": "25:00"}}, "digest.starts_at"),
        ({"surprise": True}, "surprise"),
    ],
)
async def test_a_malformed_policy_is_refused_naming_the_field(
    desk: Desk, document: dict[str, Any], field: str
) -> None:
    put = await desk.http.put(
        f"/notify/policies/{SITE}", json=document, headers=desk.auth("site_admin")
    )

    assert put.status_code == 422
    assert put.headers["content-type"] == "application/problem+json"
    assert put.json()["errors"][0]["field"] == field


async def test_only_a_site_admin_of_the_site_may_change_its_policy(desk: Desk) -> None:
    as_lead = await desk.http.put(
        f"/notify/policies/{SITE}", json={}, headers=desk.auth("clinical_lead")
    )
    elsewhere = await desk.http.put(
        f"/notify/policies/{SITE}", json={}, headers=desk.auth("site_admin", site="site-b")
    )

    assert as_lead.status_code == 403
    assert elsewhere.status_code == 403


# -- contacts -------------------------------------------------------------------------------------


async def test_staff_addresses_are_sealed_and_never_shown(desk: Desk) -> None:
    put = await desk.http.put(
        f"/notify/contacts/{SITE}/therapist/th-1",
        json={
            "email": "dr.jones@clinic.test",
            "phone": "+4915112345678",
            "timezone": "Europe/Berlin",
            "quiet_hours": {"start": "22:00", "end": "07:00"},
        },
        headers=desk.auth("site_admin"),
    )
    listed = await desk.http.get(
        "/notify/contacts", params={"site_id": SITE}, headers=desk.auth("site_admin")
    )

    assert put.status_code == 200, put.text
    assert put.json()["has_email"] and put.json()["has_phone"]
    assert "dr.jones" not in put.text + listed.text and "12345678" not in put.text + listed.text
    stored = json.dumps(
        [list(map(str, r)) for r in await desk.rows("select * from notify_staff_contacts")]
    )
    assert "dr.jones" not in stored and "12345678" not in stored


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-address"}, "email"),
        ({"phone": "0151 123"}, "phone"),
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"quiet_hours": {"start": "7am", "end": "08:00"}}, "quiet_hours.start"),
    ],
)
async def test_a_malformed_contact_is_refused_naming_the_field(
    desk: Desk, body: dict[str, Any], field: str
) -> None:
    put = await desk.http.put(
        f"/notify/contacts/{SITE}/therapist/th-1", json=body, headers=desk.auth("site_admin")
    )

    assert put.status_code == 422
    assert put.json()["errors"][0]["field"] == field
    assert "not-an-address" not in put.text  # the value itself is not echoed


async def test_consent_to_invitations_needs_an_address_for_the_channel(desk: Desk) -> None:
    respondent = pseudonym("api-client")

    put = await desk.http.put(
        f"/notify/client-contacts/{SITE}/{respondent}",
        json={"channel": "sms", "consent": True, "email": "c@clinic.test"},
        headers=desk.auth("intake_coordinator"),
    )

    assert put.status_code == 422
    assert put.json()["errors"][0]["field"] == "phone"


async def test_a_client_contact_shows_consent_but_not_the_address(desk: Desk) -> None:
    respondent = pseudonym("api-client-2")
    path = f"/notify/client-contacts/{SITE}/{respondent}"

    put = await desk.http.put(
        path,
        json={"email": "client@home.test", "consent": True},
        headers=desk.auth("intake_coordinator"),
    )
    got = await desk.http.get(path, headers=desk.auth("clinical_lead"))
    analyst = await desk.http.get(path, headers=desk.auth("data_analyst"))

    assert put.status_code == 200, put.text
    assert got.json()["consent"] is True and got.json()["consent_at"] is not None
    assert got.json()["has_email"] is True
    assert "client@home.test" not in put.text + got.text
    assert analyst.status_code == 403


# -- webhooks -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9000/hook", "http://169.254.169.254/latest", "http://[::1]/x"]
)
async def test_a_webhook_to_a_private_address_is_refused(desk: Desk, url: str) -> None:
    got = await desk.http.post(
        "/notify/webhooks", json={"site_id": SITE, "url": url}, headers=desk.auth("site_admin")
    )

    assert got.status_code == 422
    assert got.json()["errors"] == [{"field": "url", "rule": "private_address"}]


# -- end to end, embedded -------------------------------------------------------------------------


async def test_an_alert_becomes_log_entries_without_personal_data_and_nothing_is_logged(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await desk.http.put(
        f"/notify/contacts/{SITE}/therapist/th-1",
        json={"email": "dr.jones@clinic.test", "phone": "+4915112345678"},
        headers=desk.auth("site_admin"),
    )
    # The SMTP server is unreachable: the email is retried, then fails permanently. No SMS
    # provider is configured, so no SMS is planned at all.
    await desk.publish(alert(SITE, "rupture", "high"))

    async def failed() -> bool:
        got = await desk.http.get(
            "/notify/deliveries",
            params={"site_id": SITE, "status": "failed"},
            headers=desk.auth("clinical_lead"),
        )
        return len(got.json()) == 1

    await eventually(failed, what="the email to fail without an SMTP server")
    log = await desk.http.get(
        "/notify/deliveries", params={"site_id": SITE}, headers=desk.auth("supervisor")
    )
    (entry,) = log.json()
    assert entry["channel"] == "email" and entry["attempts"] == 2
    assert entry["last_error"].startswith("retries_exhausted_")
    assert entry["recipient"] == "staff:therapist:th-1"
    assert "dr.jones" not in log.text
    assert "delivery failed permanently" in caplog.text
    assert "dr.jones" not in caplog.text and "12345678" not in caplog.text
    other_site = await desk.http.get(
        "/notify/deliveries", params={"site_id": SITE}, headers=desk.auth("supervisor", "site-b")
    )
    assert other_site.status_code == 403


async def test_an_alert_for_an_unknown_site_is_recorded_undeliverable_not_dead_lettered(
    desk: Desk,
) -> None:
    event = alert("site-unknown")

    await desk.publish(event)

    assert await desk.rows("select count(*) from notify_inbox") == [(1,)]  # applied
    assert await desk.rows(
        "select kind, undeliverable_reason, awaiting_route_since is not null from notify_notices"
    ) == [("rupture", "site_not_set_up", 1)]
    assert await desk.rows("select * from notify_deliveries") == []
    listed = await desk.http.get(
        "/notify/undelivered",
        params={"site_id": "site-unknown"},
        headers=desk.auth("site_admin", "site-unknown"),
    )
    assert listed.status_code == 200, listed.text
    (notice,) = listed.json()
    assert (notice["kind"], notice["status"], notice["reason"]) == (
        "rupture",
        "waiting",
        "site_not_set_up",
    )
    assert notice["episode_id"] is None  # a site admin sees what to set up, not the episode
