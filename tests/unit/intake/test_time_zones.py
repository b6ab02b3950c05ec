"""Matching in site-local time: availability and the earliest session on the client's site's
clock, a telehealth therapist of a site in another zone shifted onto it (Toronto and Berlin)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from services.intake.domain.matching import WeeklySlot
from services.intake.domain.matching.time_zones import (
    availability_shifts,
    home_zone,
    local_now,
    shifted_slots,
)
from services.intake.domain.matching.types import Therapist
from shared.settings import Settings
from shared.site_time import SiteTimeZones
from tests.unit.intake.desk import IntakeDesk, intake_desk, therapist_body

BERLIN = ZoneInfo("Europe/Berlin")
TORONTO = ZoneInfo("America/Toronto")
ZONES = SiteTimeZones.parse({"site-a": "Europe/Berlin", "site-t": "America/Toronto"})
WINTER = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # both on standard time: 6 hours apart
MARCH = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)  # Toronto already on summer time: 5 hours


def therapist(sites: set[str], *slots: WeeklySlot) -> Therapist:
    return Therapist("th", frozenset(sites), frozenset({"en"}), 5, availability=slots)


def test_slots_move_on_the_clock_split_at_midnight_and_wrap_round_the_week() -> None:
    monday_9_to_17 = WeeklySlot(0, 9 * 60, 17 * 60)
    assert shifted_slots([monday_9_to_17], 6 * 60) == (WeeklySlot(0, 15 * 60, 23 * 60),)
    assert shifted_slots([monday_9_to_17], 8 * 60) == (
        WeeklySlot(0, 17 * 60, 24 * 60),
        WeeklySlot(1, 0, 60),
    )
    assert shifted_slots([WeeklySlot(6, 22 * 60, 24 * 60)], 6 * 60) == (
        WeeklySlot(0, 4 * 60, 6 * 60),
    )
    assert shifted_slots([WeeklySlot(0, 60, 3 * 60)], -6 * 60) == (WeeklySlot(6, 19 * 60, 21 * 60),)
    assert shifted_slots([monday_9_to_17], 0) == (monday_9_to_17,)


def test_a_therapist_at_the_clients_site_is_read_in_that_sites_time() -> None:
    both = therapist({"site-a", "site-t"})
    assert home_zone(both, "site-a", ZONES) == BERLIN
    assert home_zone(both, "site-t", ZONES) == TORONTO
    assert availability_shifts([both], "site-a", ZONES, WINTER) == (0,)


def test_a_toronto_therapist_seen_from_berlin_is_six_hours_later_in_winter_five_in_march() -> None:
    toronto = therapist({"site-t"})
    assert home_zone(toronto, "site-a", ZONES) == TORONTO
    assert availability_shifts([toronto], "site-a", ZONES, WINTER) == (6 * 60,)
    assert availability_shifts([toronto], "site-a", ZONES, MARCH) == (5 * 60,)
    assert availability_shifts([therapist({"site-a"})], "site-t", ZONES, WINTER) == (-6 * 60,)


def test_now_is_the_sites_clock() -> None:
    assert local_now(WINTER, BERLIN).hour == 13
    assert local_now(WINTER, TORONTO).hour == 7


@pytest.fixture
async def desk(embedded_settings: Settings) -> AsyncIterator[IntakeDesk]:
    settings = embedded_settings.model_copy(
        update={"site_time_zones": '{"site-a": "Europe/Berlin", "site-t": "America/Toronto"}'}
    )
    async with intake_desk(settings) as opened:
        yield opened


MONDAY_9_TO_10 = [{"day": 0, "start_minute": 9 * 60, "end_minute": 10 * 60}]


async def test_the_earliest_session_is_at_the_sites_own_nine_oclock(desk: IntakeDesk) -> None:
    await desk.register(therapist_body("th-1", availability=MONDAY_9_TO_10))
    [option] = (await desk.submit())["match"]["options"]
    earliest = datetime.fromisoformat(option["earliest_session"]).astimezone(BERLIN)
    assert (earliest.weekday(), earliest.hour, earliest.minute) == (0, 9, 0)
    assert earliest > datetime.now(UTC)


async def test_a_toronto_telehealth_morning_meets_a_berlin_afternoon_window(
    desk: IntakeDesk,
) -> None:
    registered = await desk.http.post(
        "/intake/therapists",
        headers=desk.auth("site_admin", sites=("site-t",)),
        json=therapist_body("th-t", sites=["site-t"], telehealth=True, availability=MONDAY_9_TO_10),
    )
    assert registered.status_code == 201, registered.text
    submitted = await desk.submit(
        preferences={
            "format": {"codes": ["telehealth"], "strength": "required"},
            # Monday 14:00–17:00 in Berlin: 9:00 in Toronto is 15:00 (or 14:00 in March).
            "times": {
                "windows": [{"day": 0, "start_minute": 14 * 60, "end_minute": 17 * 60}],
                "strength": "required",
            },
        }
    )
    proposal = submitted["match"]
    assert proposal["status"] == "matched", proposal["summary"]
    [option] = proposal["options"]
    assert option["therapist_id"] == "th-t"
    earliest = datetime.fromisoformat(option["earliest_session"])
    in_toronto = earliest.astimezone(TORONTO)
    assert (in_toronto.weekday(), in_toronto.hour, in_toronto.minute) == (0, 9, 0)
    assert 14 <= earliest.astimezone(BERLIN).hour < 17
