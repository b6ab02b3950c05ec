"""Delivery rules: who gets which notice, on which channel, when, and when to try again.

Pure: no I/O and no clock (``now`` is always passed in), so every rule is unit-tested at its
boundaries. The imperative shell (use cases, scheduler, dispatcher) reads contacts and policies,
calls these functions and persists what they return.

Just over 500 lines, kept as one module: these rules are read together (a notice's route, its
people, their quiet hours and its retries), and tests import them from here.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from services.notify.policy import DigestPolicy, RoutingPolicy, parse_clock

# -- retries -----------------------------------------------------------------------------------

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


def next_attempt_with_jitter(
    attempts_made: int,
    now: datetime,
    delays_seconds: Sequence[float],
    jitter: float,
    draw: float,
) -> datetime | None:
    """:func:`next_attempt` with the delay spread by ±``jitter`` (a fraction), so endpoints
    that failed together are not retried in lockstep (thundering herd). ``draw`` is a uniform
    random number in [0, 1): the delay is ``d × (1 − jitter + 2 × jitter × draw)``."""
    if not 0 <= jitter <= 0.5:
        raise ValueError("jitter is a fraction from 0 to 0.5")
    if not 0 <= draw < 1:
        raise ValueError("draw is a uniform random number in [0, 1)")
    base = next_attempt(attempts_made, now, tuple(timedelta(seconds=d) for d in delays_seconds))
    if base is None:
        return None
    delay = (base - now).total_seconds() * (1 - jitter + 2 * jitter * draw)
    return now + timedelta(seconds=delay)


def max_attempts(delays_seconds: Sequence[float]) -> int:
    """The first attempt plus one per delay of the schedule."""
    return len(delays_seconds) + 1


def is_retryable(status: int | None) -> bool:
    """Retry network errors, timeouts, 429 and 5xx; other 4xx are permanent."""
    return status is None or status == 429 or status >= 500


Verdict = Literal["delivered", "retry", "gone", "failed"]


def verdict(status: int | None, error: str | None) -> Verdict:
    """What one attempt's outcome means. ``410 Gone`` says the endpoint no longer exists: it is
    disabled rather than retried (Standard Webhooks: "the endpoint should be disabled")."""
    if error is None and status is not None and 200 <= status < 300:
        return "delivered"
    if status == 410:
        return "gone"
    return "retry" if is_retryable(status) else "failed"


NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 is the last 32 bits


def embedded_ipv4(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, 6to4, Teredo, NAT64), which is
    where a packet to it really goes."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_private_address(address: str) -> bool:
    """Loopback, private, link-local and other non-public targets (SSRF guard), IPv4 and IPv6,
    including IPv4 addresses wrapped in IPv6 (``::ffff:127.0.0.1``, 6to4, Teredo, NAT64)."""
    ip = ipaddress.ip_address(address.split("%")[0])  # drop an IPv6 zone id (fe80::1%eth0)
    inner = embedded_ipv4(ip)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return is_private_address(str(ip.ipv4_mapped))  # it IS that IPv4 address
    if inner is not None and is_private_address(str(inner)):
        return True
    return (
        not ip.is_global  # also shared address space 100.64.0.0/10 (cloud metadata hosts)
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


# -- what a notice is --------------------------------------------------------------------------

RISK = "risk"
# Scored responses sent to a site's webhooks with their FHIR Observations (policy ``results``).
RESULTS = "feedback_results"
MAX_KEY = 300


@dataclass(frozen=True)
class NoticeSpec:
    """Something to tell a site's staff (an alert, a risk response, a match), pseudonymous."""

    key: str  # unique: the same alert under another event id is the same notice
    site_id: str
    kind: str
    severity: str
    source_event_id: str
    source_type: str  # the event type it came from, e.g. risk.flagged
    data: dict[str, Any]  # pseudonymous: ids, codes and numbers only
    episode_id: str | None = None
    therapist_id: str | None = None
    # The step of the alert's life it announces (shared/alert_life.py): only an opening is
    # routed as the policy's rules and rule 1 say, escalated and counted as undeliverable.
    step: str = "opened"
    # The alert it belongs to and the step's place in its life (shared/alert_life.py): a
    # webhook to an endpoint waits while an earlier step's to the same endpoint is unsent.
    alert_id: str | None = None
    position: int = 1


