"""Quiet hours (services/notify/domain.py: quiet_until, not_before): per person, in their own
time zone, including windows across midnight and daylight-saving changes. Urgent messages are
never held."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.notify.domain import QuietHours, not_before, quiet_until

NIGHT_UTC = QuietHours.parse("22:00", "07:00", "UTC")
LUNCH_UTC = QuietHours.parse("12:00", "13:00", "UTC")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# -- a window within one day ----------------------------------------------------------------


def test_just_before_a_same_day_window_is_not_quiet() -> None:
    assert quiet_until(at("2025-03-03T11:59:59+00:00"), LUNCH_UTC) is None


def test_the_start_of_a_same_day_window_is_quiet_until_its_end() -> None:
    assert quiet_until(at("2025-03-03T12:00:00+00:00"), LUNCH_UTC) == at(
        "2025-03-03T13:00:00+00:00"
    )


def test_the_end_of_a_same_day_window_is_no_longer_quiet() -> None:
    assert quiet_until(at("2025-03-03T13:00:00+00:00"), LUNCH_UTC) is None


# -- across midnight ------------------------------------------------------------------------


def test_late_evening_is_quiet_until_the_next_morning() -> None:
    assert quiet_until(at("2025-03-03T23:30:00+00:00"), NIGHT_UTC) == at(
        "2025-03-04T07:00:00+00:00"
    )


def test_exactly_the_start_is_quiet() -> None:
    assert quiet_until(at("2025-03-03T22:00:00+00:00"), NIGHT_UTC) == at(
        "2025-03-04T07:00:00+00:00"
    )


def test_after_midnight_is_quiet_until_the_same_morning() -> None:
    assert quiet_until(at("2025-03-04T00:10:00+00:00"), NIGHT_UTC) == at(
        "2025-03-04T07:00:00+00:00"
    )


def test_one_second_before_the_end_is_still_quiet() -> None:
    assert quiet_until(at("2025-03-04T06:59:59+00:00"), NIGHT_UTC) == at(
        "2025-03-04T07:00:00+00:00"
    )


def test_exactly_the_end_is_not_quiet() -> None:
    assert quiet_until(at("2025-03-04T07:00:00+00:00"), NIGHT_UTC) is None


def test_the_day_between_is_not_quiet() -> None:
    assert quiet_until(at("2025-03-04T15:00:00+00:00"), NIGHT_UTC) is None


# -- time zones -----------------------------------------------------------------------------


def test_quiet_hours_are_in_the_persons_time_zone() -> None:
    berlin = QuietHours.parse("22:00", "07:00", "Europe/Berlin")  # UTC+1 in winter

    # 21:30 UTC is 22:30 in Berlin: quiet until 07:00 Berlin = 06:00 UTC.
    assert quiet_until(at("2025-01-15T21:30:00+00:00"), berlin) == at("2025-01-16T06:00:00+00:00")
    # 06:30 UTC is 07:30 in Berlin: not quiet, though 06:30 UTC would be in UTC terms.
    assert quiet_until(at("2025-01-16T06:30:00+00:00"), berlin) is None


def test_a_time_zone_behind_utc_wraps_the_date_correctly() -> None:
    new_york = QuietHours.parse("21:00", "08:00", "America/New_York")  # UTC−5 in winter

    # 03:00 UTC on the 16th is 22:00 on the 15th in New York: quiet until 08:00 on the 16th
    # local = 13:00 UTC.
    assert quiet_until(at("2025-01-16T03:00:00+00:00"), new_york) == at("2025-01-16T13:00:00+00:00")


def test_the_end_follows_the_clock_across_a_daylight_saving_change() -> None:
    berlin = QuietHours.parse("22:00", "07:00", "Europe/Berlin")

    # Clocks go forward on 30 March 2025 at 02:00: 22:00 CET (21:00 UTC) on the 29th, quiet
    # until 07:00 CEST on the 30th = 05:00 UTC (not 06:00).
    assert quiet_until(at("2025-03-29T21:00:00+00:00"), berlin) == at("2025-03-30T05:00:00+00:00")


def test_equal_start_and_end_means_no_quiet_hours() -> None:
    none = QuietHours.parse("08:00", "08:00", "UTC")

    assert quiet_until(at("2025-03-04T08:00:00+00:00"), none) is None


def test_no_quiet_hours_never_hold() -> None:
    assert quiet_until(at("2025-03-04T03:00:00+00:00"), None) is None


# -- what is held -----------------------------------------------------------------------------


def test_a_routine_message_in_quiet_hours_waits_for_their_end() -> None:
    now = at("2025-03-03T23:00:00+00:00")

    assert not_before(now, urgent=False, quiet=NIGHT_UTC) == at("2025-03-04T07:00:00+00:00")


def test_an_urgent_message_is_never_held_by_quiet_hours() -> None:
    now = at("2025-03-03T23:00:00+00:00")

    assert not_before(now, urgent=True, quiet=NIGHT_UTC) == now


@pytest.mark.parametrize("urgent", [True, False])
def test_outside_quiet_hours_a_message_goes_now(urgent: bool) -> None:
    now = at("2025-03-03T10:00:00+00:00")

    assert not_before(now, urgent=urgent, quiet=NIGHT_UTC) == now
