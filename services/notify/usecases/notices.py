"""Notices (an alert, a risk response, a match) and their deliveries, in the caller's
transaction; escalation of the ones nobody followed up in time; operational emails to a site's
admins. Nothing here waits on the network: the dispatcher sends after the commit."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify import domain, mapping, undelivered
from services.notify.delivery_rows import message_row, notice_rows, planned_rows, staff_text
from services.notify.dependencies import NotifyDependencies
from services.notify.escalation import escalates_at, escalation_for, is_due
from services.notify.models import (
    NotifyAlertLife,
    NotifyDelivery,
    NotifyNotice,
    NotifyStaffContact,
    NotifyWebhook,
)
from services.notify.policy import RoutingPolicy
from services.notify.site_routing import SiteRouting
from shared.db import dialect_of, insert_or_ignore
from shared.logs import get_logger

log = get_logger(__name__)
UNDELIVERABLE = Counter(
    "rapport_notify_undeliverable_total",
    "Notices no channel of their site could carry when they arrived (they wait for a route)",
    ["kind", "severity"],
)
DELIVERIES = SQLModel.metadata.tables[NotifyDelivery.__tablename__]
NOTICES = SQLModel.metadata.tables[NotifyNotice.__tablename__]
AfterCommit = list[Callable[[], None]]


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
    return [mapping.contact_point(r) for r in rows]


async def site_endpoints(session: AsyncSession, site_id: str) -> list[str]:
    rows = await session.exec(
        select(NotifyWebhook.id).where(
            NotifyWebhook.site_id == site_id, col(NotifyWebhook.active).is_(True)
        )
    )
    return list(rows.all())


async def insert_deliveries(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    """Insert once: a row whose delivery key exists already is skipped (PostgreSQL's unique
    index is the durable dedupe)."""
    if not rows:
        return 0
    # One multi-row INSERT needs the same columns in every row.
    rows = [{"sealed": None, "notice_id": None, **row} for row in rows]
    # A cached statement executed for many parameter sets (SQLAlchemy batches them into
    # multi-row INSERTs), rather than a new statement compiled for every set of rows.
    statement = insert_or_ignore(session, DELIVERIES, ["delivery_key"]).returning(DELIVERIES.c.id)
    result = await session.execute(statement, rows)
    return len(result.all())


def plan_notice(
    deps: NotifyDependencies, notice: domain.NoticeSpec, routing: SiteRouting
) -> list[domain.Planned]:
    """The messages a notice needs now, on the channels this deployment has."""
    return domain.plan(
        [
            i
            for i in domain.route(routing.policy, notice.kind, notice.severity, notice.step)
            if i.channel in deps.channels
        ],
        therapist_id=notice.therapist_id,
        contacts=routing.contacts,
        endpoints=routing.endpoints,
    )


async def open_notice(
    deps: NotifyDependencies,
    session: AsyncSession,
    notice: domain.NoticeSpec,
    routing: SiteRouting,
    after_commit: AfterCommit,
    planned: list[domain.Planned] | None = None,
) -> bool:
    """Record the notice once and create its deliveries; False if it was already known (the
    same alert under another event id, or the second of risk.flagged / alliance.alert for one
    risk response): the notice key is unique in PostgreSQL.

    A notice no channel of the site can carry is recorded as undeliverable: it waits for a
    route (``undelivered``) and is not escalated as unacknowledged until it has one.
    ``planned`` replaces the policy's routing (a notice its rules do not route, e.g. results)."""
    policy = routing.policy
    now = datetime.now(UTC)
    urgent = domain.is_urgent(notice.kind, notice.severity) and notice.step == "opened"
    notice_id = str(uuid.uuid4())
    planned = plan_notice(deps, notice, routing) if planned is None else planned
    rows = notice_rows(notice, planned, policy, notice_id)
    reason = undelivered.undeliverable_reason(len(rows), routing.set_up)
    claim_notice = (
        insert_or_ignore(session, NOTICES, ["notice_key"])
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
            escalate_at=escalates_at(policy, notice.kind, notice.severity, now)
            if notice.step == "opened" and reason is None
            else None,
            undeliverable_reason=reason,
            awaiting_route_since=now if reason is not None else None,
        )
        .returning(NOTICES.c.id)
    )
    if (await session.execute(claim_notice)).first() is None:
        return False
    await insert_deliveries(session, rows)
    if rows:
        after_commit.append(deps.wake_dispatcher)
    else:
        after_commit.append(lambda: recorded_undeliverable(notice, reason))
    return True