def delivery_kind(notice_kind: str) -> str:
    """What the log calls a notice's deliveries."""
    if notice_kind == RESULTS:
        return "results"
    return "match" if notice_kind in {"match_proposed", "match_confirmed"} else "alert"


def is_urgent(kind: str, severity: str) -> bool:
    """Rule 1 (risk) and anything analytics marks urgent: at once, never batched, never held by
    quiet hours, escalated when unacknowledged (docs/clinical-rules.md, rule 1)."""
    return kind == RISK or severity == "urgent"


def alert_notice_key(alert_id: str) -> str:
    return f"alert:{alert_id}"


def risk_notice_key(episode_id: str, session_number: int, respondent: str, instrument: str) -> str:
    """One risk response is one notice, whether notify hears of it from ``risk.flagged``
    (feedback) or from the ``alliance.alert`` of kind risk (analytics) — so the clinicians get
    ONE urgent message each, not two."""
    return f"risk:{episode_id}:{session_number}:{respondent}:{instrument}"


def event_notice_key(kind: str, event_id: str) -> str:
    return f"{kind}:{event_id}"


def delivery_key(notice_key: str, recipient: str, channel: str) -> str:
    """The unique key of one message: notice × recipient × channel (hashed if very long)."""
    key = f"{notice_key}|{recipient}|{channel}"
    if len(key) <= MAX_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


# -- routing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Intent:
    """A policy's decision: this role hears about it on this channel, now or in a digest."""

    role: str
    channel: str
    mode: str  # immediate | digest
    urgent: bool


URGENT_RECIPIENTS = ("therapist", "clinical_lead")


def route(
    policy: RoutingPolicy, kind: str, severity: str, step: str = "opened"
) -> tuple[Intent, ...]:
    """The (role, channel) pairs a notice goes to. An urgent notice always reaches the
    therapist and the clinical lead on the policy's risk channels, immediately; rules may add
    recipients but never delay it. Where rules overlap, immediate wins over digest. A later
    step of an alert's life goes only to the webhooks of the rules that ask for that step."""
    if step != "opened":
        return tuple(
            sorted(
                {
                    Intent(role, "webhook", "immediate", False)
                    for rule in policy.rules
                    if rule.matches(kind, severity, step) and "webhook" in rule.channels
                    for role in rule.to
                },
                key=lambda i: (i.role, i.channel),
            )
        )
    urgent = is_urgent(kind, severity)
    chosen: dict[tuple[str, str], Intent] = {}

    def add(role: str, channel: str, mode: str) -> None:
        mode = "immediate" if urgent else mode
        earlier = chosen.get((role, channel))
        if earlier is None or (earlier.mode == "digest" and mode == "immediate"):
            chosen[(role, channel)] = Intent(role, channel, mode, urgent)

    if urgent:
        for role in URGENT_RECIPIENTS:
            for channel in policy.risk.channels:
                add(role, channel, "immediate")
    for rule in policy.rules:
        if rule.matches(kind, severity):
            for role in rule.to:
                for channel in rule.channels:
                    add(role, channel, rule.mode)
    return tuple(sorted(chosen.values(), key=lambda i: (i.role, i.channel)))


# -- quiet hours ---------------------------------------------------------------------------


@dataclass(frozen=True)
class QuietHours:
    """A person's quiet hours in their own time zone; ``start`` after ``end`` spans midnight
    (22:00–07:00). ``start == end`` means none."""

    start: time
    end: time
    timezone: str = "UTC"

    @classmethod
    def parse(cls, start: str, end: str, timezone: str = "UTC") -> QuietHours:
        return cls(parse_clock(start), parse_clock(end), timezone)


def quiet_until(now: datetime, quiet: QuietHours | None) -> datetime | None:
    """When the quiet hours that ``now`` falls in end (UTC); None when ``now`` is not quiet."""
    if quiet is None or quiet.start == quiet.end:
        return None
    zone = ZoneInfo(quiet.timezone)
    local = now.astimezone(zone)
    wall = local.time().replace(tzinfo=None)
    if quiet.start < quiet.end:
        if not quiet.start <= wall < quiet.end:
            return None
        end_day = local.date()
    elif wall >= quiet.start:
        end_day = local.date() + timedelta(days=1)
    elif wall < quiet.end:
        end_day = local.date()
    else:
        return None
    return datetime.combine(end_day, quiet.end, tzinfo=zone).astimezone(UTC)


