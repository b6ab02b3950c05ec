"""What a digest says, as pure rules: only the alerts still open when the digest is made, each
with how long it has been open (hours, no clinical detail)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from services.notify.domain import Message, staff_message


def open_for(opened_at: datetime, now: datetime) -> str:
    """How long an alert has been open, as a person reads it: minutes under an hour, hours
    under two days, days after."""
    age = max(now - opened_at, timedelta(0))
    if age < timedelta(hours=1):
        return f"{int(age.total_seconds() // 60)} min"
    if age < timedelta(days=2):
        return f"{int(age.total_seconds() // 3600)} h"
    return f"{age.days} d"


def digest_message(opened: Sequence[datetime], now: datetime) -> Message:
    """The digest of these still-open alerts, oldest first, each with its age."""
    base = staff_message("digest", False, len(opened))
    ages = ", ".join(open_for(at, now) for at in sorted(opened))
    subject, text = base.subject, base.text
    suffix = f" (open for {ages})"
    head, sep, tail = text.partition(" — ")
    return Message(subject, f"{head}{suffix}{sep}{tail}" if sep else text + suffix)
