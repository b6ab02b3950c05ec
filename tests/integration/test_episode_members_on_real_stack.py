"""Partners and family members added to or removed from an open episode at any time (issue 19),
on the real stack (intake → ``episode.members.changed`` → feedback): the reference given (a
name, often) becomes an episode-scoped pseudonym and is neither stored nor published; feedback
answers a new member's link, and refuses it once they are removed. Bad input is refused naming
the field and rule, and nothing changes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlmodel import select

import services
from services.feedback.models import FeedbackEpisode
from services.intake.models import IntakeEpisode
from shared.db import all_sites
from shared.host import Host
from shared.settings import Settings
from shared.tokens import mint
from tests.support.feedback import FeedbackDesk
from tests.support.outbox import outbox_rows
from tests.support.waiting import eventually

PARTNER = "Ottoline Membercanary"
SRS = {"relationship": 9.2, "goals": 9.2, "approach": 9.2, "overall": 9.4}


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


async def feedback_members(desk: FeedbackDesk, episode_id: str) -> list[dict[str, str]]:
    with all_sites():
        async with desk.host.runtimes["feedback"].sessionmaker() as session:
            episode = await session.get(FeedbackEpisode, episode_id, populate_existing=True)
    assert episode is not None
    return episode.members


def partner_link(desk: FeedbackDesk, episode_id: str, respondent: str, session: int) -> str:
    return mint(
        desk.settings.encryption_key.get_secret_value(),
        episode_id=episode_id,
        session_number=session,
        respondent=respondent,
        role="partner",
        instruments=("srs",),
        ttl_seconds=3600,
    )


async def add(desk: FeedbackDesk, episode_id: str, **body: str) -> httpx.Response:
    return await desk.http.post(
        f"/intake/episodes/{episode_id}/members",
        headers=desk.auth("intake_coordinator"),
        json=body,
    )


async def test_a_partner_added_mid_episode_answers_and_no_longer_once_removed(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode()
    added = await add(desk, episode_id, reference=PARTNER, role="partner")
    assert added.status_code == 201, added.text
    partner = added.json()["respondent"]
    assert added.json() == {"respondent": partner, "role": "partner"}

    async def learnt() -> bool:
        return any(m["respondent"] == partner for m in await feedback_members(desk, episode_id))

    await eventually(learnt, timeout=30, what="feedback to learn the partner")
    answered = await desk.http.post(
        f"/feedback/r/{partner_link(desk, episode_id, partner, 2)}",
        json={"responses": [{"instrument": "srs", "items": SRS}]},
    )
    assert answered.status_code == 201, answered.text

    removed = await desk.http.delete(
        f"/intake/episodes/{episode_id}/members/{partner}", headers=desk.auth("therapist")
    )
    assert removed.status_code == 204, removed.text

    async def forgotten() -> bool:
        return not await learnt()

    await eventually(forgotten, timeout=30, what="feedback to learn the partner left")
    refused = await desk.http.post(
        f"/feedback/r/{partner_link(desk, episode_id, partner, 3)}",
        json={"responses": [{"instrument": "srs", "items": SRS}]},
    )
    assert refused.status_code == 403
    assert refused.json()["errors"] == [{"field": "token", "rule": "no_longer_a_member"}]

    changes = [
        r.value
        for r in await outbox_rows(desk.host, "intake")
        if r.ce_type.endswith("episode.members.changed.v1")
    ]
    assert [(c["added"], c["removed"]) for c in changes] == [([partner], []), ([], [partner])]
    assert "membercanary" not in json.dumps(changes).lower()
    with all_sites():
        async with desk.host.runtimes["intake"].sessionmaker() as session:
            rows = (await session.exec(select(IntakeEpisode))).all()
    assert "membercanary" not in json.dumps([r.members for r in rows]).lower()


async def test_bad_member_changes_are_refused_naming_the_rule_and_change_nothing(
    desk: FeedbackDesk,
) -> None:
    episode_id = await desk.open_episode(members=[{"reference": "p-1", "role": "partner"}])
    with all_sites():
        async with desk.host.runtimes["intake"].sessionmaker() as session:
            row = await session.get(IntakeEpisode, episode_id)
    assert row is not None
    client, partner = row.members[0]["respondent"], row.members[1]["respondent"]

    again = await add(desk, episode_id, reference="p-1", role="partner")
    assert again.status_code == 409
    assert again.json()["errors"] == [{"field": "reference", "rule": "already_a_member"}]
    bad_role = await add(desk, episode_id, reference="x", role="client")
    assert bad_role.status_code == 422
    assert bad_role.headers["content-type"].startswith("application/problem+json")
    assert bad_role.json()["errors"][0]["field"].startswith("role")
    other_site = await desk.http.post(
        f"/intake/episodes/{episode_id}/members",
        headers=desk.auth("intake_coordinator", sites=("site-b",)),
        json={"reference": "x", "role": "family"},
    )
    assert other_site.status_code == 404
    the_client = await desk.http.delete(
        f"/intake/episodes/{episode_id}/members/{client}", headers=desk.auth("clinical_lead")
    )
    assert the_client.status_code == 422
    assert the_client.json()["errors"] == [{"field": "respondent", "rule": "client_not_removable"}]
    stranger = await desk.http.delete(
        f"/intake/episodes/{episode_id}/members/p1_{'0' * 32}", headers=desk.auth("clinical_lead")
    )
    assert stranger.status_code == 204  # not a member: nothing changes (and no event)

    closed = await desk.http.post(
        f"/intake/episodes/{episode_id}/close",
        headers=desk.auth("clinical_lead"),
        json={"reason": "completed"},
    )
    assert closed.status_code == 200, closed.text
    late = await add(desk, episode_id, reference="p-2", role="family")
    assert late.status_code == 409
    assert late.json()["errors"] == [{"field": "episode_id", "rule": "episode_closed"}]

    with all_sites():
        async with desk.host.runtimes["intake"].sessionmaker() as session:
            row = await session.get(IntakeEpisode, episode_id, populate_existing=True)
    assert row is not None
    assert [m["respondent"] for m in row.members] == [client, partner]
    assert not [r for r in await outbox_rows(desk.host, "intake") if "members.changed" in r.ce_type]