def not_before(now: datetime, urgent: bool, quiet: QuietHours | None) -> datetime:
    """When a message may go: now if urgent, else after the person's quiet hours."""
    if urgent:
        return now
    return quiet_until(now, quiet) or now


# -- who, concretely -----------------------------------------------------------------------


@dataclass(frozen=True)
class ContactPoint:
    """A staff member's contact as routing needs it (no addresses: only whether they exist)."""

    id: str
    role: str
    staff_id: str
    has_email: bool
    has_phone: bool
    quiet: QuietHours | None = None

    def reachable_on(self, channel: str) -> bool:
        return (channel == "email" and self.has_email) or (channel == "sms" and self.has_phone)


@dataclass(frozen=True)
class Planned:
    """One message to create: a webhook to one endpoint or an email/SMS to one person."""

    recipient: str  # endpoint:<id> | staff:<role>:<staff id> — never an address
    channel: str
    endpoint_id: str  # the webhook's id or the contact's id
    roles: tuple[str, ...]  # whom it is for (a webhook names them for the front-end)
    mode: str
    urgent: bool
    quiet: QuietHours | None = None


def plan(
    intents: Iterable[Intent],
    *,
    therapist_id: str | None,
    contacts: Sequence[ContactPoint],
    endpoints: Sequence[str],
) -> list[Planned]:
    """Turn a policy's intents into messages. The therapist is the episode's own therapist;
    other roles are every contact of that role at the site. Webhooks go once per endpoint,
    naming every role the front-end should show the notice to. A person reached twice on the
    same channel (two rules) gets one message."""
    intents = list(intents)
    out: list[Planned] = []
    hook_intents = [i for i in intents if i.channel == "webhook"]
    if hook_intents:
        roles = tuple(sorted({i.role for i in hook_intents}))
        urgent = any(i.urgent for i in hook_intents)
        out.extend(
            Planned(f"endpoint:{e}", "webhook", e, roles, "immediate", urgent)
            for e in sorted(endpoints)
        )
    people: dict[tuple[str, str], Planned] = {}
    for intent in intents:
        if intent.channel == "webhook":
            continue
        for contact in contacts:
            if contact.role != intent.role or not contact.reachable_on(intent.channel):
                continue
            if intent.role == "therapist" and contact.staff_id != therapist_id:
                continue
            key = (contact.id, intent.channel)
            earlier = people.get(key)
            mode = intent.mode
            if earlier is not None and earlier.mode == "immediate":
                mode = "immediate"
            people[key] = Planned(
                f"staff:{contact.role}:{contact.staff_id}",
                intent.channel,
                contact.id,
                (contact.role,),
                mode,
                intent.urgent or (earlier is not None and earlier.urgent),
                contact.quiet,
            )
    out.extend(sorted(people.values(), key=lambda p: (p.recipient, p.channel)))
    return out


# -- digests -------------------------------------------------------------------------------


