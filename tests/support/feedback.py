"""A feedback service (with intake to open episodes) on the embedded stack, driven over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

import services
from shared.auth import mint_token
from shared.host import Host
from shared.settings import Settings
from tests.support.waiting import eventually


@dataclass
class FeedbackDesk:
    host: Host
    http: httpx.AsyncClient
    settings: Settings

    def auth(
        self, role: str, sub: str = "th-1", sites: tuple[str, ...] = ("site-a",)
    ) -> dict[str, str]:
        return {"Authorization": "Bearer " + mint_token(self.settings, sub, role, list(sites))}

    async def open_episode(
        self,
        site: str = "site-a",
        therapist: str = "th-1",
        members: list[dict[str, str]] | None = None,
        domains: tuple[str, ...] = ("depression",),
        age_group: str | None = None,
    ) -> str:
        opened = await self.http.post(
            "/intake/episodes",
            headers=self.auth("intake_coordinator", sites=(site,)),
            json={
                "site_id": site,
                "therapist_id": therapist,
                "client_reference": "ref-1",
                "members": members or [],
                "domains": list(domains),
                **({} if age_group is None else {"age_group": age_group}),
            },
        )
        assert opened.status_code == 201, opened.text
        episode_id: str = opened.json()["episode_id"]

        async def known() -> bool:
            got = await self.http.get(
                f"/feedback/episodes/{episode_id}/responses",
                headers=self.auth("clinical_lead", sites=(site,)),
            )
            return got.status_code == 200

        await eventually(known, what="feedback to learn the episode")
        return episode_id


@asynccontextmanager
async def feedback_desk(
    settings: Settings,
    names: tuple[str, ...] = ("intake", "feedback"),
    embedded: bool = True,
) -> AsyncIterator[FeedbackDesk]:
    """The services ``names`` started in this process (on the in-process broker, or with
    ``embedded=False`` on the real stack the settings name) and an HTTP client to them."""
    host = Host(settings, services.definitions(list(names)), embedded=embedded)
    await host.start()
    try:
        transport = httpx.ASGITransport(app=host.http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as http:
            yield FeedbackDesk(host, http, settings)
    finally:
        await host.stop()
