"""Retries with jitter, what an attempt's answer means, digest windows and grouping, rate
windows, delivery keys (services/notify/domain.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.notify.domain import (
    DigestItem,
    delivery_key,
    digest_due,
    group_digest,
    max_attempts,
    next_attempt_with_jitter,
    rate_window,
    risk_notice_key,
    verdict,
)
from services.notify.policy import DigestPolicy
from shared.settings import load_settings

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DELAYS = (5.0, 300.0, 1800.0)


# -- backoff with jitter ------------------------------------------------------------------------


@pytest.mark.parametrize("attempts", [1, 2, 3])
def test_without_jitter_the_delay_is_the_schedules(attempts: int) -> None:
    got = next_attempt_with_jitter(attempts, NOW, DELAYS, jitter=0.0, draw=0.7)

    assert got == NOW + timedelta(seconds=DELAYS[attempts - 1])


def test_the_smallest_draw_gives_the_lower_jitter_bound() -> None:
    got = next_attempt_with_jitter(2, NOW, DELAYS, jitter=0.2, draw=0.0)

    assert got == NOW + timedelta(seconds=240)


def test_the_largest_draw_stays_below_the_upper_jitter_bound() -> None:
    got = next_attempt_with_jitter(2, NOW, DELAYS, jitter=0.2, draw=0.999999)

    assert got is not None
    assert NOW + timedelta(seconds=359.99) < got < NOW + timedelta(seconds=360)


@pytest.mark.parametrize("draw", [0.0, 0.25, 0.5, 0.75, 0.999])
def test_every_jittered_delay_is_within_its_bounds(draw: float) -> None:
    for attempts, delay in enumerate(DELAYS, start=1):
        got = next_attempt_with_jitter(attempts, NOW, DELAYS, jitter=0.3, draw=draw)
        assert got is not None
        assert NOW + timedelta(seconds=delay * 0.7) <= got <= NOW + timedelta(seconds=delay * 1.3)


def test_there_is_no_attempt_after_the_schedule() -> None:
    assert next_attempt_with_jitter(len(DELAYS) + 1, NOW, DELAYS, jitter=0.2, draw=0.5) is None


def test_a_schedule_of_n_delays_allows_n_plus_one_attempts() -> None:
    assert max_attempts(DELAYS) == 4


@pytest.mark.parametrize("jitter", [-0.1, 0.51])
def test_jitter_outside_0_to_half_is_refused(jitter: float) -> None:
    with pytest.raises(ValueError, match="jitter"):
        next_attempt_with_jitter(1, NOW, DELAYS, jitter=jitter, draw=0.5)


def test_the_default_schedule_is_ten_attempts_over_about_three_days() -> None:
    delays = load_settings().notify_retry_delays

    assert max_attempts(delays) == 10
    assert list(delays) == sorted(delays)
    assert 3 * 86_400 <= sum(delays) <= 3.25 * 86_400


# -- what an answer means -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    assert verdict(status, None) == "delivered"


def test_410_means_the_endpoint_is_gone() -> None:
    assert verdict(410, "http_410") == "gone"


@pytest.mark.parametrize("status", [None, 429, 500, 502, 503, 504])
def test_timeouts_429_and_5xx_are_retried(status: int | None) -> None:
    assert verdict(status, "error") == "retry"


@pytest.mark.parametrize("status", [300, 301, 400, 401, 403, 404, 422])
def test_redirects_and_other_4xx_fail_permanently(status: int) -> None:
    assert verdict(status, f"http_{status}") == "failed"


# -- digests ------------------------------------------------------------------------------------

HOURLY = DigestPolicy(period_seconds=3600, starts_at="08:00")
DAILY_AT_8 = DigestPolicy(period_seconds=86_400, starts_at="08:00")


def test_an_hourly_digest_is_due_at_the_end_of_the_hour_window() -> None:
    assert digest_due(NOW + timedelta(minutes=10), HOURLY, "UTC") == NOW + timedelta(hours=1)


def test_an_item_at_a_window_boundary_belongs_to_the_next_window() -> None:
    assert digest_due(NOW, HOURLY, "UTC") == NOW + timedelta(hours=1)


def test_a_daily_digest_goes_at_its_local_start_time() -> None:
    # 12:00 UTC is 14:00 in Berlin (summer): the next 08:00 Berlin is 06:00 UTC tomorrow.
    assert digest_due(NOW, DAILY_AT_8, "Europe/Berlin") == datetime(2025, 6, 2, 6, 0, tzinfo=UTC)


def test_before_the_days_start_time_the_daily_digest_is_due_the_same_morning() -> None:
    early = datetime(2025, 6, 1, 5, 0, tzinfo=UTC)  # 07:00 in Berlin

    assert digest_due(early, DAILY_AT_8, "Europe/Berlin") == datetime(2025, 6, 1, 6, 0, tzinfo=UTC)


def test_a_one_second_period_closes_within_a_second() -> None:
    fast = DigestPolicy(period_seconds=1, starts_at="00:00")
    moment = datetime(2025, 6, 1, 12, 0, 0, 400_000, tzinfo=UTC)

    assert digest_due(moment, fast, "UTC") == datetime(2025, 6, 1, 12, 0, 1, tzinfo=UTC)


def item(delivery_id: str, recipient: str, channel: str, due: datetime) -> DigestItem:
    return DigestItem(delivery_id, "site-a", recipient, channel, f"c-{recipient}", due)


def test_one_digest_per_recipient_channel_and_window() -> None:
    first, second = NOW, NOW + timedelta(hours=1)
    items = [
        item("d1", "staff:therapist:th-1", "email", first),
        item("d2", "staff:therapist:th-1", "email", first),
        item("d3", "staff:therapist:th-1", "sms", first),
        item("d4", "staff:therapist:th-2", "email", first),
        item("d5", "staff:therapist:th-1", "email", second),
    ]

    groups = group_digest(items)

    assert sorted(sorted(ids) for ids in groups.values()) == [
        ["d1", "d2"],
        ["d3"],
        ["d4"],
        ["d5"],
    ]


def test_no_items_no_digest() -> None:
    assert group_digest([]) == {}


# -- rate windows and keys ------------------------------------------------------------------------


def test_a_rate_window_is_the_clock_hour() -> None:
    number, ends = rate_window(NOW + timedelta(minutes=59, seconds=59))

    assert ends == NOW + timedelta(hours=1)
    assert rate_window(NOW + timedelta(hours=1))[0] == number + 1


def test_the_delivery_key_is_notice_times_recipient_times_channel() -> None:
    key = delivery_key("alert:a1", "staff:therapist:th-1", "email")

    assert key == "alert:a1|staff:therapist:th-1|email"
    assert key != delivery_key("alert:a1", "staff:therapist:th-1", "sms")


def test_a_very_long_delivery_key_is_hashed_to_fit() -> None:
    key = delivery_key("x" * 400, "staff:therapist:th-1", "email")

    assert key.startswith("sha256:") and len(key) <= 300
    assert key == delivery_key("x" * 400, "staff:therapist:th-1", "email")


def test_one_risk_response_is_one_notice_whichever_event_names_it() -> None:
    key = risk_notice_key("ep-1", 2, "p1_" + "a" * 32, "phq-9")

    assert key == risk_notice_key("ep-1", 2, "p1_" + "a" * 32, "phq-9")
    assert key != risk_notice_key("ep-1", 3, "p1_" + "a" * 32, "phq-9")
