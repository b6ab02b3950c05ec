"""Notices no channel of their site can carry: what they are called, who is told, and when to
look again. Pure: no I/O and no clock (``now`` is passed in).

A readable event is never poison: an alert or a risk response for a site with no webhook and
no contact for its recipients is not dead-lettered. It is recorded as *undeliverable* and waits
for a route; it is delivered through the usual deliveries as soon as one exists. An urgent one
(rule 1, risk) is meanwhile told to the site's own fallback address or, when the site has none,
to the deployment's ops fallback, once. Staff see the waiting ones in ``GET /notify/undelivered``
and operators in the readiness warning and ``rapport_notify_undeliverable_total``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from services.notify.domain import ContactPoint, Message, is_urgent

SITE_NOT_SET_UP: Final = "site_not_set_up"  # no policy, webhook or contact of the site at all
NO_CHANNEL: Final = "no_channel_for_recipients"  # set up, but nothing reaches its people
Reason = Literal["site_not_set_up", "no_channel_for_recipients"]
Fallback = Literal["site", "ops"]

# How long after a look at a site a notice recorded just before it may still have been
# uncommitted (and so unseen), and how long a site's waiting notices go without a look at most.
COMMIT_GRACE = timedelta(seconds=30)
RECHECK_AFTER = timedelta(seconds=30)


def undeliverable_reason(planned: int, site_set_up: bool) -> Reason | None:
    """Why a notice with ``planned`` messages cannot be delivered now; None when it can."""
    if planned > 0:
        return None
    return NO_CHANNEL if site_set_up else SITE_NOT_SET_UP


def fallback_for(
    kind: str, severity: str, *, site_address: bool, ops_address: bool, email: bool
) -> Fallback | None:
    """Who is told of an undeliverable notice: urgent ones only (the others wait in the
    undelivered view and the metric), the site's own fallback address before the deployment's
    ops fallback, and only when email can be sent at all."""
    if not is_urgent(kind, severity) or not email:
        return None
    if site_address:
        return "site"
    if ops_address:
        return "ops"
    return None


def fallback_message(site_id: str) -> Message:
    """What the fallback address receives: the site and what to do; no clinical detail."""
    return Message(
        "Rapport: URGENT — an alert for a client could not be delivered",
        f"An urgent alert for a client of site {site_id} could not be delivered: no webhook "
        "or contact of the site reaches the people it is for. Register a webhook or contacts "
        "for the site in the notify API; the alert is delivered as soon as one exists. Until "
        "then the site's admins and clinical leads see it in GET /notify/undelivered.",
    )


def readiness_warning(waiting_urgent: int) -> str | None:
    """The readiness warning while urgent notices wait for a route (never unready: the pod
    itself is fine, and restarting it would not deliver them)."""
    if waiting_urgent <= 0:
        return None
    noun = "notice waits" if waiting_urgent == 1 else "notices wait"
    return (
        f"{waiting_urgent} urgent {noun} for a channel: no webhook or contact of their site "
        "reaches their recipients (GET /notify/undelivered)"
    )


def routing_fingerprint(
    policy_json: str,
    contacts: Sequence[ContactPoint],
    endpoints: Sequence[str],
    site_fallback: bool,
) -> str:
    """A digest of everything that decides whether a site's notices can go now."""
    parts = [
        policy_json,
        *sorted(repr(c) for c in contacts),
        *sorted(endpoints),
        f"fallback={site_fallback}",
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class Looked:
    """When a site's waiting notices were last looked at, and with what routing."""

    fingerprint: str
    at: datetime


def look_again(last: Looked | None, fingerprint: str, newest: datetime, now: datetime) -> bool:
    """Whether to look at a site's waiting notices: never looked at (e.g. after a restart), its
    routing changed, a notice arrived since the last look (or just before it), or the last look
    is a while ago. Otherwise nothing could have changed their fate."""
    if last is None or last.fingerprint != fingerprint:
        return True
    if newest >= last.at - COMMIT_GRACE:
        return True
    return now - last.at >= RECHECK_AFTER
