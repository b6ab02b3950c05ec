"""Weekly times as staff write them in a spreadsheet cell, read into the engine's slots.

A cell lists times separated by ``;``, each a day (or a range of days) and a window in 24-hour
site-local time: ``mon 09:00-17:00; wed 13:00-18:00`` or ``mon-fri 09:00-12:30``. Days are
``mon tue wed thu fri sat sun`` (full names too, any case); a window ends at ``24:00`` at the
latest and never crosses midnight. Pure: a cell in, slots (or the reason it cannot be read)
out; whether a window is possible is the engine's own check (``input_checks``).
"""

from __future__ import annotations

import re

from services.intake.domain.matching import WeeklySlot

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME = r"(\d{1,2}):(\d{2})"
_PART = re.compile(rf"^([a-z]+)(?:\s*-\s*([a-z]+))?\s+{_TIME}\s*-\s*{_TIME}$")
FORMAT = "day HH:MM-HH:MM; … (e.g. 'mon 09:00-17:00; wed 13:00-18:00' or 'mon-fri 09:00-12:30')"


class UnreadableTimes(ValueError):
    """A cell that is not a list of weekly times; the message says which part and why."""


def _day(word: str, part: str) -> int:
    if word in DAYS:
        return DAYS.index(word)
    if word in _FULL:
        return _FULL.index(word)
    raise UnreadableTimes(f"{part!r}: {word!r} is not a day (one of {', '.join(DAYS)})")


def _minute(hours: str, minutes: str, part: str) -> int:
    h, m = int(hours), int(minutes)
    if m > 59 or h > 24 or (h == 24 and m):
        raise UnreadableTimes(f"{part!r}: {hours}:{minutes} is not a time of day")
    return h * 60 + m


def weekly_slots(cell: str) -> list[WeeklySlot]:
    """Every slot the cell lists, in order (a day range gives one slot a day)."""
    slots: list[WeeklySlot] = []
    for raw in cell.split(";"):
        part = " ".join(raw.strip().lower().split())
        if not part:
            continue
        found = _PART.match(part)
        if found is None:
            raise UnreadableTimes(f"{part!r} is not a weekly time; write {FORMAT}")
        first_word, last_word, h1, m1, h2, m2 = found.groups()
        first = _day(first_word, part)
        last = _day(last_word, part) if last_word else first
        if last < first:
            raise UnreadableTimes(f"{part!r}: the days run backwards (write mon-fri)")
        start, end = _minute(h1, m1, part), _minute(h2, m2, part)
        slots += [WeeklySlot(day, start, end) for day in range(first, last + 1)]
    return slots
