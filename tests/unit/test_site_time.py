"""Site-local days: a contact's local date, the midnight that ends a silence, DST and bad
zone names."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.site_time import SiteTimeZones, days_between, start_of_day_after, zone_named

BERLIN = zone_named("Europe/Berlin")


def test_the_day_is_the_sites_own() -> None:
    # 23:30 UTC on 3 March is already 4 March in Berlin.
    late = datetime(2026, 3, 3, 23, 30, tzinfo=UTC)
    assert start_of_day_after(late, 21, zone_named("UTC")) == datetime(2026, 3, 24, tzinfo=UTC)
    assert start_of_day_after(late, 21, BERLIN) == datetime(2026, 3, 24, 23, 0, tzinfo=UTC)


def test_a_silence_across_the_clock_change_ends_at_local_midnight() -> None:
    contact = datetime(2026, 3, 20, 10, 0, tzinfo=UTC)  # CET; 21 days later is CEST
    due = start_of_day_after(contact, 21, BERLIN)
    assert due == datetime(2026, 4, 9, 22, 0, tzinfo=UTC)  # 10 April 00:00 CEST
    assert days_between(contact, due, BERLIN) == 21


def test_days_between_counts_calendar_days() -> None:
    a = datetime(2026, 5, 1, 21, 0, tzinfo=UTC)  # 23:00 in Berlin, 1 May
    b = datetime(2026, 5, 1, 22, 30, tzinfo=UTC)  # 00:30 in Berlin, 2 May
    assert days_between(a, b, BERLIN) == 1
    assert days_between(a, b, zone_named("UTC")) == 0


def test_sites_not_named_use_the_default() -> None:
    zones = SiteTimeZones.parse('{"a": "America/Toronto"}', "Europe/Berlin")
    assert str(zones.of("a")) == "America/Toronto"
    assert str(zones.of("b")) == "Europe/Berlin"


@pytest.mark.parametrize("raw", ['{"a": "Mars/Olympus"}', '{"a": ""}', '["UTC"]', '{"a": 3}'])
def test_a_bad_zone_is_refused_naming_the_site(raw: str) -> None:
    with pytest.raises(ValueError):
        SiteTimeZones.parse(raw)