def recorded_undeliverable(notice: domain.NoticeSpec, reason: str | None) -> None:
    UNDELIVERABLE.labels(metric_code(notice.kind), notice.severity).inc()
    # An urgent notice nobody can be told of is an operator's problem now (a warning); a routine
    # one a site has chosen no channel for (e.g. match notices without email) is information.
    emit = log.warning if notice.severity == "urgent" else log.info
    emit(
        "notice undeliverable: no channel of its site reaches its recipients",
        site_id=notice.site_id,
        kind=notice.kind,
        severity=notice.severity,
        reason=reason,
    )


def metric_code(kind: str) -> str:
    """A kind as a metric label: a short code, never anything else."""
    return kind if re.fullmatch(r"[a-z0-9_.\-]{1,40}", kind) else "other"


async def tell_site(
    deps: NotifyDependencies,
    session: AsyncSession,
    notice: domain.NoticeSpec,
    after_commit: AfterCommit,
) -> bool:
    """A notice for a site's staff (an opened alert, a risk response, a proposed match), routed
    as the site's policy says; False if it was already known."""
    routing = await deps.policies.routing(session, notice.site_id)
    return await open_notice(deps, session, notice, routing, after_commit)


async def escalate(
    deps: NotifyDependencies, session: AsyncSession, notice: NotifyNotice, policy: RoutingPolicy
) -> int:
    """A notice nobody followed up in time: tell the policy's second contacts now (an urgent
    one at once; another once its recipient's quiet hours are over)."""
    now = datetime.now(UTC)
    escalation = escalation_for(policy, notice.kind, notice.severity)
    if escalation is None:  # the site's policy no longer escalates it
        return 0
    spec = mapping.spec_of(notice)
    intents = [i for i in escalation.intents() if i.channel in deps.channels]
    planned = domain.plan(
        intents,
        therapist_id=notice.therapist_id,
        contacts=await site_contacts(session, notice.site_id, {i.role for i in intents}),
        endpoints=await site_endpoints(session, notice.site_id)
        if any(i.channel == "webhook" for i in intents)
        else [],
    )
    rows = planned_rows(
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


async def steps_of_alerts(
    session: AsyncSession, notices: list[NotifyNotice]
) -> dict[str, list[str]]:
    """The steps of their alerts' lives announced so far, by notice id (nothing for a notice
    that is not an alert's opening)."""
    keys = {n.notice_key: n.id for n in notices}
    rows = (
        await session.exec(
            select(NotifyAlertLife).where(col(NotifyAlertLife.notice_key).in_(set(keys)))
        )
    ).all()
    return {keys[r.notice_key]: list(r.announced or []) for r in rows if r.notice_key in keys}


async def escalations_due(deps: NotifyDependencies, limit: int = 100) -> int:
    """Escalate the notices whose time to be followed up ran out (one transaction; replicas
    share the work, each notice claimed by one of them and escalated once)."""
    now = datetime.now(UTC)
    created = 0
    async with deps.runtime.sessionmaker() as session, session.begin():
        statement = (
            select(NotifyNotice)
            .where(
                col(NotifyNotice.escalate_at) <= now,
                col(NotifyNotice.acknowledged_at).is_(None),
                col(NotifyNotice.escalated_at).is_(None),
            )
            .order_by(col(NotifyNotice.escalate_at))
            .limit(limit)
        )
        if dialect_of(session) == "postgresql":
            statement = statement.with_for_update(skip_locked=True)
        notices = list((await session.exec(statement)).all())
        steps = await steps_of_alerts(session, notices)
        for notice in notices:
            due = is_due(
                notice.escalate_at,
                now,
                acknowledged=notice.acknowledged_at is not None,
                escalated=notice.escalated_at is not None,
                steps=steps.get(notice.id, ()),
            )
            notice.escalate_at = None  # out of the index of escalations to come
            session.add(notice)
            if not due:
                continue
            policy = await deps.policies.for_site(session, notice.site_id)
            created += await escalate(deps, session, notice, policy)
            notice.escalated_at = now
            log.warning(
                "notice not followed up in time: escalated",
                notice_id=notice.id,
                site_id=notice.site_id,
                kind=notice.kind,
                urgent=notice.urgent,
            )
    return created


async def tell_site_admins(
    deps: NotifyDependencies,
    session: AsyncSession,
    site_id: str,
    kind: str,
    key: str,
    event_id: str,
) -> int:
    """Operational notices to a site's admins by email (e.g. a webhook endpoint disabled)."""
    now = datetime.now(UTC)
    if "email" not in deps.channels:
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
            message_row(
                key=key,
                recipient=planned.recipient,
                channel="email",
                endpoint_id=contact.id,
                recipient_role="site_admin",
                payload=staff_text(kind, planned),
                source_event_id=event_id,
                site_id=site_id,
                kind=kind,
                due=domain.not_before(now, False, contact.quiet),
                now=now,
            )
        )
    return await insert_deliveries(session, rows)
