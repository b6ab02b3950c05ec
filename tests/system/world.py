"""Two sites, each with the resources every route works on, built through the HTTP API as the
sites' front-ends would: therapists, a webhook, contacts, intakes and proposals, episodes,
responses, the alerts and deliveries they cause, and a one-time feedback link."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import Table, func, select
from sqlmodel import SQLModel

import services
from shared import tokens
from shared.auth import ROLES, mint_token
from shared.db import all_sites
from shared.host import Host
from shared.settings import Settings
from tests.support.receiver import WebhookReceiver
from tests.support.waiting import eventually

SITES = ("site-a", "site-b")
SERVICES = ("intake", "feedback", "analytics", "notify")
EVERY_DAY = [{"day": d, "start_minute": 8 * 60, "end_minute": 20 * 60} for d in range(7)]
HIGH_SRS = {"relationship": 9.5, "goals": 9.4, "approach": 9.6, "overall": 9.5}
LOW_SRS = {"relationship": 4.0, "goals": 4.1, "approach": 4.5, "overall": 4.2}
PHQ9_RISK = {"1": 2, "2": 2, "3": 1, "4": 2, "5": 1, "6": 2, "7": 1, "8": 0, "9": 1}


def therapist_body(therapist_id: str, site: str) -> dict[str, Any]:
    return {
        "id": therapist_id,
        "sites": [site],
        "languages": ["en"],
        "capacity": 20,
        "gender": "woman",
        "modalities": ["cbt"],
        "scopes": ["adults"],
        "domains": ["depression"],
        "availability": EVERY_DAY,
        "years_experience": 5,
    }


def intake_body(site: str, reference: str) -> dict[str, Any]:
    return {
        "site_id": site,
        "client_reference": reference,
        "domains": [{"code": "depression", "severity": "moderate"}],
        "languages": ["en"],
    }


@dataclass
class Site:
    """One site's resources (ids) and the values that must never show up at another site."""

    id: str
    therapist: str  # treats the episode
    other_therapist: str  # works at the site, does not treat it
    webhook_id: str = ""
    webhook_url: str = ""
    intake_id: str = ""
    match_id: str = ""  # confirmed
    open_match_id: str = ""  # still proposed
    open_intake_id: str = ""
    episode_id: str = ""  # confirmed from match_id, with responses, alerts, deliveries
    direct_episode_id: str = ""  # opened directly
    client: str = ""  # the episode's client pseudonym
    client_reference: str = ""
    erasable_reference: str = ""  # a client of its own, whom the erasure route may erase
    contact_email: str = ""
    delivery_id: str = ""
    risk_alert_id: str = ""  # the episode's risk alert (PHQ-9 item 9), open until acknowledged
    feedback_link: str = ""
    response_id: str = ""  # the episode's session-1 SRS
    goal_id: str = ""  # one of the episode's goals (the client's own words)

    def secrets(self) -> list[str]:
        """What a response to another site's staff must never contain."""
        return [self.client, self.client_reference, self.webhook_url, self.contact_email]


@dataclass
class World:
    host: Host
    http: httpx.AsyncClient
    settings: Settings
    receiver: WebhookReceiver
    app: FastAPI
    sites: dict[str, Site] = field(default_factory=dict)

    def token(self, role: str, site: str, sub: str | None = None) -> str:
        return mint_token(self.settings, sub or f"{role}-{site}", role, [site])

    def auth(self, role: str, site: str, sub: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, site, sub)}"}

    def as_treating_therapist(self, site: str) -> dict[str, str]:
        return self.auth("therapist", site, self.sites[site].therapist)

    def auth_for(self, role: str, site: str) -> dict[str, str]:
        """A member of staff in ``role`` at ``site``; a therapist is the one treating."""
        return self.as_treating_therapist(site) if role == "therapist" else self.auth(role, site)

    async def audit_count(self, service: str) -> int:
        runtime = self.host.runtimes[service]
        table: Table = SQLModel.metadata.tables[f"{service}_audit"]
        # The whole trail, whatever site scope the last request left in this task.
        with all_sites():
            async with runtime.sessionmaker() as session:
                return int(
                    (await session.execute(select(func.count()).select_from(table))).scalar_one()
                )

    async def audit_counts(self) -> dict[str, int]:
        return {s: await self.audit_count(s) for s in SERVICES}


