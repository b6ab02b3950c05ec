"""Matching in site-local time (issue 16, capability 4).

Weekly availability, client windows and the earliest session are site-local clock times: a
therapist's "Monday 09:00–17:00" is where they work, a client's window where the client is
seen. The engine compares them on one weekly grid, the client's site's, and counts the wait
from "now" on that site's clock. A therapist who works at the client's site is read in that
site's time as given; a telehealth therapist of another site, in their own site's time (when
their sites lie in several zones: the first site in alphabetical order), shifted onto the
client's site's clock by the difference of the two zones' UTC offsets at the time of the
proposal (a change of clocks in the following weeks is not anticipated).

Pure: zones and the moment are passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from services.intake.domain.matching.roster import Roster
from services.intake.domain.matching.types import Therapist, WeeklySlot
from shared.site_time import SiteTimeZones

DAY_MINUTES = 24 * 60
WEEK_MINUTES = 7 * DAY_MINUTES


def local_now(at: datetime, zone: ZoneInfo) -> datetime:
    """``at`` on the site's clock: the engine's "now" (its week starts at the site's Monday)."""
    return at.astimezone(zone)


def home_zone(therapist: Therapist, site: str, zones: SiteTimeZones) -> ZoneInfo:
    """The zone the therapist's availability is written in, as seen for a client of ``site``."""
    if site in therapist.sites or not therapist.sites:
        return zones.of(site)
    return zones.of(min(therapist.sites))


def offset_minutes(zone: ZoneInfo, at: datetime) -> int:
    offset = at.astimezone(zone).utcoffset()
    return 0 if offset is None else int(offset.total_seconds() // 60)


def shifted_slots(slots: Sequence[WeeklySlot], minutes: int) -> tuple[WeeklySlot, ...]:
    """The weekly slots ``minutes`` later on the clock (earlier when negative), split at
    midnight and wrapping from Sunday into Monday (availability repeats every week)."""
    if minutes % WEEK_MINUTES == 0:
        return tuple(slots)
    out: list[WeeklySlot] = []
    for slot in slots:
        remaining = slot.end_minute - slot.start_minute
        at = (slot.day * DAY_MINUTES + slot.start_minute + minutes) % WEEK_MINUTES
        while remaining > 0:
            day, start = divmod(at, DAY_MINUTES)
            take = min(remaining, DAY_MINUTES - start)
            out.append(WeeklySlot(day, start, start + take))
            at = (at + take) % WEEK_MINUTES
            remaining -= take
    return tuple(out)


def availability_shifts(
    therapists: Sequence[Therapist], site: str, zones: SiteTimeZones, at: datetime
) -> tuple[int, ...]:
    """Per therapist, the minutes to add to their clock times to read them on ``site``'s."""
    target = offset_minutes(zones.of(site), at)
    known: dict[str, int] = {}
    shifts = []
    for t in therapists:
        zone = home_zone(t, site, zones)
        if zone.key not in known:
            known[zone.key] = target - offset_minutes(zone, at)
        shifts.append(known[zone.key])
    return tuple(shifts)


def on_site_clock(therapist: Therapist, site: str, zones: SiteTimeZones, at: datetime) -> Therapist:
    """The therapist with their availability on ``site``'s clock."""
    [shift] = availability_shifts([therapist], site, zones, at)
    if shift == 0:
        return therapist
    return replace(therapist, availability=shifted_slots(therapist.availability, shift))


def roster_on_site_clock(roster: Roster, shifts: tuple[int, ...]) -> Roster:
    """``roster`` with every therapist's availability moved by their shift (the roster itself
    when nobody's moves); caseloads as in ``roster``."""
    if not any(shifts):
        return roster
    moved = [
        replace(t, availability=shifted_slots(t.availability, shift)) if shift else t
        for t, shift in zip(roster.therapists, shifts, strict=True)
    ]
    rebuilt = Roster.build(moved)
    rebuilt.caseload = roster.caseload.copy()
    rebuilt.capacity_left = roster.capacity_left.copy()
    return rebuilt
