"""A client's consent to the network's aggregates (issue 19), through the real stack (feedback →
``consent.changed`` → analytics): once withdrawn, the client's scores no longer count in the
trajectories fitted and their episode, when it closes, not in the therapist's effectiveness;
what counted before the withdrawal stays, nothing is erased, and another client's episode
counts as before. Their own episode still has its timeline and rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from sqlmodel import select

from services.analytics.models import AnalyticsConsent, AnalyticsScore
from services.analytics.trajectory_refit import add_closed_scores
from shared.db import all_sites
from shared.settings import Settings
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.support.waiting import eventually

ORS = {"individually": 4.0, "interpersonally": 5.0, "socially": 5.0, "overall": 4.0}


@pytest.fixture
async def desk(real_settings: Settings) -> AsyncIterator[FeedbackDesk]:
    names = ("intake", "feedback", "analytics")
    async with feedback_desk(real_settings, names, embedded=False) as opened:
        yield opened


async def open_for(desk: FeedbackDesk, reference: str) -> str:
    opened = await desk.http.post(
        "/intake/episodes",
        headers=desk.auth("intake_coordinator"),
        json={
            "site_id": "site-a",
            "therapist_id": "th-1",
            "client_reference": reference,
            "domains": ["depression"],
        },
    )
    assert opened.status_code == 201, opened.text
    episode_id: str = opened.json()["episode_id"]

    async def known() -> bool:
        got = await desk.http.get(
            f"/analytics/episodes/{episode_id}/timeline", headers=desk.auth("clinical_lead")
        )
        return (
            got.status_code == 200
            or (
                await desk.http.get(
                    f"/feedback/episodes/{episode_id}/responses", headers=desk.auth("clinical_lead")
                )
            ).status_code
            == 200
        )

    await eventually(known, timeout=30, what="the episode to be known")
    return episode_id


async def ors(desk: FeedbackDesk, episode_id: str, session: int) -> None:
    got = await desk.http.post(
        "/feedback/responses",
        headers=desk.auth("therapist"),
        json={
            "episode_id": episode_id,
            "session_number": session,
            "respondent_role": "client",
            "instrument": "ors",
            "items": ORS,
        },
    )
    assert got.status_code == 201, got.text


async def scores(desk: FeedbackDesk, episode_id: str) -> list[AnalyticsScore]:
    with all_sites():
        async with desk.host.runtimes["analytics"].sessionmaker() as session:
            found = await session.exec(
                select(AnalyticsScore)
                .where(AnalyticsScore.episode_id == episode_id)
                .order_by(AnalyticsScore.session_number)  # type: ignore[arg-type]
            )
            return list(found.all())


async def scored(desk: FeedbackDesk, episode_id: str, n: int) -> None:
    async def done() -> bool:
        return len(await scores(desk, episode_id)) == n

    await eventually(done, timeout=60, what=f"{n} scores in analytics")


class Fitted:
    """What the refit reads from the database (a stand-in for the trajectory fit)."""

    def __init__(self) -> None:
        self.episodes: set[str] = set()
        self.sessions: list[tuple[str, int]] = []

    def add(self, instrument: str, episode: str, respondent: str, session: int, total: Any) -> None:
        assert isinstance(total, Decimal)
        self.episodes.add(episode)
        self.sessions.append((episode, session))


async def test_a_withdrawal_keeps_the_clients_data_out_of_the_aggregates_from_then_on(
    desk: FeedbackDesk,
) -> None:
    withdrawn = await open_for(desk, "aggregates-withdrawn")
    counted = await open_for(desk, "aggregates-counted")
    await ors(desk, withdrawn, 1)
    await scored(desk, withdrawn, 1)
    refused = await desk.http.post(
        f"/feedback/episodes/{withdrawn}/consents",
        headers=desk.auth("therapist"),
        json={"scope": "aggregates", "granted": False},
    )
    assert refused.status_code == 201, refused.text

    async def known() -> bool:
        with all_sites():
            async with desk.host.runtimes["analytics"].sessionmaker() as session:
                rows = (await session.exec(select(AnalyticsConsent))).all()
        return [r.granted for r in rows] == [False]

    await eventually(known, timeout=60, what="analytics to learn the withdrawal")
    await ors(desk, withdrawn, 2)
    await ors(desk, counted, 1)
    await scored(desk, withdrawn, 2)
    await scored(desk, counted, 1)
    assert [s.in_aggregates for s in await scores(desk, withdrawn)] == [True, False]
    assert [s.in_aggregates for s in await scores(desk, counted)] == [True]
    timeline = await desk.http.get(
        f"/analytics/episodes/{withdrawn}/timeline", headers=desk.auth("clinical_lead")
    )
    assert len(timeline.json()["scores"]) == 2  # the episode's own view is whole

    for episode_id in (withdrawn, counted):
        closed = await desk.http.post(
            f"/intake/episodes/{episode_id}/close",
            headers=desk.auth("intake_coordinator"),
            json={"reason": "completed"},
        )
        assert closed.status_code == 200, closed.text

    async def estimated() -> bool:
        got = await desk.http.get(
            "/analytics/therapists/th-1/effectiveness",
            params={"site_id": "site-a"},
            headers=desk.auth("supervisor"),
        )
        return got.status_code == 200 and len(got.json()) == 1

    await eventually(estimated, timeout=60, what="the counted episode's estimate")

    async def closed_in_analytics() -> bool:
        got = await desk.http.get(
            f"/analytics/episodes/{withdrawn}/timeline", headers=desk.auth("clinical_lead")
        )
        return got.json()["phase"] == "closed"

    await eventually(closed_in_analytics, timeout=60, what="the withdrawn episode closed")
    (estimate,) = (
        await desk.http.get(
            "/analytics/therapists/th-1/effectiveness",
            params={"site_id": "site-a"},
            headers=desk.auth("supervisor"),
        )
    ).json()
    assert estimate["n"] == 1  # the episode of the client who withdrew is not counted

    fitted = Fitted()
    with all_sites():
        async with desk.host.runtimes["analytics"].sessionmaker() as session:
            await add_closed_scores(session, fitted, frozenset({"ors"}))  # type: ignore[arg-type]
    assert sorted(fitted.sessions) == sorted([(withdrawn, 1), (counted, 1)])