async def _ok(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in (statuses or (200, 201)), (
        response.request.url,
        response.text,
    )
    body: Any = response.json() if response.content else {}
    return body if isinstance(body, dict) else {"items": body}


async def _populate(world: World, site_id: str) -> Site:
    http, auth = world.http, world.auth
    tag = site_id.split("-")[-1]
    site = Site(site_id, therapist=f"th-{tag}-1", other_therapist=f"th-{tag}-2")
    for therapist in (site.therapist, site.other_therapist):
        await _ok(
            await http.post(
                "/intake/therapists",
                json=therapist_body(therapist, site_id),
                headers=auth("site_admin", site_id),
            )
        )
    site.webhook_url = world.receiver.url(site_id)
    hook = await _ok(
        await http.post(
            "/notify/webhooks",
            json={"site_id": site_id, "url": site.webhook_url},
            headers=auth("site_admin", site_id),
        )
    )
    site.webhook_id = hook["id"]
    world.receiver.secrets[site_id] = hook["secret"]
    site.contact_email = f"dr.{tag}@clinic-{tag}.test"
    await _ok(
        await http.put(
            f"/notify/contacts/{site_id}/therapist/{site.therapist}",
            json={"email": site.contact_email},
            headers=auth("site_admin", site_id),
        )
    )

    coordinator = auth("intake_coordinator", site_id)
    site.client_reference = f"MRN-{tag.upper()}-{uuid.uuid4().hex[:8]}"
    submitted = await _ok(
        await http.post(
            "/intake/intakes", json=intake_body(site_id, site.client_reference), headers=coordinator
        )
    )
    site.intake_id, site.match_id = submitted["intake_id"], submitted["match"]["match_id"]
    episode = await _ok(
        await http.post(
            f"/intake/matches/{site.match_id}/confirm",
            json={"therapist_id": site.therapist},
            headers=coordinator,
        )
    )
    site.episode_id, site.client = episode["episode_id"], episode["client"]
    waiting = await _ok(
        await http.post(
            "/intake/intakes",
            json=intake_body(site_id, f"MRN-{tag.upper()}-{uuid.uuid4().hex[:8]}"),
            headers=coordinator,
        )
    )
    site.open_intake_id, site.open_match_id = waiting["intake_id"], waiting["match"]["match_id"]
    direct = await _ok(
        await http.post(
            "/intake/episodes",
            json={
                "site_id": site_id,
                "therapist_id": site.therapist,
                "client_reference": f"MRN-{tag.upper()}-{uuid.uuid4().hex[:8]}",
            },
            headers=coordinator,
        )
    )
    site.direct_episode_id = direct["episode_id"]
    site.erasable_reference = f"MRN-{tag.upper()}-{uuid.uuid4().hex[:8]}"
    await _ok(
        await http.post(
            "/intake/episodes",
            json={
                "site_id": site_id,
                "therapist_id": site.therapist,
                "client_reference": site.erasable_reference,
            },
            headers=coordinator,
        )
    )
    await _ok(
        await http.put(
            f"/notify/client-contacts/{site_id}/{site.client}",
            json={"channel": "email", "consent": True, "email": f"client@{tag}.test"},
            headers=coordinator,
        )
    )
    site.feedback_link = tokens.mint(
        world.settings.encryption_key.get_secret_value(),
        episode_id=site.episode_id,
        session_number=3,
        respondent=site.client,
        role="client",
        instruments=("srs",),
        ttl_seconds=3600,
    )
    return site


async def _record_feedback(world: World, site: Site) -> None:
    therapist = world.as_treating_therapist(site.id)

    async def feedback_knows_episode() -> bool:
        got = await world.http.get(
            f"/feedback/episodes/{site.episode_id}/responses", headers=therapist
        )
        return got.status_code == 200

    await eventually(feedback_knows_episode, what=f"feedback to learn {site.id}'s episode")
    for number, instrument, items in [
        (1, "srs", HIGH_SRS),
        (2, "srs", LOW_SRS),
        (2, "phq-9", PHQ9_RISK),
    ]:
        recorded = await _ok(
            await world.http.post(
                "/feedback/responses",
                json={
                    "episode_id": site.episode_id,
                    "session_number": number,
                    "respondent_role": "client",
                    "instrument": instrument,
                    "items": items,
                },
                headers=therapist,
            )
        )
        site.response_id = site.response_id or recorded["response_id"]
    goal = await _ok(
        await world.http.post(
            f"/feedback/episodes/{site.episode_id}/goals",
            json={"text": f"a goal of {site.id}'s client"},
            headers=therapist,
        )
    )
    site.goal_id = goal["goal_id"]


async def _await_effects(world: World, site: Site) -> None:
    async def alerts_and_deliveries() -> bool:
        alerts = await world.http.get(
            "/analytics/alerts",
            params={"site_id": site.id},
            headers=world.auth("clinical_lead", site.id),
        )
        deliveries = await world.http.get(
            "/notify/deliveries",
            params={"site_id": site.id},
            headers=world.auth("site_admin", site.id),
        )
        if alerts.status_code != 200 or deliveries.status_code != 200:
            return False
        risk = [a for a in alerts.json() if a["kind"] == "risk"]
        if not risk or not deliveries.json():
            return False
        site.delivery_id = deliveries.json()[0]["id"]
        site.risk_alert_id = risk[0]["alert_id"]
        return True

    await eventually(alerts_and_deliveries, timeout=60, what=f"{site.id}'s alerts and deliveries")


@asynccontextmanager
async def build_world(settings: Settings, embedded: bool = False) -> AsyncIterator[World]:
    receiver = WebhookReceiver()
    await receiver.start()
    host = Host(settings, services.definitions(), embedded=embedded)
    await host.start()
    try:
        app = host.http_app()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rapport") as http:
            world = World(host, http, settings, receiver, app)
            for site_id in SITES:
                world.sites[site_id] = await _populate(world, site_id)
            for site in world.sites.values():
                await _record_feedback(world, site)
            for site in world.sites.values():
                await _await_effects(world, site)
            yield world
    finally:
        await host.stop()
        await receiver.stop()


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


ALL_ROLES = tuple(sorted(ROLES))
