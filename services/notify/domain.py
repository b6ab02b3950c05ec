"""Delivery rules: who gets which alert, and when to retry. Pure: no I/O, no clock."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

# A Standard-Webhooks-like schedule: the delay before attempt n+1 (about 3 days in all).
RETRY_SCHEDULE = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)


def next_attempt(
    attempts_made: int, now: datetime, schedule: tuple[timedelta, ...] = RETRY_SCHEDULE
) -> datetime | None:
    """When to try again after ``attempts_made`` failures; None when the schedule is spent."""
    if attempts_made < 1:
        raise ValueError("next_attempt is asked after at least one attempt")
    if attempts_made > len(schedule):
        return None
    return now + schedule[attempts_made - 1]


def is_retryable(status: int | None) -> bool:
    """Retry network errors, timeouts, 429 and 5xx; other 4xx are permanent."""
    return status is None or status == 429 or status >= 500


def is_private_address(address: str) -> bool:
    """Loopback, private, link-local and other non-public targets (SSRF guard)."""
    ip = ipaddress.ip_address(address)
    return (
        not ip.is_global  # also shared address space 100.64.0.0/10 (cloud metadata hosts)
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )
