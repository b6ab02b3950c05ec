"""An alert's life in notify: each step of ``alliance.alert`` is announced once, in order
(shared/alert_life.py). An opening is routed as before (rule 1 and the policy's rules); a
later step (acknowledged, action_recorded, resolved, closed) goes to the webhooks of the rules
that ask for it (``steps`` in a routing rule), and to nobody by default. An alert that ended is
never reopened by an opening that arrives late (a replay, a reordering)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify import mapping
from services.notify.dependencies import NotifyDependencies
from services.notify.models import NotifyAlertLife
from services.notify.usecases.notices import AfterCommit, open_notice, plan_notice, tell_site
from shared.alert_life import AlertLife, take
from shared.contracts import AllianceAlert
from shared.db import dialect_of, insert_or_ignore

LIVES = NotifyAlertLife.__table__  # type: ignore[attr-defined]


async def life_of(session: AsyncSession, alert: AllianceAlert, now: datetime) -> NotifyAlertLife:
    """The alert's life so far, locked until the commit (created empty the first time)."""
    await session.execute(
        insert_or_ignore(session, LIVES, ["alert_id"]).values(
            alert_id=alert.alert_id, site_id=alert.site_id, announced=[], actions=0, updated_at=now
        )
    )
    statement = select(NotifyAlertLife).where(NotifyAlertLife.alert_id == alert.alert_id)
    if dialect_of(session) == "postgresql":
        statement = statement.with_for_update()
    return (await session.exec(statement)).one()


async def follow_alert(
    deps: NotifyDependencies,
    session: AsyncSession,
    event_id: str,
    alert: AllianceAlert,
    after_commit: AfterCommit,
) -> bool:
    """Announce this step of the alert if it is new and in order; True if it was."""
    now = datetime.now(UTC)
    row = await life_of(session, alert, now)
    decision = take(AlertLife(frozenset(row.announced or []), row.actions), alert.status)
    life = decision.life
    await session.execute(
        update(LIVES)
        .where(LIVES.c.alert_id == alert.alert_id)
        .values(
            announced=sorted(life.announced),
            actions=life.actions,
            ended_at=row.ended_at or (now if life.ended else None),
            updated_at=now,
        )
    )
    if not decision.announce:
        return False
    if alert.status == "opened":
        return await tell_site(deps, session, mapping.alert_notice(event_id, alert), after_commit)
    notice = mapping.alert_step_notice(event_id, alert)
    routing = await deps.policies.routing(session, alert.site_id)
    if not plan_notice(deps, notice, routing):
        return False  # no rule of the site asks for this step: nothing to send or to wait for
    return await open_notice(deps, session, notice, routing, after_commit)
