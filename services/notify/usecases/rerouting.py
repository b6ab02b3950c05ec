"""Undeliverable notices (see ``undelivered``): delivered as soon as their site has a route,
and an urgent one told to the site's fallback address, or the deployment's ops fallback, once.

Run by the scheduler. Durable and exactly once: what waits is the notice row itself
(``awaiting_route_since``), locked ``FOR UPDATE SKIP LOCKED`` while it is looked at; its
deliveries are the ones it would have had at once (the same unique delivery keys) and go out
through the dispatcher like every other; the fallback message has its own unique key and the
notice records it (``fallback_at``). A restart loses nothing: the next look finds the rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter
from sqlalchemy import func
from sqlalchemy import select as core_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify import mapping, undelivered
from services.notify.delivery_rows import fallback_row, notice_rows
from services.notify.dependencies import NotifyDependencies, of_runtime
from services.notify.escalation import escalates_at
from services.notify.models import NotifyNotice, NotifySiteFallback
from services.notify.site_routing import SiteRouting
from services.notify.usecases.notices import NOTICES, insert_deliveries, metric_code, plan_notice
from shared.db import all_sites, dialect_of
from shared.logs import get_logger
from shared.runtime import ServiceRuntime

log = get_logger(__name__)
ROUTED_LATE = Counter(
    "rapport_notify_undeliverable_routed_total",
    "Undeliverable notices delivered once their site had a route",
    ["kind", "severity"],
)
FALLBACKS = Counter(
    "rapport_notify_fallback_escalations_total",
    "Urgent undeliverable notices told to a fallback address",
    ["target"],  # site | ops
)
PER_SITE = 200


async def route_waiting(deps: NotifyDependencies) -> int:
    """One look at every site with waiting notices whose fate may have changed; the number
    of deliveries created."""
    now = datetime.now(UTC)
    created = 0
    looked: dict[str, undelivered.Looked] = {}
    counted: list[tuple[Any, str]] = []
    async with deps.runtime.sessionmaker() as session, session.begin():
        sites = (
            await session.execute(
                core_select(NOTICES.c.site_id, func.max(NOTICES.c.awaiting_route_since))
                .where(NOTICES.c.awaiting_route_since.is_not(None))
                .group_by(NOTICES.c.site_id)
                .limit(1000)
            )
        ).all()
        for site_id, newest in sites:
            routing = await deps.policies.routing(session, site_id)
            fallback = await session.get(NotifySiteFallback, site_id)
            fingerprint = undelivered.routing_fingerprint(
                routing.policy.model_dump_json(),
                routing.contacts,
                routing.endpoints,
                fallback is not None,
            )
            if not undelivered.look_again(deps.looked.get(site_id), fingerprint, newest, now):
                continue
            created += await route_site(deps, session, site_id, routing, fallback, now, counted)
            looked[site_id] = undelivered.Looked(fingerprint, now)
    deps.looked.update(looked)
    for metric, target in counted:
        metric.labels(*target.split("|")).inc()
    return created


async def route_site(
    deps: NotifyDependencies,
    session: AsyncSession,
    site_id: str,
    routing: SiteRouting,
    fallback: NotifySiteFallback | None,
    now: datetime,
    counted: list[tuple[Any, str]],
) -> int:
    statement = (
        select(NotifyNotice)
        .where(
            NotifyNotice.site_id == site_id,
            col(NotifyNotice.awaiting_route_since).is_not(None),
        )
        .order_by(col(NotifyNotice.awaiting_route_since))
        .limit(PER_SITE)
    )
    if dialect_of(session) == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    created = 0
    for notice in (await session.exec(statement)).all():
        spec = mapping.spec_of(notice)
        planned = plan_notice(deps, spec, routing)
        if planned:
            created += await insert_deliveries(
                session, notice_rows(spec, planned, routing.policy, notice.id)
            )
            notice.awaiting_route_since, notice.routed_at = None, now
            if notice.acknowledged_at is None:
                # Not followed up from now on: escalated as its policy says.
                notice.escalate_at = escalates_at(routing.policy, notice.kind, notice.severity, now)
            session.add(notice)
            counted.append((ROUTED_LATE, f"{metric_code(notice.kind)}|{notice.severity}"))
            log.info("undeliverable notice routed", site_id=site_id, kind=notice.kind)
            continue
        if notice.fallback_at is not None:
            continue
        target = undelivered.fallback_for(
            notice.kind,
            notice.severity,
            site_address=fallback is not None,
            ops_address=deps.ops_fallback is not None,
            email="email" in deps.channels,
        )
        if target is None:
            continue
        created += await insert_deliveries(session, [fallback_row(notice, target, now)])
        notice.fallback_at, notice.fallback_to = now, target
        session.add(notice)
        counted.append((FALLBACKS, target))
        log.warning(
            "urgent notice undeliverable: told the fallback",
            site_id=site_id,
            kind=notice.kind,
            fallback=target,
        )
    return created


async def waiting_urgent(deps: NotifyDependencies) -> int:
    """Urgent notices waiting for a route, at every site."""
    with all_sites():
        async with deps.runtime.sessionmaker() as session:
            count = await session.scalar(
                core_select(func.count())
                .select_from(NOTICES)
                .where(NOTICES.c.awaiting_route_since.is_not(None), NOTICES.c.urgent.is_(True))
            )
    return int(count or 0)


async def readiness_warnings(runtime: ServiceRuntime) -> dict[str, str]:
    warning = undelivered.readiness_warning(await waiting_urgent(of_runtime(runtime)))
    return {"notify.undelivered": warning} if warning else {}
