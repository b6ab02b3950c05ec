"""Consent and the limits of confidentiality on real PostgreSQL (issue 19): what a client agreed
to is on record (scope, time, notice version, who recorded it) and withdrawable; a withdrawal
takes effect at once (a link of that client is refused, nothing stored); the one-time link page
shows the site's confidentiality notice (who is told of a risk answer, how soon), a risk item
is answered only with the version shown, and each response records that version."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlmodel import select

import services
from services.feedback.models import FeedbackEpisode, FeedbackResponse
from shared.db import all_sites
from shared.host import Host
from shared.settings import Settings
from shared.tokens import mint
from tests.support.feedback import FeedbackDesk
from tests.support.outbox import outbox_rows

SRS = {"relationship": 9.2, "goals": 9.2, "approach": 9.2, "overall": 9.4}
PHQ9 = {"1": 1, "2": 2, "3": 3, "4": 3, "5": 0, "6": 2, "7": 3, "8": 3, "9": 1}
NOTICE = {
    "text": "Your therapist reads your answers. If you tell us you may be at risk, we act.",
    "risk_contacts": ["therapist", "clinical_lead"],
    "risk_within_minutes": 30,
}


@pytest.fixture
async def desk(real_settings: Settings) -> AsyncIterator[FeedbackDesk]:
    host = Host(real_settings, services.definitions(["intake", "feedback"]))
    await host.start()
    try:
        transport = httpx.ASGITransport(app=host.http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as http:
            yield FeedbackDesk(host, http, real_settings)
    finally:
        await host.stop()


async def members_of(desk: FeedbackDesk, episode_id: str) -> FeedbackEpisode:
    with all_sites():
        async with desk.host.runtimes["feedback"].sessionmaker() as session:
            episode = await session.get(FeedbackEpisode, episode_id)
    assert episode is not None
    return episode


def link(
    desk: FeedbackDesk,
    episode: FeedbackEpisode,
    session: int,
    role: str = "client",
    instruments: tuple[str, ...] = ("srs",),
) -> str:
    respondent = next(m["respondent"] for m in episode.members if m["role"] == role)
    return mint(
        desk.settings.encryption_key.get_secret_value(),
        episode_id=episode.episode_id,
        session_number=session,
        respondent=respondent,
        role=role,
        instruments=instruments,
        ttl_seconds=3600,
    )


async def responses(desk: FeedbackDesk, episode_id: str) -> list[FeedbackResponse]:
    with all_sites():
        async with desk.host.runtimes["feedback"].sessionmaker() as session:
            found = await session.exec(
                select(FeedbackResponse).where(FeedbackResponse.episode_id == episode_id)
            )
            return list(found.all())


async def consent(
    desk: FeedbackDesk, episode_id: str, scope: str, granted: bool, **more: Any
) -> httpx.Response:
    return await desk.http.post(
        f"/feedback/episodes/{episode_id}/consents",
        headers=desk.auth("therapist"),
        json={"scope": scope, "granted": granted, **more},
    )


def answer(instrument: str, items: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"responses": [{"instrument": instrument, "items": items}], **more}


async def test_the_link_page_shows_the_sites_notice_and_a_risk_answer_records_its_version(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    episode = await members_of(desk, episode_id)
    token = link(desk, episode, 1, instruments=("phq-9",))
    default = (await desk.http.get(f"/feedback/r/{token}")).json()["notice"]
    assert default["version"] == 0 and default["risk_contacts"]

    written = await desk.http.put(
        "/feedback/sites/site-a/notice", headers=desk.auth("site_admin", "adm-1"), json=NOTICE
    )
    assert written.status_code == 200, written.text
    assert written.json()["version"] == 1
    shown = (await desk.http.get(f"/feedback/r/{token}")).json()["notice"]
    assert shown == {**NOTICE, "version": 1}

    unseen = await desk.http.post(f"/feedback/r/{token}", json=answer("phq-9", PHQ9))
    assert unseen.status_code == 422, unseen.text
    assert unseen.json()["errors"] == [
        {"field": "notice_version", "rule": "required_before_risk_items"}
    ]
    unknown = await desk.http.post(
        f"/feedback/r/{token}", json=answer("phq-9", PHQ9, notice_version=7)
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0] == {"field": "notice_version", "rule": "unknown_version"}
    assert await responses(desk, episode_id) == []

    given = await desk.http.post(
        f"/feedback/r/{token}", json=answer("phq-9", PHQ9, notice_version=1)
    )
    assert given.status_code == 201, given.text
    assert [r.notice_version for r in await responses(desk, episode_id)] == [1]


async def test_only_a_sites_admin_writes_its_notice_and_bad_input_names_the_field(
    desk: FeedbackDesk,
) -> None:
    as_therapist = await desk.http.put(
        "/feedback/sites/site-a/notice", headers=desk.auth("therapist"), json=NOTICE
    )
    other_site = await desk.http.put(
        "/feedback/sites/site-b/notice", headers=desk.auth("site_admin", "adm-1"), json=NOTICE
    )
    assert (as_therapist.status_code, other_site.status_code) == (403, 403)
    bad = await desk.http.put(
        "/feedback/sites/site-a/notice",
        headers=desk.auth("site_admin", "adm-1"),
        json={**NOTICE, "risk_contacts": ["the_press"], "risk_within_minutes": 0},
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert {"risk_contacts", "risk_within_minutes"} <= {
        e["field"].split(".")[0] for e in bad.json()["errors"]
    }
    read = await desk.http.get("/feedback/sites/site-a/notice", headers=desk.auth("therapist"))
    assert read.json()["version"] == 0  # nothing was stored


async def test_a_withdrawal_is_on_record_and_refuses_the_clients_links_at_once(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    episode = await members_of(desk, episode_id)
    agreed = await consent(desk, episode_id, "feedback_invitations", True)
    assert agreed.status_code == 201, agreed.text
    withdrawn = await consent(desk, episode_id, "feedback_invitations", False, version=0)
    assert withdrawn.status_code == 201

    token = link(desk, episode, 1)
    form = await desk.http.get(f"/feedback/r/{token}")
    refused = await desk.http.post(f"/feedback/r/{token}", json=answer("srs", SRS))
    assert (form.status_code, refused.status_code) == (403, 403)
    assert refused.json()["errors"] == [{"field": "token", "rule": "consent_withdrawn"}]
    assert await responses(desk, episode_id) == []

    history = await desk.http.get(
        f"/feedback/episodes/{episode_id}/consents", headers=desk.auth("therapist")
    )
    assert [(c["scope"], c["granted"], c["version"], c["recorded_by"]) for c in history.json()] == [
        ("feedback_invitations", True, 0, "th-1"),
        ("feedback_invitations", False, 0, "th-1"),
    ]
    changed = [r.value for r in await outbox_rows(desk.host, "feedback")]
    changed = [v for v in changed if v.get("scope")]
    assert [(v["scope"], v["granted"], v["client"]) for v in changed] == [
        ("feedback_invitations", True, episode.client),
        ("feedback_invitations", False, episode.client),
    ]
    assert set(changed[0]) == {
        "consent_id",
        "site_id",
        "client",
        "scope",
        "granted",
        "version",
        "recorded_at",
    }

    assert (await consent(desk, episode_id, "feedback_invitations", True)).status_code == 201
    again = await desk.http.post(f"/feedback/r/{token}", json=answer("srs", SRS))
    assert again.status_code == 201, again.text


async def test_withdrawing_contact_with_significant_others_refuses_only_their_links(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode(members=[{"reference": "partner-1", "role": "partner"}])
    episode = await members_of(desk, episode_id)
    assert (await consent(desk, episode_id, "significant_others", False)).status_code == 201

    partner = await desk.http.post(
        f"/feedback/r/{link(desk, episode, 2, 'partner')}", json=answer("srs", SRS)
    )
    client = await desk.http.post(f"/feedback/r/{link(desk, episode, 2)}", json=answer("srs", SRS))
    assert (partner.status_code, client.status_code) == (403, 201)
    assert [r.respondent_role for r in await responses(desk, episode_id)] == ["client"]


async def test_consent_routes_refuse_bad_input_and_other_peoples_episodes(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    never_shown = await consent(desk, episode_id, "aggregates", True, version=3)
    assert never_shown.status_code == 422
    assert never_shown.json()["errors"] == [{"field": "version", "rule": "unknown_version"}]
    unknown = await consent(desk, episode_id, "marketing", True)
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"].startswith("scope")
    not_theirs = await desk.http.post(
        f"/feedback/episodes/{episode_id}/consents",
        headers=desk.auth("therapist", "th-other"),
        json={"scope": "aggregates", "granted": False},
    )
    assert not_theirs.status_code == 404
    other_site = await desk.http.get(
        f"/feedback/episodes/{episode_id}/consents",
        headers=desk.auth("clinical_lead", "lead-b", ("site-b",)),
    )
    assert other_site.status_code == 404
    listed = await desk.http.get(
        f"/feedback/episodes/{episode_id}/consents", headers=desk.auth("therapist")
    )
    assert listed.json() == []
    assert "marketing" not in json.dumps(
        [r.value for r in await outbox_rows(desk.host, "feedback")]
    )
