"""Weekly times as staff write them in a CSV cell (``mon 09:00-17:00; wed 13:00-18:00``)."""

from __future__ import annotations

import pytest

from services.intake.domain.matching import WeeklySlot
from services.intake.domain.weekly_times import UnreadableTimes, weekly_slots


def test_days_ranges_and_the_end_of_the_day_are_read() -> None:
    assert weekly_slots("mon 09:00-17:00; Wednesday 13:00 - 24:00") == [
        WeeklySlot(0, 540, 1020),
        WeeklySlot(2, 780, 1440),
    ]
    assert [s.day for s in weekly_slots("sat-sun 0:00-23:59")] == [5, 6]
    assert weekly_slots(" ; ") == []


@pytest.mark.parametrize(
    "cell",
    ["mon 09:00-24:01", "mon 9-17", "funday 09:00-10:00", "fri-mon 09:00-10:00", "mon 09:60-10:00"],
)
def test_what_is_not_a_weekly_time_is_refused_naming_the_part(cell: str) -> None:
    with pytest.raises(UnreadableTimes, match=r"mon|fri|funday"):
        weekly_slots(cell)
