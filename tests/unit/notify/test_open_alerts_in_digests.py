"""What a digest says: how long each still-open alert has been open, oldest first, at every
threshold (minutes under an hour, hours under two days, days after)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.notify.open_alerts import digest_message, open_for

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("age", "said"),
    [
        (timedelta(0), "0 min"),
        (timedelta(minutes=59, seconds=59), "59 min"),
        (timedelta(hours=1), "1 h"),
        (timedelta(hours=47, minutes=59), "47 h"),
        (timedelta(days=2), "2 d"),
        (timedelta(days=9, hours=23), "9 d"),
        (timedelta(seconds=-5), "0 min"),  # a clock a little ahead: never a negative age
    ],
)
def test_how_long_an_alert_has_been_open(age: timedelta, said: str) -> None:
    assert open_for(NOW - age, NOW) == said


def test_a_digest_counts_the_open_alerts_and_gives_their_ages_oldest_first() -> None:
    message = digest_message([NOW - timedelta(hours=3), NOW - timedelta(days=3)], NOW)

    assert message.subject == "Rapport: 2 new alliance alerts for clients"
    assert message.text == (
        "You have 2 new alliance alerts for clients (open for 3 d, 3 h) — open your record system."
    )


def test_one_alert() -> None:
    message = digest_message([NOW - timedelta(minutes=5)], NOW)
    assert message.text.startswith("You have 1 new alliance alert for clients (open for 5 min) — ")
