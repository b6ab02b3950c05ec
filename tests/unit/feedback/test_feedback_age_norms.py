"""Feedback's clinical range is the client's own (issue 18, norms by age): the episode learns the
client's age group from ``match.confirmed`` and ``feedback.recorded``'s clinical-range flag and
clinically significant change use ``Clinical.cutoff_for(age_group)`` (ORS: adolescent 28, adult
25), at and around the threshold."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from services.feedback.domain import change_from_first, in_concern_or_clinical_range, score
from shared.instruments import SHIPPED, load_instruments
from shared.settings import Settings
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.support.outbox import outbox_rows

ORS = load_instruments(SHIPPED)["ors"]


def ors(*items: str) -> dict[str, object]:
    return dict(zip(ORS.items or [], [Decimal(i) for i in items], strict=True))


@pytest.mark.parametrize(
    ("age_group", "total", "clinical"),
    [
        ("adolescent", "27.9", True),
        ("adolescent", "28.0", False),
        ("child", "31.9", True),
        ("child", "32.0", False),
        ("adult", "24.9", True),
        ("adult", "25.0", False),
        (None, "24.9", True),
        (None, "25.0", False),
        ("older_adult", "25.0", False),  # no cutoff of its own: the general one
    ],
)
def test_the_clinical_range_is_the_age_groups_own(
    age_group: str | None, total: str, clinical: bool
) -> None:
    assert in_concern_or_clinical_range(ORS, Decimal(total), {}, age_group) is clinical


def test_scoring_flags_an_adolescents_279_and_not_28() -> None:
    assert score(ORS, ors("7", "7", "7", "6.9"), "adolescent").in_concern_or_clinical_range
    assert not score(ORS, ors("7", "7", "7", "7"), "adolescent").in_concern_or_clinical_range
    assert not score(ORS, ors("6.2", "6.3", "6.2", "6.3"), "adult").in_concern_or_clinical_range


def test_clinically_significant_change_needs_leaving_the_age_groups_range() -> None:
    # 20 -> 27: reliable improvement (>= 5); out of the adult range (25), not the adolescent's (28)
    adult = change_from_first(ORS, Decimal(20), Decimal(27), "adult")
    adolescent = change_from_first(ORS, Decimal(20), Decimal(27), "adolescent")
    assert adult.reliable_change == adolescent.reliable_change == "improved"
    assert adult.clinically_significant is True
    assert adolescent.clinically_significant is False
    assert change_from_first(ORS, Decimal(20), Decimal(28), "adolescent").clinically_significant


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[FeedbackDesk]:
    async with feedback_desk(embedded_settings) as opened:
        yield opened


async def record_ors(
    desk: FeedbackDesk, episode_id: str, session_number: int, *items: float
) -> dict[str, Any]:
    answered = await desk.http.post(
        "/feedback/responses",
        headers=desk.auth("therapist"),
        json={
            "episode_id": episode_id,
            "session_number": session_number,
            "respondent_role": "client",
            "instrument": "ors",
            "items": dict(zip(ORS.items or [], items, strict=True)),
        },
    )
    assert answered.status_code == 201, answered.text
    body: dict[str, Any] = answered.json()
    return body


async def recorded_events(desk: FeedbackDesk) -> dict[str, dict[str, Any]]:
    rows = await outbox_rows(desk.host, "feedback")
    return {
        r.value["response_id"]: r.value
        for r in rows
        if r.ce_type == "org.rapport.feedback.recorded.v1"
    }


async def test_feedback_recorded_uses_the_clients_own_cutoff(desk: FeedbackDesk) -> None:
    adolescent = await desk.open_episode(age_group="adolescent")
    adult = await desk.open_episode(age_group="adult")
    first = await record_ors(desk, adolescent, 1, 5, 5, 5, 5)  # 20
    just_in = await record_ors(desk, adolescent, 2, 7, 7, 7, 6.9)  # 27.9
    out = await record_ors(desk, adolescent, 3, 7, 7, 7, 7)  # 28.0
    adult_out = await record_ors(desk, adult, 1, 6.2, 6.3, 6.2, 6.3)  # 25.0
    assert first["in_concern_or_clinical_range"] is True
    assert just_in["in_concern_or_clinical_range"] is True
    assert just_in["reliable_change"] == "improved"
    assert just_in["clinically_significant_change"] is False  # 27.9: still in the range at 15
    assert out["in_concern_or_clinical_range"] is False
    assert out["clinically_significant_change"] is True
    assert adult_out["in_concern_or_clinical_range"] is False
    events = await recorded_events(desk)
    for answer in (just_in, out, adult_out):
        event = events[answer["response_id"]]
        assert event["in_concern_or_clinical_range"] is answer["in_concern_or_clinical_range"]
        assert event["clinically_significant_change"] == answer["clinically_significant_change"]
