"""Turning a notice (an alert, a risk response, a match) into delivery rows, in the caller's
transaction. Sending happens later, in the dispatcher; nothing here waits on the network."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify import domain, undelivered
from services.notify.context import NotifyContext, SiteRouting, contact_point
from services.notify.models import NotifyDelivery, NotifyNotice, NotifyStaffContact, NotifyWebhook
from services.notify.policy import RoutingPolicy
from shared.db import dialect_of
from shared.logs import get_logger

log = get_logger(__name__)
UNDELIVERABLE = Counter(
    "rapport_notify_undeliverable_total",
    "Notices no channel of their site could carry when they arrived (they wait for a route)",
    ["kind", "severity"],
)
DELIVERIES = SQLModel.metadata.tables[NotifyDelivery.__tablename__]
NOTICES = SQLModel.metadata.tables[NotifyNotice.__tablename__]


@dataclass(frozen=True)
class NoticeSpec:
    key: str
    site_id: str
    kind: str
    severity: str
    source_event_id: str
    source_type: str  # the event type it came from, e.g. risk.flagged
    data: dict[str, Any]  # pseudonymous: ids, codes and numbers only
    episode_id: str | None = None
    therapist_id: str | None = None


def _insert(session: AsyncSession) -> Any:
    return sqlite.insert if dialect_of(session) == "sqlite" else postgresql.insert


async def site_contacts(
    session: AsyncSession, site_id: str, roles: set[str]
) -> list[domain.ContactPoint]:
    if not roles:
        return []
    rows = (
        await session.exec(
            select(NotifyStaffContact).where(
                NotifyStaffContact.site_id == site_id,
                col(NotifyStaffContact.active).is_(True),
                col(NotifyStaffContact.role).in_(roles),
            )
        )
    ).all()
    return [contact_point(r) for r in rows]


async def site_endpoints(session: AsyncSession, site_id: str) -> list[str]:
    rows = await session.exec(
        select(NotifyWebhook.id).where(
            NotifyWebhook.site_id == site_id, col(NotifyWebhook.active).is_(True)
        )
    )
    return list(rows.all())


def webhook_body(
    delivery_id: str, notice: NoticeSpec, planned: domain.Planned, now: datetime, **extra: Any
) -> str:
    recipients = [
        {"role": r, **({"staff_id": notice.therapist_id} if r == "therapist" else {})}
        for r in planned.roles
    ]
    body = {
        "type": notice.data.get("type", "alliance.alert"),
        "id": delivery_id,
        "timestamp": now.isoformat(),
        "source_type": notice.source_type,
        "urgent": planned.urgent,
        "recipients": recipients,
        "acknowledge": f"/notify/deliveries/{delivery_id}/ack",
        **extra,
        "data": {k: v for k, v in notice.data.items() if k != "type"},
    }
    return json.dumps(body, separators=(",", ":"), default=str)


def staff_text(kind: str, planned: domain.Planned, count: int = 1) -> str:
    message = domain.staff_message(kind, planned.urgent, count)
    return json.dumps({"subject": message.subject, "text": message.text})


def delivery_rows(
    notice: NoticeSpec,
    planned: Sequence[domain.Planned],
    policy: RoutingPolicy,
    now: datetime,
    *,
    notice_id: str | None,
    key_base: str,
    delivery_kind: str,
    **webhook_extra: Any,
) -> list[dict[str, Any]]:
    rows = []
    for p in planned:
        delivery_id = str(uuid.uuid4())
        if p.channel == "webhook":
            payload = webhook_body(delivery_id, notice, p, now, **webhook_extra)
        else:
            payload = staff_text(notice.kind, p)
        digest = p.mode == "digest"
        due = (
            domain.digest_due(now, policy.digest, policy.timezone)
            if digest
            else domain.not_before(now, p.urgent, p.quiet)
        )
        rows.append(
            {
                "id": delivery_id,
                "delivery_key": domain.delivery_key(key_base, p.recipient, p.channel),
                "source_event_id": notice.source_event_id,
                "site_id": notice.site_id,
                "channel": p.channel,
                "endpoint_id": p.endpoint_id,
                "recipient_role": "front_end" if p.channel == "webhook" else p.roles[0],
                "recipient": p.recipient,
                "payload": payload,
                "status": "digest" if digest else "pending",
                "attempts": 0,
                "next_attempt_at": due,
                "created_at": now,
                "kind": delivery_kind,
                "notice_id": notice_id,
                "urgent": p.urgent,
            }
        )
    return rows


async def insert_deliveries(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    """Insert once: a row whose delivery key exists already is skipped (PostgreSQL's unique
    index is the durable dedupe)."""
    if not rows:
        return 0
    # One multi-row INSERT needs the same columns in every row.
    rows = [{"sealed": None, "notice_id": None, **row} for row in rows]
    # A cached statement executed for many parameter sets (SQLAlchemy batches them into
    # multi-row INSERTs), rather than a new statement compiled for every set of rows.
    statement = (
        _insert(session)(DELIVERIES)
        .on_conflict_do_nothing(index_elements=["delivery_key"])
        .returning(DELIVERIES.c.id)
    )
    result = await session.execute(statement, rows)
    return len(result.all())


def plan_notice(
    ctx: NotifyContext, notice: NoticeSpec, routing: SiteRouting
) -> list[domain.Planned]:
    """The messages a notice needs now, on the channels this deployment has."""
    return domain.plan(
        [
            i
            for i in domain.route(routing.policy, notice.kind, notice.severity)
            if i.channel in ctx.channels
        ],
        therapist_id=notice.therapist_id,
        contacts=routing.contacts,
        endpoints=routing.endpoints,
    )


def delivery_kind(notice_kind: str) -> str:
    return "match" if notice_kind in {"match_proposed", "match_confirmed"} else "alert"


def notice_rows(
    notice: NoticeSpec, planned: list[domain.Planned], policy: RoutingPolicy, notice_id: str
) -> list[dict[str, Any]]:
    """A notice's deliveries: the same keys whenever they are made (at once, or later when a
    route appears), so each message exists once."""
    return delivery_rows(
        notice,
        planned,
        policy,
        datetime.now(UTC),
        notice_id=notice_id,
        key_base=notice.key,
        delivery_kind=delivery_kind(notice.kind),
    )


def spec_of(notice: NotifyNotice) -> NoticeSpec:
    return NoticeSpec(
        key=notice.notice_key,
        site_id=notice.site_id,
        kind=notice.kind,
        severity=notice.severity,
        source_event_id=notice.source_event_id,
        source_type=notice.source_type,
        data=json.loads(notice.data),
        episode_id=notice.episode_id,
        therapist_id=notice.therapist_id,
    )


async def open_notice(
    ctx: NotifyContext,
    session: AsyncSession,
    notice: NoticeSpec,
    routing: SiteRouting,
    after_commit: list[Any],
) -> bool:
    """Record the notice once and create its deliveries; False if it was already known (the
    same alert under another event id, or the second of risk.flagged / alliance.alert for one
    risk response): the notice key is unique in PostgreSQL.

    A notice no channel of the site can carry is recorded as undeliverable: it waits for a
    route (``undelivered``) and is not escalated as unacknowledged until it has one."""
    policy = routing.policy
    now = datetime.now(UTC)
    urgent = domain.is_urgent(notice.kind, notice.severity)
    notice_id = str(uuid.uuid4())
    planned = plan_notice(ctx, notice, routing)
    rows = notice_rows(notice, planned, policy, notice_id)
    reason = undelivered.undeliverable_reason(len(rows), routing.set_up)
    claim_notice = (
        _insert(session)(NOTICES)
        .values(
            id=notice_id,
            notice_key=notice.key,
            site_id=notice.site_id,
            kind=notice.kind,
            severity=notice.severity,
            urgent=urgent,
            episode_id=notice.episode_id,
            therapist_id=notice.therapist_id,
            source_event_id=notice.source_event_id,
            source_type=notice.source_type,
            data=json.dumps(notice.data, separators=(",", ":"), default=str),
            created_at=now,
            escalate_at=now + timedelta(seconds=policy.risk.escalate_after_seconds)
            if urgent and reason is None
            else None,
            undeliverable_reason=reason,
            awaiting_route_since=now if reason is not None else None,
        )
        .on_conflict_do_nothing(index_elements=["notice_key"])
        .returning(NOTICES.c.id)
    )
    if (await session.execute(claim_notice)).first() is None:
        return False
    await insert_deliveries(session, rows)
    if rows:
        after_commit.append(ctx.wake_dispatcher)
    else:
        after_commit.append(lambda: recorded_undeliverable(notice, reason))
    return True


def recorded_undeliverable(notice: NoticeSpec, reason: str | None) -> None:
    UNDELIVERABLE.labels(metric_code(notice.kind), notice.severity).inc()
    log.warning(
        "notice undeliverable: no channel of its site reaches its recipients",
        site_id=notice.site_id,
        kind=notice.kind,
        severity=notice.severity,
        reason=reason,
    )


def metric_code(kind: str) -> str:
    """A kind as a metric label: a short code, never anything else."""
    return kind if re.fullmatch(r"[a-z0-9_.\-]{1,40}", kind) else "other"


async def escalate(
    ctx: NotifyContext, session: AsyncSession, notice: NotifyNotice, policy: RoutingPolicy
) -> int:
    """An urgent notice nobody acknowledged in time: tell the policy's second contacts now."""
    now = datetime.now(UTC)
    spec = spec_of(notice)
    intents = [i for i in domain.escalation_intents(policy) if i.channel in ctx.channels]
    planned = domain.plan(
        intents,
        therapist_id=notice.therapist_id,
        contacts=await site_contacts(session, notice.site_id, {i.role for i in intents}),
        endpoints=await site_endpoints(session, notice.site_id)
        if any(i.channel == "webhook" for i in intents)
        else [],
    )
    rows = delivery_rows(
        spec,
        planned,
        policy,
        now,
        notice_id=notice.id,
        key_base=f"escalation:{notice.id}",
        delivery_kind="escalation",
        escalation={"notice_id": notice.id, "unacknowledged_since": notice.created_at.isoformat()},
    )
    return await insert_deliveries(session, rows)


async def tell_site_admins(
    ctx: NotifyContext, session: AsyncSession, site_id: str, kind: str, key: str, event_id: str
) -> int:
    """Operational notices to a site's admins by email (e.g. a webhook endpoint disabled)."""
    now = datetime.now(UTC)
    if "email" not in ctx.channels:
        return 0
    contacts = [
        c for c in await site_contacts(session, site_id, {"site_admin"}) if c.reachable_on("email")
    ]
    rows = []
    for contact in contacts:
        planned = domain.Planned(
            f"staff:site_admin:{contact.staff_id}",
            "email",
            contact.id,
            ("site_admin",),
            "immediate",
            False,
            contact.quiet,
        )
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "delivery_key": domain.delivery_key(key, planned.recipient, "email"),
                "source_event_id": event_id,
                "site_id": site_id,
                "channel": "email",
                "endpoint_id": contact.id,
                "recipient_role": "site_admin",
                "recipient": planned.recipient,
                "payload": staff_text(kind, planned),
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": domain.not_before(now, False, contact.quiet),
                "created_at": now,
                "kind": kind,
                "notice_id": None,
                "urgent": False,
            }
        )
    return await insert_deliveries(session, rows)
