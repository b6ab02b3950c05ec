"""Each site's time zone, and days counted on the site's own calendar.

A site's clinicians, clients and schedules live in its local time: a session "on Monday at 9"
is 9 o'clock where the site is, and "21 days without contact" ends at the site's midnight, the
same in summer and in winter. Every service reads the same two settings
(``RAPPORT_SITE_TIME_ZONES``, ``RAPPORT_DEFAULT_TIME_ZONE``); times are stored and sent as
instants (UTC) and turned into site-local dates and clock times only here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone_named(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ``ValueError`` naming it when there is none."""
    if not isinstance(name, str) or not name or name != name.strip():
        raise ValueError(f"{name!r} is not an IANA time zone name (e.g. Europe/Berlin)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"{name!r} is not an IANA time zone name (e.g. Europe/Berlin)") from error


@dataclass(frozen=True)
class SiteTimeZones:
    """The time zone of each site, and the network's default for a site not named."""

    default: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    sites: Mapping[str, ZoneInfo] = field(default_factory=dict)

    def of(self, site_id: str) -> ZoneInfo:
        return self.sites.get(site_id, self.default)

    @classmethod
    def parse(cls, sites: str | Mapping[str, str] | None, default: str = "UTC") -> SiteTimeZones:
        """From the settings' forms: a JSON object (or mapping) of site id → IANA name;
        ``ValueError`` saying which site's zone is wrong."""
        raw = json.loads(sites) if isinstance(sites, str) and sites.strip() else (sites or {})
        if not isinstance(raw, Mapping):
            raise ValueError('expected a JSON object, e.g. {"site-a": "Europe/Berlin"}')
        zones = {}
        for site, name in raw.items():
            try:
                zones[str(site)] = zone_named(name)
            except ValueError as error:
                raise ValueError(f"site {site!r}: {error}") from error
        return cls(zone_named(default), zones)


def local_date(at: datetime, zone: ZoneInfo) -> date:
    """The site-local calendar date of an instant."""
    return aware(at).astimezone(zone).date()


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The instant (UTC) at which the site-local ``day`` begins."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def start_of_day_after(at: datetime, days: int, zone: ZoneInfo) -> datetime:
    """The instant the site-local day ``days`` calendar days after ``at``'s local date begins:
    with ``days=21``, a contact on the 3rd (any hour) makes the 24th's midnight."""
    return local_midnight(local_date(at, zone) + timedelta(days=days), zone)


def days_between(earlier: datetime, later: datetime, zone: ZoneInfo) -> int:
    """Whole site-local calendar days from ``earlier``'s date to ``later``'s (0 on the same
    day, negative when ``later`` is before)."""
    return (local_date(later, zone) - local_date(earlier, zone)).days


def aware(at: datetime) -> datetime:
    """``at`` as a timezone-aware instant (a naive one is taken as UTC, as SQLite returns)."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