def digest_due(now: datetime, digest: DigestPolicy, timezone: str) -> datetime:
    """The end of the digest window ``now`` falls in (UTC). Windows of ``period_seconds`` are
    laid from ``starts_at`` local time each day, so a daily digest at 08:00 goes at 08:00."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    anchor = datetime.combine(local.date(), parse_clock(digest.starts_at), tzinfo=zone)
    if anchor > local:
        anchor = datetime.combine(
            local.date() - timedelta(days=1), parse_clock(digest.starts_at), tzinfo=zone
        )
    elapsed = (now - anchor).total_seconds()
    windows = math.floor(elapsed / digest.period_seconds) + 1
    return (anchor + timedelta(seconds=windows * digest.period_seconds)).astimezone(UTC)


@dataclass(frozen=True)
class DigestItem:
    delivery_id: str
    site_id: str
    recipient: str
    channel: str
    endpoint_id: str
    due_at: datetime


DigestGroup = tuple[str, str, str, str, datetime]  # site, recipient, channel, endpoint, due


def group_digest(items: Iterable[DigestItem]) -> dict[DigestGroup, list[str]]:
    """One digest per recipient, channel and window: the ids of the items it carries."""
    groups: dict[DigestGroup, list[str]] = {}
    for item in items:
        key = (item.site_id, item.recipient, item.channel, item.endpoint_id, item.due_at)
        groups.setdefault(key, []).append(item.delivery_id)
    return groups


def digest_notice_key(group: DigestGroup) -> str:
    site, recipient, channel, _, due = group
    return f"digest:{site}:{recipient}:{channel}:{due.astimezone(UTC).isoformat()}"


# -- rate limits ---------------------------------------------------------------------------


def rate_window(now: datetime) -> tuple[int, datetime]:
    """The hour window ``now`` is in: its number (for the Redis counter) and its end."""
    number = int(now.timestamp() // 3600)
    return number, datetime.fromtimestamp((number + 1) * 3600, tz=UTC)


# -- feedback invitations ------------------------------------------------------------------


SUPPORT_INSTRUMENT = "support"


@dataclass(frozen=True)
class Invitee:
    respondent: str
    role: str
    instruments: tuple[str, ...]


def support_due(session_number: int, every_sessions: int) -> bool:
    """The client rates the support of the people around them at session 1 and then every
    ``every_sessions`` sessions (1, 1 + k, 1 + 2k, …); 0: never."""
    return every_sessions > 0 and (session_number - 1) % every_sessions == 0


def invitees(
    members: Iterable[tuple[str, str]],
    instruments_by_role: Mapping[str, Sequence[str]],
    support: bool = False,
) -> list[Invitee]:
    """Who is asked for feedback after a session: each client-side member of the episode whose
    role has instruments configured (client SRS + ORS, partner/family SRS by default); with
    ``support``, the client is also asked to rate the support of significant others."""
    out: list[Invitee] = []
    seen: set[str] = set()
    for respondent, role in members:
        instruments = tuple(instruments_by_role.get(role, ()))
        if support and role == "client" and SUPPORT_INSTRUMENT not in instruments:
            instruments = (*instruments, SUPPORT_INSTRUMENT)
        if instruments and respondent not in seen:
            seen.add(respondent)
            out.append(Invitee(respondent, role, instruments))
    return out


def invitation_notice_key(episode_id: str, session_number: int, respondent: str) -> str:
    return f"invite:{episode_id}:{session_number}:{respondent}"


def reminder_notice_key(episode_id: str, session_number: int, respondent: str) -> str:
    return f"remind:{episode_id}:{session_number}:{respondent}"


# -- what the messages say -----------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    subject: str
    text: str


SIGN_OFF = "This message was sent by Rapport for your clinic. Do not reply to it."


def staff_message(kind: str, urgent: bool, count: int = 1) -> Message:
    """Email/SMS text for staff. Deliberately no clinical detail (no names, scores, rules or
    kinds beyond what the person must do): mailboxes and phones are not the record system."""
    if kind == "match_proposed":
        return Message(
            "Rapport: therapist options are ready for a client",
            "Therapist options are ready for a client — open your record system.",
        )
    if kind == "match_confirmed":
        return Message(
            "Rapport: a client's match was confirmed",
            "A client's match with a therapist was confirmed — open your record system.",
        )
    if kind == "endpoint_disabled":
        return Message(
            "Rapport: a webhook endpoint was disabled",
            "A webhook endpoint of your site answered 410 Gone and was disabled. "
            "Re-enable it or register a new one in the notify API.",
        )
    if kind == "digest":
        noun = "alert" if count == 1 else "alerts"
        return Message(
            f"Rapport: {count} new alliance {noun} for clients",
            f"You have {count} new alliance {noun} for clients — open your record system.",
        )
    if kind == "escalation" and not urgent:
        return Message(
            "Rapport: an alert for a client has not been followed up",
            "Nobody has acknowledged an alert for a client or recorded what was done about it "
            "yet — open your record system.",
        )
    if urgent:
        return Message(
            "Rapport: URGENT — a client needs attention now",
            "A client needs your attention now — open your record system and acknowledge "
            "the alert there.",
        )
    return Message(
        "Rapport: new alliance alert for a client",
        "You have a new alliance alert for a client — open your record system.",
    )


def invitation_message(link: str, expires_at: datetime, reminder: bool) -> Message:
    """What a client, partner or family member receives: a link, no clinical content."""
    day = expires_at.astimezone(UTC).strftime("%d %B %Y")
    if reminder:
        return Message(
            "A reminder: how was your recent appointment?",
            f"A short reminder: your clinic would value your answers about your recent "
            f"appointment. The link works once, until {day}: {link}",
        )
    return Message(
        "How was your recent appointment?",
        f"Your clinic would value a few quick answers about your recent appointment. The link "
        f"works once, until {day}: {link}",
    )


def sms_text(message: Message) -> str:
    return message.text[:480]
